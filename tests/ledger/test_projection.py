"""The ledger projection on SQLite and on a private PostgreSQL: schema, projection of a
real engine run and of ledger transactions, redelivery, big amounts, verification."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError

from crossbook.domain.ledger import Posting, TransactionPosted
from crossbook.ledger import (
    ProjectionWriter,
    head_revision,
    make_engine,
    metadata,
    migrate,
    schema_revision,
)
from crossbook.ledger.db import VERSION_TABLE
from crossbook.ledger.queries import (
    all_balances,
    asset_totals,
    balance_drift,
    get_order,
    list_trades,
    open_orders,
    progress,
    unbalanced_transactions,
)
from tests.ledger.scenario import (
    ACCOUNTS_LOG,
    BTC,
    ENGINE_LOG,
    ETH,
    P50000,
    TS0,
    Item,
    accounts_items,
    engine_items,
    tx,
)

TABLES = ["balances", "ledger_postings", "ledger_transactions", "orders",
          "projection_progress", "trades"]  # fmt: skip


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                t.name: [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key))]
                for t in metadata.sorted_tables
            }
    finally:
        engine.dispose()


def project(url: str, batches: list[tuple[str, list[Item]]]) -> ProjectionWriter:
    writer = ProjectionWriter(url, auto_migrate=True)
    for log, batch in batches:
        writer.write(log, batch)
    return writer


def full_run(url: str, batch_size: int) -> None:
    eng, acc = engine_items(), accounts_items()
    batches = [(ENGINE_LOG, eng[i : i + batch_size]) for i in range(0, len(eng), batch_size)]
    batches += [(ACCOUNTS_LOG, acc[i : i + batch_size]) for i in range(0, len(acc), batch_size)]
    project(url, batches).close()


def test_migrations_create_the_schema(db_url: str) -> None:
    assert schema_revision(db_url) is None
    migrate(db_url)
    migrate(db_url)  # idempotent
    assert schema_revision(db_url) == head_revision()
    engine = make_engine(db_url)
    try:
        names = set(inspect(engine).get_table_names())
        assert names >= {*TABLES, VERSION_TABLE}
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
            )
            assert compare_metadata(ctx, metadata) == []  # migrations == schema.py
        # tx_id is the primary key; besides it only the trade settlements' refs
        assert inspect(engine).get_unique_constraints("ledger_transactions") == []
        indexes = inspect(engine).get_indexes("ledger_transactions")
        assert [(i["name"], i["column_names"]) for i in indexes] == [
            ("ix_ledger_transactions_trade_ref", ["ref"])
        ]
        amount_type = {c["name"]: c["type"] for c in inspect(engine).get_columns("balances")}
        if engine.dialect.name == "postgresql":
            assert str(amount_type["amount"]) == "NUMERIC(78, 0)"
        else:
            assert "CHAR" in str(amount_type["amount"]).upper()  # text affinity, never REAL
    finally:
        engine.dispose()


@pytest.mark.parametrize("batch_size", [1, 4, 100])
def test_projects_engine_run_and_transactions(db_url: str, batch_size: int) -> None:
    full_run(db_url, batch_size)
    assert progress(db_url) == {ENGINE_LOG: 19, ACCOUNTS_LOG: 6}

    def order(market: str, oid: int) -> Any:
        row = get_order(db_url, market, oid)
        assert row is not None, (market, oid)
        return row

    o1 = order("BTCUSDT", 1)
    assert (o1.status, o1.filled, o1.leaves, o1.client_order_id) == ("filled", BTC, 0, "s1")
    assert o1.filled_quote_scaled == P50000 * BTC
    assert (o1.created_seq, o1.updated_seq, o1.updated_ts) == (1, 4, TS0 + 4)
    o2 = order("BTCUSDT", 2)
    assert (o2.status, o2.reason, o2.filled, o2.leaves) == ("cancelled", "user", 2 * BTC // 10, 0)
    assert order("BTCUSDT", 3).status == "filled"
    o4 = order("BTCUSDT", 4)
    assert (o4.type, o4.time_in_force, o4.price, o4.status) == ("market", "ioc", 0, "filled")
    assert o4.filled_quote_scaled == P50000 * 6 * BTC // 10 + 5_010_000 * 2 * BTC // 10
    o6 = order("BTCUSDT", 6)
    assert (o6.status, o6.reason, o6.filled, o6.leaves) == ("expired", "ioc", 0, 0)
    o7 = order("BTCUSDT", 7)
    assert (o7.status, o7.reason, o7.owner, o7.side, o7.quantity) == (
        "rejected", "quantity_not_on_step", 6, None, None,
    )  # fmt: skip
    o8 = order("BTCUSDT", 8)  # amended down, partly filled by the stop, then cancel-all;
    # the duplicate-id rejection at seq 13 left it alone
    assert (o8.status, o8.reason, o8.quantity, o8.filled, o8.leaves, o8.owner) == (
        "cancelled", "cancel_all", BTC // 10, 5 * BTC // 100, 0, 7,
    )  # fmt: skip
    assert (o8.client_order_id, o8.updated_seq) == ("b8", 14)
    o10 = order("BTCUSDT", 10)
    assert (o10.type, o10.stop_price, o10.status, o10.filled) == (
        "stop_limit", P50000, "filled", 5 * BTC // 100,
    )  # fmt: skip
    o16 = order("ETHUSDT", 16)
    assert (o16.status, o16.filled, o16.leaves) == ("filled", 1500 * ETH, 0)
    assert o16.filled_quote_scaled == 300_000 * 1500 * ETH
    o17 = order("ETHUSDT", 17)
    assert (o17.status, o17.leaves, o17.updated_seq) == ("triggered", ETH, 19)
    assert [(o.market, o.order_id) for o in open_orders(db_url)] == [("ETHUSDT", 17)]
    assert open_orders(db_url, market="BTCUSDT") == []
    assert open_orders(db_url, owner=13) == [o17]
    assert get_order(db_url, "BTCUSDT", 999) is None

    got = [(t.market, t.trade_id, t.price, t.quantity, t.taker_side, t.taker_order_id,
            t.maker_order_id, t.seq) for t in list_trades(db_url)]  # fmt: skip
    assert got == [
        ("BTCUSDT", 1, P50000, 4 * BTC // 10, "buy", 3, 1, 3),
        ("BTCUSDT", 2, P50000, 6 * BTC // 10, "buy", 4, 1, 4),
        ("BTCUSDT", 3, 5_010_000, 2 * BTC // 10, "buy", 4, 2, 4),
        ("BTCUSDT", 4, P50000, BTC // 10, "buy", 12, 11, 12),
        ("BTCUSDT", 5, 4_950_000, 5 * BTC // 100, "sell", 10, 8, 12),
        ("ETHUSDT", 1, 300_000, 1000 * ETH, "buy", 16, 15, 16),
        ("ETHUSDT", 2, 300_000, 500 * ETH, "sell", 18, 16, 18),
        ("ETHUSDT", 3, 299_000, 100 * ETH, "buy", 19, 18, 19),
    ]

    assert all_balances(db_url) == {
        ("external:ethereum", "ETH"): -(10**24),
        ("user:11:available", "ETH"): 10**24 - 1000 * ETH,
        ("user:11:held", "ETH"): 0,
        ("user:12:available", "ETH"): 1000 * ETH,
        ("external:tron", "USDT"): -5 * 10**12,
        ("user:12:available", "USDT"): 5 * 10**12 - 45 * 10**11,
        ("user:12:held", "USDT"): 15 * 10**11,
        ("user:11:available", "USDT"): 2_997 * 10**9,
        ("fees", "USDT"): 3 * 10**9,
    }
    assert asset_totals(db_url) == {"ETH": 0, "USDT": 0}
    assert unbalanced_transactions(db_url) == {}
    assert balance_drift(db_url) == {}


def test_split_into_batches_or_not_gives_the_same_tables(new_db: Callable[[], str]) -> None:
    one_by_one, all_at_once = new_db(), new_db()
    full_run(one_by_one, 1)
    full_run(all_at_once, 1000)
    assert dump(one_by_one) == dump(all_at_once)


def test_redelivery_changes_nothing(new_db: Callable[[], str]) -> None:
    url, reference = new_db(), new_db()
    eng, acc = engine_items(), accounts_items()
    writer = project(url, [(ENGINE_LOG, eng[:10]), (ACCOUNTS_LOG, acc[:3])])
    try:
        before = dump(url)
        stats = writer.write(ENGINE_LOG, eng[:10])  # the same batch again
        assert (stats.applied, stats.skipped, stats.rows, stats.last_seq) == (0, 10, 0, 10)
        assert dump(url) == before
        # overlapping batches, and batches that repeat items inside themselves:
        assert writer.write(ENGINE_LOG, eng[5:14]).applied == 4
        assert writer.write(ENGINE_LOG, eng[12:] + eng[12:]).applied == 5
        assert writer.write(ACCOUNTS_LOG, acc[1:] + acc).applied == 3
        after = dump(url)
        for log, batch in [(ENGINE_LOG, eng), (ACCOUNTS_LOG, acc), (ENGINE_LOG, eng[3:7])]:
            stats = writer.write(log, batch)
            assert (stats.applied, stats.skipped) == (0, len(batch))
        assert dump(url) == after
        assert writer.last_seq(ENGINE_LOG) == 19 and writer.last_seq("nothing") == 0
    finally:
        writer.close()
    full_run(reference, 7)  # a clean run, delivered once
    assert after == dump(reference)


def test_big_amounts_round_trip_exactly(db_url: str) -> None:
    huge = 10**77 + 123456789  # 78 digits, the column's maximum magnitude
    items: list[Item] = [
        tx(1, 1, "deposit", "deposit:big",
           ("external:ethereum", "ETH", -(10**24)), ("user:1:available", "ETH", 10**24)),
        tx(2, 2, "adjust", "adjustment:2",
           ("adjustments", "XYZ", -huge), ("user:1:available", "XYZ", huge)),
        tx(3, 3, "adjust", "adjustment:3",
           ("user:1:available", "ETH", 10**24 + 1), ("adjustments", "ETH", -(10**24 + 1))),
    ]  # fmt: skip
    with ProjectionWriter(db_url, auto_migrate=True) as writer:
        writer.write(ACCOUNTS_LOG, items)
    assert all_balances(db_url) == {
        ("external:ethereum", "ETH"): -(10**24),
        ("user:1:available", "ETH"): 2 * 10**24 + 1,
        ("adjustments", "ETH"): -(10**24 + 1),
        ("adjustments", "XYZ"): -huge,
        ("user:1:available", "XYZ"): huge,
    }
    assert asset_totals(db_url) == {"ETH": 0, "XYZ": 0}
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":  # stored as exact decimal text, never REAL
                kinds = conn.execute(text("SELECT DISTINCT typeof(amount) FROM balances"))
                assert [k for (k,) in kinds] == ["text"]
            raw = conn.execute(
                text("SELECT amount FROM balances WHERE account = 'user:1:available' "
                     "AND asset = 'ETH'")
            ).scalar_one()  # fmt: skip
            assert str(raw) == str(2 * 10**24 + 1)
    finally:
        engine.dispose()


def test_amounts_refuse_floats_and_overflow(db_url: str) -> None:
    with ProjectionWriter(db_url, auto_migrate=True) as writer:
        for bad in (1.5, 10**78):
            item = (1, [TransactionPosted(1, TS0, 1, "adjust", "adjustment:1", (
                Posting("adjustments", "BTC", bad), Posting("user:1:available", "BTC", 0),  # type: ignore[arg-type]
            ))])  # fmt: skip
            with pytest.raises((TypeError, ValueError)):
                writer.write(ACCOUNTS_LOG, [item])
        assert writer.last_seq(ACCOUNTS_LOG) == 0
    assert all_balances(db_url) == {}


def test_unbalanced_transaction_is_found(db_url: str) -> None:
    items: list[Item] = [
        tx(1, 1, "deposit", "deposit:ok",
           ("external:bitcoin", "BTC", -5), ("user:1:available", "BTC", 5)),
        tx(2, 2, "broken", "adjustment:2", ("user:1:available", "BTC", 5),
           ("adjustments", "BTC", -4), ("user:1:available", "USDT", -7)),
    ]  # fmt: skip
    with ProjectionWriter(db_url, auto_migrate=True) as writer:
        writer.write(ACCOUNTS_LOG, items)
    assert unbalanced_transactions(db_url) == {2: {"BTC": 1, "USDT": -7}}
    assert asset_totals(db_url) == {"BTC": 1, "USDT": -7}
    assert balance_drift(db_url) == {}


def test_same_transaction_under_a_new_seq_is_refused(db_url: str) -> None:
    """Redelivery is recognized by seq; a row arriving again under a *new* seq is a
    corruption the primary keys catch, and the whole batch rolls back."""
    first = tx(
        1, 1, "deposit", "deposit:1", ("external:x", "BTC", -5), ("user:1:available", "BTC", 5)
    )
    again = (2, first[1])
    fresh = tx(
        3, 2, "deposit", "deposit:2", ("external:x", "BTC", -1), ("user:2:available", "BTC", 1)
    )
    with ProjectionWriter(db_url, auto_migrate=True) as writer:
        writer.write(ACCOUNTS_LOG, [first])
        with pytest.raises(IntegrityError):
            writer.write(ACCOUNTS_LOG, [again, fresh])
        assert writer.last_seq(ACCOUNTS_LOG) == 1
    assert all_balances(db_url) == {("external:x", "BTC"): -5, ("user:1:available", "BTC"): 5}


def test_queries_accept_an_engine(db_url: str) -> None:
    full_run(db_url, 5)
    engine: Engine = make_engine(db_url)
    try:
        assert progress(engine) == progress(db_url)
        assert asset_totals(engine) == {"ETH": 0, "USDT": 0}
    finally:
        engine.dispose()


def test_text_with_copy_delimiters_round_trips(db_url: str) -> None:
    """Strings are stored as given, whatever characters they hold (PostgreSQL writes rows
    with COPY, whose text format treats tabs, newlines and backslashes specially)."""
    odd = "a\tb\nc\\d\re\\N"
    items: list[Item] = [
        tx(1, 1, "deposit", "deposit:plain",
           ("external:x", "BTC", -5), ("user:1:available", "BTC", 5)),
        tx(2, 2, odd, odd, (odd, "BTC", -3), ("user:1:available", odd, 3)),
    ]  # fmt: skip
    with ProjectionWriter(db_url, auto_migrate=True) as writer:
        writer.write(ACCOUNTS_LOG, items)
    assert all_balances(db_url) == {
        ("external:x", "BTC"): -5,
        ("user:1:available", "BTC"): 5,
        (odd, "BTC"): -3,
        ("user:1:available", odd): 3,
    }
    rows = dump(db_url)
    assert rows["ledger_transactions"][1] == (2, ACCOUNTS_LOG, 2, TS0 + 2, odd, odd)
    postings = [r[2:] for r in rows["ledger_postings"] if r[0] == 2]
    assert postings == [(odd, "BTC", -3), ("user:1:available", odd, 3)]


def test_trade_fees_are_found_through_the_trade_ref_index_not_a_scan(db_url: str) -> None:
    from crossbook.ledger.queries import trade_settlements_query

    migrate(db_url)
    engine = make_engine(db_url)
    query = trade_settlements_query(["trade:BTCUSDT:1", "trade:BTCUSDT:2"])
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SET enable_seqscan = off"))  # an empty table: plan as if big
                compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
                plan = "\n".join(r[0] for r in conn.execute(text(f"EXPLAIN {compiled}")))
            else:
                compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
                rows = conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))
                plan = "\n".join(str(r[-1]) for r in rows)
    finally:
        engine.dispose()
    assert "ix_ledger_transactions_trade_ref" in plan, plan
