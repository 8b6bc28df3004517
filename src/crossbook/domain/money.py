"""Exact decimal <-> integer conversion for money, prices and quantities.

Every amount inside Crossbook is an ``int`` counted in minor units of some scale
(``scale=8`` means 1 == 0.00000001). Decimal strings are parsed exactly; there is no
path from ``float``: a float argument is a ``TypeError``.
"""

from __future__ import annotations

import re

_DECIMAL = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?", re.ASCII)


class AmountError(ValueError):
    """A decimal string that does not denote an exact amount at the wanted scale."""


def parse_amount(text: str, scale: int) -> int:
    """Parse ``text`` (like ``"12.5"``) into an integer of minor units at ``scale``.

    Trailing zeros beyond the scale are accepted (``"1.500"`` at scale 1); any
    non-zero digit beyond it raises :class:`AmountError`, as do exponents, blanks,
    ``nan``/``inf`` and anything that is not a plain decimal.
    """
    if not isinstance(text, str):
        raise TypeError(f"amount must be a decimal string, not {type(text).__name__}")
    if scale < 0:
        raise ValueError("scale must be >= 0")
    match = _DECIMAL.fullmatch(text)
    if match is None:
        raise AmountError(f"not a decimal number: {text!r}")
    sign, whole, frac = match.group(1), match.group(2), match.group(3) or ""
    if not whole and not frac:
        raise AmountError(f"not a decimal number: {text!r}")
    extra = frac[scale:]
    if extra.strip("0"):
        raise AmountError(f"{text!r} has more than {scale} decimal places")
    frac = frac[:scale].ljust(scale, "0")
    value = int((whole or "0") + frac)
    return -value if sign == "-" else value


def format_amount(value: int, scale: int, *, trim: bool = False) -> str:
    """Format minor units as a decimal string with exactly ``scale`` decimals.

    With ``trim=True`` trailing zeros (and a bare point) are dropped.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"amount must be int, not {type(value).__name__}")
    if scale < 0:
        raise ValueError("scale must be >= 0")
    sign = "-" if value < 0 else ""
    digits = str(abs(value))
    if scale == 0:
        return sign + digits
    digits = digits.rjust(scale + 1, "0")
    whole, frac = digits[:-scale], digits[-scale:]
    if trim:
        frac = frac.rstrip("0")
        return f"{sign}{whole}.{frac}" if frac else sign + whole
    return f"{sign}{whole}.{frac}"
