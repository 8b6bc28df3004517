"""Accounts split over shards, with one engine per market fed by all of them.

Randomized runs deliver each shard's forwards to the engines and the engines' events
to every shard in random interleavings, with redeliveries on both legs: after every
step each shard's ledger balances and nothing of a user is negative, and each
asset's total over all shards (clearing included) is what came in minus what went
out; once everything is delivered, each shard's holds equal its users' open orders
and the clearing accounts sum to zero. Delivered at once, the shards together derive
exactly the fills and balances of one unsharded exchange.
"""

from __future__ import annotations

from collections import defaultdict, deque
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from crossbook.accounts.checks import balance_errors, sharded_ledger_errors, transaction_errors
from crossbook.domain.commands import PlaceOrder
from crossbook.domain.enums import RejectReason, Side
from crossbook.domain.events import OrderFilled
from crossbook.domain.ledger import (
    CancelWithdrawal,
    CommandRejected,
    Deposit,
    RequestWithdrawal,
    SettleWithdrawal,
    TransactionPosted,
)
from crossbook.domain.routing import EngineEventsReceived
from crossbook.engine.sources import MultiSourceEngine
from crossbook.exchange.core import ExchangeCore
from crossbook.exchange.split import AccountsMachine
from tests.accounts.test_exchange_properties import CONFIG, MARKETS, USERS, Totals, build, step


class ShardedExchange:
    """``shards`` accounts machines and one engine per market, joined by queues we
    drive by hand: per shard and market the forwards, per market the engine's log
    (what it ran, in order), and per shard and market how far the shard has read it."""

    def __init__(self, shards: int) -> None:
        self.config = msgspec.structs.replace(CONFIG, accounts_shards=shards)
        self.shards = [AccountsMachine(self.config, k) for k in range(shards)]
        self.engines = {s: MultiSourceEngine([m], shards) for s, m in MARKETS.items()}
        self.forwards: dict[tuple[int, str], deque[Any]] = defaultdict(deque)
        self.last_forward: dict[tuple[int, str], Any] = {}
        self.engine_logs: dict[str, list[tuple[int, list[Any]]]] = {s: [] for s in MARKETS}
        self.read: dict[tuple[int, str], int] = defaultdict(int)
        self.seqs = [0] * shards
        self.logs: list[list[Any]] = [[] for _ in range(shards)]  # each shard's inputs

    @property
    def view(self) -> Any:
        """What ``build`` reads to pick an order: every book."""
        books = {s: e.engine.books[s] for s, e in self.engines.items()}
        return SimpleNamespace(engine=SimpleNamespace(books=books))

    @property
    def accounts(self) -> list[Any]:
        return [m.accounts for m in self.shards]

    def shard_for(self, spec: dict[str, Any]) -> int:
        user = spec.get("owner", spec.get("user"))
        if user is not None:
            return int(user) % len(self.shards)
        for k, machine in enumerate(self.shards):  # a withdrawal: where it is held
            if spec["withdrawal_id"] in machine.accounts.withdrawals:
                return k
        return 0

    def submit_to(self, k: int, command: Any) -> list[Any]:
        self.logs[k].append(command)
        events, forward = self.shards[k].route(command)
        if forward is not None:
            self.forwards[(k, forward.market)].append(forward)
        return events

    def submit(self, spec: dict[str, Any]) -> tuple[int, Any, list[Any]]:
        k = self.shard_for(spec)
        self.seqs[k] += 1
        command = build(self.view, spec, self.seqs[k])  # type: ignore[arg-type]
        return k, command, self.submit_to(k, command)

    def run_engine(self, k: int, market: str, redeliver: bool = False) -> bool:
        key = (k, market)
        if redeliver:
            if key not in self.last_forward:
                return False
            assert self.engines[market].run(self.last_forward[key]) is None, "ran twice"
            return True
        queue = self.forwards[key]
        if not queue:
            return False
        command = self.last_forward[key] = queue.popleft()
        events = self.engines[market].run(command)
        assert events is not None
        self.engine_logs[market].append((self.engines[market].position, events))
        return True

    def deliver(self, k: int, market: str, redeliver: bool = False) -> list[Any] | None:
        """The next engine record of ``market`` into shard ``k``'s log (or, redelivered,
        the last one again: it must change nothing)."""
        key = (k, market)
        index = self.read[key] - 1 if redeliver else self.read[key]
        if not 0 <= index < len(self.engine_logs[market]):
            return None
        position, events = self.engine_logs[market][index]
        self.read[key] = index + 1
        self.seqs[k] += 1
        received = EngineEventsReceived(
            seq=self.seqs[k], ts=self.seqs[k], market=market, source_seq=position, events=events
        )
        out = self.submit_to(k, received)
        if redeliver:
            assert out == [], "a shard settled the same engine record twice"
        return out

    def drain(self) -> list[Any]:
        out: list[Any] = []
        while True:
            moved = False
            for market in sorted(MARKETS):
                for k in range(len(self.shards)):
                    while self.run_engine(k, market):
                        moved = True
                for k in range(len(self.shards)):
                    while (events := self.deliver(k, market)) is not None:
                        out += events
                        moved = True
            if not moved:
                return out


