"""Binance-compatible public market data REST endpoints."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from crossbook.domain.markets import Market
from crossbook.gateway.binance_rest import (
    BinanceError,
    bad_param,
    integer,
    market_of,
    public_params,
)
from crossbook.gateway.context import Gateway
from crossbook.marketdata import INTERVALS
from crossbook.marketdata import binance as fmt

DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000, 5000)


def routes(gw: Gateway, handler: Any) -> list[Route]:
    md = gw.marketdata

    def now_ns() -> int:
        return max(time.time_ns(), md.now)

    def one_market(p: dict[str, str]) -> Market:
        m = market_of(gw, p)
        assert m is not None
        return m

    def markets_param(p: dict[str, str]) -> list[Market] | None:
        """``symbol`` -> one; ``symbols=["A","B"]`` -> those; neither -> None (all)."""
        if p.get("symbol"):
            return [one_market(p)]
        if p.get("symbols"):
            try:
                names = json.loads(p["symbols"])
            except ValueError as exc:
                raise bad_param("symbols") from exc
            if not isinstance(names, list):
                raise bad_param("symbols")
            out = []
            for name in names:
                m = gw.markets.get(str(name).upper())
                if m is None:
                    raise BinanceError(-1121, "Invalid symbol.")
                out.append(m)
            return out
        return None

    async def depth(request: Request) -> Any:
        p = public_params(request)
        m = one_market(p)
        limit = integer(p, "limit", 100) or 100
        if limit > 5000:
            raise BinanceError(-1100, "Illegal characters found in parameter 'limit'.")
        return fmt.depth_response(m, md.depth(m.symbol, limit))

    def time_range(p: dict[str, str]) -> tuple[int | None, int | None]:
        start, end = integer(p, "startTime"), integer(p, "endTime")
        return (
            start * 1_000_000 if start is not None else None,
            end * 1_000_000 + 999_999 if end is not None else None,
        )

    async def trades(request: Request) -> Any:
        p = public_params(request)
        m = one_market(p)
        limit = min(integer(p, "limit", 500) or 500, 1000)
        rows = md.trades(m.symbol, from_id=integer(p, "fromId"), limit=limit)
        return fmt.trades_response(m, rows)

    async def agg_trades(request: Request) -> Any:
        p = public_params(request)
        m = one_market(p)
        limit = min(integer(p, "limit", 500) or 500, 1000)
        start, end = time_range(p)
        rows = md.trades(m.symbol, from_id=integer(p, "fromId"), start=start, end=end, limit=limit)
        return fmt.agg_trades_response(m, rows)

    async def klines(request: Request) -> Any:
        p = public_params(request)
        m = one_market(p)
        interval = p.get("interval", "")
        if interval not in INTERVALS:
            raise BinanceError(-1120, "Invalid interval.")
        limit = min(integer(p, "limit", 500) or 500, 1000)
        start, end = time_range(p)
        rows = md.klines(m.symbol, interval, start, end, limit, now=now_ns())
        return fmt.klines_response(m, rows)

    async def ticker_24hr(request: Request) -> Any:
        p = public_params(request)
        wanted = markets_param(p)
        now = now_ns()
        if wanted is not None and p.get("symbol"):
            return fmt.ticker_24hr_response(wanted[0], md.ticker(wanted[0].symbol, now))
        chosen = wanted if wanted is not None else list(gw.markets.values())
        return [fmt.ticker_24hr_response(m, md.ticker(m.symbol, now)) for m in chosen]

    async def ticker_price(request: Request) -> Any:
        p = public_params(request)
        wanted = markets_param(p)
        if wanted is not None and p.get("symbol"):
            return fmt.ticker_price_response(wanted[0], md.last_price(wanted[0].symbol))
        chosen = wanted if wanted is not None else list(gw.markets.values())
        return [fmt.ticker_price_response(m, md.last_price(m.symbol)) for m in chosen]

    async def book_ticker(request: Request) -> Any:
        p = public_params(request)
        wanted = markets_param(p)
        if wanted is not None and p.get("symbol"):
            return fmt.book_ticker_response(wanted[0], md.book_ticker(wanted[0].symbol))
        chosen = wanted if wanted is not None else list(gw.markets.values())
        return [fmt.book_ticker_response(m, md.book_ticker(m.symbol)) for m in chosen]

    async def avg_price(request: Request) -> Any:
        p = public_params(request)
        m = one_market(p)
        t = md.ticker(m.symbol, now_ns())
        from crossbook.domain.money import format_amount

        return {
            "mins": 5,
            "price": format_amount(t.last, m.price_scale),
            "closeTime": t.close_time // 10**6,
        }

    def r(path: str, fn: Any) -> Route:
        return Route(path, handler(fn), methods=["GET"])

    return [
        r("/api/v3/depth", depth),
        r("/api/v3/trades", trades),
        r("/api/v3/historicalTrades", trades),
        r("/api/v3/aggTrades", agg_trades),
        r("/api/v3/klines", klines),
        r("/api/v3/uiKlines", klines),
        r("/api/v3/ticker/24hr", ticker_24hr),
        r("/api/v3/ticker", ticker_24hr),
        r("/api/v3/ticker/price", ticker_price),
        r("/api/v3/ticker/bookTicker", book_ticker),
        r("/api/v3/avgPrice", avg_price),
    ]
