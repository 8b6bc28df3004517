"""The account service's core: balances, holds, settlement and fees (pure, deterministic).

Every balance change is one :class:`TransactionPosted` whose postings sum to zero per
asset; balances are the running sums of postings per (ledger account, asset).

Orders. A new order passes here before its engine: it holds exactly what it can spend
(base for sells; for buys the quote at its limit price, rounded up, or the quote
amount of a market buy sized by quote), or is refused with ``INSUFFICIENT_BALANCE``.
Engine events then settle fills and release what an order can no longer spend.

Rounding (all exact integers; the exchange never pays out what it did not receive):

- Let ``S`` be an order's running sum of ``price * quantity * 10**quote_scale`` over its
  fills and ``D`` the market's notional divisor. A buyer has paid ``ceil(S / D)`` in
  total and a seller has received ``floor(S / D)`` gross, so each fill moves the
  difference of those running totals. The buyer's and seller's rounding differences
  go to ``rounding``; summed over all orders that account never goes below zero.
- Fees are charged in the asset received, per role (maker / taker), also on running
  totals: ``fee = ceil(gross * ppm / 1_000_000)``, at the rates fixed when the order
  was placed (market schedule, user tier).
- A limit buy keeps held ``ceil((S + P * leaves * 10**quote_scale) / D) - ceil(S / D)``
  (``P`` its limit price): price improvement flows back to available after each fill.

Shards (:mod:`crossbook.domain.sharding`). With ``K > 1`` shards, this machine is shard
``k`` and owns the users ``u`` with ``u % K == k``; a command about another user is
refused (``wrong_shard``). What it forwards carries the global seq ``s * K + k``, which
is also a new order's id, and its transaction ids are ``n * K + k``, so ids are unique
across shards. Every shard sees every engine event of a market and keeps those about
its own users. A fill between users of two shards is settled in halves, each shard
posting its own user's side against ``clearing:<market>``:

- the buyer's shard: held quote ``-cost``, clearing quote ``+X``, rounding ``cost - X``,
  clearing base ``-qty``, available base ``qty - fee``, fees base ``fee``;
- the seller's shard: clearing quote ``-X``, available quote ``gross - fee``, fees quote
  ``fee``, rounding ``X - gross``, held base ``-qty``, clearing base ``+qty``;

with ``X = floor(price * qty * 10**quote_scale / D)``, which both shards compute alike.
Each half sums to zero per asset; the clearing postings of the two halves cancel, and
together the halves post exactly what one unsharded settlement posts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from crossbook.domain.commands import AmendOrder, CancelAll, CancelOrder, PlaceOrder
from crossbook.domain.enums import OrderType, RejectReason, Side
from crossbook.domain.events import (
    AmendRejected,
    BookLevelChanged,
    CancelRejected,
    Event,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
)
from crossbook.domain.ledger import (
    ADJUSTMENTS,
    FEES,
    ROUNDING,
    AdjustBalance,
    CancelWithdrawal,
    CommandRejected,
    Deposit,
    Posting,
    RequestWithdrawal,
    SetFeeTier,
    SettleWithdrawal,
    TransactionPosted,
    clearing,
    external,
)
from crossbook.domain.markets import Asset, Market
from crossbook.domain.sharding import check_shard, global_seq, shard_of

MILLION = 1_000_000
BUY = Side.BUY
MARKET_TYPES = (OrderType.MARKET, OrderType.STOP_MARKET)

EngineCommand = PlaceOrder | CancelOrder | CancelAll | AmendOrder
AccountCommand = (
    Deposit | RequestWithdrawal | SettleWithdrawal | CancelWithdrawal | AdjustBalance | SetFeeTier
)

_USER_COMMANDS = (Deposit, RequestWithdrawal, AdjustBalance, SetFeeTier)
_BY_WITHDRAWAL_ID = (SettleWithdrawal, CancelWithdrawal)


class FeeRate(msgspec.Struct, frozen=True):
    """Maker and taker fees in parts per million of the amount received."""

    maker_ppm: int
    taker_ppm: int

    def __post_init__(self) -> None:
        if not (0 <= self.maker_ppm < MILLION and 0 <= self.taker_ppm < MILLION):
            raise ValueError("fee rates must be in [0, 1_000_000) ppm")


class FeeSchedule(msgspec.Struct, frozen=True):
    """Fee tiers (``""`` is the default tier) and per-market overrides of them."""

    tiers: dict[str, FeeRate] = msgspec.field(
        default_factory=lambda: {"": FeeRate(maker_ppm=1000, taker_ppm=1000)}
    )
    markets: dict[str, dict[str, FeeRate]] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if "" not in self.tiers:
            raise ValueError("the fee schedule needs a default tier ''")

    def rate(self, market: str, tier: str) -> FeeRate:
        by_market = self.markets.get(market)
        if by_market is not None:
            rate = by_market.get(tier) or by_market.get("")
            if rate is not None:
                return rate
        return self.tiers.get(tier) or self.tiers[""]


@dataclass(slots=True)
class OrderHold:
    """What accounts knows of one open order. ``held`` is this order's part of the
    owner's ``held`` balance; ``paid_scaled`` is ``S`` (see module doc)."""

    market: str
    owner: int
    client_order_id: str
    side: Side
    asset: str  # what is held: quote for buys, base for sells
    price: int  # limit price; 0 for market orders
    quote_sized: bool  # a market buy holding a quote budget: released when it ends
    leaves: int  # base quantity still open (quote-sized: unused)
    held: int
    maker_ppm: int
    taker_ppm: int
    paid_scaled: int = 0
    filled: int = 0
    gross_maker: int = 0
    gross_taker: int = 0

    def to_row(self) -> list[Any]:
        return [
            self.market, self.owner, self.client_order_id, self.side, self.asset, self.price,
            self.quote_sized, self.leaves, self.held, self.maker_ppm, self.taker_ppm,
            self.paid_scaled, self.filled, self.gross_maker, self.gross_taker,
        ]  # fmt: skip


