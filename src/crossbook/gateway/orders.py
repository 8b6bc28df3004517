"""What an order looks like to an API client, derived from the events of its command.

Shared by the native and the Binance-compatible APIs: the result of placing (or
amending, or cancelling) an order is computed from the events the exchange returned
for that command, so the response is exactly what happened, with no extra read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from crossbook.domain.enums import ExpireReason, OrderType, Side, TimeInForce
from crossbook.domain.events import (
    AmendRejected,
    CancelRejected,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
)
from crossbook.domain.ledger import FEES, TransactionPosted
from crossbook.domain.markets import Market


@dataclass
class Fill:
    trade_id: int
    price: int
    quantity: int
    commission: int
    commission_asset: str
    is_maker: bool


@dataclass
class OrderView:
    """An order's state as far as one command's events tell (``status`` uses the
    ledger's vocabulary: new, partially_filled, filled, cancelled, expired, rejected,
    triggered)."""

    market: str
    order_id: int
    owner: int
    client_order_id: str
    side: Side | None = None
    type: OrderType | None = None
    time_in_force: TimeInForce | None = None
    price: int = 0
    quantity: int = 0
    quote_quantity: int = 0
    stop_price: int = 0
    display_quantity: int = 0
    post_only: bool = False
    stop_trigger: str = ""  # at_or_above / at_or_below for stop orders
    status: str = "new"
    reason: str = ""
    filled: int = 0
    filled_scaled: int = 0  # sum of price * quantity over fills
    leaves: int = 0
    created_ts: int = 0
    updated_ts: int = 0
    fills: list[Fill] = field(default_factory=list)

    def filled_quote(self, market: Market) -> int:
        """Quote amount traded, in quote minor units, rounded down."""
        return int(self.filled_scaled * 10**market.quote_scale // market.notional_divisor)

    @property
    def is_open(self) -> bool:
        return self.status in ("new", "partially_filled", "triggered")


def order_from_events(m: Market, order_id: int, events: Iterable[Any]) -> OrderView | None:
    """Fold the events of one command into the view of order ``order_id`` of market ``m``.

    Returns None if the events do not mention the order.
    """
    market = m.symbol
    view: OrderView | None = None
    fee_by_trade: dict[int, dict[str, int]] = {}
    pending_fill: OrderFilled | None = None
    for e in events:
        t = type(e)
        if t is TransactionPosted:
            if e.type == "trade" and pending_fill is not None:
                fee_by_trade[pending_fill.trade_id] = {
                    p.asset: p.amount for p in e.postings if p.account == FEES
                }
            continue
        if getattr(e, "market", None) != market:
            continue
        if t is OrderAccepted and e.order_id == order_id:
            view = OrderView(
                market, order_id, e.owner, e.client_order_id, e.side, e.type, e.time_in_force,
                e.price, e.quantity, e.quote_quantity, e.stop_price, e.display_quantity,
                e.post_only, getattr(e, "trigger", ""), "new", "", 0, 0,
                e.quantity or e.quote_quantity, e.ts, e.ts,
            )  # fmt: skip
        elif t is OrderRejected and e.order_id == order_id:
            view = OrderView(market, order_id, e.owner, e.client_order_id)
            view.status, view.reason = "rejected", e.reason.value
            view.created_ts = view.updated_ts = e.ts
        elif view is None:
            continue
        elif t is OrderFilled:
            pending_fill = e
            if order_id in (e.taker_order_id, e.maker_order_id):
                is_maker = e.maker_order_id == order_id
                view.filled += e.quantity
                view.filled_scaled += e.price * e.quantity
                view.leaves = e.maker_leaves if is_maker else e.taker_leaves
                view.status = "filled" if view.leaves == 0 else "partially_filled"
                view.updated_ts = e.ts
                view.fills.append(Fill(e.trade_id, e.price, e.quantity, 0, "", is_maker))
        elif t in (OrderCancelled, OrderExpired) and e.order_id == order_id:
            view.status = "cancelled" if t is OrderCancelled else "expired"
            view.reason = e.reason.value
            view.leaves = 0
            view.updated_ts = e.ts
        elif t is OrderAmended and e.order_id == order_id:
            view.price, view.quantity, view.leaves = e.price, e.quantity, e.leaves
            view.updated_ts = e.ts
        elif t is OrderTriggered and e.order_id == order_id:
            view.status = "triggered"
            view.updated_ts = e.ts
    if view is None:
        return None
    # the fee is charged in the asset received: base for the buyer, quote for the seller
    received = m.base if view.side is Side.BUY else m.quote
    for fill in view.fills:
        fill.commission_asset = received
        fill.commission = fee_by_trade.get(fill.trade_id, {}).get(received, 0)
    return view


class OrderTracker:
    """Live state of the open orders, kept from the event stream (for user streams).

    ``apply`` folds one event in and returns the view it changed (or None); a view
    leaves the tracker once its order is closed (after that event's report).
    """

    def __init__(self, markets: dict[str, Market]) -> None:
        self.markets = markets
        self.views: dict[tuple[str, int], OrderView] = {}

    def apply(self, e: Any) -> list[tuple[OrderView, Any]]:
        """The (view, event) pairs this event changes: none, one, or two (a fill)."""
        t = type(e)
        if t is OrderAccepted:
            v = OrderView(
                e.market, e.order_id, e.owner, e.client_order_id, e.side, e.type,
                e.time_in_force, e.price, e.quantity, e.quote_quantity, e.stop_price,
                e.display_quantity, e.post_only, getattr(e, "trigger", ""), "new", "", 0, 0,
                e.quantity or e.quote_quantity, e.ts, e.ts,
            )  # fmt: skip
            self.views[(e.market, e.order_id)] = v
            return [(v, e)]
        if t is OrderRejected:
            v = OrderView(e.market, e.order_id, e.owner, e.client_order_id)
            v.status, v.reason, v.created_ts, v.updated_ts = "rejected", e.reason.value, e.ts, e.ts
            return [(v, e)]
        if t is OrderFilled:
            out = []
            for order_id, leaves, is_maker in (
                (e.taker_order_id, e.taker_leaves, False),
                (e.maker_order_id, e.maker_leaves, True),
            ):
                found = self.views.get((e.market, order_id))
                if found is None:
                    continue
                v = found
                v.filled += e.quantity
                v.filled_scaled += e.price * e.quantity
                v.leaves = leaves
                v.status = "filled" if leaves == 0 else "partially_filled"
                v.updated_ts = e.ts
                v.fills = [Fill(e.trade_id, e.price, e.quantity, 0, "", is_maker)]
                out.append((v, e))
                if leaves == 0:
                    del self.views[(e.market, order_id)]
            return out
        if t is OrderCancelled or t is OrderExpired:
            popped = self.views.pop((e.market, e.order_id), None)
            if popped is None:
                return []
            v = popped
            v.status = "cancelled" if t is OrderCancelled else "expired"
            v.reason, v.leaves, v.updated_ts = e.reason.value, 0, e.ts
            return [(v, e)]
        if t is OrderAmended or t is OrderTriggered:
            current = self.views.get((e.market, e.order_id))
            if current is None:
                return []
            v = current
            if t is OrderAmended:
                v.price, v.quantity, v.leaves = e.price, e.quantity, e.leaves
            else:
                v.status = "triggered"
            v.updated_ts = e.ts
            return [(v, e)]
        return []

    def fee_for(self, v: OrderView, tx: TransactionPosted) -> None:
        """Put the fee of ``v``'s last fill (from its trade transaction) on the fill."""
        m = self.markets[v.market]
        received = m.base if v.side is Side.BUY else m.quote
        for fill in v.fills:
            fill.commission_asset = received
            fill.commission = sum(
                p.amount for p in tx.postings if p.account == FEES and p.asset == received
            )


def is_self_trade_expiry(view: OrderView) -> bool:
    return view.status == "expired" and view.reason in (
        ExpireReason.SELF_TRADE_TAKER.value,
        ExpireReason.SELF_TRADE_MAKER.value,
    )


def rejection(events: Iterable[Any]) -> str | None:
    """The reason if the command was refused outright (order, cancel or amend)."""
    for e in events:
        if type(e) in (OrderRejected, CancelRejected, AmendRejected):
            return str(e.reason.value)
    return None


def own_part(maker_owner: int, taker_owner: int, taker_side: str, user: int) -> tuple[bool, str]:
    """(is_maker, side) of ``user`` in a trade; a self-trade counts as the taker's."""
    is_maker = maker_owner == user and taker_owner != user
    if not is_maker:
        return False, taker_side
    return True, "sell" if taker_side == "buy" else "buy"
