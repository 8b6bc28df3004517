"""Assets and markets: scales, ticks, steps and limits, all in integer minor units.

A market quotes ``price`` as an integer of ``10**-price_scale`` quote per one whole
base unit, and ``quantity`` as an integer of ``10**-base_scale`` base (the base
asset's minor unit). The notional of ``price * quantity`` in the quote asset's minor
units is ``price * quantity * 10**quote_scale / 10**(price_scale + base_scale)``,
which need not be integral: comparisons use the exact scaled products
(:meth:`Market.notional_scaled`) and never divide.
"""

from __future__ import annotations

import msgspec

from crossbook.domain.money import format_amount, parse_amount


class Asset(msgspec.Struct, frozen=True, kw_only=True):
    """A currency with its number of decimals (BTC 8, ETH 18, USDT 6)."""

    code: str
    scale: int

    def __post_init__(self) -> None:
        if not self.code or not self.code.isalnum() or self.code.upper() != self.code:
            raise ValueError(f"asset code must be upper-case alphanumeric: {self.code!r}")
        if not 0 <= self.scale <= 36:
            raise ValueError(f"asset scale out of range: {self.scale}")


class Market(msgspec.Struct, frozen=True, kw_only=True):
    """A spot market. Invariants: tick, step, min_quantity > 0; min <= max;
    min and max quantity are multiples of the step."""

    symbol: str
    base: str
    quote: str
    base_scale: int
    quote_scale: int
    price_scale: int
    tick_size: int
    step_size: int
    min_quantity: int
    max_quantity: int
    min_notional: int = 0
    """In the quote asset's minor units; 0 disables the check."""

    def __post_init__(self) -> None:
        if not self.symbol or not self.symbol.isalnum():
            raise ValueError(f"market symbol must be alphanumeric: {self.symbol!r}")
        for name in ("base_scale", "quote_scale", "price_scale"):
            if not 0 <= getattr(self, name) <= 36:
                raise ValueError(f"{self.symbol}: {name} out of range")
        for name in ("tick_size", "step_size", "min_quantity", "max_quantity"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{self.symbol}: {name} must be positive")
        if self.min_quantity > self.max_quantity:
            raise ValueError(f"{self.symbol}: min_quantity exceeds max_quantity")
        if self.min_quantity % self.step_size or self.max_quantity % self.step_size:
            raise ValueError(f"{self.symbol}: quantity limits must be multiples of the step")
        if self.min_notional < 0:
            raise ValueError(f"{self.symbol}: min_notional must be >= 0")

    @property
    def notional_divisor(self) -> int:
        """``price * quantity * 10**quote_scale // notional_divisor`` is the notional
        in quote minor units (before rounding)."""
        return int(10 ** (self.price_scale + self.base_scale))

    def notional_scaled(self, price: int, quantity: int) -> int:
        """Exact notional times :attr:`notional_divisor`, in quote minor units."""
        return price * quantity * int(10**self.quote_scale)

    def parse_price(self, text: str) -> int:
        return parse_amount(text, self.price_scale)

    def parse_quantity(self, text: str) -> int:
        return parse_amount(text, self.base_scale)

    def format_price(self, price: int) -> str:
        return format_amount(price, self.price_scale)

    def format_quantity(self, quantity: int) -> str:
        return format_amount(quantity, self.base_scale)


def make_market(
    symbol: str,
    base: Asset,
    quote: Asset,
    *,
    tick: str,
    step: str,
    min_quantity: str,
    max_quantity: str,
    min_notional: str = "0",
    price_scale: int | None = None,
) -> Market:
    """Build a market from decimal strings (the way a config file states it)."""
    ps = quote.scale if price_scale is None else price_scale
    return Market(
        symbol=symbol,
        base=base.code,
        quote=quote.code,
        base_scale=base.scale,
        quote_scale=quote.scale,
        price_scale=ps,
        tick_size=parse_amount(tick, ps),
        step_size=parse_amount(step, base.scale),
        min_quantity=parse_amount(min_quantity, base.scale),
        max_quantity=parse_amount(max_quantity, base.scale),
        min_notional=parse_amount(min_notional, quote.scale),
    )


BTC = Asset(code="BTC", scale=8)
ETH = Asset(code="ETH", scale=18)
USDT = Asset(code="USDT", scale=6)

DEFAULT_ASSETS: tuple[Asset, ...] = (BTC, ETH, USDT)
DEFAULT_MARKETS: tuple[Market, ...] = (
    make_market(
        "BTCUSDT",
        BTC,
        USDT,
        tick="0.01",
        step="0.00001",
        min_quantity="0.00001",
        max_quantity="9000",
        min_notional="5",
        price_scale=2,
    ),
    make_market(
        "ETHUSDT",
        ETH,
        USDT,
        tick="0.01",
        step="0.0001",
        min_quantity="0.0001",
        max_quantity="100000",
        min_notional="5",
        price_scale=2,
    ),
)