@dataclass(slots=True)
class WithdrawalHold:
    user: int
    asset: str
    amount: int
    fee: int
    network: str
    address: str


@dataclass
class Outcome:
    """What one command did: events to publish, and a command for the engine, if any."""

    events: list[Any] = field(default_factory=list)
    forward: EngineCommand | None = None


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class Accounts:
    """Balances and holds of all users, driven by one ordered input stream.

    Inputs: account commands (:meth:`execute`), order commands before they reach an
    engine (:meth:`execute`, which returns the command to forward), and the engines'
    events (:meth:`apply_engine_events`).
    """

    def __init__(
        self,
        assets: Iterable[Asset],
        markets: Iterable[Market],
        fees: FeeSchedule | None = None,
        *,
        shard: int = 0,
        shards: int = 1,
    ) -> None:
        check_shard(shard, shards)
        self.shard = shard
        self.shards = shards
        self.assets = {a.code: a for a in assets}
        self.markets = {m.symbol: m for m in markets}
        for m in self.markets.values():
            if m.base not in self.assets or m.quote not in self.assets:
                raise ValueError(f"market {m.symbol} trades an unknown asset")
        self.fees = fees or FeeSchedule()
        self.balances: dict[tuple[str, str], int] = {}
        self.orders: dict[tuple[str, int], OrderHold] = {}
        self.client_ids: dict[tuple[str, int, str], int] = {}
        self.withdrawals: dict[str, WithdrawalHold] = {}
        self.closed_withdrawals: set[str] = set()
        self.deposits: set[str] = set()
        self.tiers: dict[int, str] = {}
        self.last_seq = 0
        self.tx_seq = 0
        self._names: dict[int, tuple[str, str]] = {}
        self._rates: dict[tuple[str, str], FeeRate] = {}
        self._scales = {
            m.symbol: (m.notional_divisor, 10**m.quote_scale) for m in self.markets.values()
        }
        self._handlers: dict[type, Any] = {
            PlaceOrder: self._place,
            CancelOrder: self._forward,
            CancelAll: self._forward,
            AmendOrder: self._amend,
            Deposit: self._deposit,
            RequestWithdrawal: self._request_withdrawal,
            SettleWithdrawal: self._settle_withdrawal,
            CancelWithdrawal: self._cancel_withdrawal,
            AdjustBalance: self._adjust,
            SetFeeTier: self._set_fee_tier,
        }

    # ---------------------------------------------------------------- ledger

    def names(self, user: int) -> tuple[str, str]:
        """(available, held) ledger account names of a user."""
        pair = self._names.get(user)
        if pair is None:
            pair = self._names[user] = (f"user:{user}:available", f"user:{user}:held")
        return pair

    def available(self, user: int, asset: str) -> int:
        return self.balances.get((self.names(user)[0], asset), 0)

    def held(self, user: int, asset: str) -> int:
        return self.balances.get((self.names(user)[1], asset), 0)

    def _post(
        self, seq: int, ts: int, type_: str, ref: str, postings: list[Posting], out: list[Any]
    ) -> None:
        balances = self.balances
        for p in postings:
            key = (p.account, p.asset)
            balances[key] = balances.get(key, 0) + p.amount
        self.tx_seq += 1
        tx_id = global_seq(self.tx_seq, self.shard, self.shards)
        out.append(TransactionPosted(seq, ts, tx_id, type_, ref, tuple(postings)))

    def _move(
        self,
        seq: int,
        ts: int,
        type_: str,
        ref: str,
        asset: str,
        src: str,
        dst: str,
        amount: int,
        out: list[Any],
    ) -> None:
        if amount:
            self._post(
                seq,
                ts,
                type_,
                ref,
                [Posting(src, asset, -amount), Posting(dst, asset, amount)],
                out,
            )

    # -------------------------------------------------------------- commands

    def execute(self, command: EngineCommand | AccountCommand) -> Outcome:
        """Apply one input; a redelivered ``seq`` (``<= last_seq``) does nothing."""
        if command.seq <= self.last_seq:
            return Outcome()
        self.last_seq = command.seq
        shards = self.shards
        if shards == 1:
            result: Outcome = self._handlers[type(command)](command)
            return result
        # a withdrawal is settled or cancelled by its id, where it is held
        if type(command) not in _BY_WITHDRAWAL_ID:
            user = command.user if type(command) in _USER_COMMANDS else command.owner  # type: ignore[union-attr]
            if shard_of(user, shards) != self.shard:
                return self._wrong_shard(command)
        result = self._handlers[type(command)](command)
        if result.forward is not None:
            result.forward = msgspec.structs.replace(
                result.forward, seq=global_seq(command.seq, self.shard, shards)
            )
        return result

    def _wrong_shard(self, c: EngineCommand | AccountCommand) -> Outcome:
        """Refuse a command about a user of another shard (the router sent it astray)."""
        reason = RejectReason.WRONG_SHARD
        if isinstance(c, PlaceOrder):
            return self._reject_order(c, self._order_id(c), reason)
        if isinstance(c, CancelOrder):
            event: Any = CancelRejected(
                c.seq, c.ts, c.market, c.order_id, c.owner, c.client_order_id, reason
            )
        elif isinstance(c, CancelAll):
            event = CancelRejected(c.seq, c.ts, c.market, 0, c.owner, "", reason)
        elif isinstance(c, AmendOrder):
            event = AmendRejected(
                c.seq, c.ts, c.market, c.order_id, c.owner, c.client_order_id, reason
            )
        else:
            return self._reject(c, f"user:{c.user}", reason.value)  # type: ignore[union-attr]
        return Outcome([event])

    def _order_id(self, c: PlaceOrder) -> int:
        """A new order's id: the one given, else the global seq of its command."""
        return c.order_id or global_seq(c.seq, self.shard, self.shards)

    def _forward(self, c: CancelOrder | CancelAll) -> Outcome:
        return Outcome(forward=c)

    def _requirement(self, h: OrderHold, market: Market, price: int, leaves: int) -> int:
        """What an order of ``leaves`` at ``price`` can still spend (see module doc)."""
        if h.side is not BUY:
            return leaves
        d, unit = self._scales[market.symbol]
        paid = h.paid_scaled
        return _ceil_div(paid + price * leaves * unit, d) - _ceil_div(paid, d)

    def _rate(self, market: str, owner: int) -> FeeRate:
        key = (market, self.tiers.get(owner, ""))
        rate = self._rates.get(key)
        if rate is None:
            rate = self._rates[key] = self.fees.rate(*key)
        return rate

    def _reject_order(self, c: PlaceOrder, oid: int, reason: RejectReason) -> Outcome:
        return Outcome(
            [OrderRejected(c.seq, c.ts, c.market, oid, c.owner, c.client_order_id, reason)]
        )

    def _place(self, c: PlaceOrder) -> Outcome:
        symbol = c.market
        market = self.markets.get(symbol)
        if market is None:
            return Outcome(forward=c)  # the engine rejects it; nothing to hold
        oid = self._order_id(c)
        key = (symbol, oid)
        if key in self.orders:
            return self._reject_order(c, oid, RejectReason.DUPLICATE_ORDER_ID)
        qty, quote, price = c.quantity, c.quote_quantity, c.price
        if qty < 0 or quote < 0 or price < 0:
            return Outcome(forward=c)  # malformed: the engine rejects it with its reason
        is_market = c.type in MARKET_TYPES
        buy = c.side is BUY
        asset = market.quote if buy else market.base
        avail_name, held_name = self.names(c.owner)
        forward: PlaceOrder = c
        if is_market and buy and quote == 0 and qty > 0:
            # a market buy by base quantity: its price is unknown, so it may spend up to
            # everything available; it ends within this command and the rest comes back
            if c.type is not OrderType.MARKET:
                return self._reject_order(c, oid, RejectReason.QUOTE_QUANTITY_REQUIRED)
            quote = self.balances.get((avail_name, asset), 0)
            if quote <= 0:
                return self._reject_order(c, oid, RejectReason.INSUFFICIENT_BALANCE)
            forward = msgspec.structs.replace(c, quote_quantity=quote)
        elif is_market and not buy and quote > 0 and qty == 0:
            # a market sell for a quote amount: it may sell up to all that is available
            if c.type is not OrderType.MARKET:
                return self._reject_order(c, oid, RejectReason.QUANTITY_REQUIRED)
            qty = min(self.balances.get((avail_name, asset), 0), market.max_quantity)
            qty -= qty % market.step_size
            if qty < market.min_quantity:
                return self._reject_order(c, oid, RejectReason.INSUFFICIENT_BALANCE)
            forward = msgspec.structs.replace(c, quantity=qty)
        # a market buy holds a quote budget until it ends, rather than trued up per fill
        quote_sized = is_market and buy and quote > 0
        if quote_sized:
            need = quote
        elif buy:
            d, unit = self._scales[symbol]
            need = _ceil_div(price * qty * unit, d)
        else:
            need = qty
        if need > self.balances.get((avail_name, asset), 0):
            return self._reject_order(c, oid, RejectReason.INSUFFICIENT_BALANCE)
        rate = self._rate(symbol, c.owner)
        self.orders[key] = OrderHold(
            symbol, c.owner, c.client_order_id, c.side, asset, 0 if is_market else price,
            quote_sized, qty, need, rate.maker_ppm, rate.taker_ppm,
        )  # fmt: skip
        if c.client_order_id:
            self.client_ids[(symbol, c.owner, c.client_order_id)] = oid
        out: list[Any] = []
        self._move(
            c.seq, c.ts, "hold", f"order:{symbol}:{oid}", asset, avail_name, held_name, need, out
        )
        return Outcome(out, forward)

    def _amend(self, c: AmendOrder) -> Outcome:
        """Hold more first if the amended order could spend more; settle on the result."""
        market = self.markets.get(c.market)
        oid = c.order_id or self.client_ids.get((c.market, c.owner, c.client_order_id), 0)
        h = self.orders.get((c.market, oid))
        if market is None or h is None or h.owner != c.owner or h.quote_sized:
            return Outcome(forward=c)
        if c.price < 0 or c.quantity < 0:
            return Outcome(forward=c)
        price = c.price or h.price
        leaves = max(0, c.quantity - h.filled) if c.quantity else h.leaves
        need = self._requirement(h, market, price, leaves) - h.held
        if need <= 0:
            return Outcome(forward=c)
        avail_name, held_name = self.names(c.owner)
        if need > self.balances.get((avail_name, h.asset), 0):
            return Outcome(
                [
                    AmendRejected(
                        c.seq, c.ts, c.market, c.order_id, c.owner, c.client_order_id,
                        RejectReason.INSUFFICIENT_BALANCE,
                    )
                ]
            )  # fmt: skip
        out: list[Any] = []
        ref = f"order:{c.market}:{oid}"
        self._move(c.seq, c.ts, "hold", ref, h.asset, avail_name, held_name, need, out)
        h.held += need
        return Outcome(out, c)

    # ---------------------------------------------------------- engine events

    def apply_engine_events(self, events: Iterable[Event]) -> list[Any]:
        """Settle fills and release holds for one command's engine events.

        Returns the engine events interleaved with the transactions they caused. With
        several shards, only the events about this shard's users (a fill: about either
        side) are kept; book levels are left to market data."""
        out: list[Any] = []
        shards = self.shards
        for e in events:
            t = type(e)
            if shards > 1 and not self.concerns(e):
                continue
            out.append(e)
            if t is OrderFilled:
                self._settle(e, out)  # type: ignore[arg-type]
            elif t is OrderCancelled or t is OrderExpired or t is OrderRejected:
                self._close(e.market, e.order_id, e.seq, e.ts, out)  # type: ignore[union-attr]
            elif t is OrderAmended:
                self._amended(e, out)  # type: ignore[arg-type]
            elif t is AmendRejected:
                self._true_up(e, out)  # type: ignore[arg-type]
        return out

    def concerns(self, e: Event) -> bool:
        """Whether an engine event is about one of this shard's users."""
        shards, shard = self.shards, self.shard
        if shards == 1:
            return True
        t = type(e)
        if t is OrderFilled:
            f: OrderFilled = e  # type: ignore[assignment]
            return f.taker_owner % shards == shard or f.maker_owner % shards == shard
        if t is BookLevelChanged:
            return False
        return e.owner % shards == shard  # type: ignore[union-attr]

    def _close(self, market: str, order_id: int, seq: int, ts: int, out: list[Any]) -> None:
        h = self.orders.pop((market, order_id), None)
        if h is None:
            return
        if h.client_order_id:
            self.client_ids.pop((market, h.owner, h.client_order_id), None)
        avail_name, held_name = self.names(h.owner)
        ref = f"order:{market}:{order_id}"
        self._move(seq, ts, "release", ref, h.asset, held_name, avail_name, h.held, out)

    def _release_excess(
        self, h: OrderHold, market: Market, order_id: int, seq: int, ts: int, out: list[Any]
    ) -> None:
        excess = h.held - self._requirement(h, market, h.price, h.leaves)
        if excess > 0:
            avail_name, held_name = self.names(h.owner)
            ref = f"order:{h.market}:{order_id}"
            self._move(seq, ts, "release", ref, h.asset, held_name, avail_name, excess, out)
            h.held -= excess

    def _amended(self, e: OrderAmended, out: list[Any]) -> None:
        h = self.orders.get((e.market, e.order_id))
        if h is None:
            return
        h.price = e.price
        h.leaves = e.leaves
        self._release_excess(h, self.markets[e.market], e.order_id, e.seq, e.ts, out)

    def _true_up(self, e: AmendRejected, out: list[Any]) -> None:
        oid = e.order_id or self.client_ids.get((e.market, e.owner, e.client_order_id), 0)
        h = self.orders.get((e.market, oid))
        if h is not None and not h.quote_sized:
            self._release_excess(h, self.markets[e.market], oid, e.seq, e.ts, out)

    def _settle(self, e: OrderFilled, out: list[Any]) -> None:
        """Settle a fill: both sides, or (shards) this shard's side against clearing."""
        market = self.markets[e.market]
        orders = self.orders
        taker = orders.get((e.market, e.taker_order_id))
        maker = orders.get((e.market, e.maker_order_id))
        if e.taker_side is BUY:
            buyer, seller, buyer_is_taker = taker, maker, True
        else:
            buyer, seller, buyer_is_taker = maker, taker, False
        qty = e.quantity
        d, unit = self._scales[e.market]
        delta = e.price * qty * unit
        base, quote = market.base, market.quote
        cost = gross = fee_base = fee_quote = 0
        if buyer is not None:
            cost = _ceil_div(buyer.paid_scaled + delta, d) - _ceil_div(buyer.paid_scaled, d)
            buyer.paid_scaled += delta
            fee_base = self._fee(buyer, qty, buyer_is_taker)
        if seller is not None:
            gross = (seller.paid_scaled + delta) // d - seller.paid_scaled // d
            seller.paid_scaled += delta
            fee_quote = self._fee(seller, gross, not buyer_is_taker)
        if buyer is not None and seller is not None:
            b_avail, b_held = self.names(buyer.owner)
            s_avail, s_held = self.names(seller.owner)
            postings = [
                Posting(b_held, quote, -cost),
                Posting(s_avail, quote, gross - fee_quote),
                Posting(FEES, quote, fee_quote),
                Posting(ROUNDING, quote, cost - gross),
                Posting(s_held, base, -qty),
                Posting(b_avail, base, qty - fee_base),
                Posting(FEES, base, fee_base),
            ]
        elif buyer is not None:  # the seller's shard posts the other half
            b_avail, b_held = self.names(buyer.owner)
            cleared = delta // d
            account = clearing(e.market)
            postings = [
                Posting(b_held, quote, -cost),
                Posting(account, quote, cleared),
                Posting(ROUNDING, quote, cost - cleared),
                Posting(account, base, -qty),
                Posting(b_avail, base, qty - fee_base),
                Posting(FEES, base, fee_base),
            ]
        elif seller is not None:  # the buyer's shard posts the other half
            s_avail, s_held = self.names(seller.owner)
            cleared = delta // d
            account = clearing(e.market)
            postings = [
                Posting(account, quote, -cleared),
                Posting(s_avail, quote, gross - fee_quote),
                Posting(FEES, quote, fee_quote),
                Posting(ROUNDING, quote, cleared - gross),
                Posting(s_held, base, -qty),
                Posting(account, base, qty),
            ]
        else:
            raise ValueError(f"a fill of no order held here: {e}")
        self._post(
            e.seq, e.ts, "trade", f"trade:{e.market}:{e.trade_id}",
            [p for p in postings if p.amount], out,
        )  # fmt: skip
        if buyer is not None:
            buyer.held -= cost
            buyer.filled += qty
            if not buyer.quote_sized:
                buyer.leaves -= qty
        if seller is not None:
            seller.held -= qty
            seller.filled += qty
            seller.leaves -= qty
        for order_id, leaves in (
            (e.taker_order_id, e.taker_leaves),
            (e.maker_order_id, e.maker_leaves),
        ):
            h = orders.get((e.market, order_id))
            if h is None:
                continue
            if leaves == 0:
                self._close(e.market, order_id, e.seq, e.ts, out)
            elif h.side is BUY and not h.quote_sized:
                self._release_excess(h, market, order_id, e.seq, e.ts, out)

    def _fee(self, h: OrderHold, received: int, as_taker: bool) -> int:
        """Fee on ``received`` more units, on running totals per role (rounded up)."""
        if as_taker:
            before = h.gross_taker
            h.gross_taker = before + received
            rate = h.taker_ppm
        else:
            before = h.gross_maker
            h.gross_maker = before + received
            rate = h.maker_ppm
        return _ceil_div((before + received) * rate, MILLION) - _ceil_div(before * rate, MILLION)

    # -------------------------------------------------------- account commands

    def _reject(self, c: Any, ref: str, reason: str) -> Outcome:
        return Outcome([CommandRejected(c.seq, c.ts, ref, reason)])

    def _deposit(self, c: Deposit) -> Outcome:
        ref = f"deposit:{c.deposit_id}"
        if c.deposit_id in self.deposits:
            return self._reject(c, ref, "duplicate_deposit")
        if c.asset not in self.assets:
            return self._reject(c, ref, "unknown_asset")
        if c.amount <= 0:
            return self._reject(c, ref, "invalid_amount")
        if not c.network:
            return self._reject(c, ref, "invalid_network")
        self.deposits.add(c.deposit_id)
        out: list[Any] = []
        self._move(
            c.seq, c.ts, "deposit", ref, c.asset, external(c.network), self.names(c.user)[0],
            c.amount, out,
        )  # fmt: skip
        return Outcome(out)

    def _request_withdrawal(self, c: RequestWithdrawal) -> Outcome:
        ref = f"withdrawal:{c.withdrawal_id}"
        wid = c.withdrawal_id
        if not wid or wid in self.withdrawals or wid in self.closed_withdrawals:
            return self._reject(c, ref, "duplicate_withdrawal")
        if c.asset not in self.assets:
            return self._reject(c, ref, "unknown_asset")
        if c.amount <= 0 or c.fee < 0:
            return self._reject(c, ref, "invalid_amount")
        if not c.network or not c.address:
            return self._reject(c, ref, "invalid_destination")
        total = c.amount + c.fee
        avail_name, held_name = self.names(c.user)
        if total > self.balances.get((avail_name, c.asset), 0):
            return self._reject(c, ref, RejectReason.INSUFFICIENT_BALANCE.value)
        out: list[Any] = []
        self._move(c.seq, c.ts, "withdrawal_hold", ref, c.asset, avail_name, held_name, total, out)
        self.withdrawals[wid] = WithdrawalHold(
            c.user, c.asset, c.amount, c.fee, c.network, c.address
        )
        return Outcome(out)

    def _settle_withdrawal(self, c: SettleWithdrawal) -> Outcome:
        ref = f"withdrawal:{c.withdrawal_id}"
        w = self.withdrawals.pop(c.withdrawal_id, None)
        if w is None:
            return self._reject(c, ref, "unknown_withdrawal")
        self.closed_withdrawals.add(c.withdrawal_id)
        held_name = self.names(w.user)[1]
        postings = [
            Posting(held_name, w.asset, -(w.amount + w.fee)),
            Posting(external(w.network), w.asset, w.amount),
            Posting(FEES, w.asset, w.fee),
        ]
        out: list[Any] = []
        self._post(c.seq, c.ts, "withdrawal", ref, [p for p in postings if p.amount], out)
        return Outcome(out)

    def _cancel_withdrawal(self, c: CancelWithdrawal) -> Outcome:
        ref = f"withdrawal:{c.withdrawal_id}"
        w = self.withdrawals.pop(c.withdrawal_id, None)
        if w is None:
            return self._reject(c, ref, "unknown_withdrawal")
        self.closed_withdrawals.add(c.withdrawal_id)
        avail_name, held_name = self.names(w.user)
        out: list[Any] = []
        self._move(
            c.seq, c.ts, "withdrawal_release", ref, w.asset, held_name, avail_name,
            w.amount + w.fee, out,
        )  # fmt: skip
        return Outcome(out)

    def _adjust(self, c: AdjustBalance) -> Outcome:
        ref = f"adjustment:{c.seq}"
        if c.asset not in self.assets:
            return self._reject(c, ref, "unknown_asset")
        if c.amount == 0:
            return self._reject(c, ref, "invalid_amount")
        avail_name = self.names(c.user)[0]
        if c.amount < 0 and -c.amount > self.balances.get((avail_name, c.asset), 0):
            return self._reject(c, ref, RejectReason.INSUFFICIENT_BALANCE.value)
        out: list[Any] = []
        self._move(c.seq, c.ts, "adjustment", ref, c.asset, ADJUSTMENTS, avail_name, c.amount, out)
        return Outcome(out)

    def _set_fee_tier(self, c: SetFeeTier) -> Outcome:
        known = c.tier in self.fees.tiers or any(
            c.tier in tiers for tiers in self.fees.markets.values()
        )
        if not known:
            return self._reject(c, f"user:{c.user}", "unknown_fee_tier")
        if c.tier:
            self.tiers[c.user] = c.tier
        else:
            self.tiers.pop(c.user, None)
        return Outcome()

    # -------------------------------------------------------------- snapshot

    def to_snapshot(self) -> dict[str, Any]:
        """Canonical state (sorted), for snapshots and the state hash."""
        return {
            "last_seq": self.last_seq,
            "tx_seq": self.tx_seq,
            "balances": sorted([a, s, v] for (a, s), v in self.balances.items()),
            "orders": sorted([m, oid, *h.to_row()] for (m, oid), h in self.orders.items()),
            "withdrawals": sorted(
                [wid, w.user, w.asset, w.amount, w.fee, w.network, w.address]
                for wid, w in self.withdrawals.items()
            ),
            "closed_withdrawals": sorted(self.closed_withdrawals),
            "deposits": sorted(self.deposits),
            "tiers": sorted([u, t] for u, t in self.tiers.items()),
        }

    def load_snapshot(self, data: dict[str, Any]) -> None:
        self.last_seq = data["last_seq"]
        self.tx_seq = data["tx_seq"]
        self.balances = {(a, s): v for a, s, v in data["balances"]}
        self.orders = {}
        self.client_ids = {}
        for row in data["orders"]:
            market, oid = row[0], row[1]
            fields = row[2:]
            h = OrderHold(
                fields[0], fields[1], fields[2], Side(fields[3]), fields[4], fields[5],
                fields[6], fields[7], fields[8], fields[9], fields[10], fields[11],
                fields[12], fields[13], fields[14],
            )  # fmt: skip
            self.orders[(market, oid)] = h
            if h.client_order_id:
                self.client_ids[(market, h.owner, h.client_order_id)] = oid
        self.withdrawals = {
            wid: WithdrawalHold(u, a, amt, fee, n, addr)
            for wid, u, a, amt, fee, n, addr in data["withdrawals"]
        }
        self.closed_withdrawals = set(data["closed_withdrawals"])
        self.deposits = set(data["deposits"])
        self.tiers = {u: t for u, t in data["tiers"]}
