"""Read-only views of engine state, shared by the fast and the reference engine."""

from __future__ import annotations

import msgspec

from crossbook.domain.enums import OrderType, SelfTradePrevention, Side, TimeInForce


class OpenOrder(msgspec.Struct, frozen=True, kw_only=True):
    """An order that is open in a market: resting on the book, or a stop not yet triggered.

    ``visible`` is the displayed quantity on the book (0 for stops); ``leaves`` is
    everything still open (iceberg hidden part included).
    """

    order_id: int
    owner: int
    client_order_id: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    price: int
    quantity: int
    leaves: int
    visible: int
    stop_price: int
    display_quantity: int
    stp: SelfTradePrevention
    is_stop: bool


Level = tuple[int, int]
"""(price, visible quantity)"""