def fund(exchange: ShardedExchange, totals: Totals) -> None:
    for user in USERS:
        for asset, amount in (("BAS", 50_000), ("ALT", 500_000), ("QUO", 5_000_000)):
            spec = {"cls": Deposit, "user": user, "asset": asset, "amount": amount,
                    "network": "testnet", "deposit_id": f"seed-{user}-{asset}"}  # fmt: skip
            totals.apply(exchange.submit(spec)[2])


def exchange_wide_ids(spec: dict[str, Any], user: int) -> dict[str, Any]:
    """Deposit and withdrawal ids are unique exchange-wide (the wallet makes them):
    the strategy's small id space is made so by naming the user in them."""
    spec = dict(spec)
    if spec["cls"] in (Deposit, RequestWithdrawal):
        user = spec["user"]
    for key in ("deposit_id", "withdrawal_id"):
        if key in spec:
            spec[key] = f"{spec[key]}-u{user}"
    return spec


def step_errors(exchange: ShardedExchange, totals: Totals, events: list[Any]) -> list[str]:
    """What must hold at every step, also with forwards and engine records in flight."""
    errors = transaction_errors(events)
    merged: dict[tuple[str, str], int] = defaultdict(int)
    for k, acc in enumerate(exchange.accounts):
        for e in balance_errors(acc.balances):
            if not e.startswith("negative rounding"):  # a half alone may round down
                errors.append(f"shard {k}: {e}")
        for key, amount in acc.balances.items():
            merged[key] += amount
    total: dict[str, int] = defaultdict(int)
    for (account, asset), amount in merged.items():
        if not account.startswith("external:") and account != "adjustments":
            total[asset] += amount
    got = {a: v for a, v in total.items() if v}
    want = {a: v for a, v in totals.expected.items() if v}
    if got != want:
        errors.append(f"asset totals {got} != {want}")
    return errors


deliveries = st.lists(
    st.tuples(st.integers(0, 5), st.integers(0, 2), st.sampled_from(sorted(MARKETS))),
    max_size=5,
)


