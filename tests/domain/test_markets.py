"""Asset and Market validation, make_market, notional arithmetic."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from crossbook.domain.markets import (
    BTC,
    DEFAULT_MARKETS,
    ETH,
    USDT,
    Asset,
    Market,
    make_market,
)
from crossbook.domain.money import AmountError

GOOD: dict[str, Any] = {
    "symbol": "ABCXYZ",
    "base": "ABC",
    "quote": "XYZ",
    "base_scale": 3,
    "quote_scale": 2,
    "price_scale": 2,
    "tick_size": 5,
    "step_size": 10,
    "min_quantity": 10,
    "max_quantity": 1_000_000,
    "min_notional": 100,
}


def market(**changes: Any) -> Market:
    return Market(**{**GOOD, **changes})


# -------------------------------------------------------------------------- Asset


@pytest.mark.parametrize("code", ["BTC", "USDT", "1INCH", "A"])
def test_asset_ok(code: str) -> None:
    assert Asset(code=code, scale=8).code == code


@pytest.mark.parametrize("code", ["", "btc", "Btc", "BT-C", "BT C", "BTC/USDT"])
def test_asset_bad_code(code: str) -> None:
    with pytest.raises(ValueError):
        Asset(code=code, scale=8)


@pytest.mark.parametrize("scale", [-1, 37, 100])
def test_asset_bad_scale(scale: int) -> None:
    with pytest.raises(ValueError):
        Asset(code="BTC", scale=scale)


@pytest.mark.parametrize("scale", [0, 18, 36])
def test_asset_scale_bounds(scale: int) -> None:
    assert Asset(code="X", scale=scale).scale == scale


def test_assets_are_frozen() -> None:
    with pytest.raises(AttributeError):
        BTC.scale = 2  # type: ignore[misc]


# ------------------------------------------------------------------------- Market


def test_market_ok() -> None:
    m = market()
    assert m.symbol == "ABCXYZ"
    assert m.notional_divisor == 10 ** (2 + 3)


@pytest.mark.parametrize(
    "changes",
    [
        {"symbol": ""},
        {"symbol": "ABC-XYZ"},
        {"symbol": "ABC/XYZ"},
        {"tick_size": 0},
        {"tick_size": -5},
        {"step_size": 0},
        {"step_size": -10},
        {"min_quantity": 0},
        {"min_quantity": -10},
        {"max_quantity": 0},
        {"max_quantity": -10},
        {"min_quantity": 20, "max_quantity": 10},
        {"min_quantity": 15},  # not a multiple of the step
        {"max_quantity": 1_000_005},  # not a multiple of the step
        {"min_notional": -1},
    ],
    ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()),
)
def test_market_invalid(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        market(**changes)


@pytest.mark.parametrize("field", ["base_scale", "quote_scale", "price_scale"])
def test_market_negative_scale_invalid(field: str) -> None:
    # A negative scale makes notional_divisor a float (10 ** -1 == 0.1): integer-only
    # arithmetic breaks. Asset refuses scales outside 0..36; Market should too.
    with pytest.raises(ValueError):
        market(**{field: -1})


def test_market_min_equals_max_ok() -> None:
    assert market(min_quantity=10, max_quantity=10).max_quantity == 10


def test_market_min_notional_zero_ok() -> None:
    assert market(min_notional=0).min_notional == 0


def test_market_is_frozen() -> None:
    with pytest.raises(AttributeError):
        market().tick_size = 1  # type: ignore[misc]


def test_notional_scaled_is_exact() -> None:
    m = market()  # price_scale 2, base_scale 3, quote_scale 2
    # 123.45 XYZ * 0.007 ABC = 0.86415 XYZ = 86.415 minor units (not integral)
    scaled = m.notional_scaled(12345, 7)
    assert scaled == 12345 * 7 * 100
    assert scaled / m.notional_divisor == 86.415
    assert scaled // m.notional_divisor == 86


def test_notional_scaled_btc_usdt() -> None:
    btcusdt = next(m for m in DEFAULT_MARKETS if m.symbol == "BTCUSDT")
    # 65000.00 USDT * 0.5 BTC = 32500 USDT = 32_500_000_000 minor units
    price = btcusdt.parse_price("65000.00")
    qty = btcusdt.parse_quantity("0.5")
    assert btcusdt.notional_scaled(price, qty) == 32_500_000_000 * btcusdt.notional_divisor
    assert btcusdt.notional_scaled(price, qty) >= btcusdt.min_notional * btcusdt.notional_divisor


def test_market_parse_and_format() -> None:
    m = market()
    assert m.parse_price("1.25") == 125
    assert m.parse_quantity("1.25") == 1250
    assert m.format_price(125) == "1.25"
    assert m.format_quantity(1250) == "1.250"
    with pytest.raises(AmountError):
        m.parse_price("1.255")


# -------------------------------------------------------------------- make_market


def test_make_market_from_strings() -> None:
    m = make_market(
        "ETHUSDT",
        ETH,
        USDT,
        tick="0.01",
        step="0.0001",
        min_quantity="0.0001",
        max_quantity="100000",
        min_notional="5",
        price_scale=2,
    )
    assert m == Market(
        symbol="ETHUSDT",
        base="ETH",
        quote="USDT",
        base_scale=18,
        quote_scale=6,
        price_scale=2,
        tick_size=1,
        step_size=10**14,
        min_quantity=10**14,
        max_quantity=100_000 * 10**18,
        min_notional=5_000_000,
    )
    # max_quantity is far beyond 2**64
    assert m.max_quantity > 2**64


def test_make_market_price_scale_defaults_to_quote_scale() -> None:
    m = make_market(
        "BTCUSDT",
        BTC,
        USDT,
        tick="0.000001",
        step="0.00000001",
        min_quantity="0.00000001",
        max_quantity="100",
    )
    assert m.price_scale == USDT.scale
    assert m.tick_size == 1
    assert m.min_notional == 0


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"tick": "0.001"}, AmountError),  # finer than price_scale 2
        ({"step": "0.000000001"}, AmountError),  # finer than BTC's 8 decimals
        ({"min_notional": "0.0000001"}, AmountError),  # finer than USDT's 6
        ({"tick": "0"}, ValueError),
        ({"step": "0"}, ValueError),
        ({"tick": "-0.01"}, ValueError),
        ({"min_quantity": "0.00002", "max_quantity": "0.00001"}, ValueError),
        ({"min_quantity": "0.000015"}, ValueError),  # off step
        ({"max_quantity": "9000.000015"}, ValueError),  # off step
        ({"min_notional": "-1"}, ValueError),
        ({"tick": "1e-2"}, AmountError),
        ({"tick": 0.01}, TypeError),
    ],
)
def test_make_market_invalid(kwargs: dict[str, Any], error: type[Exception]) -> None:
    args: dict[str, Any] = {
        "tick": "0.01",
        "step": "0.00001",
        "min_quantity": "0.00001",
        "max_quantity": "9000",
        "min_notional": "5",
        "price_scale": 2,
    }
    with pytest.raises(error):
        make_market("BTCUSDT", BTC, USDT, **{**args, **kwargs})


def test_default_markets_are_consistent() -> None:
    symbols = [m.symbol for m in DEFAULT_MARKETS]
    assert len(set(symbols)) == len(symbols)
    for m in DEFAULT_MARKETS:
        assert m.min_quantity % m.step_size == 0
        assert m.max_quantity % m.step_size == 0
        assert m.symbol == m.base + m.quote


def test_market_encodes_round_trip() -> None:
    for m in DEFAULT_MARKETS:
        assert msgspec.json.decode(msgspec.json.encode(m), type=Market) == m
