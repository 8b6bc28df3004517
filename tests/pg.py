"""A private PostgreSQL server for tests and benchmarks (never the machine's default one).

The implementation lives in :mod:`crossbook.infra.postgres` (production code uses it too);
this module re-exports it under the names the tests and benchmarks import.
"""

from __future__ import annotations

from crossbook.infra.ports import free_port
from crossbook.infra.postgres import (
    DEFAULT_PORT,
    PG_BIN,
    PG_USER,
    PostgresError,
    PostgresReplicaSet,
    PostgresServer,
    PostgresStartError,
    private_postgres,
    start_postgres,
    stop_postgres,
)

__all__ = [
    "DEFAULT_PORT",
    "PG_BIN",
    "PG_USER",
    "PostgresError",
    "PostgresReplicaSet",
    "PostgresServer",
    "PostgresStartError",
    "free_port",
    "private_postgres",
    "start_postgres",
    "stop_postgres",
]
