"""Events: the outputs of the matching engine, named in the past tense.

Each event carries the ``seq`` and ``ts`` of the command that caused it and its
``market``. The events of one command form an ordered list; replaying the same
commands yields the same lists, byte for byte.

Leaves: ``leaves`` counts what is still open, in the unit the order was sized in
(base minor units, or quote minor units for market orders sized by quote amount,
rounded down). For an iceberg it includes the hidden part. An order's life ends
with exactly one of: a fill that leaves 0 on it, ``OrderCancelled``,
``OrderExpired`` or ``OrderRejected``.
"""

from __future__ import annotations

import msgspec

from crossbook.domain.enums import (
    CancelReason,
    ExpireReason,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
    Trigger,
)


class OrderAccepted(
    msgspec.Struct, tag="accepted", frozen=True, array_like=True, gc=False, tag_field="kind"
):
    seq: int
    ts: int
    market: str
    order_id: int
    owner: int
    client_order_id: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    price: int
    quantity: int
    quote_quantity: int
    stop_price: int
    display_quantity: int
    post_only: bool
    trigger: Trigger
    """For stop orders, when they fire (AUTO resolved); AUTO for the other types."""


class OrderRejected(
    msgspec.Struct, tag="rejected", frozen=True, array_like=True, gc=False, tag_field="kind"
):
    seq: int
    ts: int
    market: str
    order_id: int
    owner: int
    client_order_id: str
    reason: RejectReason


class OrderFilled(
    msgspec.Struct, tag="filled", frozen=True, array_like=True, gc=False, tag_field="kind"
):
    """One match between a taker and a resting maker, at the maker's price."""

    seq: int
    ts: int
    market: str
    trade_id: int
    price: int
    quantity: int
    taker_side: Side
    taker_order_id: int
    taker_owner: int
    taker_leaves: int
    maker_order_id: int
    maker_owner: int
    maker_leaves: int


class OrderCancelled(
    msgspec.Struct, tag="cancelled", frozen=True, array_like=True, gc=False, tag_field="kind"
):
    seq: int
    ts: int
    market: str
    order_id: int
    owner: int
    client_order_id: str
    leaves: int
    reason: CancelReason


class OrderExpired(
    msgspec.Struct, tag="expired", frozen=True, array_like=True, gc=False, tag_field="kind"
):
    seq: int
    ts: int
    market: str
    order_id: int
    owner: int
    client_order_id: str
    leaves: int
    reason: ExpireReason


class OrderAmended(
    msgspec.Struct, tag="amended", frozen=True, array_like=True, gc=False, tag_field="kind"
):
    seq: int
    ts: int
    market: str
    order_id: int
    owner: int
    client_order_id: str
    price: int
    quantity: int
    leaves: int
    priority_kept: bool


class OrderTriggered(
    msgspec.Struct, tag="triggered", frozen=True, array_like=True, gc=False, tag_field="kind"
):
    """A stop order fired: it now enters the book as a limit or market order."""

    seq: int
    ts: int
    market: str
    order_id: int
    owner: int
    client_order_id: str
    stop_price: int
    last_price: int


class CancelRejected(
    msgspec.Struct, tag="cancel_rejected", frozen=True, array_like=True, gc=False, tag_field="kind"
):
    seq: int
    ts: int
    market: str
    order_id: int
    owner: int
    client_order_id: str
    reason: RejectReason


class AmendRejected(
    msgspec.Struct, tag="amend_rejected", frozen=True, array_like=True, gc=False, tag_field="kind"
):
    seq: int
    ts: int
    market: str
    order_id: int
    owner: int
    client_order_id: str
    reason: RejectReason


class BookLevelChanged(
    msgspec.Struct, tag="level", frozen=True, array_like=True, gc=False, tag_field="kind"
):
    """The visible quantity at one price level after a command (0: level removed).

    Emitted after the command's other events for every level whose visible quantity
    differs from before the command: buy side first, then sell side, each by price
    ascending.
    """

    seq: int
    ts: int
    market: str
    side: Side
    price: int
    quantity: int


Event = (
    OrderAccepted
    | OrderRejected
    | OrderFilled
    | OrderCancelled
    | OrderExpired
    | OrderAmended
    | OrderTriggered
    | CancelRejected
    | AmendRejected
    | BookLevelChanged
)
