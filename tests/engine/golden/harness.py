"""Scenario harness for golden tests: two tiny human-scale markets, command builders
and the assertions comparing rendered books and events against literal tables."""

from __future__ import annotations

from typing import Any

import msgspec

from crossbook.domain.commands import AmendOrder, CancelAll, CancelOrder, Command, PlaceOrder
from crossbook.domain.enums import OrderType, Side, TimeInForce
from crossbook.domain.events import Event, OrderRejected
from crossbook.domain.markets import Market
from crossbook.engine.matching import MatchingEngine

from .table import normalize, render_book, render_events, same_text

ABC = Market(
    symbol="ABC",
    base="A",
    quote="C",
    base_scale=0,
    quote_scale=0,
    price_scale=0,
    tick_size=1,
    step_size=1,
    min_quantity=1,
    max_quantity=1_000_000,
    min_notional=0,
)
"""Everything is 1: prices, quantities and quote amounts are plain integers."""

XYZ = Market(
    symbol="XYZ",
    base="X",
    quote="Z",
    base_scale=0,
    quote_scale=0,
    price_scale=0,
    tick_size=5,
    step_size=10,
    min_quantity=20,
    max_quantity=1000,
    min_notional=1000,
)
"""Coarse market for tick / step / limit / notional checks (notional = price * qty)."""

MARKETS = (ABC, XYZ)


# ------------------------------------------------------------------ command builders
# seq=0 means "next seq" (stamped by Harness.run); order ids default to the seq.


def place(owner: int, side: Side, **kw: Any) -> PlaceOrder:
    kw.setdefault("market", "ABC")
    return PlaceOrder(seq=kw.pop("seq", 0), ts=kw.pop("ts", 0), owner=owner, side=side, **kw)


def buy(owner: int, price: int, qty: int, **kw: Any) -> PlaceOrder:
    return place(owner, Side.BUY, price=price, quantity=qty, **kw)


def sell(owner: int, price: int, qty: int, **kw: Any) -> PlaceOrder:
    return place(owner, Side.SELL, price=price, quantity=qty, **kw)


def market_order(owner: int, side: Side, qty: int = 0, quote: int = 0, **kw: Any) -> PlaceOrder:
    kw.setdefault("time_in_force", TimeInForce.IOC)
    return place(owner, side, type=OrderType.MARKET, quantity=qty, quote_quantity=quote, **kw)


def market_buy(owner: int, qty: int = 0, quote: int = 0, **kw: Any) -> PlaceOrder:
    return market_order(owner, Side.BUY, qty, quote, **kw)


def market_sell(owner: int, qty: int = 0, quote: int = 0, **kw: Any) -> PlaceOrder:
    return market_order(owner, Side.SELL, qty, quote, **kw)


def stop_limit(owner: int, side: Side, stop: int, price: int, qty: int, **kw: Any) -> PlaceOrder:
    return place(
        owner, side, type=OrderType.STOP_LIMIT, stop_price=stop, price=price, quantity=qty, **kw
    )


def stop_market(
    owner: int, side: Side, stop: int, qty: int = 0, quote: int = 0, **kw: Any
) -> PlaceOrder:
    kw.setdefault("time_in_force", TimeInForce.IOC)
    return place(
        owner,
        side,
        type=OrderType.STOP_MARKET,
        stop_price=stop,
        quantity=qty,
        quote_quantity=quote,
        **kw,
    )


def cancel(owner: int, order_id: int = 0, cid: str = "", market: str = "ABC") -> CancelOrder:
    return CancelOrder(
        seq=0, ts=0, market=market, owner=owner, order_id=order_id, client_order_id=cid
    )


def cancel_all(owner: int, market: str = "ABC") -> CancelAll:
    return CancelAll(seq=0, ts=0, market=market, owner=owner)


def amend(
    owner: int,
    order_id: int = 0,
    *,
    price: int = 0,
    qty: int = 0,
    cid: str = "",
    market: str = "ABC",
) -> AmendOrder:
    return AmendOrder(
        seq=0,
        ts=0,
        market=market,
        owner=owner,
        order_id=order_id,
        client_order_id=cid,
        price=price,
        quantity=qty,
    )


# ----------------------------------------------------------------------------- harness


def ts_of(seq: int) -> int:
    return 1_700_000_000_000_000_000 + seq * 1000


class Harness:
    def __init__(self, markets: tuple[Market, ...] = MARKETS) -> None:
        self.engine = MatchingEngine(markets)
        self.symbols = [m.symbol for m in markets]

    def stamp(self, cmd: Command) -> Command:
        if cmd.seq:
            return cmd
        seq = self.engine.last_seq + 1
        return msgspec.structs.replace(cmd, seq=seq, ts=ts_of(seq))

    def run(self, cmd: Command) -> list[Event]:
        cmd = self.stamp(cmd)
        events = self.engine.execute(cmd)
        check_envelope(events, cmd)
        return events

    def setup(self, *cmds: Command) -> None:
        for cmd in cmds:
            events = self.run(cmd)
            assert not any(isinstance(e, OrderRejected) for e in events), render_events(events)

    def book(self, symbol: str = "ABC") -> str:
        return render_book(self.engine, symbol)

    def state(self) -> tuple[Any, ...]:
        """Everything observable about the books, for "nothing changed" checks."""
        return tuple(
            (s, self.engine.depth(s), self.engine.open_orders(s), render_book(self.engine, s))
            for s in self.symbols
        )


def check_envelope(events: list[Event], cmd: Command) -> None:
    for ev in events:
        assert (ev.seq, ev.ts, ev.market) == (cmd.seq, cmd.ts, cmd.market), (
            f"event {ev!r} does not carry seq/ts/market of {cmd!r}"
        )


def _check(kind: str, actual: str, expected: str) -> None:
    if not same_text(actual, expected):
        raise AssertionError(
            f"{kind} differs\n--- expected\n{normalize(expected)}\n--- actual\n{actual}\n"
        )


def check_book(h: Harness, expected: str, symbol: str = "ABC", kind: str = "book") -> None:
    _check(kind, h.book(symbol), expected)


def check_events(events: list[Event], expected: str) -> None:
    _check("events", render_events(events), expected)


def scenario(
    h: Harness, *, before: str, command: Command, events: str, after: str, symbol: str = "ABC"
) -> list[Event]:
    """BEFORE table, run the command, compare its events, AFTER table."""
    check_book(h, before, symbol, "BEFORE")
    out = h.run(command)
    check_events(out, events)
    check_book(h, after, symbol, "AFTER")
    return out


def unchanged(h: Harness, *, command: Command, events: str) -> list[Event]:
    """The command's events are as expected and no book changed at all."""
    state = h.state()
    out = h.run(command)
    check_events(out, events)
    assert h.state() == state, "the books changed"
    return out
