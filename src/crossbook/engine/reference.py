"""A deliberately naive, obviously-correct implementation of ``docs/matching.md``.

The fast engine (:mod:`crossbook.engine.matching`) is checked against this one on random
command streams, event for event. Nothing here is clever: every side of every book is a
plain list of orders, re-sorted by (price priority, arrival counter) whenever it is read;
book-level changes are found by diffing the aggregated levels before and after each
command. The module is pure: no I/O, no clock, no randomness.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from crossbook.domain.commands import AmendOrder, CancelAll, CancelOrder, Command, PlaceOrder
from crossbook.domain.enums import (
    CancelReason,
    ExpireReason,
    OrderType,
    RejectReason,
    SelfTradePrevention,
    Side,
    TimeInForce,
    Trigger,
)
from crossbook.domain.events import (
    AmendRejected,
    BookLevelChanged,
    CancelRejected,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
)
from crossbook.domain.markets import Market
from crossbook.engine.views import Level, OpenOrder

_LIMIT_TYPES = (OrderType.LIMIT, OrderType.STOP_LIMIT)
_MARKET_TYPES = (OrderType.MARKET, OrderType.STOP_MARKET)
_STOP_TYPES = (OrderType.STOP_LIMIT, OrderType.STOP_MARKET)


@dataclass
class _Order:
    """One open order (resting on the book, or a stop waiting for its trigger)."""

    order_id: int
    owner: int
    client_order_id: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    price: int
    quantity: int
    quote_quantity: int
    leaves: int
    """Base units; for a quote-sized stop market not yet triggered: quote units."""
    visible: int
    stop_price: int
    trigger: Trigger
    display_quantity: int
    stp: SelfTradePrevention
    post_only: bool
    is_stop: bool
    arrival: int = 0
    """Time priority on the book, or acceptance order in the stop list."""


@dataclass
class _Market:
    market: Market
    orders: dict[int, _Order] = field(default_factory=dict)
    """Every open order of the market (resting and stops), by order id."""
    last_price: int = 0
    trade_id: int = 0

    def resting(self, side: Side) -> list[_Order]:
        """The side's resting orders, best price first, then oldest first."""
        orders = [o for o in self.orders.values() if not o.is_stop and o.side is side]
        if side is Side.BUY:
            orders.sort(key=lambda o: (-o.price, o.arrival))
        else:
            orders.sort(key=lambda o: (o.price, o.arrival))
        return orders

    def stops(self) -> list[_Order]:
        """The stop list, in acceptance order."""
        return sorted((o for o in self.orders.values() if o.is_stop), key=lambda o: o.arrival)

    def levels(self, side: Side) -> list[Level]:
        """Aggregated visible quantity per price, best first."""
        totals: dict[int, int] = {}
        for o in self.resting(side):
            totals[o.price] = totals.get(o.price, 0) + o.visible
        return list(totals.items())  # resting() is sorted best first; dicts keep order

    def best(self, side: Side) -> int | None:
        levels = self.levels(side)
        return levels[0][0] if levels else None

    def find(self, owner: int, order_id: int, client_order_id: str) -> _Order | None:
        """Lookup as for cancel/amend: by id when non-zero, else by the owner's client id."""
        if order_id:
            found = self.orders.get(order_id)
            return found if found is not None and found.owner == owner else None
        if not client_order_id:
            return None
        for o in self.orders.values():
            if o.owner == owner and o.client_order_id == client_order_id:
                return o
        return None


@dataclass
class _Taker:
    """The order being matched, with its remaining size."""

    order: _Order
    is_market: bool
    quote_sized: bool
    budget_scaled: int = 0
    """Orders with a quote amount (quote-sized, or capped market orders): what is left to
    spend (or receive), times the notional divisor."""
    capped: bool = False
    """A market order with both a quantity and a quote amount: whichever runs out first."""


