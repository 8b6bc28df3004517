"""parse_amount / format_amount: exact decimal <-> integer minor units."""

from __future__ import annotations

from decimal import Context, Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossbook.domain.money import AmountError, format_amount, parse_amount

# --------------------------------------------------------------------------- parse


@pytest.mark.parametrize(
    ("text", "scale", "expected"),
    [
        ("0", 0, 0),
        ("1", 0, 1),
        ("1", 8, 100_000_000),
        ("12.5", 1, 125),
        ("12.5", 2, 1250),
        ("0.00000001", 8, 1),
        ("0.1", 8, 10_000_000),
        ("1.", 2, 100),
        (".5", 1, 5),
        ("+3.25", 2, 325),
        ("007", 0, 7),
        ("000.010", 3, 10),
        ("123456789.123456789012345678", 18, 123456789123456789012345678),
        # far beyond float precision: must stay exact
        ("0.1", 18, 10**17),
        ("9007199254740993", 0, 9007199254740993),
        (
            "115792089237316195423570985008687907853269984665640564039457.584007913129639935",
            18,
            2**256 - 1,
        ),
    ],
)
def test_parse_exact(text: str, scale: int, expected: int) -> None:
    assert parse_amount(text, scale) == expected
    assert type(parse_amount(text, scale)) is int


@pytest.mark.parametrize(
    ("text", "scale", "expected"),
    [
        ("1.500", 1, 15),
        ("1.50000000000000000000", 1, 15),
        ("2.000", 0, 2),
        ("0.000", 0, 0),
        ("3.10", 2, 310),
        ("-1.20", 1, -12),
    ],
)
def test_parse_trailing_zeros_beyond_scale_are_accepted(
    text: str, scale: int, expected: int
) -> None:
    assert parse_amount(text, scale) == expected


@pytest.mark.parametrize(
    ("text", "scale"),
    [
        ("1.55", 1),
        ("0.1", 0),
        ("1.05", 1),
        ("0.000000001", 8),
        ("1.0000000000000000001", 18),
        ("1.500001", 2),
        ("-0.15", 1),
    ],
)
def test_parse_too_many_decimals(text: str, scale: int) -> None:
    with pytest.raises(AmountError):
        parse_amount(text, scale)


@pytest.mark.parametrize(
    ("text", "scale", "expected"),
    [
        ("-1", 0, -1),
        ("-12.5", 2, -1250),
        ("-0.00000001", 8, -1),
        ("-.5", 1, -5),
        ("-0", 2, 0),
        ("-0.00", 2, 0),
    ],
)
def test_parse_negative(text: str, scale: int, expected: int) -> None:
    assert parse_amount(text, scale) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        ".",
        "-",
        "+",
        "-.",
        "1e5",
        "1E5",
        "1e-2",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "Infinity",
        "abc",
        "1.2.3",
        "1,5",
        "1_000",
        "0x10",
        "--1",
        "+-1",
        "1-",
        " 1",
        "1 ",
        "1 000",
        "1.5 ",
        "\t1",
    ],
)
def test_parse_rejects_garbage(text: str) -> None:
    with pytest.raises(AmountError):
        parse_amount(text, 2)


@pytest.mark.parametrize("text", ["1\n", "1.5\n", "0\n"])
def test_parse_rejects_trailing_newline(text: str) -> None:
    # "1\n" is not a plain decimal; a `$`-anchored regex lets it through.
    with pytest.raises(AmountError):
        parse_amount(text, 2)


@pytest.mark.parametrize("text", ["\u0661\u0662", "\u0663.\u0665", "\uff11", "\u09e7"])
def test_parse_rejects_non_ascii_digits(text: str) -> None:
    # Arabic-Indic / full-width / Bengali digits match `\d` in a str regex and `int()`
    # accepts them; an amount on the wire must be plain ASCII decimal.
    with pytest.raises(AmountError):
        parse_amount(text, 2)


def test_amount_error_is_a_value_error() -> None:
    assert issubclass(AmountError, ValueError)


