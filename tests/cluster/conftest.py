"""Fixtures: a private nats-server (JetStream) or three-node cluster per test, stopped by
PID; the private PostgreSQL of the ledger tests for the session, with a fresh database
per test."""

from __future__ import annotations

import itertools

import pytest

from tests.bus.conftest import nats_cluster, nats_server
from tests.ledger.conftest import postgres_instance
from tests.pg import PostgresServer

__all__ = ["database_url", "nats_cluster", "nats_server", "postgres_instance"]

_databases = itertools.count(1)


@pytest.fixture
def database_url(postgres_instance: PostgresServer) -> str:
    """A fresh, empty database on the private server (the ledger writer migrates it)."""
    return postgres_instance.create_database(f"cluster_{next(_databases)}")
