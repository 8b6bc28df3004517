"""Ledger migration 0002 creates exactly crossbook.auth.schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, inspect, select

from crossbook.auth.schema import api_keys, metadata, users
from crossbook.ledger import head_revision, make_engine, migrate, schema_revision
from crossbook.ledger import metadata as ledger_metadata
from crossbook.ledger.db import VERSION_TABLE, downgrade


def test_auth_tables_share_the_ledger_metadata() -> None:
    assert metadata is ledger_metadata
    assert {"users", "api_keys"} <= set(ledger_metadata.tables)


def test_migration_matches_schema_and_downgrades(db_url: str) -> None:
    migrate(db_url, "0001")
    engine = make_engine(db_url)
    try:
        assert not {"users", "api_keys"} & set(inspect(engine).get_table_names())
        migrate(db_url)
        assert schema_revision(db_url) == head_revision()
        insp = inspect(engine)
        assert {"users", "api_keys"} <= set(insp.get_table_names())
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
            )
            assert compare_metadata(ctx, metadata) == []
        uniques = inspect(engine).get_unique_constraints("users")
        assert [u["column_names"] for u in uniques] == [["email"]]
        [fk] = inspect(engine).get_foreign_keys("api_keys")
        assert (fk["referred_table"], fk["constrained_columns"]) == ("users", ["user_id"])
        downgrade(db_url, "0001")
        assert schema_revision(db_url) == "0001"
        assert not {"users", "api_keys"} & set(inspect(engine).get_table_names())
        migrate(db_url)
    finally:
        engine.dispose()


def test_user_ids_are_never_reused(db_url: str) -> None:
    migrate(db_url)
    engine = make_engine(db_url)
    row = {"password_hash": "x", "created_ms": 0, "disabled": False}
    try:
        with engine.begin() as conn:
            first = conn.execute(users.insert().values(email="a@x.io", **row)).inserted_primary_key
            assert first is not None
            conn.execute(delete(api_keys))
            conn.execute(delete(users))
            second = conn.execute(users.insert().values(email="b@x.io", **row)).inserted_primary_key
            assert second is not None
            assert second[0] > first[0]
            assert conn.execute(select(users.c.id)).scalar_one() == second[0]
    finally:
        engine.dispose()
