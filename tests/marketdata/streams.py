"""Random command streams for market-data tests, run through the real MatchingEngine.

A stream is drawn as a list of small integer tuples ("specs") and built into commands
against the live engine (so cancels and amends mostly target open orders), with time
gaps from a microsecond to days so that klines roll and the 24 h window slides.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from crossbook.domain.commands import AmendOrder, CancelAll, CancelOrder, Command, PlaceOrder
from crossbook.domain.enums import OrderType, SelfTradePrevention, Side, TimeInForce
from crossbook.domain.events import Event
from crossbook.domain.markets import Market
from crossbook.engine.matching import MatchingEngine
from crossbook.engine.views import Level
from crossbook.marketdata.intervals import DAY_NS, HOUR_NS, MINUTE_NS, SECOND_NS

PLAIN = Market(
    symbol="PLAIN", base="AAA", quote="QQQ", base_scale=0, quote_scale=0, price_scale=0,
    tick_size=1, step_size=1, min_quantity=1, max_quantity=1000,
)  # fmt: skip
# price 2000 == 200.0 quote per base unit; quantity 100 == 1 base unit
SCALED = Market(
    symbol="SCALED", base="BBB", quote="QQQ", base_scale=2, quote_scale=2, price_scale=1,
    tick_size=5, step_size=5, min_quantity=10, max_quantity=5000,
)  # fmt: skip
MARKETS = (PLAIN, SCALED)
_MID = {"PLAIN": 100, "SCALED": 400}  # in ticks
_STP = (
    SelfTradePrevention.NONE, SelfTradePrevention.NONE, SelfTradePrevention.EXPIRE_MAKER,
    SelfTradePrevention.EXPIRE_TAKER,
)  # fmt: skip
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


spec = st.tuples(
    st.integers(0, 99),  # market
    st.integers(0, 99),  # command kind
    st.booleans(),  # side
    st.integers(-5, 5),  # price offset (ticks)
    st.integers(1, 12),  # quantity (steps)
    st.integers(0, 99),  # time gap selector
    st.integers(0, 3),  # owner / stp selector
    st.integers(0, 10_000),  # reference to an open order
)


@st.composite
def long_lists(
    draw: st.DrawFn, element: st.SearchStrategy[Any], mean: int, max_size: int
) -> list[Any]:
    """Lists of geometric length (mean about ``mean``): hypothesis' own lists are short.
    Each element is its own span of choices, so shrinking deletes elements one by one."""
    out: list[Any] = []
    while len(out) < max_size:
        if out and draw(st.integers(0, mean - 1)) == 0:
            break
        out.append(draw(element))
    return out


specs = long_lists(spec, 40, 80)


def gap(sel: int) -> int:
    """Mostly microseconds, sometimes seconds, minutes, hours or days."""
    if sel < 55:
        return 1_000 * (sel + 1)
    if sel < 75:
        return (sel - 54) * 7 * SECOND_NS + sel
    if sel < 88:
        return (sel - 74) * 11 * MINUTE_NS
    if sel < 96:
        return (sel - 87) * 5 * HOUR_NS + 17
    return (sel - 95) * DAY_NS * 3 // 2


@dataclass
class Step:
    command: Command
    events: list[Event]
    depth: dict[str, tuple[list[Level], list[Level]]]


def run(specs: Sequence[Sequence[int]], markets: Sequence[Market] = MARKETS) -> Iterator[Step]:
    """Build and execute the commands one by one, yielding each with its events and
    the engine's depth of every market after it."""
    engine = MatchingEngine(markets)
    ts = T0
    for seq, (m_sel, kind, sell, off, steps, gap_sel, who, ref) in enumerate(specs, 1):
        market = markets[m_sel % len(markets)]
        symbol = market.symbol
        ts += gap(gap_sel)
        tick, step = market.tick_size, market.step_size
        price = (_MID[symbol] + off) * tick
        qty = steps * step
        side = Side.SELL if sell else Side.BUY
        base: dict[str, Any] = dict(
            seq=seq, ts=ts, market=symbol, owner=1 + who % 3, side=side, stp=_STP[who]
        )
        open_orders = [o for o in engine.open_orders(symbol) if not o.is_stop]
        target = open_orders[ref % len(open_orders)] if open_orders else None
        cmd: Command
        if kind < 38:
            cmd = PlaceOrder(**base, price=price, quantity=qty)
        elif kind < 46:
            cmd = PlaceOrder(**base, price=price, quantity=qty, time_in_force=TimeInForce.IOC)
        elif kind < 50:
            cmd = PlaceOrder(**base, price=price, quantity=qty, time_in_force=TimeInForce.FOK)
        elif kind < 54:
            cmd = PlaceOrder(**base, price=price, quantity=qty, post_only=True)
        elif kind < 60:
            cmd = PlaceOrder(
                **base, price=price, quantity=qty + 3 * step,
                display_quantity=max(1, steps // 2) * step,
            )  # fmt: skip
        elif kind < 66:
            cmd = PlaceOrder(
                **base, type=OrderType.MARKET, quantity=qty, time_in_force=TimeInForce.IOC
            )
        elif kind < 69:
            notional = market.notional_scaled(price, qty) // market.notional_divisor
            cmd = PlaceOrder(
                **base, type=OrderType.MARKET, quote_quantity=max(1, notional),
                time_in_force=TimeInForce.IOC,
            )  # fmt: skip
        elif kind < 74:
            stop = (_MID[symbol] + (off if sell else -off) - (3 if sell else -3)) * tick
            cmd = PlaceOrder(
                **{**base, "type": OrderType.STOP_LIMIT}, price=price, quantity=qty,
                stop_price=max(tick, stop),
            )  # fmt: skip
        elif kind < 86 and target is not None:
            cmd = CancelOrder(seq=seq, ts=ts, market=symbol, owner=target.owner,
                              order_id=target.order_id)  # fmt: skip
        elif kind < 95 and target is not None:
            new_price, new_qty = (price, 0) if ref % 3 == 0 else (0, qty + target.quantity)
            if ref % 3 == 1:
                new_qty = max(step, target.quantity - target.leaves + step)
            cmd = AmendOrder(
                seq=seq, ts=ts, market=symbol, owner=target.owner, order_id=target.order_id,
                price=new_price, quantity=new_qty,
            )  # fmt: skip
        elif kind >= 95 and target is not None:
            cmd = CancelAll(seq=seq, ts=ts, market=symbol, owner=target.owner)
        else:
            cmd = PlaceOrder(**base, price=price, quantity=qty)
        events = engine.execute(cmd)
        yield Step(cmd, events, {m.symbol: engine.depth(m.symbol) for m in markets})