def _triggered(trigger: Trigger, stop_price: int, last_price: int) -> bool:
    if last_price <= 0:
        return False
    if trigger is Trigger.AT_OR_ABOVE:
        return last_price >= stop_price
    return last_price <= stop_price


class ReferenceEngine:
    """Naive matching engine: same surface and same events as the fast one."""

    def __init__(self, markets: Iterable[Market]) -> None:
        self._markets: dict[str, _Market] = {m.symbol: _Market(m) for m in markets}
        self.last_seq = 0
        self._arrivals = 0
        # Context of the command being executed.
        self._seq = 0
        self._ts = 0
        self._symbol = ""
        self._events: list[Event] = []

    # -- views ---------------------------------------------------------------------------

    def depth(self, symbol: str) -> tuple[list[Level], list[Level]]:
        book = self._markets.get(symbol)
        if book is None:
            return [], []
        return book.levels(Side.BUY), book.levels(Side.SELL)

    def open_orders(self, symbol: str) -> list[OpenOrder]:
        book = self._markets.get(symbol)
        if book is None:
            return []
        return [
            OpenOrder(
                order_id=o.order_id,
                owner=o.owner,
                client_order_id=o.client_order_id,
                side=o.side,
                type=o.type,
                time_in_force=o.time_in_force,
                price=o.price,
                quantity=o.quantity,
                leaves=o.leaves,
                visible=o.visible,
                stop_price=o.stop_price,
                display_quantity=o.display_quantity,
                stp=o.stp,
                is_stop=o.is_stop,
            )
            for o in sorted(book.orders.values(), key=lambda o: o.order_id)
        ]

    # -- commands ------------------------------------------------------------------------

    def execute(self, command: Command) -> list[Event]:
        if command.seq <= self.last_seq:
            return []
        self.last_seq = command.seq
        self._seq, self._ts, self._symbol = command.seq, command.ts, command.market
        self._events = []
        book = self._markets.get(command.market)
        before = self._snapshot_levels(book)
        if isinstance(command, PlaceOrder):
            self._place(book, command)
        elif isinstance(command, CancelOrder):
            self._cancel(book, command)
        elif isinstance(command, CancelAll):
            self._cancel_all(book, command)
        else:
            self._amend(book, command)
        if book is not None:
            self._run_triggers(book)
            self._emit_level_changes(book, before)
        events, self._events = self._events, []
        return events

    def _next_arrival(self) -> int:
        self._arrivals += 1
        return self._arrivals

    # -- PlaceOrder ----------------------------------------------------------------------

    def _place(self, book: _Market | None, c: PlaceOrder) -> None:
        order_id = c.order_id or c.seq
        reason = self._validate(book, c, order_id)
        if reason is not None or book is None:
            self._events.append(
                OrderRejected(
                    self._seq,
                    self._ts,
                    self._symbol,
                    order_id,
                    c.owner,
                    c.client_order_id,
                    reason or RejectReason.UNKNOWN_MARKET,
                )
            )
            return
        self._events.append(
            OrderAccepted(
                self._seq,
                self._ts,
                self._symbol,
                order_id,
                c.owner,
                c.client_order_id,
                c.side,
                c.type,
                c.time_in_force,
                c.price,
                c.quantity,
                c.quote_quantity,
                c.stop_price,
                c.display_quantity,
                c.post_only,
                _resolve_trigger(c.side, c.trigger) if c.type in _STOP_TYPES else Trigger.AUTO,
            )
        )
        order = _Order(
            order_id=order_id,
            owner=c.owner,
            client_order_id=c.client_order_id,
            side=c.side,
            type=c.type,
            time_in_force=c.time_in_force,
            price=c.price,
            quantity=c.quantity,
            quote_quantity=c.quote_quantity,
            leaves=c.quantity if c.quantity > 0 else c.quote_quantity,
            visible=0,
            stop_price=c.stop_price,
            trigger=_resolve_trigger(c.side, c.trigger),
            display_quantity=c.display_quantity,
            stp=c.stp,
            post_only=c.post_only,
            is_stop=c.type in _STOP_TYPES,
        )
        if order.is_stop:
            order.arrival = self._next_arrival()
            book.orders[order_id] = order
            return
        self._execute_order(book, order)

    def _validate(self, book: _Market | None, c: PlaceOrder, order_id: int) -> RejectReason | None:
        if book is None:
            return RejectReason.UNKNOWN_MARKET
        m = book.market
        t = c.type
        # 2, 3: ids
        if order_id in book.orders:
            return RejectReason.DUPLICATE_ORDER_ID
        if c.client_order_id and any(
            o.owner == c.owner and o.client_order_id == c.client_order_id
            for o in book.orders.values()
        ):
            return RejectReason.DUPLICATE_CLIENT_ORDER_ID
        # 4: price
        if t in _LIMIT_TYPES:
            if c.price <= 0:
                return RejectReason.INVALID_PRICE
            if c.price % m.tick_size:
                return RejectReason.PRICE_NOT_ON_TICK
        elif c.price != 0:
            return RejectReason.INVALID_ORDER
        # 5: stop price
        if t in _STOP_TYPES:
            if c.stop_price <= 0 or c.stop_price % m.tick_size:
                return RejectReason.INVALID_STOP_PRICE
            if c.post_only:
                return RejectReason.INVALID_ORDER
        elif c.stop_price != 0 or c.trigger is not Trigger.AUTO:
            return RejectReason.INVALID_ORDER
        # 6: sizing
        if c.quantity < 0 or c.quote_quantity < 0:
            return RejectReason.INVALID_QUANTITY
        if t in _LIMIT_TYPES:
            if c.quote_quantity != 0:
                return RejectReason.INVALID_ORDER
            if c.quantity <= 0:
                return RejectReason.INVALID_QUANTITY
        else:
            if c.quantity == 0 and c.quote_quantity == 0:
                return RejectReason.INVALID_QUANTITY
        quote_sized = c.quote_quantity > 0 and c.quantity == 0
        # 7: quantity limits
        if quote_sized:
            if c.quote_quantity < m.min_notional:
                return RejectReason.NOTIONAL_TOO_LOW
        else:
            if c.quantity % m.step_size:
                return RejectReason.QUANTITY_NOT_ON_STEP
            if c.quantity < m.min_quantity:
                return RejectReason.QUANTITY_TOO_LOW
            if c.quantity > m.max_quantity:
                return RejectReason.QUANTITY_TOO_HIGH
        # 8: time in force
        tif = c.time_in_force
        if t in _MARKET_TYPES:
            if tif not in (TimeInForce.IOC, TimeInForce.FOK):
                return RejectReason.INVALID_TIME_IN_FORCE
            if c.quote_quantity > 0 and tif is not TimeInForce.IOC:
                return RejectReason.INVALID_TIME_IN_FORCE
        if c.post_only:
            if tif is not TimeInForce.GTC:
                return RejectReason.INVALID_TIME_IN_FORCE
            if t is not OrderType.LIMIT:
                return RejectReason.INVALID_ORDER
        # 9: iceberg
        if c.display_quantity < 0:
            return RejectReason.INVALID_DISPLAY_QUANTITY
        if c.display_quantity > 0 and not (
            t in _LIMIT_TYPES
            and tif is TimeInForce.GTC
            and c.display_quantity % m.step_size == 0
            and c.display_quantity >= m.min_quantity
            and c.display_quantity < c.quantity
        ):
            return RejectReason.INVALID_DISPLAY_QUANTITY
        # 10: min notional of limits
        if t in _LIMIT_TYPES and m.notional_scaled(c.price, c.quantity) < (
            m.min_notional * m.notional_divisor
        ):
            return RejectReason.NOTIONAL_TOO_LOW
        # 11: stops that would fire at once
        if t in _STOP_TYPES and _triggered(
            _resolve_trigger(c.side, c.trigger), c.stop_price, book.last_price
        ):
            return RejectReason.STOP_WOULD_TRIGGER_IMMEDIATELY
        # 12: post-only
        if c.post_only and _would_cross(book, c.side, c.price):
            return RejectReason.POST_ONLY_WOULD_TAKE
        return None

    # -- execution -----------------------------------------------------------------------

    def _execute_order(self, book: _Market, order: _Order) -> None:
        """Match ``order`` as a taker, then rest or expire what is left."""
        m = book.market
        is_market = order.type in _MARKET_TYPES
        taker = _Taker(order, is_market=is_market, quote_sized=is_market and order.quantity == 0)
        taker.capped = is_market and order.quantity > 0 and order.quote_quantity > 0
        if taker.quote_sized or taker.capped:
            taker.budget_scaled = order.quote_quantity * m.notional_divisor
        if order.time_in_force is TimeInForce.FOK and self._fok_count(book, taker) < order.leaves:
            self._expire(order, order.leaves, ExpireReason.FOK)
            return
        if not self._match(book, taker):
            return  # expired by self-trade prevention
        left = self._taker_leaves(book, taker)
        if left == 0:
            return
        if is_market:
            self._expire(order, left, ExpireReason.MARKET)
        elif order.time_in_force is TimeInForce.GTC:
            order.visible = (
                min(order.display_quantity, order.leaves)
                if order.display_quantity
                else order.leaves
            )
            order.arrival = self._next_arrival()
            book.orders[order.order_id] = order
        elif order.time_in_force is TimeInForce.IOC:
            self._expire(order, left, ExpireReason.IOC)
        else:
            self._expire(order, left, ExpireReason.FOK)  # not reachable by the contract

    def _accepts(self, taker: _Taker, price: int) -> bool:
        if taker.is_market:
            return True
        if taker.order.side is Side.BUY:
            return price <= taker.order.price
        return price >= taker.order.price

    def _fok_count(self, book: _Market, taker: _Taker) -> int:
        order = taker.order
        count = 0
        for maker in book.resting(_opposite(order.side)):
            if not self._accepts(taker, maker.price):
                break
            if maker.owner == order.owner:
                if order.stp in (SelfTradePrevention.EXPIRE_TAKER, SelfTradePrevention.EXPIRE_BOTH):
                    break
                if order.stp is SelfTradePrevention.EXPIRE_MAKER:
                    continue
            count += maker.leaves
        return count

    def _taker_leaves(self, book: _Market, taker: _Taker) -> int:
        if taker.quote_sized:
            return taker.budget_scaled // book.market.notional_divisor
        return taker.order.leaves

    def _has_left(self, book: _Market, taker: _Taker) -> bool:
        """Whether the taker has "something left": its leaves, in the unit it is sized in.

        For a quote-sized order that is the budget in quote minor units, rounded down: a
        fill that reports ``taker_leaves == 0`` ends the order's life, so matching must
        not go on with the sub-unit dust of the budget (no self-trade expiry after it).
        """
        return self._taker_leaves(book, taker) > 0

    def _match(self, book: _Market, taker: _Taker) -> bool:
        """The matching loop. Returns False if the taker expired by self-trade prevention."""
        m = book.market
        order = taker.order
        while self._has_left(book, taker):
            makers = book.resting(_opposite(order.side))
            if not makers or not self._accepts(taker, makers[0].price):
                break
            maker = makers[0]
            # what the taker can take at this price: a budget that cannot buy one step
            # ends matching before self-trade prevention looks at the maker
            if taker.quote_sized or taker.capped:
                can = taker.budget_scaled // (maker.price * 10**m.quote_scale)
                if taker.capped:
                    can = min(can, order.leaves)
                can -= can % m.step_size
            else:
                can = order.leaves
            if can == 0:
                break
            if maker.owner == order.owner and order.stp is not SelfTradePrevention.NONE:
                if order.stp in (SelfTradePrevention.EXPIRE_MAKER, SelfTradePrevention.EXPIRE_BOTH):
                    self._expire(maker, maker.leaves, ExpireReason.SELF_TRADE_MAKER)
                    del book.orders[maker.order_id]
                if order.stp in (SelfTradePrevention.EXPIRE_TAKER, SelfTradePrevention.EXPIRE_BOTH):
                    self._expire(
                        order, self._taker_leaves(book, taker), ExpireReason.SELF_TRADE_TAKER
                    )
                    return False
                continue
            qty = min(maker.visible, can)
            if taker.quote_sized or taker.capped:
                taker.budget_scaled -= m.notional_scaled(maker.price, qty)
            if not taker.quote_sized:
                order.leaves -= qty
            maker.visible -= qty
            maker.leaves -= qty
            book.trade_id += 1
            book.last_price = maker.price
            self._events.append(
                OrderFilled(
                    self._seq,
                    self._ts,
                    self._symbol,
                    book.trade_id,
                    maker.price,
                    qty,
                    order.side,
                    order.order_id,
                    order.owner,
                    self._taker_leaves(book, taker),
                    maker.order_id,
                    maker.owner,
                    maker.leaves,
                )
            )
            if maker.visible == 0:
                if maker.leaves > 0:
                    maker.visible = min(maker.display_quantity, maker.leaves)
                    maker.arrival = self._next_arrival()
                else:
                    del book.orders[maker.order_id]
        return True

    def _run_triggers(self, book: _Market) -> None:
        while True:
            last = book.last_price
            fired = [o for o in book.stops() if _triggered(o.trigger, o.stop_price, last)]
            if not fired:
                return
            for o in fired:
                del book.orders[o.order_id]
            for o in fired:
                self._events.append(
                    OrderTriggered(
                        self._seq,
                        self._ts,
                        self._symbol,
                        o.order_id,
                        o.owner,
                        o.client_order_id,
                        o.stop_price,
                        last,
                    )
                )
                o.is_stop = False
                self._execute_order(book, o)

    # -- CancelOrder / CancelAll ---------------------------------------------------------

    def _cancel(self, book: _Market | None, c: CancelOrder) -> None:
        found = None if book is None else book.find(c.owner, c.order_id, c.client_order_id)
        if book is None or found is None:
            reason = RejectReason.UNKNOWN_MARKET if book is None else RejectReason.UNKNOWN_ORDER
            self._events.append(
                CancelRejected(
                    self._seq,
                    self._ts,
                    self._symbol,
                    c.order_id,
                    c.owner,
                    c.client_order_id,
                    reason,
                )
            )
            return
        del book.orders[found.order_id]
        self._cancelled(found, CancelReason.USER)

    def _cancel_all(self, book: _Market | None, c: CancelAll) -> None:
        if book is None:
            self._events.append(
                CancelRejected(
                    self._seq, self._ts, self._symbol, 0, c.owner, "", RejectReason.UNKNOWN_MARKET
                )
            )
            return
        for order_id in sorted(book.orders):
            o = book.orders[order_id]
            if o.owner == c.owner:
                del book.orders[order_id]
                self._cancelled(o, CancelReason.CANCEL_ALL)

    # -- AmendOrder ----------------------------------------------------------------------

    def _amend(self, book: _Market | None, c: AmendOrder) -> None:
        reason = self._validate_amend(book, c)
        if reason is not None or book is None:
            self._events.append(
                AmendRejected(
                    self._seq,
                    self._ts,
                    self._symbol,
                    c.order_id,
                    c.owner,
                    c.client_order_id,
                    reason or RejectReason.UNKNOWN_MARKET,
                )
            )
            return
        o = book.find(c.owner, c.order_id, c.client_order_id)
        assert o is not None
        price = c.price or o.price
        quantity = c.quantity or o.quantity
        filled = o.quantity - o.leaves
        keep = price == o.price and quantity <= o.quantity
        o.price, o.quantity, o.leaves = price, quantity, quantity - filled
        self._events.append(
            OrderAmended(
                self._seq,
                self._ts,
                self._symbol,
                o.order_id,
                o.owner,
                o.client_order_id,
                price,
                quantity,
                o.leaves,
                keep,
            )
        )
        if keep:
            o.visible = min(o.visible, o.leaves)
            return
        del book.orders[o.order_id]
        o.time_in_force = TimeInForce.GTC
        self._execute_order(book, o)

    def _validate_amend(self, book: _Market | None, c: AmendOrder) -> RejectReason | None:
        if book is None:
            return RejectReason.UNKNOWN_MARKET
        m = book.market
        o = book.find(c.owner, c.order_id, c.client_order_id)
        if o is None:
            return RejectReason.UNKNOWN_ORDER
        if o.is_stop:
            return RejectReason.ORDER_NOT_AMENDABLE
        if c.price != 0:
            if c.price < 0:
                return RejectReason.INVALID_PRICE
            if c.price % m.tick_size:
                return RejectReason.PRICE_NOT_ON_TICK
        if c.quantity != 0:
            if c.quantity < 0:
                return RejectReason.INVALID_QUANTITY
            if c.quantity % m.step_size:
                return RejectReason.QUANTITY_NOT_ON_STEP
            if c.quantity > m.max_quantity:
                return RejectReason.QUANTITY_TOO_HIGH
            if c.quantity <= o.quantity - o.leaves:
                return RejectReason.AMEND_QUANTITY_TOO_LOW
        price = c.price or o.price
        quantity = c.quantity or o.quantity
        if price == o.price and quantity == o.quantity:
            return RejectReason.AMEND_NO_CHANGE
        if o.post_only and _would_cross(book, o.side, price):
            return RejectReason.POST_ONLY_WOULD_TAKE
        return None

    # -- events --------------------------------------------------------------------------

    def _expire(self, o: _Order, leaves: int, reason: ExpireReason) -> None:
        self._events.append(
            OrderExpired(
                self._seq,
                self._ts,
                self._symbol,
                o.order_id,
                o.owner,
                o.client_order_id,
                leaves,
                reason,
            )
        )

    def _cancelled(self, o: _Order, reason: CancelReason) -> None:
        self._events.append(
            OrderCancelled(
                self._seq,
                self._ts,
                self._symbol,
                o.order_id,
                o.owner,
                o.client_order_id,
                o.leaves,
                reason,
            )
        )

    def _snapshot_levels(self, book: _Market | None) -> dict[Side, dict[int, int]]:
        if book is None:
            return {Side.BUY: {}, Side.SELL: {}}
        return {side: dict(book.levels(side)) for side in (Side.BUY, Side.SELL)}

    def _emit_level_changes(self, book: _Market, before: dict[Side, dict[int, int]]) -> None:
        after = self._snapshot_levels(book)
        for side in (Side.BUY, Side.SELL):
            old, new = before[side], after[side]
            for price in sorted(old.keys() | new.keys()):
                if old.get(price, 0) != new.get(price, 0):
                    self._events.append(
                        BookLevelChanged(
                            self._seq, self._ts, self._symbol, side, price, new.get(price, 0)
                        )
                    )


def _opposite(side: Side) -> Side:
    return Side.SELL if side is Side.BUY else Side.BUY


def _resolve_trigger(side: Side, trigger: Trigger) -> Trigger:
    if trigger is not Trigger.AUTO:
        return trigger
    return Trigger.AT_OR_ABOVE if side is Side.BUY else Trigger.AT_OR_BELOW


def _would_cross(book: _Market, side: Side, price: int) -> bool:
    """Would a limit at ``price`` on ``side`` take liquidity (post-only check)?"""
    if side is Side.BUY:
        best_ask = book.best(Side.SELL)
        return best_ask is not None and price >= best_ask
    best_bid = book.best(Side.BUY)
    return best_bid is not None and price <= best_bid
