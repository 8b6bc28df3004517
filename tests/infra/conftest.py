"""Fixtures: private PostgreSQL servers and replica sets on free loopback ports.

A server that cannot start fails the test with its log (never a skip). Directories are
made with ``tempfile`` under /tmp, not pytest's ``tmp_path``: as root the servers run as
the ``postgres`` OS user, which cannot enter pytest's private (0700) base directory.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from crossbook.infra.postgres import PostgresError, PostgresReplicaSet


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    """A directory a server may live in (kept until the end of the test)."""
    path = Path(tempfile.mkdtemp(prefix="crossbook-pg-test-"))
    path.chmod(0o711)  # the postgres OS user must be able to reach directories inside
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def replica_set() -> Iterator[PostgresReplicaSet]:
    """A started primary + synchronous standby (temporary directory, fsync off)."""
    rs = PostgresReplicaSet(fsync=False, timeout=60)
    error = ""
    try:
        rs.start()
    except PostgresError as exc:
        error = str(exc)
    if error:
        pytest.fail(f"cannot start a PostgreSQL replica set: {error}", pytrace=False)
    try:
        yield rs
    finally:
        rs.stop()
