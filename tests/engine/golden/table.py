"""Readable text renderings of an order book and of event lists, for golden tests.

A book renders as::

    BIDS  id  owner  price  visible  leaves
          #4     o1    100        5       5
    ASKS  id  owner  price  visible  leaves
          #2     o2    101        3      10
    STOPS id  owner  side  type         stop  price  leaves
          #3     o2  sell  stop_limit    100     97       5

Bids and asks are listed best price first and, within a price level, in time priority
(the order in which an incoming taker would meet them). The engine's views do not expose
the queue order, so it is probed: a copy of the engine is swept by a market order on
each side and the makers are listed in the order they are first hit. The rendering also
cross-checks ``depth()`` against ``open_orders()``.

Events render one per line without the ``seq``/``ts``/``market`` envelope (checked
separately by :func:`check_envelope`), for example::

    accepted #5 o2 buy limit gtc px=101 qty=10
    fill t1 5@101 taker #5 o2 buy left=5 maker #2 o1 left=0
    level sell 101 0

Comparisons (:func:`same_text`) are token-wise per line, so the column alignment of
expected literals does not matter.
"""

from __future__ import annotations

import copy
import textwrap
from collections.abc import Sequence
from typing import Any

from crossbook.domain.commands import PlaceOrder
from crossbook.domain.enums import OrderType, SelfTradePrevention, Side, TimeInForce
from crossbook.domain.events import (
    AmendRejected,
    BookLevelChanged,
    CancelRejected,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
)
from crossbook.engine.views import OpenOrder

PROBE_ORDER_ID = 10**15
PROBE_OWNER = 10**15


def _clone(engine: Any) -> Any:
    try:
        return copy.deepcopy(engine)
    except Exception:  # pragma: no cover - fall back to the engine's own persistence
        return type(engine).restore(engine.snapshot())


def queue_order(engine: Any, symbol: str, side: Side, orders: Sequence[OpenOrder]) -> list[int]:
    """Order ids of the resting ``side`` orders in the order a taker would meet them."""
    resting = [o for o in orders if not o.is_stop and o.side == side]
    if not resting:
        return []
    probe = _clone(engine)
    cmd = PlaceOrder(
        seq=probe.last_seq + 1,
        ts=0,
        market=symbol,
        owner=PROBE_OWNER,
        side=Side.SELL if side == Side.BUY else Side.BUY,
        type=OrderType.MARKET,
        quantity=sum(o.leaves for o in resting),
        time_in_force=TimeInForce.IOC,
        stp=SelfTradePrevention.NONE,
        order_id=PROBE_ORDER_ID,
    )
    seen: list[int] = []
    for ev in probe.execute(cmd):
        if (
            isinstance(ev, OrderFilled)
            and ev.taker_order_id == PROBE_ORDER_ID
            and ev.maker_order_id not in seen
        ):
            seen.append(ev.maker_order_id)
    ids = {o.order_id for o in resting}
    if set(seen) != ids:
        raise AssertionError(f"probe sweep of {side} hit {seen}, resting orders are {sorted(ids)}")
    return seen


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
        ]
        out.append("  ".join(cells).rstrip())
    return out


def render_book(engine: Any, symbol: str) -> str:
    """The book of ``symbol``: bids, asks (priority order) and untriggered stops."""
    orders = engine.open_orders(symbol)
    by_id = {o.order_id: o for o in orders}
    if len(by_id) != len(orders):
        raise AssertionError(f"open_orders lists an order twice: {orders}")
    if [o.order_id for o in orders] != sorted(by_id):
        raise AssertionError("open_orders is not sorted by order id")
    bids, asks = engine.depth(symbol)
    rows: list[list[str]] = []
    for side, levels, title in ((Side.BUY, bids, "BIDS"), (Side.SELL, asks, "ASKS")):
        rows.append([title, "id", "owner", "price", "visible", "leaves"])
        ids = queue_order(engine, symbol, side, orders)
        sums: dict[int, int] = {}
        for oid in ids:
            o = by_id[oid]
            sums[o.price] = sums.get(o.price, 0) + o.visible
            rows.append(["", f"#{oid}", f"o{o.owner}", str(o.price), str(o.visible), str(o.leaves)])
        expected_levels = list(sums.items())  # insertion order == best first
        if list(map(tuple, levels)) != expected_levels:
            raise AssertionError(
                f"depth() {side} {levels} disagrees with open_orders() {expected_levels}"
            )
    lines = _table(rows)
    stops = [o for o in orders if o.is_stop]
    if stops:
        srows = [["STOPS", "id", "owner", "side", "type", "stop", "price", "leaves"]]
        for o in stops:
            srows.append(
                [
                    "",
                    f"#{o.order_id}",
                    f"o{o.owner}",
                    str(o.side),
                    str(o.type),
                    str(o.stop_price),
                    str(o.price),
                    str(o.leaves),
                ]
            )
        lines += _table(srows)
    return "\n".join(lines)


