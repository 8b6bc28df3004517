"""The SQL projection of the exchange's logs: ledger transactions, balances, orders, trades.

SQLAlchemy Core over SQLite (embedded: :func:`default_url`) or PostgreSQL (a
``postgresql+psycopg://`` DSN); the schema is created and upgraded by the Alembic
migrations shipped in ``crossbook/ledger/migrations`` (:func:`migrate`).
:class:`ProjectionWriter` applies ``(seq, events)`` items exactly once per log;
:mod:`crossbook.ledger.queries` reads the result back for verification and history.
"""

from __future__ import annotations

from crossbook.ledger.db import default_url, head_revision, make_engine, migrate, schema_revision
from crossbook.ledger.schema import OPEN_STATUSES, Amount, OrderStatus, metadata
from crossbook.ledger.writer import ProjectionWriter, WriteStats

__all__ = [
    "OPEN_STATUSES",
    "Amount",
    "OrderStatus",
    "ProjectionWriter",
    "WriteStats",
    "default_url",
    "head_revision",
    "make_engine",
    "metadata",
    "migrate",
    "schema_revision",
]
