"""One market's order book and matcher: the fast, pure core (see docs/matching.md).

Structures (all O(1) or O(log n) per operation):

- a price level is a doubly linked list of orders (O(1) append, unlink and cancel);
- each side maps price -> level in a dict, with a heap of prices for the best price
  (lazy deletion: a price stays in the heap until it surfaces with no level behind it);
- open orders are indexed by id, by (owner, client order id) and by owner.

Invariants at rest: the book is not crossed (best bid < best ask); every resting
order has ``0 < visible <= leaves`` and ``leaves <= quantity``; a level's ``total`` is
the sum of its orders' ``visible``; a level exists only while it holds an order.
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush
from typing import Any

from crossbook.domain.commands import AmendOrder, CancelAll, CancelOrder, PlaceOrder
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

BUY = Side.BUY
SELL = Side.SELL
LIMIT = OrderType.LIMIT
MARKET = OrderType.MARKET
STOP_LIMIT = OrderType.STOP_LIMIT
STOP_MARKET = OrderType.STOP_MARKET
GTC = TimeInForce.GTC
IOC = TimeInForce.IOC
FOK = TimeInForce.FOK
STP_NONE = SelfTradePrevention.NONE
STP_TAKER = SelfTradePrevention.EXPIRE_TAKER
STP_MAKER = SelfTradePrevention.EXPIRE_MAKER
STP_BOTH = SelfTradePrevention.EXPIRE_BOTH
ABOVE = Trigger.AT_OR_ABOVE
BELOW = Trigger.AT_OR_BELOW
AUTO = Trigger.AUTO
R = RejectReason


class Order:
    """A live order. ``leaves`` is base quantity open (quote budget for quote-sized
    market takers while matching); ``visible`` is the part shown on the book."""

    __slots__ = (
        "client_order_id",
        "display",
        "leaves",
        "level",
        "next",
        "order_id",
        "owner",
        "post_only",
        "prev",
        "price",
        "quantity",
        "quote_quantity",
        "side",
        "stop_price",
        "stp",
        "tif",
        "trigger",
        "type",
        "visible",
    )

    def __init__(
        self,
        order_id: int,
        owner: int,
        client_order_id: str,
        side: Side,
        type_: OrderType,
        tif: TimeInForce,
        price: int,
        quantity: int,
        quote_quantity: int,
        stop_price: int,
        trigger: Trigger,
        display: int,
        stp: SelfTradePrevention,
        post_only: bool,
    ) -> None:
        self.order_id = order_id
        self.owner = owner
        self.client_order_id = client_order_id
        self.side = side
        self.type = type_
        self.tif = tif
        self.price = price
        self.quantity = quantity
        self.quote_quantity = quote_quantity
        self.stop_price = stop_price
        self.trigger = trigger
        self.display = display
        self.stp = stp
        self.post_only = post_only
        self.leaves = quantity or quote_quantity  # quote-sized: the budget, quote units
        self.visible = 0
        self.level: PriceLevel | None = None
        self.prev: Order | None = None
        self.next: Order | None = None

    def to_row(self) -> list[Any]:
        return [
            self.order_id, self.owner, self.client_order_id, self.side, self.type, self.tif,
            self.price, self.quantity, self.quote_quantity, self.stop_price, self.trigger,
            self.display, self.stp, self.post_only, self.leaves, self.visible,
        ]  # fmt: skip

    @classmethod
    def from_row(cls, row: list[Any]) -> Order:
        o = cls(
            row[0], row[1], row[2], Side(row[3]), OrderType(row[4]), TimeInForce(row[5]),
            row[6], row[7], row[8], row[9], Trigger(row[10]), row[11],
            SelfTradePrevention(row[12]), row[13],
        )  # fmt: skip
        o.leaves = row[14]
        o.visible = row[15]
        return o


class PriceLevel:
    """FIFO queue of orders at one price; ``total`` is the sum of their visible parts."""

    __slots__ = ("count", "head", "price", "tail", "total")

    def __init__(self, price: int) -> None:
        self.price = price
        self.head: Order | None = None
        self.tail: Order | None = None
        self.total = 0
        self.count = 0

    def append(self, o: Order) -> None:
        o.level = self
        o.next = None
        tail = self.tail
        o.prev = tail
        if tail is None:
            self.head = o
        else:
            tail.next = o
        self.tail = o
        self.total += o.visible
        self.count += 1

    def unlink(self, o: Order) -> None:
        prev, nxt = o.prev, o.next
        if prev is None:
            self.head = nxt
        else:
            prev.next = nxt
        if nxt is None:
            self.tail = prev
        else:
            nxt.prev = prev
        o.prev = o.next = o.level = None
        self.total -= o.visible
        self.count -= 1

    def orders(self) -> list[Order]:
        out = []
        o = self.head
        while o is not None:
            out.append(o)
            o = o.next
        return out


class BookSide:
    """Levels of one side keyed by price, with a heap for the best price."""

    __slots__ = ("heap", "in_heap", "levels", "sign")

    def __init__(self, is_bid: bool) -> None:
        self.levels: dict[int, PriceLevel] = {}
        self.heap: list[int] = []  # prices (asks) or negated prices (bids)
        self.in_heap: set[int] = set()
        self.sign = -1 if is_bid else 1

    def best(self) -> PriceLevel | None:
        heap, levels = self.heap, self.levels
        while heap:
            level = levels.get(heap[0] * self.sign)
            if level is not None:
                return level
            self.in_heap.discard(heappop(heap) * self.sign)
        return None

    def level_for(self, price: int) -> PriceLevel:
        level = self.levels.get(price)
        if level is None:
            level = self.levels[price] = PriceLevel(price)
            if price not in self.in_heap:
                self.in_heap.add(price)
                heappush(self.heap, price * self.sign)
                if len(self.heap) > 2 * len(self.levels) + 64:
                    self._compact()
        return level

    def _compact(self) -> None:
        self.heap = [p * self.sign for p in self.levels]
        heapify(self.heap)
        self.in_heap = set(self.levels)

    def sorted_levels(self) -> list[PriceLevel]:
        """Best first."""
        return [self.levels[p] for p in sorted(self.levels, reverse=self.sign < 0)]


class OrderBook:
    """The book and matcher of one market. ``execute_*`` return the command's events."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.symbol = market.symbol
        self.bids = BookSide(True)
        self.asks = BookSide(False)
        self.orders: dict[int, Order] = {}
        self.by_client_id: dict[tuple[int, str], Order] = {}
        self.by_owner: dict[int, dict[int, Order]] = {}
        self.stops: dict[int, Order] = {}  # in acceptance order
        self.last_price = 0
        self.trade_seq = 0
        self._touched_bids: dict[int, int] = {}
        self._touched_asks: dict[int, int] = {}
        m = market
        self._tick = m.tick_size
        self._step = m.step_size
        self._min_q = m.min_quantity
        self._max_q = m.max_quantity
        self._divisor = m.notional_divisor
        self._quote_unit = 10**m.quote_scale
        self._min_notional_scaled = m.min_notional * m.notional_divisor

    # ------------------------------------------------------------------ place

    def execute_place(self, c: PlaceOrder) -> list[Event]:
        oid = c.order_id or c.seq
        reason = self._validate_place(c, oid)
        if reason is not None:
            return [OrderRejected(c.seq, c.ts, c.market, oid, c.owner, c.client_order_id, reason)]
        typ = c.type
        trigger = c.trigger
        if trigger is AUTO and (typ is STOP_LIMIT or typ is STOP_MARKET):
            trigger = ABOVE if c.side is BUY else BELOW
        ev: list[Event] = [
            OrderAccepted(
                c.seq, c.ts, c.market, oid, c.owner, c.client_order_id, c.side, typ,
                c.time_in_force, c.price, c.quantity, c.quote_quantity, c.stop_price,
                c.display_quantity, c.post_only, trigger,
            )
        ]  # fmt: skip
        o = Order(
            oid, c.owner, c.client_order_id, c.side, typ, c.time_in_force, c.price,
            c.quantity, c.quote_quantity, c.stop_price, trigger, c.display_quantity,
            c.stp, c.post_only,
        )  # fmt: skip
        if typ is LIMIT or typ is MARKET:
            last = self.last_price
            self._enter(o, c.seq, c.ts, ev)
            if self.stops and self.last_price != last:
                self._run_triggers(c.seq, c.ts, ev)
        else:
            self._add_open(o)
            self.stops[oid] = o
        if self._touched_bids or self._touched_asks:
            self._emit_levels(c.seq, c.ts, ev)
        return ev

    def _validate_place(self, c: PlaceOrder, oid: int) -> RejectReason | None:
        if oid in self.orders:
            return R.DUPLICATE_ORDER_ID
        coid = c.client_order_id
        if coid and (c.owner, coid) in self.by_client_id:
            return R.DUPLICATE_CLIENT_ORDER_ID
        typ = c.type
        is_limit = typ is LIMIT or typ is STOP_LIMIT
        is_stop = typ is STOP_LIMIT or typ is STOP_MARKET
        price = c.price
        if is_limit:
            if price <= 0:
                return R.INVALID_PRICE
            if price % self._tick:
                return R.PRICE_NOT_ON_TICK
        elif price != 0:
            return R.INVALID_ORDER
        if is_stop:
            if c.stop_price <= 0 or c.stop_price % self._tick:
                return R.INVALID_STOP_PRICE
            if c.post_only:
                return R.INVALID_ORDER
        elif c.stop_price != 0 or c.trigger is not AUTO:
            return R.INVALID_ORDER
        qty, quote = c.quantity, c.quote_quantity
        if qty < 0 or quote < 0:
            return R.INVALID_QUANTITY
        if is_limit:
            if quote:
                return R.INVALID_ORDER
            if qty == 0:
                return R.INVALID_QUANTITY
        elif not qty and not quote:
            return R.INVALID_QUANTITY
        if qty:
            if qty % self._step:
                return R.QUANTITY_NOT_ON_STEP
            if qty < self._min_q:
                return R.QUANTITY_TOO_LOW
            if qty > self._max_q:
                return R.QUANTITY_TOO_HIGH
        elif quote < self.market.min_notional:
            return R.NOTIONAL_TOO_LOW
        tif = c.time_in_force
        if not is_limit and (tif is GTC or (quote and tif is not IOC)):
            return R.INVALID_TIME_IN_FORCE
        if c.post_only:
            if tif is not GTC:
                return R.INVALID_TIME_IN_FORCE
            if not is_limit:
                return R.INVALID_ORDER
        display = c.display_quantity
        if display and (
            display < 0
            or not is_limit
            or tif is not GTC
            or display % self._step
            or display < self._min_q
            or display >= qty
        ):
            return R.INVALID_DISPLAY_QUANTITY
        if is_limit and price * qty * self._quote_unit < self._min_notional_scaled:
            return R.NOTIONAL_TOO_LOW
        if is_stop and self.last_price:
            trigger = c.trigger
            if trigger is AUTO:
                trigger = ABOVE if c.side is BUY else BELOW
            last = self.last_price
            if (last >= c.stop_price) if trigger is ABOVE else (last <= c.stop_price):
                return R.STOP_WOULD_TRIGGER_IMMEDIATELY
        if c.post_only and self._would_cross(c.side, price):
            return R.POST_ONLY_WOULD_TAKE
        return None

    def _would_cross(self, side: Side, price: int) -> bool:
        if side is BUY:
            best = self.asks.best()
            return best is not None and price >= best.price
        best = self.bids.best()
        return best is not None and price <= best.price

    def _enter(self, o: Order, seq: int, ts: int, ev: list[Event]) -> None:
        """Run ``o`` as a taker, then rest, expire or close it. ``o`` is not indexed
        as open unless it is a triggered stop or an amended order (then it is)."""
        if o.tif is FOK and not self._fok_fillable(o):
            ev.append(
                OrderExpired(
                    seq, ts, self.symbol, o.order_id, o.owner, o.client_order_id,
                    o.leaves, ExpireReason.FOK,
                )
            )  # fmt: skip
            self._discard_open(o)
            return
        if o.quote_quantity:  # sized by quote amount, or capped by one
            self._match_quote(o, seq, ts, ev)
            return
        if o.tif is GTC and o.type is LIMIT and not self._would_cross(o.side, o.price):
            self._rest(o)  # the common passive order: nothing to match
            return
        if self._match(o, seq, ts, ev):
            self._discard_open(o)
            return
        if o.leaves == 0:
            self._discard_open(o)
        elif o.type is LIMIT or o.type is STOP_LIMIT:
            if o.tif is GTC:
                self._rest(o)
            else:
                ev.append(
                    OrderExpired(
                        seq, ts, self.symbol, o.order_id, o.owner, o.client_order_id,
                        o.leaves, ExpireReason.IOC,
                    )
                )  # fmt: skip
                self._discard_open(o)
        else:
            ev.append(
                OrderExpired(
                    seq, ts, self.symbol, o.order_id, o.owner, o.client_order_id,
                    o.leaves, ExpireReason.MARKET,
                )
            )  # fmt: skip
            self._discard_open(o)

    def _fok_fillable(self, o: Order) -> bool:
        need = o.leaves
        is_buy = o.side is BUY
        side = self.asks if is_buy else self.bids
        limited = o.type is LIMIT or o.type is STOP_LIMIT
        price = o.price
        owner, stp = o.owner, o.stp
        for level in side.sorted_levels():
            if limited and (level.price > price if is_buy else level.price < price):
                return False
            m = level.head
            while m is not None:
                if m.owner == owner and stp is not STP_NONE:
                    if stp is not STP_MAKER:
                        return False
                else:
                    need -= m.leaves
                    if need <= 0:
                        return True
                m = m.next
        return False

    def _match(self, o: Order, seq: int, ts: int, ev: list[Event]) -> bool:
        """Match a quantity-sized taker. Returns True if the taker expired by STP."""
        is_buy = o.side is BUY
        if is_buy:
            side, touched = self.asks, self._touched_asks
            limit = o.price if (o.type is LIMIT or o.type is STOP_LIMIT) else None
        else:
            side, touched = self.bids, self._touched_bids
            limit = o.price if (o.type is LIMIT or o.type is STOP_LIMIT) else None
        symbol = self.symbol
        owner = o.owner
        stp = o.stp
        taker_id = o.order_id
        taker_side = o.side
        while o.leaves:
            level = side.best()
            if level is None:
                break
            price = level.price
            if limit is not None and (price > limit if is_buy else price < limit):
                break
            if price not in touched:
                touched[price] = level.total
            m = level.head
            assert m is not None
            if m.owner == owner and stp is not STP_NONE:
                if self._self_trade(o, m, level, side, seq, ts, ev):
                    return True
                continue
            visible = m.visible
            qty = visible if visible < o.leaves else o.leaves
            m.visible = visible - qty
            m.leaves -= qty
            level.total -= qty
            o.leaves -= qty
            self.trade_seq += 1
            ev.append(
                OrderFilled(
                    seq, ts, symbol, self.trade_seq, price, qty, taker_side, taker_id,
                    owner, o.leaves, m.order_id, m.owner, m.leaves,
                )
            )  # fmt: skip
            self.last_price = price
            if m.visible == 0:
                self._maker_exhausted(m, level, side)
        return False

    def _match_quote(self, o: Order, seq: int, ts: int, ev: list[Event]) -> None:
        """Match a market order with a quote budget, then expire any remainder.

        Sized by quote amount (``quantity == 0``): leaves are the budget left in quote
        units. Capped (``quantity > 0``): leaves are base units, and the order stops at
        its quantity or its budget, whichever comes first.
        """
        is_buy = o.side is BUY
        side, touched = (
            (self.asks, self._touched_asks) if is_buy else (self.bids, self._touched_bids)
        )
        symbol, owner, stp, step = self.symbol, o.owner, o.stp, self._step
        divisor, unit = self._divisor, self._quote_unit
        capped = o.quantity > 0
        budget = o.quote_quantity * divisor
        if not capped:
            o.leaves = budget // divisor
        while o.leaves:
            level = side.best()
            if level is None:
                break
            price = level.price
            affordable = budget // (price * unit)
            if capped and affordable > o.leaves:
                affordable = o.leaves
            affordable -= affordable % step
            if affordable == 0:
                break  # before self-trade prevention: no maker goes for a trade that cannot be
            if price not in touched:
                touched[price] = level.total
            m = level.head
            assert m is not None
            if m.owner == owner and stp is not STP_NONE:
                if self._self_trade(o, m, level, side, seq, ts, ev):
                    self._discard_open(o)
                    return
                continue
            qty = m.visible if m.visible < affordable else affordable
            m.visible -= qty
            m.leaves -= qty
            level.total -= qty
            budget -= price * qty * unit
            o.leaves = o.leaves - qty if capped else budget // divisor
            self.trade_seq += 1
            ev.append(
                OrderFilled(
                    seq, ts, symbol, self.trade_seq, price, qty, o.side, o.order_id,
                    owner, o.leaves, m.order_id, m.owner, m.leaves,
                )
            )  # fmt: skip
            self.last_price = price
            if m.visible == 0:
                self._maker_exhausted(m, level, side)
        if o.leaves:
            ev.append(
                OrderExpired(
                    seq, ts, symbol, o.order_id, owner, o.client_order_id, o.leaves,
                    ExpireReason.MARKET,
                )
            )  # fmt: skip
        self._discard_open(o)

    def _self_trade(
        self,
        o: Order,
        m: Order,
        level: PriceLevel,
        side: BookSide,
        seq: int,
        ts: int,
        ev: list[Event],
    ) -> bool:
        """Apply the taker's STP mode against maker ``m``; True if the taker expired."""
        stp = o.stp
        if stp is not STP_TAKER:
            self._unrest(m, level, side)
            self._discard_open(m)
            ev.append(
                OrderExpired(
                    seq, ts, self.symbol, m.order_id, m.owner, m.client_order_id, m.leaves,
                    ExpireReason.SELF_TRADE_MAKER,
                )
            )  # fmt: skip
            if stp is STP_MAKER:
                return False
        ev.append(
            OrderExpired(
                seq, ts, self.symbol, o.order_id, o.owner, o.client_order_id, o.leaves,
                ExpireReason.SELF_TRADE_TAKER,
            )
        )  # fmt: skip
        return True

    def _maker_exhausted(self, m: Order, level: PriceLevel, side: BookSide) -> None:
        """A maker's visible part is used up: refresh an iceberg at the back, or close."""
        if m.leaves:
            level.unlink(m)
            m.visible = m.display if m.display < m.leaves else m.leaves
            level.append(m)
            return
        level.unlink(m)
        if level.count == 0:
            del side.levels[level.price]
        self._discard_open(m)

    # ------------------------------------------------------------- book edits

    def _rest(self, o: Order) -> None:
        """Put ``o`` at the back of its price level and index it as open."""
        o.visible = o.display if (o.display and o.display < o.leaves) else o.leaves
        if o.side is BUY:
            side, touched = self.bids, self._touched_bids
        else:
            side, touched = self.asks, self._touched_asks
        price = o.price
        level = side.levels.get(price)
        if price not in touched:
            touched[price] = 0 if level is None else level.total
        if level is None:
            level = side.level_for(price)
        level.append(o)
        self._add_open(o)

    def _unrest(self, o: Order, level: PriceLevel, side: BookSide) -> None:
        """Take ``o`` off the book (it stays indexed as open)."""
        touched = self._touched_bids if side is self.bids else self._touched_asks
        price = level.price
        if price not in touched:
            touched[price] = level.total
        level.unlink(o)
        if level.count == 0:
            del side.levels[price]

    def _add_open(self, o: Order) -> None:
        oid = o.order_id
        self.orders[oid] = o
        if o.client_order_id:
            self.by_client_id[(o.owner, o.client_order_id)] = o
        owned = self.by_owner.get(o.owner)
        if owned is None:
            self.by_owner[o.owner] = {oid: o}
        else:
            owned[oid] = o

    def _discard_open(self, o: Order) -> None:
        oid = o.order_id
        if self.orders.pop(oid, None) is None:
            return
        if o.client_order_id:
            del self.by_client_id[(o.owner, o.client_order_id)]
        owned = self.by_owner[o.owner]
        del owned[oid]
        if not owned:
            del self.by_owner[o.owner]

    def _close(self, o: Order) -> None:
        """Remove an open order entirely (from the book or the stop list)."""
        level = o.level
        if level is not None:
            self._unrest(o, level, self.bids if o.side is BUY else self.asks)
        else:
            self.stops.pop(o.order_id, None)
        self._discard_open(o)

    # --------------------------------------------------------------- triggers

    def _run_triggers(self, seq: int, ts: int, ev: list[Event]) -> None:
        while self.stops:
            last = self.last_price
            fired = [
                o
                for o in self.stops.values()
                if ((last >= o.stop_price) if o.trigger is ABOVE else (last <= o.stop_price))
            ]
            if not fired:
                return
            for o in fired:
                del self.stops[o.order_id]
            for o in fired:
                ev.append(
                    OrderTriggered(
                        seq, ts, self.symbol, o.order_id, o.owner, o.client_order_id,
                        o.stop_price, last,
                    )
                )  # fmt: skip
                self._enter(o, seq, ts, ev)

    # ------------------------------------------------------------ level events

    def _emit_levels(self, seq: int, ts: int, ev: list[Event]) -> None:
        symbol = self.symbol
        touched = self._touched_bids
        if touched:
            levels = self.bids.levels
            for price in sorted(touched) if len(touched) > 1 else touched:
                level = levels.get(price)
                now = 0 if level is None else level.total
                if now != touched[price]:
                    ev.append(BookLevelChanged(seq, ts, symbol, BUY, price, now))
            touched.clear()
        touched = self._touched_asks
        if touched:
            levels = self.asks.levels
            for price in sorted(touched) if len(touched) > 1 else touched:
                level = levels.get(price)
                now = 0 if level is None else level.total
                if now != touched[price]:
                    ev.append(BookLevelChanged(seq, ts, symbol, SELL, price, now))
            touched.clear()

    # ----------------------------------------------------------------- cancel

    def _find(self, owner: int, order_id: int, client_order_id: str) -> Order | None:
        if order_id:
            o = self.orders.get(order_id)
        elif client_order_id:
            o = self.by_client_id.get((owner, client_order_id))
        else:
            return None
        if o is None or o.owner != owner:
            return None
        return o

    def execute_cancel(self, c: CancelOrder) -> list[Event]:
        o = self._find(c.owner, c.order_id, c.client_order_id)
        if o is None:
            return [
                CancelRejected(
                    c.seq, c.ts, c.market, c.order_id, c.owner, c.client_order_id,
                    R.UNKNOWN_ORDER,
                )
            ]  # fmt: skip
        self._close(o)
        ev: list[Event] = [
            OrderCancelled(
                c.seq, c.ts, c.market, o.order_id, o.owner, o.client_order_id, o.leaves,
                CancelReason.USER,
            )
        ]  # fmt: skip
        if self._touched_bids or self._touched_asks:
            self._emit_levels(c.seq, c.ts, ev)
        return ev

    def execute_cancel_all(self, c: CancelAll) -> list[Event]:
        owned = self.by_owner.get(c.owner)
        if not owned:
            return []
        ev: list[Event] = []
        for oid in sorted(owned):
            o = owned[oid]
            self._close(o)
            ev.append(
                OrderCancelled(
                    c.seq, c.ts, c.market, oid, o.owner, o.client_order_id, o.leaves,
                    CancelReason.CANCEL_ALL,
                )
            )  # fmt: skip
        if self._touched_bids or self._touched_asks:
            self._emit_levels(c.seq, c.ts, ev)
        return ev

    # ------------------------------------------------------------------ amend

    def execute_amend(self, c: AmendOrder) -> list[Event]:
        o = self._find(c.owner, c.order_id, c.client_order_id)
        reason = self._validate_amend(c, o)
        if reason is not None:
            return [
                AmendRejected(c.seq, c.ts, c.market, c.order_id, c.owner, c.client_order_id, reason)
            ]
        assert o is not None and o.level is not None
        seq, ts = c.seq, c.ts
        price = c.price or o.price
        quantity = c.quantity or o.quantity
        filled = o.quantity - o.leaves
        leaves = quantity - filled
        side = self.bids if o.side is BUY else self.asks
        ev: list[Event] = []
        if price == o.price and quantity <= o.quantity:
            level = o.level
            touched = self._touched_bids if o.side is BUY else self._touched_asks
            if price not in touched:
                touched[price] = level.total
            o.quantity = quantity
            o.leaves = leaves
            if o.visible > leaves:
                level.total -= o.visible - leaves
                o.visible = leaves
            ev.append(
                OrderAmended(
                    seq, ts, c.market, o.order_id, o.owner, o.client_order_id, price,
                    quantity, leaves, True,
                )
            )  # fmt: skip
        else:
            self._unrest(o, o.level, side)
            o.price = price
            o.quantity = quantity
            o.leaves = leaves
            o.visible = 0
            o.tif = GTC
            ev.append(
                OrderAmended(
                    seq, ts, c.market, o.order_id, o.owner, o.client_order_id, price,
                    quantity, leaves, False,
                )
            )  # fmt: skip
            last = self.last_price
            if self._match(o, seq, ts, ev) or o.leaves == 0:
                self._discard_open(o)
            else:
                self._rest(o)
            if self.stops and self.last_price != last:
                self._run_triggers(seq, ts, ev)
        if self._touched_bids or self._touched_asks:
            self._emit_levels(seq, ts, ev)
        return ev

    def _validate_amend(self, c: AmendOrder, o: Order | None) -> RejectReason | None:
        if o is None:
            return R.UNKNOWN_ORDER
        if o.level is None:
            return R.ORDER_NOT_AMENDABLE
        if c.price:
            if c.price < 0:
                return R.INVALID_PRICE
            if c.price % self._tick:
                return R.PRICE_NOT_ON_TICK
        if c.quantity:
            if c.quantity < 0:
                return R.INVALID_QUANTITY
            if c.quantity % self._step:
                return R.QUANTITY_NOT_ON_STEP
            if c.quantity > self._max_q:
                return R.QUANTITY_TOO_HIGH
            if c.quantity <= o.quantity - o.leaves:
                return R.AMEND_QUANTITY_TOO_LOW
        price = c.price or o.price
        if price == o.price and (c.quantity or o.quantity) == o.quantity:
            return R.AMEND_NO_CHANGE
        if o.post_only and price != o.price and self._would_cross(o.side, price):
            return R.POST_ONLY_WOULD_TAKE
        return None

    # ------------------------------------------------------------------ views

    def depth(self) -> tuple[list[Level], list[Level]]:
        return (
            [(lv.price, lv.total) for lv in self.bids.sorted_levels()],
            [(lv.price, lv.total) for lv in self.asks.sorted_levels()],
        )

    def open_orders(self) -> list[OpenOrder]:
        return [
            OpenOrder(
                order_id=o.order_id,
                owner=o.owner,
                client_order_id=o.client_order_id,
                side=o.side,
                type=o.type,
                time_in_force=o.tif,
                price=o.price,
                quantity=o.quantity,
                leaves=o.leaves,
                visible=o.visible,
                stop_price=o.stop_price,
                display_quantity=o.display,
                stp=o.stp,
                is_stop=o.level is None,
            )
            for _, o in sorted(self.orders.items())
        ]

    # --------------------------------------------------------------- snapshot

    def to_snapshot(self) -> dict[str, Any]:
        """Canonical state: levels best first, each in time priority; stops in order."""
        return {
            "symbol": self.symbol,
            "last_price": self.last_price,
            "trade_seq": self.trade_seq,
            "bids": [
                [lv.price, [o.to_row() for o in lv.orders()]] for lv in self.bids.sorted_levels()
            ],
            "asks": [
                [lv.price, [o.to_row() for o in lv.orders()]] for lv in self.asks.sorted_levels()
            ],
            "stops": [o.to_row() for o in self.stops.values()],
        }

    def load_snapshot(self, data: dict[str, Any]) -> None:
        self.last_price = data["last_price"]
        self.trade_seq = data["trade_seq"]
        for key, side in (("bids", self.bids), ("asks", self.asks)):
            for price, rows in data[key]:
                level = side.level_for(price)
                for row in rows:
                    o = Order.from_row(row)
                    level.append(o)
                    self._add_open(o)
        for row in data["stops"]:
            o = Order.from_row(row)
            self.stops[o.order_id] = o
            self._add_open(o)
