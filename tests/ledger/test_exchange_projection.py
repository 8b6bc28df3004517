"""The projection of the real exchange pipeline (accounts -> engine -> accounts) agrees
with the pipeline's own state, however the stream is batched and redelivered."""

from __future__ import annotations

import random
from collections import Counter

from crossbook.bench.workload import generate
from crossbook.domain.enums import OrderType
from crossbook.domain.events import OrderFilled
from crossbook.domain.ledger import TransactionPosted
from crossbook.exchange.core import ExchangeCore
from crossbook.ledger import OPEN_STATUSES, ProjectionWriter, make_engine
from crossbook.ledger.queries import (
    all_balances,
    asset_totals,
    balance_drift,
    list_trades,
    open_orders,
    progress,
    trade_fees,
    unbalanced_transactions,
)
from crossbook.ledger.schema import orders
from tests.ledger.scenario import Item, engine_commands, exchange_run

LOG = "exchange"


def deliver(url: str, items: list[Item], rng: random.Random) -> None:
    """At-least-once delivery: random batch sizes, each batch sometimes re-sent, and
    sometimes starting a little before where the previous one ended."""
    with ProjectionWriter(url, auto_migrate=True) as writer:
        i = 0
        while i < len(items):
            start = max(0, i - rng.choice([0, 0, 0, 3, 20]))
            end = min(len(items), i + rng.randint(1, 150))
            batch = items[start:end]
            for _ in range(rng.choice([1, 1, 2])):
                writer.write(LOG, batch)
            i = end


def check_against_core(url: str, core: ExchangeCore, items: list[Item]) -> None:
    assert progress(url) == {LOG: items[-1][0]}
    assert all_balances(url) == core.accounts.balances
    assert set(asset_totals(url).values()) == {0}
    assert unbalanced_transactions(url) == {}
    assert balance_drift(url) == {}
    fills = [e for _, events in items for e in events if type(e) is OrderFilled]
    assert len(list_trades(url)) == len(fills)
    projected = {(o.market, o.order_id): o.leaves for o in open_orders(url)}
    expected = {
        (symbol, o.order_id): o.leaves
        for symbol in core.engine.books
        for o in core.engine.open_orders(symbol)
    }
    assert projected == expected
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            statuses: Counter[str] = Counter()
            for row in conn.execute(orders.select()):
                statuses[row.status] += 1
                if row.status not in OPEN_STATUSES:
                    assert row.leaves == 0
                elif row.quote_quantity == 0 or row.type == OrderType.LIMIT:
                    assert row.filled + row.leaves == row.quantity
    finally:
        engine.dispose()
    assert statuses["filled"] > 0
    check_trade_fees(url, items)


def check_trade_fees(url: str, items: list[Item]) -> None:
    """``trade_fees`` gives, per trade, exactly what its settlement posted to ``fees``."""
    expected: dict[str, dict[int, dict[str, int]]] = {}
    for _, events in items:
        for e in events:
            if type(e) is TransactionPosted and e.type == "trade":
                _, market, trade_id = e.ref.split(":")
                per = expected.setdefault(market, {}).setdefault(int(trade_id), {})
                for posting in e.postings:
                    if posting.account == "fees":
                        per[posting.asset] = per.get(posting.asset, 0) + posting.amount
    assert expected
    for market, fees in expected.items():
        charged = {t: f for t, f in fees.items() if f}
        assert trade_fees(url, market, list(fees)) == charged
        assert trade_fees(url, market, [10**12]) == {}


def test_scenario_through_the_exchange_pipeline(db_url: str) -> None:
    core, items = exchange_run(engine_commands(), users=range(1, 16))
    deliver(db_url, items, random.Random(1))
    check_against_core(db_url, core, items)


def test_random_workload_with_redelivery(db_url: str) -> None:
    workload = generate(1500, book_size=300, owners=30, seed=11)
    core, items = exchange_run(workload.warmup + workload.commands, users=range(30))
    deliver(db_url, items, random.Random(2))
    check_against_core(db_url, core, items)
