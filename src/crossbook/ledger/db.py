"""Database access for the ledger projection: engines, URLs and migrations.

``make_engine`` is the only way the package opens a database. On SQLite it sets WAL
mode, ``synchronous=NORMAL`` (a projection is rebuilt from its log, and its progress
row commits with its data, so a lost tail is replayed), foreign keys, a busy timeout,
real ``BEGIN`` statements (SQLAlchemy's recipe, so transactions and savepoints behave),
and the ``crossbook_add(a, b)`` function the writer uses to add exact decimal strings.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

SCRIPT_LOCATION = "crossbook.ledger:migrations"
VERSION_TABLE = "ledger_alembic_version"
"""Alembic's version table for this package (named so other packages can keep theirs)."""

BEGIN_IMMEDIATE = "crossbook_begin_immediate"
"""Execution option: on SQLite, take the write lock at ``BEGIN`` (writers set it)."""


def default_url(data_dir: str | Path) -> str:
    """The embedded deployment's database: ``sqlite:///<data_dir>/ledger.db`` (absolute)."""
    return f"sqlite:///{Path(data_dir).resolve() / 'ledger.db'}"


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; a bare ``postgresql://`` selects the psycopg (v3) driver."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u


def _sqlite_add(a: str | int | None, b: str | int | None) -> str:
    return str(int(a or 0) + int(b or 0))


def _sqlite_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself
    dbapi_connection.execute("PRAGMA journal_mode=WAL")
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")
    dbapi_connection.execute("PRAGMA foreign_keys=ON")
    dbapi_connection.execute("PRAGMA busy_timeout=30000")
    dbapi_connection.create_function("crossbook_add", 2, _sqlite_add, deterministic=True)


def _sqlite_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(BEGIN_IMMEDIATE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` (SQLite file / PostgreSQL DSN), configured as above.
    The directory of a SQLite file is created if missing."""
    u = normalize_url(url)
    if u.get_backend_name() == "sqlite":
        db = u.database
        if db and db != ":memory:" and not db.startswith("file:"):
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(u, **kwargs)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(u, **kwargs)


def alembic_config(url: str | URL) -> Config:
    """An Alembic configuration for the package's migrations (no ini file needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    rendered = normalize_url(url).render_as_string(hide_password=False)
    cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest migration shipped with this package."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def migrate(url: str | URL, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision`` (default: the newest); idempotent."""
    _run_migrations(url, command.upgrade, revision)


def downgrade(url: str | URL, revision: str) -> None:
    """Take the database at ``url`` back to ``revision`` (rows kept, as each migration's
    downgrade keeps them)."""
    _run_migrations(url, command.downgrade, revision)


def _run_migrations(url: str | URL, step: Callable[[Config, str], None], revision: str) -> None:
    cfg = alembic_config(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            step(cfg, revision)
    finally:
        engine.dispose()


def schema_revision(url_or_engine: str | URL | Engine) -> str | None:
    """The migration revision the database is at (``None``: never migrated)."""
    own = not isinstance(url_or_engine, Engine)
    engine = make_engine(url_or_engine) if not isinstance(url_or_engine, Engine) else url_or_engine
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return ctx.get_current_revision()
    finally:
        if own:
            engine.dispose()