@pytest.mark.parametrize(
    "value", [1.5, 0.1, float("nan"), float("inf"), Decimal("1.5"), Fraction(1, 2), 1, None, b"1"]
)
def test_parse_rejects_non_strings(value: object) -> None:
    with pytest.raises(TypeError):
        parse_amount(value, 2)  # type: ignore[arg-type]


def test_parse_rejects_negative_scale() -> None:
    with pytest.raises(ValueError):
        parse_amount("1", -1)


# -------------------------------------------------------------------------- format


@pytest.mark.parametrize(
    ("value", "scale", "expected"),
    [
        (0, 0, "0"),
        (0, 2, "0.00"),
        (1, 8, "0.00000001"),
        (125, 1, "12.5"),
        (1250, 2, "12.50"),
        (100_000_000, 8, "1.00000000"),
        (-1, 2, "-0.01"),
        (-1250, 2, "-12.50"),
        (7, 0, "7"),
        (-7, 0, "-7"),
        (
            2**256 - 1,
            18,
            "115792089237316195423570985008687907853269984665640564039457.584007913129639935",
        ),
    ],
)
def test_format(value: int, scale: int, expected: str) -> None:
    assert format_amount(value, scale) == expected


@pytest.mark.parametrize(
    ("value", "scale", "expected"),
    [
        (0, 2, "0"),
        (1250, 2, "12.5"),
        (1200, 2, "12"),
        (100_000_000, 8, "1"),
        (1, 8, "0.00000001"),
        (-1200, 2, "-12"),
        (-1250, 2, "-12.5"),
        (7, 0, "7"),
    ],
)
def test_format_trim(value: int, scale: int, expected: str) -> None:
    assert format_amount(value, scale, trim=True) == expected


@pytest.mark.parametrize("value", [1.0, 0.5, Decimal(1), True, False, "1", None])
def test_format_rejects_non_int(value: object) -> None:
    with pytest.raises(TypeError):
        format_amount(value, 2)  # type: ignore[arg-type]


def test_format_rejects_negative_scale() -> None:
    # parse_amount refuses a negative scale; format_amount should too (it returns "5.").
    with pytest.raises(ValueError):
        format_amount(5, -1)


# ----------------------------------------------------------------------- round trip

scales = st.integers(min_value=0, max_value=36)
amounts = st.integers(min_value=-(2**300), max_value=2**300)


@given(value=amounts, scale=scales)
def test_round_trip_int_to_text_to_int(value: int, scale: int) -> None:
    assert parse_amount(format_amount(value, scale), scale) == value
    assert parse_amount(format_amount(value, scale, trim=True), scale) == value


@given(value=amounts, scale=scales)
def test_format_agrees_with_decimal(value: int, scale: int) -> None:
    text = format_amount(value, scale)
    assert Decimal(text) == Decimal(value).scaleb(-scale, context=Context(prec=1000))
    if scale:
        assert len(text.split(".")[1]) == scale
    else:
        assert "." not in text


@given(value=amounts, scale=scales, extra=st.integers(min_value=0, max_value=5))
def test_trailing_zeros_do_not_change_the_value(value: int, scale: int, extra: int) -> None:
    text = format_amount(value, scale)
    padded = text + ("." if scale == 0 and extra else "") + "0" * extra
    assert parse_amount(padded, scale) == value


@given(
    value=amounts,
    scale=st.integers(min_value=0, max_value=20),
    finer=st.integers(min_value=1, max_value=10),
)
def test_parse_at_finer_scale_multiplies(value: int, scale: int, finer: int) -> None:
    text = format_amount(value, scale)
    assert parse_amount(text, scale + finer) == value * 10**finer


@given(value=amounts.filter(lambda v: v % 10 != 0), scale=st.integers(min_value=1, max_value=20))
def test_parse_at_coarser_scale_rejects(value: int, scale: int) -> None:
    with pytest.raises(AmountError):
        parse_amount(format_amount(value, scale), scale - 1)
