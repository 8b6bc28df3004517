"""Fixtures: a private nats-server (JetStream) or three-node cluster per test, stopped by
PID; a private PostgreSQL for the session with a fresh database per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.bus.conftest import nats_cluster, nats_server
from tests.pg import PostgresServer, PostgresStartError, start_postgres, stop_postgres

__all__ = ["cluster_postgres", "database_url", "nats_cluster", "nats_server"]

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def cluster_postgres() -> Iterator[PostgresServer]:
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


@pytest.fixture
def database_url(cluster_postgres: PostgresServer) -> str:
    """A fresh, empty database on the private server (the ledger writer migrates it)."""
    return cluster_postgres.create_database(f"cluster_{next(_databases)}")
