"""Paths of the projection writer that the main scenario does not take: an order id reused
after its order closed (a created row meeting a stored one), client order ids that COPY
must escape, amounts around SQLite's 64-bit integers, and migrations 0003 and 0004
upgrading (and 0004 downgrading) a database that already holds rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import inspect, text

from crossbook.domain.commands import CancelOrder, Command
from crossbook.domain.enums import Side
from crossbook.domain.events import OrderAccepted
from crossbook.domain.markets import DEFAULT_MARKETS
from crossbook.engine.matching import MatchingEngine
from crossbook.ledger import ProjectionWriter, make_engine, migrate, schema_revision
from crossbook.ledger.db import downgrade
from crossbook.ledger.queries import all_balances, get_order, open_orders
from tests.ledger.scenario import (
    ACCOUNTS_LOG,
    BTC,
    ENGINE_LOG,
    P50000,
    TS0,
    Item,
    _place,
    accounts_items,
    engine_items,
    tx,
)
from tests.ledger.test_projection import dump, full_run


def reuse_items() -> list[Item]:
    """Order id 1 is placed, cancelled, placed again by another owner (and partly
    filled), cancelled, and placed a third time."""
    # fmt: off
    commands: list[Command] = [
        _place(1, 1, Side.SELL, price=P50000, quantity=BTC, client_order_id="first"),
        CancelOrder(seq=2, ts=TS0 + 2, market="BTCUSDT", owner=1, order_id=1),
        _place(3, 2, Side.BUY, price=4_900_000, quantity=BTC // 10, client_order_id="again",
               order_id=1),
        _place(4, 3, Side.SELL, price=4_900_000, quantity=BTC // 20),  # half of the new #1
        CancelOrder(seq=5, ts=TS0 + 5, market="BTCUSDT", owner=2, order_id=1),
        _place(6, 4, Side.SELL, price=5_100_000, quantity=BTC // 2, client_order_id="third",
               order_id=1),
    ]
    # fmt: on
    engine = MatchingEngine(DEFAULT_MARKETS)
    items = [(c.seq, list(engine.execute(c))) for c in commands]
    accepted = [e.seq for _, events in items for e in events if type(e) is OrderAccepted]
    assert accepted == [1, 3, 4, 6]  # the engine takes a closed order's id again
    return items


@pytest.mark.parametrize("batch_size", [1, 2, 3, 4, 6])
def test_order_id_reused_after_close(new_db: Callable[[], str], batch_size: int) -> None:
    items = reuse_items()
    url, reference = new_db(), new_db()
    with ProjectionWriter(url, auto_migrate=True) as writer:
        for i in range(0, len(items), batch_size):
            writer.write(ENGINE_LOG, items[i : i + batch_size])
        assert writer.write(ENGINE_LOG, items).applied == 0
    with ProjectionWriter(reference, auto_migrate=True) as writer:
        for item in items:  # one by one: every re-placement meets the stored row
            writer.write(ENGINE_LOG, [item])
    assert dump(url) == dump(reference)
    row = get_order(url, "BTCUSDT", 1)
    assert row is not None
    assert (row.owner, row.client_order_id, row.side, row.price, row.quantity) == (
        4, "third", "sell", 5_100_000, BTC // 2,
    )  # fmt: skip
    assert (row.status, row.reason, row.filled, row.filled_quote_scaled, row.leaves) == (
        "new", None, 0, 0, BTC // 2,
    )  # fmt: skip
    assert (row.created_seq, row.updated_seq, row.created_ts, row.updated_ts) == (
        6, 6, TS0 + 6, TS0 + 6,
    )  # fmt: skip
    assert [(o.market, o.order_id) for o in open_orders(url)] == [("BTCUSDT", 1)]


def test_order_strings_that_copy_must_escape(db_url: str) -> None:
    """Client order ids with COPY's special characters (tab, newline, backslash, ``\\N``)
    read back as given, whether the order's row was only created or also changed by a
    later batch."""
    odd = ["a\tb", "c\nd\re", "back\\slash", "\\N"]
    commands: list[Command] = [
        _place(n + 1, n + 1, Side.SELL, price=P50000 + n, quantity=BTC, client_order_id=coid)
        for n, coid in enumerate(odd)
    ]
    commands.append(CancelOrder(seq=9, ts=TS0 + 9, market="BTCUSDT", owner=2, order_id=2))
    engine = MatchingEngine(DEFAULT_MARKETS)
    items = [(c.seq, list(engine.execute(c))) for c in commands]
    with ProjectionWriter(db_url, auto_migrate=True) as writer:
        writer.write(ENGINE_LOG, items[:2])
        writer.write(ENGINE_LOG, items[2:])
    rows = [get_order(db_url, "BTCUSDT", n + 1) for n in range(len(odd))]
    assert [r.client_order_id if r else None for r in rows] == odd
    assert [r.status if r else None for r in rows] == ["new", "cancelled", "new", "new"]


def test_amounts_around_64_bits_are_stored_exactly(db_url: str) -> None:
    """On SQLite, amounts that fit 64 bits are bound as ints (the column's TEXT affinity
    stores their decimal string), larger ones as strings: both must read back the same."""
    edge = [2**63 - 1, 2**63, 2**64, 10**30]
    items: list[Item] = [
        tx(n + 1, n + 1, "adjust", f"adjustment:{n + 1}",
           ("adjustments", f"A{n}", -v), ("user:1:available", f"A{n}", v))
        for n, v in enumerate(edge)
    ]  # fmt: skip
    with ProjectionWriter(db_url, auto_migrate=True) as writer:
        writer.write(ACCOUNTS_LOG, items[:2])
        writer.write(ACCOUNTS_LOG, items[2:])
        writer.write(ACCOUNTS_LOG, [tx(9, 9, "adjust", "adjustment:9",
                                       ("adjustments", "A0", 1), ("user:1:available", "A0", -1))])  # fmt: skip
    expected = {("user:1:available", f"A{n}"): v for n, v in enumerate(edge)}
    expected |= {("adjustments", f"A{n}"): -v for n, v in enumerate(edge)}
    expected[("user:1:available", "A0")] -= 1
    expected[("adjustments", "A0")] += 1
    assert all_balances(db_url) == expected
    postings = [r[2:] for r in dump(db_url)["ledger_postings"]]
    assert [v for *_, v in postings[: 2 * len(edge) : 2]] == [-v for v in edge]


def test_sqlite_stores_every_amount_as_text(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    full_run(url, 4)
    engine = make_engine(url)
    columns = {
        "ledger_postings": ["amount"],
        "balances": ["amount"],
        "trades": ["price", "quantity"],
        "orders": ["price", "quantity", "quote_quantity", "stop_price", "display_quantity",
                   "filled", "filled_quote_scaled", "leaves"],
    }  # fmt: skip
    try:
        with engine.connect() as conn:
            for table, names in columns.items():
                for name in names:
                    kinds = conn.execute(
                        text(f"SELECT DISTINCT typeof({name}) FROM {table} "
                             f"WHERE {name} IS NOT NULL")
                    ).scalars().all()  # fmt: skip
                    assert kinds == ["text"], (table, name, kinds)
    finally:
        engine.dispose()


def written_at_revision(url: str, revision: str) -> tuple[list[Any], list[Any]]:
    """A database at ``revision`` holding the first items of both logs; all the items."""
    eng, acc = engine_items(), accounts_items()
    migrate(url, revision)
    with ProjectionWriter(url) as writer:
        writer.write(ENGINE_LOG, eng[:10])
        writer.write(ACCOUNTS_LOG, acc[:3])
    return eng, acc


def test_migration_0003_upgrades_a_populated_database(new_db: Callable[[], str]) -> None:
    """A database written at revision 0002 (with the postings' foreign key and the index
    on order status) upgrades in place: rows kept, the foreign key and that index gone, the
    other indexes still there, and the writer goes on."""
    url, reference = new_db(), new_db()
    eng, acc = written_at_revision(url, "0002")
    engine = make_engine(url)
    try:
        assert [fk["name"] for fk in inspect(engine).get_foreign_keys("ledger_postings")] == [
            "fk_ledger_postings_tx_id"
        ]
        assert "ix_orders_status" in {ix["name"] for ix in inspect(engine).get_indexes("orders")}
    finally:
        engine.dispose()
    before = dump(url)
    migrate(url, "0003")
    assert dump(url) == before
    engine = make_engine(url)
    try:
        assert inspect(engine).get_foreign_keys("ledger_postings") == []
        indexes = {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes(
            "ledger_postings")}  # fmt: skip
        assert indexes == {"ix_ledger_postings_account_asset": ["account", "asset"]}
        pk = inspect(engine).get_pk_constraint("ledger_postings")
        assert (pk["name"], pk["constrained_columns"]) == ("pk_ledger_postings", ["tx_id", "n"])
        indexes = {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("orders")}
        assert indexes == {"ix_orders_owner_market": ["owner", "market"]}
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                options = conn.execute(
                    text("SELECT reloptions FROM pg_class WHERE relname = 'orders'")
                ).scalar_one()  # fmt: skip
            assert options == ["fillfactor=70"]
    finally:
        engine.dispose()
    with ProjectionWriter(url) as writer:
        writer.write(ENGINE_LOG, eng)
        writer.write(ACCOUNTS_LOG, acc)
    full_run(reference, 100)
    assert dump(url) == dump(reference)


def ledger_indexes(url: str) -> dict[str, object]:
    """The unique constraints of ``ledger_transactions`` and the primary key and indexes
    of ``ledger_postings``, by name."""
    engine = make_engine(url)
    try:
        insp = inspect(engine)
        pk = insp.get_pk_constraint("ledger_postings")
        return {
            "uniques": {u["name"]: u["column_names"]
                        for u in insp.get_unique_constraints("ledger_transactions")},
            "postings_pk": (pk["name"], pk["constrained_columns"]),
            "postings": {ix["name"]: ix["column_names"]
                         for ix in insp.get_indexes("ledger_postings")},
        }  # fmt: skip
    finally:
        engine.dispose()


BEFORE_0004 = {
    "uniques": {"uq_ledger_transactions_log_tx_id": ["log", "tx_id"]},
    "postings_pk": ("pk_ledger_postings", ["tx_id", "n"]),
    "postings": {"ix_ledger_postings_account_asset": ["account", "asset"]},
}
AFTER_0004 = {
    "uniques": {},
    "postings_pk": ("pk_ledger_postings", ["tx_id", "n"]),
    "postings": {"ix_ledger_postings_account": ["account"]},
}


def test_migration_0004_upgrades_and_downgrades_a_populated_database(
    new_db: Callable[[], str],
) -> None:
    """A database written at revision 0003 upgrades in place (rows kept, the unique
    (log, tx_id) gone, postings indexed by account alone, their primary key kept), the
    writer goes on, and the downgrade restores the constraint and the index with the
    rows."""
    url, reference = new_db(), new_db()
    eng, acc = written_at_revision(url, "0003")
    assert ledger_indexes(url) == BEFORE_0004
    before = dump(url)
    migrate(url, "0004")
    assert schema_revision(url) == "0004"
    assert dump(url) == before
    assert ledger_indexes(url) == AFTER_0004
    with ProjectionWriter(url) as writer:
        writer.write(ENGINE_LOG, eng)
        writer.write(ACCOUNTS_LOG, acc)
    full_run(reference, 100)
    after = dump(url)
    assert after == dump(reference)
    downgrade(url, "0003")
    assert schema_revision(url) == "0003"
    assert ledger_indexes(url) == BEFORE_0004
    assert dump(url) == after
    migrate(url, "0004")
    assert ledger_indexes(url) == AFTER_0004
    assert dump(url) == after


def test_transaction_without_postings(db_url: str) -> None:
    """Not something the account service posts, but a batch of only that still writes."""
    with ProjectionWriter(db_url, auto_migrate=True) as writer:
        stats = writer.write(ACCOUNTS_LOG, [tx(1, 1, "noop", "adjustment:1")])
        assert (stats.applied, stats.rows, stats.last_seq) == (1, 2, 1)
    rows = dump(db_url)
    assert rows["ledger_transactions"] == [(1, ACCOUNTS_LOG, 1, TS0 + 1, "noop", "adjustment:1")]
    assert rows["ledger_postings"] == [] and rows["balances"] == []
