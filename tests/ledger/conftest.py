"""Fixtures: a private PostgreSQL for the session, and a fresh ledger database per test,
parametrized over SQLite and PostgreSQL (the same tests must pass on both)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.pg import PostgresServer, PostgresStartError, start_postgres, stop_postgres

_db_names = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_instance() -> Iterator[PostgresServer]:
    """A private PostgreSQL 15 on a free loopback port; fails (never skips) if it cannot
    start."""
    error = ""
    try:
        server = start_postgres()
    except PostgresStartError as exc:
        error = str(exc)
    if error:
        pytest.fail(f"cannot start a private PostgreSQL server: {error}", pytrace=False)
    try:
        yield server
    finally:
        stop_postgres(server)


@pytest.fixture(scope="session")
def postgres_server(postgres_instance: PostgresServer) -> str:
    """DSN ``postgresql+psycopg://postgres@127.0.0.1:PORT/crossbook`` of a database on the
    private server."""
    return postgres_instance.create_database("crossbook")


@pytest.fixture(params=["sqlite", "postgresql"])
def new_db(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """A factory of fresh, empty databases of the parametrized backend (URLs)."""
    backend = request.param
    counter = itertools.count(1)
    if backend == "sqlite":
        return lambda: f"sqlite:///{tmp_path / f'ledger{next(counter)}.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_instance")
    return lambda: server.create_database(f"ledger_{next(_db_names)}")


@pytest.fixture
def db_url(new_db: Callable[[], str]) -> str:
    """One fresh, empty database (not migrated)."""
    return new_db()
