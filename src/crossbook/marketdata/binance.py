"""Binance-format messages from market-data records (see /work/shared/API-COMPAT.md).

Every number is a decimal string at the market's scales (prices at ``price_scale``,
quantities at ``base_scale``, quote amounts at ``quote_scale``, rounded down), except
ids, counts and times (integers, milliseconds). Percentages have 3 decimals, rounded
half away from zero. The functions are pure: the gateway adds ``E`` event times that are
not in the record (defaults to the record's own time) and the stream envelope.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from crossbook.domain.markets import Market
from crossbook.domain.money import format_amount
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

_NS_PER_MS = 1_000_000


def ms(ts: int) -> int:
    """Nanoseconds to Binance milliseconds (rounded down)."""
    return ts // _NS_PER_MS


def _levels(market: Market, levels: Iterable[Level]) -> list[list[str]]:
    ps, bs = market.price_scale, market.base_scale
    return [[format_amount(p, ps), format_amount(q, bs)] for p, q in levels]


def _quote(market: Market, quote_volume: int) -> str:
    return format_amount(quote_minor(market, quote_volume), market.quote_scale)


def _percent(change: int, base: int) -> str:
    """``100 * change / base`` with 3 decimals, rounded half away from zero."""
    if base == 0:
        return "0.000"
    q, r = divmod(abs(change) * 100_000, base)
    if 2 * r >= base:
        q += 1
    return format_amount(-q if change < 0 else q, 3)


# ----------------------------------------------------------------- WebSocket events


def depth_update_event(
    market: Market, u: DepthUpdate, event_ts: int | None = None
) -> dict[str, Any]:
    """``<sym>@depth``: ``{"e":"depthUpdate","E","s","U","u","b","a"}`` (no ``pu``)."""
    return {
        "e": "depthUpdate",
        "E": ms(u.ts if event_ts is None else event_ts),
        "s": market.symbol,
        "U": u.first_update_id,
        "u": u.final_update_id,
        "b": _levels(market, u.bids),
        "a": _levels(market, u.asks),
    }


def partial_depth_event(
    market: Market, depth: tuple[int, list[Level], list[Level]]
) -> dict[str, Any]:
    """``<sym>@depth5|10|20``: ``{"lastUpdateId","bids","asks"}`` from ``MarketData.depth``."""
    return depth_response(market, depth)


def trade_event(market: Market, t: Trade, event_ts: int | None = None) -> dict[str, Any]:
    """``<sym>@trade``."""
    return {
        "e": "trade",
        "E": ms(t.ts if event_ts is None else event_ts),
        "s": market.symbol,
        "t": t.trade_id,
        "p": format_amount(t.price, market.price_scale),
        "q": format_amount(t.quantity, market.base_scale),
        "T": ms(t.ts),
        "m": t.buyer_is_maker,
        "M": True,
    }


def agg_trade_event(market: Market, t: Trade, event_ts: int | None = None) -> dict[str, Any]:
    """``<sym>@aggTrade``: every fill is its own aggregate (``a == f == l``)."""
    return {
        "e": "aggTrade",
        "E": ms(t.ts if event_ts is None else event_ts),
        "s": market.symbol,
        "a": t.trade_id,
        "p": format_amount(t.price, market.price_scale),
        "q": format_amount(t.quantity, market.base_scale),
        "f": t.trade_id,
        "l": t.trade_id,
        "T": ms(t.ts),
        "m": t.buyer_is_maker,
        "M": True,
    }


def kline_event(market: Market, k: KlineUpdate, event_ts: int | None = None) -> dict[str, Any]:
    """``<sym>@kline_<interval>``."""
    ps, bs = market.price_scale, market.base_scale
    return {
        "e": "kline",
        "E": ms(event_ts if event_ts is not None else k.close_time if k.closed else k.open_time),
        "s": market.symbol,
        "k": {
            "t": ms(k.open_time),
            "T": ms(k.close_time),
            "s": market.symbol,
            "i": k.interval,
            "f": k.first_trade_id,
            "L": k.last_trade_id,
            "o": format_amount(k.open, ps),
            "c": format_amount(k.close, ps),
            "h": format_amount(k.high, ps),
            "l": format_amount(k.low, ps),
            "v": format_amount(k.volume, bs),
            "n": k.count,
            "x": k.closed,
            "q": _quote(market, k.quote_volume),
            "V": format_amount(k.taker_buy_volume, bs),
            "Q": _quote(market, k.taker_buy_quote_volume),
            "B": "0",
        },
    }


def ticker_event(market: Market, t: Ticker, event_ts: int | None = None) -> dict[str, Any]:
    """``<sym>@ticker``: ``24hrTicker``."""
    ps, bs = market.price_scale, market.base_scale
    return {
        "e": "24hrTicker",
        "E": ms(t.close_time if event_ts is None else event_ts),
        "s": market.symbol,
        "p": format_amount(t.price_change, ps),
        "P": _percent(t.price_change, t.open),
        "w": format_amount(t.weighted_average_price, ps),
        "x": format_amount(t.prev_close, ps),
        "c": format_amount(t.last, ps),
        "Q": format_amount(t.last_quantity, bs),
        "b": format_amount(t.bid_price, ps),
        "B": format_amount(t.bid_quantity, bs),
        "a": format_amount(t.ask_price, ps),
        "A": format_amount(t.ask_quantity, bs),
        "o": format_amount(t.open, ps),
        "h": format_amount(t.high, ps),
        "l": format_amount(t.low, ps),
        "v": format_amount(t.volume, bs),
        "q": _quote(market, t.quote_volume),
        "O": ms(t.open_time),
        "C": ms(t.close_time),
        "F": t.first_trade_id,
        "L": t.last_trade_id,
        "n": t.count,
    }


def mini_ticker_event(market: Market, t: Ticker, event_ts: int | None = None) -> dict[str, Any]:
    """``<sym>@miniTicker`` and the elements of ``!miniTicker@arr``."""
    ps = market.price_scale
    return {
        "e": "24hrMiniTicker",
        "E": ms(t.close_time if event_ts is None else event_ts),
        "s": market.symbol,
        "c": format_amount(t.last, ps),
        "o": format_amount(t.open, ps),
        "h": format_amount(t.high, ps),
        "l": format_amount(t.low, ps),
        "v": format_amount(t.volume, market.base_scale),
        "q": _quote(market, t.quote_volume),
    }


def book_ticker_event(market: Market, b: BookTicker) -> dict[str, Any]:
    """``<sym>@bookTicker``: ``{u,s,b,B,a,A}``."""
    ps, bs = market.price_scale, market.base_scale
    return {
        "u": b.update_id,
        "s": market.symbol,
        "b": format_amount(b.bid_price, ps),
        "B": format_amount(b.bid_quantity, bs),
        "a": format_amount(b.ask_price, ps),
        "A": format_amount(b.ask_quantity, bs),
    }


def stream_events(
    market: Market, update: Update, event_ts: int | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """(stream name, payload) pairs for one record: ``<sym>@depth``, ``@trade`` and
    ``@aggTrade``, ``@kline_<i>``, ``@bookTicker``, ``@ticker`` and ``@miniTicker``.
    Stream names use the lower-case symbol; ``event_ts`` (ns) sets ``E`` (default: the
    record's time). Throttling (``@100ms``, 1 s tickers) and partial books are the
    gateway's business."""
    sym = market.symbol.lower()
    if type(update) is DepthUpdate:
        return [(f"{sym}@depth", depth_update_event(market, update, event_ts))]
    if type(update) is Trade:
        return [
            (f"{sym}@trade", trade_event(market, update, event_ts)),
            (f"{sym}@aggTrade", agg_trade_event(market, update, event_ts)),
        ]
    if type(update) is KlineUpdate:
        return [(f"{sym}@kline_{update.interval}", kline_event(market, update, event_ts))]
    if type(update) is BookTicker:
        return [(f"{sym}@bookTicker", book_ticker_event(market, update))]
    if type(update) is Ticker:
        return [
            (f"{sym}@ticker", ticker_event(market, update, event_ts)),
            (f"{sym}@miniTicker", mini_ticker_event(market, update, event_ts)),
        ]
    raise TypeError(f"not a market data record: {type(update).__name__}")


# ----------------------------------------------------------------- REST responses


def depth_response(market: Market, depth: tuple[int, list[Level], list[Level]]) -> dict[str, Any]:
    """``GET /api/v3/depth`` from ``MarketData.depth(symbol, limit)``."""
    last_update_id, bids, asks = depth
    return {
        "lastUpdateId": last_update_id,
        "bids": _levels(market, bids),
        "asks": _levels(market, asks),
    }


def trades_response(market: Market, trades: Iterable[Trade]) -> list[dict[str, Any]]:
    """``GET /api/v3/trades`` and ``/api/v3/historicalTrades``."""
    ps, bs = market.price_scale, market.base_scale
    return [
        {
            "id": t.trade_id,
            "price": format_amount(t.price, ps),
            "qty": format_amount(t.quantity, bs),
            "quoteQty": _quote(market, t.price * t.quantity),
            "time": ms(t.ts),
            "isBuyerMaker": t.buyer_is_maker,
            "isBestMatch": True,
        }
        for t in trades
    ]


def agg_trades_response(market: Market, trades: Iterable[Trade]) -> list[dict[str, Any]]:
    """``GET /api/v3/aggTrades``: ``a, p, q, f, l, T, m, M``."""
    ps, bs = market.price_scale, market.base_scale
    return [
        {
            "a": t.trade_id,
            "p": format_amount(t.price, ps),
            "q": format_amount(t.quantity, bs),
            "f": t.trade_id,
            "l": t.trade_id,
            "T": ms(t.ts),
            "m": t.buyer_is_maker,
            "M": True,
        }
        for t in trades
    ]


def klines_response(market: Market, klines: Iterable[KlineUpdate]) -> list[list[Any]]:
    """``GET /api/v3/klines``: ``[openTime, open, high, low, close, volume, closeTime,
    quoteVolume, count, takerBuyBaseVolume, takerBuyQuoteVolume, "0"]``."""
    ps, bs = market.price_scale, market.base_scale
    return [
        [
            ms(k.open_time), format_amount(k.open, ps), format_amount(k.high, ps),
            format_amount(k.low, ps), format_amount(k.close, ps), format_amount(k.volume, bs),
            ms(k.close_time), _quote(market, k.quote_volume), k.count,
            format_amount(k.taker_buy_volume, bs), _quote(market, k.taker_buy_quote_volume), "0",
        ]
        for k in klines
    ]  # fmt: skip


def ticker_24hr_response(market: Market, t: Ticker) -> dict[str, Any]:
    """``GET /api/v3/ticker/24hr`` (one element of the array form)."""
    ps, bs = market.price_scale, market.base_scale
    return {
        "symbol": market.symbol,
        "priceChange": format_amount(t.price_change, ps),
        "priceChangePercent": _percent(t.price_change, t.open),
        "weightedAvgPrice": format_amount(t.weighted_average_price, ps),
        "prevClosePrice": format_amount(t.prev_close, ps),
        "lastPrice": format_amount(t.last, ps),
        "lastQty": format_amount(t.last_quantity, bs),
        "bidPrice": format_amount(t.bid_price, ps),
        "bidQty": format_amount(t.bid_quantity, bs),
        "askPrice": format_amount(t.ask_price, ps),
        "askQty": format_amount(t.ask_quantity, bs),
        "openPrice": format_amount(t.open, ps),
        "highPrice": format_amount(t.high, ps),
        "lowPrice": format_amount(t.low, ps),
        "volume": format_amount(t.volume, bs),
        "quoteVolume": _quote(market, t.quote_volume),
        "openTime": ms(t.open_time),
        "closeTime": ms(t.close_time),
        "firstId": t.first_trade_id,
        "lastId": t.last_trade_id,
        "count": t.count,
    }


def ticker_price_response(market: Market, price: int) -> dict[str, Any]:
    """``GET /api/v3/ticker/price`` from ``MarketData.last_price``."""
    return {"symbol": market.symbol, "price": format_amount(price, market.price_scale)}


def book_ticker_response(market: Market, b: BookTicker) -> dict[str, Any]:
    """``GET /api/v3/ticker/bookTicker``."""
    ps, bs = market.price_scale, market.base_scale
    return {
        "symbol": market.symbol,
        "bidPrice": format_amount(b.bid_price, ps),
        "bidQty": format_amount(b.bid_quantity, bs),
        "askPrice": format_amount(b.ask_price, ps),
        "askQty": format_amount(b.ask_quantity, bs),
    }
