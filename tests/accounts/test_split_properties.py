"""The production layout's account machine, with engines apart (``exchange.split``).

Randomized runs deliver forwarded commands to the engines and the engines' events back
to the accounts in random interleavings, with redeliveries: after every step the
ledger balances, nothing is negative and each asset's total is what came in minus what
went out; once everything is delivered, holds equal what open orders can spend.
Delivering each command's events at once gives exactly the embedded pipeline's events.
"""

from __future__ import annotations

from collections import deque
from types import SimpleNamespace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossbook.accounts.checks import ledger_errors, transaction_errors
from crossbook.domain.commands import CancelOrder, PlaceOrder
from crossbook.domain.enums import Side
from crossbook.domain.ledger import Deposit
from crossbook.domain.routing import EngineEventsReceived
from crossbook.engine.matching import MatchingEngine
from crossbook.exchange.core import ExchangeCore
from crossbook.exchange.split import AccountsMachine
from tests.accounts.test_exchange_properties import (
    CONFIG,
    MARKETS,
    USERS,
    Totals,
    assets_total,
    build,
    step,
)


class SplitExchange:
    """Accounts and one engine per market, connected by queues we drive by hand."""

    def __init__(self) -> None:
        self.accounts = AccountsMachine(CONFIG)
        self.engines = {s: MatchingEngine([m]) for s, m in MARKETS.items()}
        self.to_engine: dict[str, deque[Any]] = {s: deque() for s in MARKETS}
        self.to_accounts: dict[str, deque[tuple[int, list[Any]]]] = {s: deque() for s in MARKETS}
        self.seq = 0
        self.ts = 0
        self.ran: dict[str, Any] = {}  # per market, the last command an engine ran
        self.returned: dict[str, tuple[int, list[Any]]] = {}  # and its last events returned
        self.log: list[Any] = []  # every accounts input, as its log would hold it
        self.events: list[Any] = []

    @property
    def view(self) -> Any:
        """What ``ledger_errors`` and ``build`` read: accounts and every book."""
        books = {s: e.books[s] for s, e in self.engines.items()}
        return SimpleNamespace(accounts=self.accounts.accounts, engine=SimpleNamespace(books=books))

    def stamp(self) -> tuple[int, int]:
        self.seq += 1
        self.ts += 7
        return self.seq, self.ts

    def submit(self, command: Any) -> list[Any]:
        self.log.append(command)
        events, forward = self.accounts.route(command)
        if forward is not None:
            self.to_engine[forward.market].append(forward)
        self.events += events
        return events

    def run_engine(self, market: str, redeliver: bool = False) -> bool:
        if redeliver:
            if market not in self.ran:
                return False
            events = self.engines[market].execute(self.ran[market])
            assert events == [], "an engine applied a redelivered command"
            return True
        queue = self.to_engine[market]
        if not queue:
            return False
        command = self.ran[market] = queue.popleft()
        self.to_accounts[market].append((command.seq, self.engines[market].execute(command)))
        return True

    def return_events(self, market: str, redeliver: bool = False) -> list[Any] | None:
        queue = self.to_accounts[market]
        if (redeliver and market not in self.returned) or (not redeliver and not queue):
            return None
        source_seq, events = self.returned[market] if redeliver else queue.popleft()
        self.returned[market] = (source_seq, events)
        seq, ts = self.stamp()
        received = EngineEventsReceived(
            seq=seq, ts=ts, market=market, source_seq=source_seq, events=events
        )
        out = self.submit(received)
        if redeliver:
            assert out == [], "the accounts settled the same engine command twice"
        return out

    def drain(self) -> list[Any]:
        out: list[Any] = []
        while any(self.to_engine.values()) or any(self.to_accounts.values()):
            for market in sorted(MARKETS):
                while self.run_engine(market):
                    pass
                while (events := self.return_events(market)) is not None:
                    out += events
        return out


def fund(exchange: SplitExchange, totals: Totals) -> None:
    for user in USERS:
        for asset, amount in (("BAS", 50_000), ("ALT", 500_000), ("QUO", 5_000_000)):
            seq, ts = exchange.stamp()
            totals.apply(
                exchange.submit(
                    Deposit(
                        seq=seq,
                        ts=ts,
                        user=user,
                        asset=asset,
                        amount=amount,
                        network="testnet",
                        deposit_id=f"seed-{user}-{asset}",
                    )
                )
            )


