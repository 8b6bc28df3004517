"""Fixtures: the ledger's private PostgreSQL and per-test databases (SQLite and
PostgreSQL), reused from ``tests/ledger/conftest.py``, plus a cheap password hasher."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from tests.ledger.conftest import db_url, new_db, postgres_instance

__all__ = ["db_url", "fast_hasher", "new_db", "postgres_instance"]


@pytest.fixture
def fast_hasher() -> PasswordHasher:
    """argon2id with minimal cost: store tests exercise logic, not the hash's strength."""
    return PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
