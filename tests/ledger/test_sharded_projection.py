"""Accounts shards projected into one database: each shard's log has its own writer
(``shard=k, shards=K``), and together they give the ledger of the whole exchange, each
trade once and each order's fills once, whatever the order and batching of the writes."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crossbook.domain.commands import PlaceOrder
from crossbook.domain.enums import Side
from crossbook.domain.events import OrderFilled
from crossbook.domain.ledger import TransactionPosted
from crossbook.ledger import OPEN_STATUSES, ProjectionWriter, make_engine
from crossbook.ledger.queries import (
    all_balances,
    balance_drift,
    list_trades,
    open_orders,
    progress,
    trade_fees,
    unbalanced_transactions,
)
from crossbook.ledger.schema import orders
from tests.accounts.test_exchange_properties import USERS, Totals, step
from tests.accounts.test_sharded_properties import (
    ShardedExchange,
    deliveries,
    exchange_wide_ids,
    fund,
)
from tests.ledger.scenario import Item
from tests.ledger.test_projection import dump

SHARDS = 2


class RecordingExchange(ShardedExchange):
    """The harness, keeping each shard's log as the writer gets it: ``(seq, events)``
    per input (redelivered engine records included, with no events)."""

    def __init__(self, shards: int) -> None:
        super().__init__(shards)
        self.items: list[list[Item]] = [[] for _ in range(shards)]

    def submit_to(self, k: int, command: Any) -> list[Any]:
        events = super().submit_to(k, command)
        self.items[k].append((command.seq, events))
        return events


def log_name(k: int) -> str:
    return f"accounts-{k}"


def writers(url: str, shards: int = SHARDS) -> list[ProjectionWriter]:
    ProjectionWriter(url, auto_migrate=True).close()
    return [ProjectionWriter(url, shard=k, shards=shards) for k in range(shards)]


def deliver_all(url: str, exchange: RecordingExchange, rng: random.Random) -> None:
    """At-least-once delivery of every shard's log by its own writer, the shards'
    batches interleaved at random: random batch sizes, some batches sent twice, some
    starting a little before where the previous one of that log ended."""
    ws = writers(url, len(exchange.items))
    try:
        position = [0] * len(ws)
        while pending := [k for k, items in enumerate(exchange.items) if position[k] < len(items)]:
            k = rng.choice(pending)
            items, i = exchange.items[k], position[k]
            start = max(0, i - rng.choice([0, 0, 0, 2, 10]))
            end = min(len(items), i + rng.randint(1, 40))
            for _ in range(rng.choice([1, 1, 2])):
                ws[k].write(log_name(k), items[start:end])
            position[k] = end
    finally:
        for w in ws:
            w.close()


def engine_fills(exchange: ShardedExchange) -> list[OrderFilled]:
    return [
        e
        for market in sorted(exchange.engine_logs)
        for _, events in exchange.engine_logs[market]
        for e in events
        if type(e) is OrderFilled
    ]


def check_against_shards(url: str, exchange: RecordingExchange) -> None:
    assert progress(url) == {log_name(k): items[-1][0] for k, items in enumerate(exchange.items)}
    assert unbalanced_transactions(url) == {}
    assert balance_drift(url) == {}

    # balances: the sum over the shards, clearing accounts back at zero
    merged: dict[tuple[str, str], int] = defaultdict(int)
    for acc in exchange.accounts:
        for key, amount in acc.balances.items():
            merged[key] += amount
    projected = all_balances(url)
    assert {k: v for k, v in projected.items() if v} == {k: v for k, v in merged.items() if v}
    assert all(v == 0 for (a, _), v in projected.items() if a.startswith("clearing:"))

    # each fill of the engines is one trade row
    fills = engine_fills(exchange)
    assert [
        (t.market, t.trade_id, t.price, t.quantity, t.taker_side, t.taker_order_id,
         t.taker_owner, t.maker_order_id, t.maker_owner)
        for t in list_trades(url)
    ] == sorted(
        (f.market, f.trade_id, f.price, f.quantity, f.taker_side.value, f.taker_order_id,
         f.taker_owner, f.maker_order_id, f.maker_owner)
        for f in fills
    )  # fmt: skip

    # each order's fills counted once, open orders as in the books
    filled: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for f in fills:
        for order_id in (f.taker_order_id, f.maker_order_id):
            filled[(f.market, order_id)][0] += f.quantity
            filled[(f.market, order_id)][1] += f.price * f.quantity
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            for row in conn.execute(orders.select()):
                key = (row.market, row.order_id)
                assert [row.filled, row.filled_quote_scaled] == filled.get(key, [0, 0]), key
                if row.status not in OPEN_STATUSES:
                    assert row.leaves == 0
            stored = set(conn.execute(select(orders.c.market, orders.c.order_id)))
    finally:
        engine.dispose()
    assert set(filled) <= stored
    assert {(o.market, o.order_id): o.leaves for o in open_orders(url)} == {
        (m, o.order_id): o.leaves
        for m, e in exchange.engines.items()
        for o in e.engine.books[m].open_orders()
    }

    # trade_fees: what both halves of each trade posted to fees
    expected: dict[str, dict[int, dict[str, int]]] = defaultdict(dict)
    for f in fills:
        expected[f.market][f.trade_id] = {}
    for items in exchange.items:
        for _, events in items:
            for e in events:
                if type(e) is TransactionPosted and e.type == "trade":
                    _, market, trade_id = e.ref.split(":")
                    per = expected[market][int(trade_id)]
                    for p in e.postings:
                        if p.account == "fees":
                            per[p.asset] = per.get(p.asset, 0) + p.amount
    for market, fees in expected.items():
        assert trade_fees(url, market, list(fees)) == {t: f for t, f in fees.items() if f}


def trade_between_shards() -> RecordingExchange:
    """User 2 (shard 0) rests a sell of 1.000 BAS at 100.00 QUO; user 1 (shard 1) buys
    0.400 of it: one fill, taker on shard 1, maker on shard 0."""
    exchange = RecordingExchange(SHARDS)
    fund(exchange, Totals())
    for owner, side, quantity in ((2, Side.SELL, 1_000), (1, Side.BUY, 400)):
        spec = {"cls": PlaceOrder, "market": "BASQUO", "owner": owner, "side": side,
                "price": 10_000, "quantity": quantity}  # fmt: skip
        exchange.submit(spec)
        exchange.drain()
    return exchange


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    steps=st.lists(
        st.tuples(step(), st.sampled_from(USERS), deliveries), min_size=30, max_size=100
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_shard_writers_together_project_the_whole_exchange_exactly_once(
    new_db: Callable[[], str],
    steps: list[tuple[dict[str, Any], int, list[tuple[int, int, str]]]],
    seed: int,
) -> None:
    exchange = trade_between_shards()  # then random commands and deliveries
    for spec, user, delivered in steps:
        exchange.submit(exchange_wide_ids(spec, user))
        for action, shard, market in delivered:
            shard %= SHARDS
            if action <= 1:
                exchange.run_engine(shard, market, redeliver=action == 1)
            elif action <= 4:
                exchange.deliver(shard, market, redeliver=action == 4)
            else:
                exchange.drain()
    exchange.drain()
    across = sum(1 for f in engine_fills(exchange) if f.taker_owner % 2 != f.maker_owner % 2)
    assert across >= 1
    event(f"fills between shards: {min(across, 5)}{'+' if across >= 5 else ''}")
    url = new_db()
    deliver_all(url, exchange, random.Random(seed))
    check_against_shards(url, exchange)

    # redelivery of every shard's whole log, batch by batch, changes nothing
    before = dump(url)
    ws = writers(url)
    try:
        for k, w in enumerate(ws):
            items = exchange.items[k]
            for i in range(0, len(items), 25):
                stats = w.write(log_name(k), items[i : i + 25])
                assert (stats.applied, stats.rows) == (0, 0)
    finally:
        for w in ws:
            w.close()
    assert dump(url) == before


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_a_fill_between_shards_is_one_trade_and_fills_each_order_once(
    db_url: str, order: tuple[int, int]
) -> None:
    exchange = trade_between_shards()
    ws = writers(db_url)
    try:
        for k in order:
            ws[k].write(log_name(k), exchange.items[k])
    finally:
        for w in ws:
            w.close()
    ((trade),) = list_trades(db_url)
    assert (trade.taker_owner, trade.maker_owner, trade.quantity) == (1, 2, 400)
    (maker,) = open_orders(db_url)
    assert (maker.owner, maker.filled, maker.leaves, maker.status) == (
        2, 400, 600, "partially_filled"
    )  # fmt: skip
    check_against_shards(db_url, exchange)


def test_shard_unaware_writers_would_insert_a_fill_between_shards_twice(db_url: str) -> None:
    exchange = trade_between_shards()
    with ProjectionWriter(db_url, auto_migrate=True) as writer:
        writer.write(log_name(0), exchange.items[0])
        with pytest.raises(IntegrityError):
            writer.write(log_name(1), exchange.items[1])


@pytest.mark.parametrize(("shard", "shards"), [(2, 2), (-1, 2), (0, 0)])
def test_a_shard_outside_the_shards_is_refused(db_url: str, shard: int, shards: int) -> None:
    with pytest.raises(ValueError, match="shard"):
        ProjectionWriter(db_url, shard=shard, shards=shards)
