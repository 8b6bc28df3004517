"""Commands: the inputs of the matching engine, named in the imperative.

Every command carries the ``seq`` and ``ts`` (nanoseconds since the epoch) stamped by
the sequencer of its input log; the engine derives every output id from them and
never reads a clock. Commands are immutable and encode compactly (tagged arrays).
"""

from __future__ import annotations

import msgspec

from crossbook.domain.enums import OrderType, SelfTradePrevention, Side, TimeInForce, Trigger


class PlaceOrder(
    msgspec.Struct,
    frozen=True,
    tag="place",
    tag_field="kind",
    array_like=True,
    gc=False,
    kw_only=True,
):
    """Submit a new order.

    ``order_id`` 0 means "use ``seq``". Sizing: ``quantity`` (base minor units), or
    for market orders alternatively ``quote_quantity`` (quote minor units to spend
    on a buy, or to receive on a sell). ``display_quantity`` > 0 makes an iceberg.
    ``stop_price`` is used by the stop types only.
    """

    seq: int
    ts: int
    market: str
    owner: int
    side: Side
    type: OrderType = OrderType.LIMIT
    price: int = 0
    quantity: int = 0
    quote_quantity: int = 0
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    stop_price: int = 0
    trigger: Trigger = Trigger.AUTO
    display_quantity: int = 0
    stp: SelfTradePrevention = SelfTradePrevention.EXPIRE_MAKER
    client_order_id: str = ""
    order_id: int = 0


class CancelOrder(
    msgspec.Struct,
    frozen=True,
    tag="cancel",
    tag_field="kind",
    array_like=True,
    gc=False,
    kw_only=True,
):
    """Cancel one order of ``owner``, by ``order_id`` or else by ``client_order_id``."""

    seq: int
    ts: int
    market: str
    owner: int
    order_id: int = 0
    client_order_id: str = ""


class CancelAll(
    msgspec.Struct,
    frozen=True,
    tag="cancel_all",
    tag_field="kind",
    array_like=True,
    gc=False,
    kw_only=True,
):
    """Cancel every open order (resting and untriggered stops) of ``owner`` in ``market``."""

    seq: int
    ts: int
    market: str
    owner: int


class AmendOrder(
    msgspec.Struct,
    frozen=True,
    tag="amend",
    tag_field="kind",
    array_like=True,
    gc=False,
    kw_only=True,
):
    """Change a resting order's price and/or total quantity (0 = unchanged).

    ``quantity`` is the new total (original) quantity; it must exceed what has
    already filled. Lowering quantity keeps time priority; a new price or a larger
    quantity loses it (the order goes to the back and may match at its new price).
    """

    seq: int
    ts: int
    market: str
    owner: int
    order_id: int = 0
    client_order_id: str = ""
    price: int = 0
    quantity: int = 0


Command = PlaceOrder | CancelOrder | CancelAll | AmendOrder
