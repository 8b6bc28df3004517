"""Market data: L2 books, recent trades, rolling tickers and klines (pure, deterministic).

``MarketData.apply(events)`` consumes the output events of engine commands
(``OrderFilled`` and ``BookLevelChanged``; everything else, account-service events
included, is ignored) and returns the stream updates they cause. The only clock is the
events' ``ts``; equal event streams give equal updates, snapshots and state hashes, and
queries never change state.

Per market, invariants after every ``apply``:

- the L2 book equals the engine's visible depth, and ``update_id`` counts every
  ``BookLevelChanged`` ever applied: a command's ``DepthUpdate`` spans
  ``[previous update_id + 1, update_id]``, so ``depth()`` plus the updates with
  ``final_update_id > last_update_id`` rebuild the engine's book exactly;
- events of a command whose ``seq`` is not above the market's last applied ``seq`` are a
  redelivery and change nothing (so ``apply`` must get a command's events in one call;
  one call may carry several commands, each yields its own updates).

Event ``ts`` is assumed non-decreasing per market (the sequencer stamps it); if it goes
backwards the trades join the newest bucket and candle.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterable
from typing import Any

import msgspec

from crossbook.domain.enums import Side
from crossbook.domain.events import BookLevelChanged, OrderFilled
from crossbook.domain.markets import Market
from crossbook.marketdata.book import BookSide
from crossbook.marketdata.intervals import DAY_NS, INTERVALS, SECOND_NS
from crossbook.marketdata.klines import Series
from crossbook.marketdata.records import (
    BookTicker,
    DepthUpdate,
    KlineUpdate,
    Level,
    Ticker,
    Trade,
    Update,
)
from crossbook.marketdata.window import Window

SNAPSHOT_VERSION = 1
_NEVER = 1 << 96  # a roll time no ts reaches
_BUY = Side.BUY
_SELL = Side.SELL


class _Market:
    """Mutable state of one market (see the module docstring for invariants)."""

    __slots__ = (
        "asks",
        "best",
        "bids",
        "last_price",
        "last_quantity",
        "market",
        "roll_at",
        "seq",
        "series",
        "symbol",
        "trades",
        "ts",
        "update_id",
        "window",
    )

    def __init__(
        self, market: Market, trade_history: int, kline_history: int, window: int,
        resolution: int,
    ) -> None:  # fmt: skip
        self.market = market
        self.symbol = market.symbol
        self.seq = 0
        self.ts = 0
        self.update_id = 0
        self.bids = BookSide()
        self.asks = BookSide()
        self.best: tuple[int, int, int, int] = (0, 0, 0, 0)
        self.trades: deque[Trade] = deque(maxlen=trade_history)
        self.last_price = 0
        self.last_quantity = 0
        self.window = Window(window, resolution)
        self.series = [Series(self.symbol, name, kline_history) for name in INTERVALS]
        self.roll_at = _NEVER

    def compute_best(self) -> tuple[int, int, int, int]:
        bp, ap = self.bids.prices, self.asks.prices
        bid = bp[-1] if bp else 0
        ask = ap[0] if ap else 0
        return (
            bid, self.bids.levels[bid] if bp else 0, ask, self.asks.levels[ask] if ap else 0
        )  # fmt: skip

    def compute_roll_at(self) -> int:
        return min((s.close_time for s in self.series if s.active), default=_NEVER)


class _MarketSnapshot(msgspec.Struct, frozen=True, array_like=True):
    symbol: str
    seq: int
    ts: int
    update_id: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]
    last_price: int
    last_quantity: int
    trades: list[tuple[int, int, int, bool, int]]
    window: list[Any]
    klines: list[list[Any]]


class MarketDataSnapshot(msgspec.Struct, frozen=True):
    version: int
    now: int
    trade_history: int
    kline_history: int
    window: int
    resolution: int
    markets: list[Market]
    states: list[_MarketSnapshot]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(MarketDataSnapshot)


class MarketData:
    """Market data of a set of markets, driven by the engine's events.

    ``trade_history``: recent trades kept per market; ``kline_history``: closed candles
    kept per market and interval; ``window``: ticker window (24 h); ``ticker_resolution``:
    bucket size of the ticker window (see :class:`~crossbook.marketdata.window.Window`;
    1 makes it exact per trade, at the cost of memory per distinct trade time).
    ``emit_tickers``: also return a :class:`Ticker` for every command with trades.
    """

    def __init__(
        self,
        markets: Iterable[Market],
        *,
        trade_history: int = 1000,
        kline_history: int = 1000,
        window: int = DAY_NS,
        ticker_resolution: int = SECOND_NS,
        emit_tickers: bool = True,
    ) -> None:
        if trade_history <= 0 or kline_history <= 0:
            raise ValueError("history sizes must be positive")
        self.trade_history = trade_history
        self.kline_history = kline_history
        self.window = window
        self.ticker_resolution = ticker_resolution
        self.emit_tickers = emit_tickers
        self.now = 0
        """The latest event ``ts`` applied (any market): the default ``now`` of queries."""
        self._markets: dict[str, _Market] = {}
        for market in markets:
            if market.symbol in self._markets:
                raise ValueError(f"market listed twice: {market.symbol}")
            self._markets[market.symbol] = _Market(
                market, trade_history, kline_history, window, ticker_resolution
            )

    @property
    def markets(self) -> list[Market]:
        return [self._markets[s].market for s in sorted(self._markets)]

    def _state(self, symbol: str) -> _Market:
        try:
            return self._markets[symbol]
        except KeyError:
            raise KeyError(f"unknown market: {symbol}") from None

    # ------------------------------------------------------------------ apply

    def apply(self, events: Iterable[object]) -> list[Update]:
        """Apply the events of one or more whole commands; return their updates.

        Per command and market, in order: a :class:`Trade` per fill, one
        :class:`DepthUpdate` if the book changed, a :class:`BookTicker` if the best bid or
        ask (price or quantity) changed, a :class:`KlineUpdate` per interval (first the
        final state of candles that time closed, then the candles the trades touched)
        and, with ``emit_tickers``, a :class:`Ticker` if there were trades.
        """
        out: list[Update] = []
        fills: list[OrderFilled] = []
        levels: list[BookLevelChanged] = []
        seq = -1
        ts = 0
        symbol = ""
        for e in events:
            if type(e) is BookLevelChanged:
                if e.seq != seq or e.market != symbol:
                    if fills or levels:
                        self._flush(symbol, seq, ts, fills, levels, out)
                        fills, levels = [], []
                    seq, ts, symbol = e.seq, e.ts, e.market
                levels.append(e)
            elif type(e) is OrderFilled:
                if e.seq != seq or e.market != symbol:
                    if fills or levels:
                        self._flush(symbol, seq, ts, fills, levels, out)
                        fills, levels = [], []
                    seq, ts, symbol = e.seq, e.ts, e.market
                fills.append(e)
        if fills or levels:
            self._flush(symbol, seq, ts, fills, levels, out)
        return out

    def _flush(
        self, symbol: str, seq: int, ts: int, fills: list[OrderFilled],
        levels: list[BookLevelChanged], out: list[Update],
    ) -> None:  # fmt: skip
        m = self._markets.get(symbol)
        if m is None or seq <= m.seq:
            return  # a market we do not serve, or a redelivery
        m.seq = seq
        if ts > m.ts:
            m.ts = ts
        if ts > self.now:
            self.now = ts
        if fills:
            agg = self._trades(m, ts, fills, out)
        if levels:
            bids, asks = m.bids, m.asks
            b: list[Level] = []
            a: list[Level] = []
            for lv in levels:
                if lv.side is _BUY:
                    bids.set(lv.price, lv.quantity)
                    b.append((lv.price, lv.quantity))
                else:
                    asks.set(lv.price, lv.quantity)
                    a.append((lv.price, lv.quantity))
            first = m.update_id + 1
            m.update_id += len(levels)
            b.reverse()
            out.append(DepthUpdate(symbol, first, m.update_id, ts, tuple(b), tuple(a)))
            best = m.compute_best()
            if best != m.best:
                m.best = best
                out.append(BookTicker(symbol, m.update_id, ts, *best))
        if ts > m.roll_at:
            for s in m.series:
                if s.active and ts > s.close_time:
                    out.append(s.roll())
            m.roll_at = m.compute_roll_at()
        if fills:
            o, h, lo, c, v, q, n, f_id, l_id, tv, tq = agg
            for s in m.series:
                # no candle can be due here: the roll above closed every one before ts
                s.add(ts, o, h, lo, c, v, q, n, f_id, l_id, tv, tq)
                out.append(s.current())
            m.roll_at = m.series[0].close_time  # 1m closes first among candles holding ts
            if self.emit_tickers:
                out.append(self._ticker(m, ts))

    @staticmethod
    def _trades(
        m: _Market, ts: int, fills: list[OrderFilled], out: list[Update]
    ) -> tuple[int, ...]:
        symbol = m.symbol
        recent = m.trades
        o = h = lo = p = fills[0].price
        v = q = tv = tq = qty = 0
        for f in fills:
            p, qty = f.price, f.quantity
            if p > h:
                h = p
            elif p < lo:
                lo = p
            pq = p * qty
            v += qty
            q += pq
            maker_buys = f.taker_side is _SELL
            if not maker_buys:
                tv += qty
                tq += pq
            t = Trade(symbol, f.trade_id, p, qty, maker_buys, ts)
            out.append(t)
            recent.append(t)
        m.last_price, m.last_quantity = p, qty
        n = len(fills)
        f_id, l_id = fills[0].trade_id, fills[-1].trade_id
        m.window.add(ts, o, h, lo, p, v, q, n, f_id, l_id)
        return o, h, lo, p, v, q, n, f_id, l_id, tv, tq

    # ------------------------------------------------------------------ queries

    def depth(self, symbol: str, limit: int | None = 100) -> tuple[int, list[Level], list[Level]]:
        """(last_update_id, bids best first, asks best first), at most ``limit`` levels a
        side (None: all). Consistent with the :class:`DepthUpdate` stream."""
        m = self._state(symbol)
        return m.update_id, m.bids.descending(limit), m.asks.ascending(limit)

    def last_update_id(self, symbol: str) -> int:
        return self._state(symbol).update_id

    def book_ticker(self, symbol: str) -> BookTicker:
        m = self._state(symbol)
        return BookTicker(symbol, m.update_id, m.ts, *m.best)

    def trades(
        self, symbol: str, *, from_id: int | None = None, start: int | None = None,
        end: int | None = None, limit: int = 500,
    ) -> list[Trade]:  # fmt: skip
        """Recent trades (ascending id) with ``trade_id >= from_id`` and
        ``start <= ts <= end`` (ns): the first ``limit`` of them when ``from_id`` or
        ``start`` is given, else the last ``limit``. Only the last ``trade_history``
        trades are kept: an older ``from_id`` starts at the oldest kept."""
        rows = list(self._state(symbol).trades)
        lo, hi = 0, len(rows)
        if from_id is not None:
            lo = bisect_left(rows, from_id, key=_trade_id)
        if start is not None:
            lo = max(lo, bisect_left(rows, start, key=_trade_ts))
        if end is not None:
            hi = bisect_right(rows, end, key=_trade_ts)
        if limit <= 0 or hi <= lo:
            return []
        if from_id is not None or start is not None:
            return rows[lo : min(hi, lo + limit)]
        return rows[max(lo, hi - limit) : hi]

    def last_price(self, symbol: str) -> int:
        """The market's last trade price (0 before its first trade)."""
        return self._state(symbol).last_price

    def ticker(self, symbol: str, now: int | None = None) -> Ticker:
        """The rolling-window ticker at ``now`` (default :attr:`now`; never before the
        market's latest event), with the current best bid and ask."""
        m = self._state(symbol)
        return self._ticker(m, max(self.now if now is None else now, m.ts))

    def tickers(self, now: int | None = None) -> list[Ticker]:
        """Tickers of every market, by symbol."""
        return [self.ticker(s, now) for s in sorted(self._markets)]

    def _ticker(self, m: _Market, now: int) -> Ticker:
        w = m.window
        stats = w.stats(now)
        bid, bid_q, ask, ask_q = m.best
        if stats is None:
            last = m.last_price
            return Ticker(
                m.symbol, w.start(now), now, last, last, last, last, m.last_quantity,
                w.prev_close(now), 0, 0, 0, -1, -1, bid, bid_q, ask, ask_q,
            )  # fmt: skip
        o, h, lo, c, v, q, n, f_id, l_id, prev = stats
        return Ticker(
            m.symbol, w.start(now), now, o, h, lo, c, m.last_quantity, prev, v, q, n, f_id,
            l_id, bid, bid_q, ask, ask_q,
        )  # fmt: skip

    def klines(
        self, symbol: str, interval: str, start: int | None = None, end: int | None = None,
        limit: int = 500, now: int | None = None,
    ) -> list[KlineUpdate]:  # fmt: skip
        """Candles (ascending) with ``start <= open_time <= end`` (ns): the first
        ``limit`` when ``start`` is given, else the last ``limit``. The open candle is
        included and marked closed if ``now`` (default :attr:`now`) is past its end."""
        m = self._state(symbol)
        try:
            series = m.series[_SERIES_INDEX[interval]]
        except KeyError:
            raise ValueError(f"unknown kline interval: {interval!r}") from None
        return series.query(start, end, limit, self.now if now is None else now)

    # ------------------------------------------------------------------ snapshot

    def snapshot(self) -> bytes:
        """Canonical encoding of the whole state: equal states give equal bytes."""
        states = []
        for symbol in sorted(self._markets):
            m = self._markets[symbol]
            states.append(
                _MarketSnapshot(
                    symbol, m.seq, m.ts, m.update_id, m.bids.ascending(), m.asks.ascending(),
                    m.last_price, m.last_quantity,
                    [(t.trade_id, t.price, t.quantity, t.buyer_is_maker, t.ts) for t in m.trades],
                    m.window.to_snapshot(), [s.to_snapshot() for s in m.series],
                )
            )  # fmt: skip
        return _encoder.encode(
            MarketDataSnapshot(
                SNAPSHOT_VERSION, self.now, self.trade_history, self.kline_history, self.window,
                self.ticker_resolution, self.markets, states,
            )
        )  # fmt: skip

    @classmethod
    def restore(cls, data: bytes, *, emit_tickers: bool = True) -> MarketData:
        snap = _decoder.decode(data)
        if snap.version != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported market data snapshot version {snap.version}")
        md = cls(
            snap.markets, trade_history=snap.trade_history, kline_history=snap.kline_history,
            window=snap.window, ticker_resolution=snap.resolution, emit_tickers=emit_tickers,
        )  # fmt: skip
        md.now = snap.now
        for s in snap.states:
            m = md._markets[s.symbol]
            m.seq, m.ts, m.update_id = s.seq, s.ts, s.update_id
            for price, qty in s.bids:
                m.bids.set(price, qty)
            for price, qty in s.asks:
                m.asks.set(price, qty)
            m.best = m.compute_best()
            m.last_price, m.last_quantity = s.last_price, s.last_quantity
            m.trades.extend(Trade(s.symbol, *row) for row in s.trades)
            m.window.load_snapshot(s.window)
            for series, row in zip(m.series, s.klines, strict=True):
                series.load_snapshot(row)
            m.roll_at = m.compute_roll_at()
        return md

    def state_hash(self) -> str:
        """BLAKE2b-256 of the canonical snapshot, hex."""
        return hashlib.blake2b(self.snapshot(), digest_size=32).hexdigest()


_SERIES_INDEX = {name: i for i, name in enumerate(INTERVALS)}


def _trade_id(t: Trade) -> int:
    return t.trade_id


def _trade_ts(t: Trade) -> int:
    return t.ts


def merge_depth_updates(updates: list[DepthUpdate]) -> DepthUpdate:
    """One update equivalent to applying ``updates`` in order (for ``@depth@100ms`` and
    ``@depth@1000ms``): ids span from the first ``first_update_id`` to the last
    ``final_update_id``; a level changed several times keeps its last quantity. The
    updates must be contiguous and of one market."""
    if not updates:
        raise ValueError("nothing to merge")
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    prev = updates[0].first_update_id - 1
    for u in updates:
        if u.first_update_id != prev + 1 or u.market != updates[0].market:
            raise ValueError("depth updates to merge must be contiguous and of one market")
        prev = u.final_update_id
        bids.update(u.bids)
        asks.update(u.asks)
    first, last = updates[0], updates[-1]
    return DepthUpdate(
        first.market, first.first_update_id, last.final_update_id, last.ts,
        tuple(sorted(bids.items(), reverse=True)), tuple(sorted(asks.items())),
    )  # fmt: skip