@pytest.mark.parametrize("shards", [2, 3])
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(
        st.tuples(step(), st.sampled_from(USERS), deliveries), min_size=20, max_size=120
    ),
    cut=st.integers(0, 10_000),
)
def test_sharded_ledger_invariants_hold_with_forwards_and_engine_records_in_flight(
    shards: int, steps: list[tuple[dict[str, Any], int, list[tuple[int, int, str]]]], cut: int
) -> None:
    exchange = ShardedExchange(shards)
    totals = Totals()
    fund(exchange, totals)
    snapshots: list[tuple[bytes, int]] = []
    for i, (spec, user, delivered) in enumerate(steps):
        k, command, events = exchange.submit(exchange_wide_ids(spec, user))
        for action, shard, market in delivered:
            shard %= shards
            if action <= 1:
                exchange.run_engine(shard, market, redeliver=action == 1)
            elif action <= 4:
                events += exchange.deliver(shard, market, redeliver=action == 4) or []
            else:
                events += exchange.drain()
        totals.apply(events)
        errors = step_errors(exchange, totals, events)
        assert not errors, f"after {command!r} on shard {k}:\n" + "\n".join(errors)
        if i == cut % len(steps):
            snapshots = [
                (m.snapshot(), len(exchange.logs[n])) for n, m in enumerate(exchange.shards)
            ]
    totals.apply(exchange.drain())
    halves = sum(
        1 for log in exchange.logs for c in log if type(c) is EngineEventsReceived
        for e in c.events if type(e) is OrderFilled
        and e.taker_owner % shards != e.maker_owner % shards
    )  # fmt: skip
    event(f"engine records of fills between shards: {min(halves, 5)}{'+' if halves >= 5 else ''}")
    books = [b for e in exchange.engines.values() for b in e.engine.books.values()]
    errors = sharded_ledger_errors(exchange.accounts, books)
    assert not errors, "once everything is delivered:\n" + "\n".join(errors)
    assert not step_errors(exchange, totals, [])

    # each shard's log replayed from its snapshot re-derives the same state
    for n, (data, length) in enumerate(snapshots):
        restored = AccountsMachine.restore(data)
        for command in exchange.logs[n][length:]:
            restored.execute(command)
        assert restored.state_hash() == exchange.shards[n].state_hash()
    for engine in exchange.engines.values():
        assert MultiSourceEngine.restore(engine.snapshot()).state_hash() == engine.state_hash()


def fills(events: list[Any]) -> list[tuple[Any, ...]]:
    return [
        (e.market, e.price, e.quantity, e.taker_side, e.taker_owner, e.maker_owner)
        for e in events
        if type(e) is OrderFilled
    ]


@pytest.mark.parametrize("shards", [2, 3])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.tuples(step(), st.sampled_from(USERS)), min_size=30, max_size=150))
def test_shards_delivered_at_once_equal_one_unsharded_exchange(
    shards: int, steps: list[tuple[dict[str, Any], int]]
) -> None:
    """Each command's forward runs at once and its engine record reaches every shard
    at once: the same fills as one ``ExchangeCore``, and summed over the shards the
    same balances, with every clearing account back at zero."""
    core = ExchangeCore(CONFIG)
    sharded = ShardedExchange(shards)
    seq = 0
    core_fills: list[tuple[Any, ...]] = []
    sharded_fills: list[tuple[Any, ...]] = []
    for user in USERS:
        for asset, amount in (("BAS", 50_000), ("ALT", 500_000), ("QUO", 5_000_000)):
            seq += 1
            spec = {"cls": Deposit, "user": user, "asset": asset, "amount": amount,
                    "network": "testnet", "deposit_id": f"seed-{user}-{asset}"}  # fmt: skip
            core.execute(build(core, spec, seq))
            sharded.submit(spec)
    for spec, user in steps:
        spec = exchange_wide_ids(spec, user)
        seq += 1
        core_fills += fills(core.execute(build(core, spec, seq)))
        sharded.submit(spec)
        for market in sorted(MARKETS):
            for k in range(shards):
                while sharded.run_engine(k, market):
                    pass
        market_events = [e for m in sorted(MARKETS) for _, es in sharded.engine_logs[m] for e in es]
        sharded_fills = fills(market_events)
        sharded.drain()
    by_market = sorted(core_fills, key=lambda f: f[0])  # stable: time order per market
    assert sharded_fills == by_market
    across = sum(1 for _, _, _, _, t, m in core_fills if t % shards != m % shards)
    event(f"fills between shards: {min(across, 5)}{'+' if across >= 5 else ''}")
    merged: dict[tuple[str, str], int] = defaultdict(int)
    for acc in sharded.accounts:
        for key, amount in acc.balances.items():
            merged[key] += amount
    assert {key: v for key, v in merged.items() if v} == {
        key: v for key, v in core.accounts.balances.items() if v
    }


def trade_between_shards() -> tuple[ShardedExchange, list[list[Any]]]:
    """User 2 (shard 0) sells 1.000 BAS at 100.00 QUO to user 1 (shard 1)."""
    exchange = ShardedExchange(2)
    totals = Totals()
    fund(exchange, totals)
    out: list[list[Any]] = [[], []]
    for owner, side in ((2, Side.SELL), (1, Side.BUY)):
        spec = {"cls": PlaceOrder, "market": "BASQUO", "owner": owner, "side": side,
                "price": 10_000, "quantity": 1_000}  # fmt: skip
        k, _, events = exchange.submit(spec)
        out[k] += events
        exchange.run_engine(k, "BASQUO")
    for k in range(2):
        while (events := exchange.deliver(k, "BASQUO")) is not None:
            out[k] += events
    return exchange, out