def _cid(cid: str) -> str:
    return f" cid={cid}" if cid else ""


def render_event(ev: object) -> str:
    match ev:
        case OrderAccepted():
            s = (
                f"accepted #{ev.order_id} o{ev.owner} {ev.side} {ev.type} {ev.time_in_force}"
                f" px={ev.price}"
            )
            if ev.quantity:
                s += f" qty={ev.quantity}"
            if ev.quote_quantity:
                s += f" quote={ev.quote_quantity}"
            if ev.stop_price:
                s += f" stop={ev.stop_price}"
            if ev.display_quantity:
                s += f" display={ev.display_quantity}"
            if ev.post_only:
                s += " post_only"
            return s + _cid(ev.client_order_id)
        case OrderRejected():
            return f"rejected #{ev.order_id} o{ev.owner} {ev.reason}{_cid(ev.client_order_id)}"
        case OrderFilled():
            return (
                f"fill t{ev.trade_id} {ev.quantity}@{ev.price}"
                f" taker #{ev.taker_order_id} o{ev.taker_owner} {ev.taker_side}"
                f" left={ev.taker_leaves}"
                f" maker #{ev.maker_order_id} o{ev.maker_owner} left={ev.maker_leaves}"
            )
        case OrderCancelled():
            return (
                f"cancelled #{ev.order_id} o{ev.owner} leaves={ev.leaves} {ev.reason}"
                f"{_cid(ev.client_order_id)}"
            )
        case OrderExpired():
            return (
                f"expired #{ev.order_id} o{ev.owner} leaves={ev.leaves} {ev.reason}"
                f"{_cid(ev.client_order_id)}"
            )
        case OrderAmended():
            kept = "kept" if ev.priority_kept else "lost"
            return (
                f"amended #{ev.order_id} o{ev.owner} px={ev.price} qty={ev.quantity}"
                f" leaves={ev.leaves} priority={kept}{_cid(ev.client_order_id)}"
            )
        case OrderTriggered():
            return (
                f"triggered #{ev.order_id} o{ev.owner} stop={ev.stop_price}"
                f" last={ev.last_price}{_cid(ev.client_order_id)}"
            )
        case CancelRejected():
            return (
                f"cancel_rejected #{ev.order_id} o{ev.owner} {ev.reason}{_cid(ev.client_order_id)}"
            )
        case AmendRejected():
            return (
                f"amend_rejected #{ev.order_id} o{ev.owner} {ev.reason}{_cid(ev.client_order_id)}"
            )
        case BookLevelChanged():
            return f"level {ev.side} {ev.price} {ev.quantity}"
    raise TypeError(f"not an event: {ev!r}")


def render_events(events: Sequence[object]) -> str:
    return "\n".join(render_event(ev) for ev in events) if events else "(none)"


def _tokens(text: str) -> list[list[str]]:
    text = textwrap.dedent(text).strip("\n")
    return [line.split() for line in text.splitlines() if line.strip()]


def same_text(actual: str, expected: str) -> bool:
    """Equal line by line, ignoring indentation, alignment and blank lines."""
    return _tokens(actual) == _tokens(expected)


def normalize(text: str) -> str:
    return "\n".join(" ".join(t) for t in _tokens(text))
