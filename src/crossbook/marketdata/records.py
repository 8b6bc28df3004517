"""Update records of the market-data streams (typed, immutable, pure values).

Units are the engine's: prices in ``10**-price_scale`` quote per whole base unit,
quantities in base minor units, times in nanoseconds since the epoch (UTC).
Quote volumes are exact sums of ``price * quantity``, i.e. in units of
``10**-(price_scale + base_scale)`` quote; :func:`quote_minor` converts one to quote
minor units, rounded down.
"""

from __future__ import annotations

from fractions import Fraction

import msgspec

from crossbook.domain.markets import Market

Level = tuple[int, int]
"""(price, quantity)"""


def quote_minor(market: Market, quote_volume: int) -> int:
    """An exact quote volume (sum of price * quantity) in quote minor units, rounded down."""
    return market.notional_scaled(quote_volume, 1) // market.notional_divisor


class DepthUpdate(msgspec.Struct, frozen=True, gc=False):
    """The book levels one command changed, with absolute visible quantities (0: the
    level is gone). Update ids are contiguous per market: ``first_update_id`` is the
    previous update's ``final_update_id + 1`` and ``final - first + 1`` is the number
    of levels in ``bids`` and ``asks``. Bids best (highest) first, asks lowest first."""

    market: str
    first_update_id: int
    final_update_id: int
    ts: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


class Trade(msgspec.Struct, frozen=True, gc=False):
    """One fill. ``buyer_is_maker`` iff the taker sold. Also its own aggregate trade
    (Binance ``a`` == ``f`` == ``l`` == ``trade_id``)."""

    market: str
    trade_id: int
    price: int
    quantity: int
    buyer_is_maker: bool
    ts: int


class KlineUpdate(msgspec.Struct, frozen=True, gc=False):
    """A candle's state. ``open_time`` is the interval's start; ``close_time`` its last
    nanosecond (next open - 1). ``closed`` is True once time has passed ``close_time``.
    Candles exist only for intervals with at least one trade (no synthetic gap fill)."""

    market: str
    interval: str
    open_time: int
    close_time: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    quote_volume: int
    count: int
    closed: bool
    first_trade_id: int = -1
    last_trade_id: int = -1
    taker_buy_volume: int = 0
    taker_buy_quote_volume: int = 0


class BookTicker(msgspec.Struct, frozen=True, gc=False):
    """Best bid and ask with their visible quantities (0, 0 for an empty side), as of
    depth update id ``update_id``."""

    market: str
    update_id: int
    ts: int
    bid_price: int
    bid_quantity: int
    ask_price: int
    ask_quantity: int


class Ticker(msgspec.Struct, frozen=True, gc=False):
    """Rolling-window statistics at ``close_time`` over trades with
    ``open_time <= ts <= close_time`` (see :class:`~crossbook.marketdata.window.Window`).

    With no trade in the window: ``count == 0``, trade ids -1 and open, high, low equal
    to ``last`` (the market's last trade price ever, 0 if none). ``prev_close`` is the
    last price before the window (0 if none).
    """

    market: str
    open_time: int
    close_time: int
    open: int
    high: int
    low: int
    last: int
    last_quantity: int
    prev_close: int
    volume: int
    quote_volume: int
    count: int
    first_trade_id: int
    last_trade_id: int
    bid_price: int
    bid_quantity: int
    ask_price: int
    ask_quantity: int

    @property
    def price_change(self) -> int:
        """last - open, in price units."""
        return self.last - self.open

    @property
    def price_change_percent(self) -> Fraction:
        """Exact ``100 * (last - open) / open`` (0 when open is 0)."""
        if self.open == 0:
            return Fraction(0)
        return Fraction(100 * (self.last - self.open), self.open)

    @property
    def weighted_average(self) -> Fraction:
        """Exact volume-weighted average price in price units (0 without volume)."""
        if self.volume == 0:
            return Fraction(0)
        return Fraction(self.quote_volume, self.volume)

    @property
    def weighted_average_price(self) -> int:
        """The weighted average price rounded down to a whole price unit."""
        return self.quote_volume // self.volume if self.volume else 0


Update = DepthUpdate | Trade | KlineUpdate | BookTicker | Ticker
"""What :meth:`MarketData.apply` returns."""