def test_a_trade_between_shards_is_settled_in_two_halves_against_clearing() -> None:
    exchange, out = trade_between_shards()
    halves = [[e for e in events if type(e) is TransactionPosted and e.type == "trade"]
              for events in out]  # fmt: skip
    assert [len(h) for h in halves] == [1, 1]
    seller_half, buyer_half = halves[0][0], halves[1][0]
    assert seller_half.ref == buyer_half.ref == "trade:BASQUO:1"
    assert seller_half.tx_id % 2 == 0 and buyer_half.tx_id % 2 == 1
    postings = {(p.account, p.asset): p.amount for p in seller_half.postings}
    assert postings[("user:2:held", "BAS")] == -1_000
    assert postings[("clearing:BASQUO", "BAS")] == 1_000
    assert postings[("clearing:BASQUO", "QUO")] == -10_000
    assert postings[("user:2:available", "QUO")] == 10_000 - 10  # maker fee 0.1 %
    postings = {(p.account, p.asset): p.amount for p in buyer_half.postings}
    assert postings[("user:1:held", "QUO")] == -10_000
    assert postings[("clearing:BASQUO", "QUO")] == 10_000
    assert postings[("clearing:BASQUO", "BAS")] == -1_000
    assert postings[("user:1:available", "BAS")] == 1_000 - 3  # taker fee 0.25 %, rounded up
    books = [b for e in exchange.engines.values() for b in e.engine.books.values()]
    assert sharded_ledger_errors(exchange.accounts, books) == []


def test_a_shard_keeps_only_the_engine_events_of_its_users() -> None:
    _, out = trade_between_shards()
    owners = [
        {getattr(e, "owner", None) for e in events if type(e).__name__.startswith("Order")} - {None}
        for events in out
    ]
    assert owners == [{2}, {1}]


def test_a_command_about_another_shards_user_is_refused_with_wrong_shard() -> None:
    config = msgspec.structs.replace(CONFIG, accounts_shards=2)
    machine = AccountsMachine(config, 0)
    events, forward = machine.route(
        Deposit(seq=1, ts=1, user=3, asset="QUO", amount=5, network="t", deposit_id="d")
    )
    assert forward is None
    assert events == [CommandRejected(1, 1, "user:3", "wrong_shard")]
    events, forward = machine.route(
        PlaceOrder(seq=2, ts=2, market="BASQUO", owner=1, side=Side.BUY, price=1, quantity=1)
    )
    assert forward is None
    assert [(type(e).__name__, e.reason) for e in events] == [
        ("OrderRejected", RejectReason.WRONG_SHARD)
    ]
    assert machine.accounts.balances == {}


def test_forwards_carry_global_seqs_that_are_the_order_ids() -> None:
    config = msgspec.structs.replace(CONFIG, accounts_shards=3)
    machine = AccountsMachine(config, 2)
    machine.route(Deposit(seq=1, ts=1, user=5, asset="QUO", amount=10**6, network="t",
                          deposit_id="d"))  # fmt: skip
    _, forward = machine.route(
        PlaceOrder(seq=2, ts=2, market="BASQUO", owner=5, side=Side.BUY, price=100, quantity=1)
    )
    assert forward is not None and forward.seq == 2 * 3 + 2
    assert ("BASQUO", 8) in machine.accounts.orders
    engine = MultiSourceEngine(MARKETS.values(), 3)
    accepted = engine.run(forward)
    assert accepted is not None and accepted[0].order_id == 8
    assert engine.run(forward) is None
    assert (engine.position, engine.applied) == (1, [0, 0, 8])
    # a withdrawal is settled where it is held, whoever routes it
    assert machine.route(SettleWithdrawal(seq=3, ts=3, withdrawal_id="w"))[0][0].reason == (
        "unknown_withdrawal"
    )
    assert machine.route(CancelWithdrawal(seq=4, ts=4, withdrawal_id="w"))[0][0].reason == (
        "unknown_withdrawal"
    )
