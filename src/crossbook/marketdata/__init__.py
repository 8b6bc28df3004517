"""Market data: L2 books with contiguous update ids, trades, rolling tickers and klines.

The core (:class:`MarketData`) is pure and deterministic; :mod:`.binance` turns its
records into Binance-format messages for the gateway.
"""

from crossbook.marketdata.core import MarketData, merge_depth_updates
from crossbook.marketdata.intervals import INTERVALS, interval_bounds
from crossbook.marketdata.records import (
    BookTicker,
    DepthUpdate,
    KlineUpdate,
    Level,
    Ticker,
    Trade,
    Update,
    quote_minor,
)

__all__ = [
    "INTERVALS",
    "BookTicker",
    "DepthUpdate",
    "KlineUpdate",
    "Level",
    "MarketData",
    "Ticker",
    "Trade",
    "Update",
    "interval_bounds",
    "merge_depth_updates",
    "quote_minor",
]
