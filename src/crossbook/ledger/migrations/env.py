"""Alembic environment of the ledger projection.

``crossbook.ledger.migrate(url)`` passes an open connection in
``config.attributes["connection"]``; the ``alembic`` command line (with an ini file whose
``script_location`` is ``crossbook.ledger:migrations``) gets one from ``sqlalchemy.url``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

# crossbook.auth.schema defines the auth tables (migration 0002) on the ledger's
# MetaData: importing it makes target_metadata cover every table the migrations create.
import crossbook.auth.schema  # noqa: F401
from crossbook.ledger.db import VERSION_TABLE, make_engine
from crossbook.ledger.schema import metadata

config = context.config


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,  # SQLite cannot ALTER most things: batch mode copies tables
        compare_type=True,
        **kwargs,  # type: ignore[arg-type]
    )


def _run(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set"
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