def balance_errors(exchange: SplitExchange, totals: Totals, events: list[Any]) -> list[str]:
    """The invariants that hold at every step, also with commands in flight."""
    errors = transaction_errors(events)
    view = exchange.view
    full = ledger_errors(view)
    # holds against open orders only hold once nothing is in flight
    errors += [e for e in full if " holds " not in e and "hold for" not in e and "no hold" not in e]
    want = {a: v for a, v in totals.expected.items() if v}
    if assets_total(view) != want:
        errors.append(f"asset totals {assets_total(view)} != {want}")
    return errors


deliveries = st.lists(st.tuples(st.integers(0, 5), st.sampled_from(sorted(MARKETS))), max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(step(), deliveries), min_size=20, max_size=120),
    st.integers(0, 10_000),
)
def test_ledger_invariants_hold_with_engine_events_in_flight(
    steps: list[tuple[dict[str, Any], list[tuple[int, str]]]], cut: int
) -> None:
    exchange = SplitExchange()
    totals = Totals()
    fund(exchange, totals)
    snapshot = None
    for i, (spec, delivered) in enumerate(steps):
        seq, _ = exchange.stamp()
        command = build(exchange.view, spec, seq)
        events = exchange.submit(command)
        for action, market in delivered:
            if action <= 1:
                exchange.run_engine(market, redeliver=action == 1)
            elif action <= 4:
                events += exchange.return_events(market, redeliver=action == 4) or []
            else:
                events += exchange.drain()
        totals.apply(events)
        errors = balance_errors(exchange, totals, events)
        assert not errors, f"after {command!r}:\n" + "\n".join(errors)
        if i == cut % len(steps):
            snapshot = (exchange.accounts.snapshot(), len(exchange.log))
    totals.apply(exchange.drain())
    errors = ledger_errors(exchange.view)
    assert not errors, "once everything is delivered:\n" + "\n".join(errors)
    assert assets_total(exchange.view) == {a: v for a, v in totals.expected.items() if v}

    # the accounts log replayed from a snapshot re-derives the same state
    assert snapshot is not None
    restored = AccountsMachine.restore(snapshot[0])
    for command in exchange.log[snapshot[1] :]:
        restored.execute(command)
    assert restored.state_hash() == exchange.accounts.state_hash()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step(), min_size=10, max_size=100))
def test_events_delivered_at_once_equal_the_embedded_pipeline(specs: list[dict[str, Any]]) -> None:
    """Commands at even seqs, each command's engine events at the odd seq after it:
    the split machine derives exactly what ``ExchangeCore`` does."""
    core = ExchangeCore(CONFIG)
    split = SplitExchange()
    seq = 0
    for user in USERS:
        seq += 2
        deposit = Deposit(seq=seq, ts=seq, user=user, asset="QUO", amount=10**7,
                          network="testnet", deposit_id=f"seed-{user}")  # fmt: skip
        assert core.execute(deposit) == split.submit(deposit)
    for spec in specs:
        seq += 2
        want = core.execute(build(core, spec, seq))
        got = split.submit(build(split.view, spec, seq))
        for market in MARKETS:
            if split.run_engine(market):
                ((source_seq, events),) = split.to_accounts[market]
                split.to_accounts[market].clear()
                got += split.submit(
                    EngineEventsReceived(
                        seq=seq + 1, ts=seq, market=market, source_seq=source_seq, events=events
                    )
                )
        assert got == want
    assert (
        split.accounts.accounts.to_snapshot()["balances"] == core.accounts.to_snapshot()["balances"]
    )


def test_order_for_a_market_no_engine_runs_is_refused_without_a_hold() -> None:
    machine = AccountsMachine(CONFIG)
    machine.route(Deposit(seq=1, ts=1, user=1, asset="QUO", amount=10**6, network="t",
                          deposit_id="d"))  # fmt: skip
    events, forward = machine.route(
        PlaceOrder(seq=2, ts=2, market="NOPE", owner=1, side=Side.BUY, price=100, quantity=1)
    )
    assert forward is None
    assert [type(e).__name__ for e in events] == ["OrderRejected"]
    events, forward = machine.route(CancelOrder(seq=3, ts=3, market="NOPE", owner=1, order_id=2))
    assert forward is None
    assert [type(e).__name__ for e in events] == ["CancelRejected"]
    assert machine.accounts.held(1, "QUO") == 0
