"""One private PostgreSQL server: fresh or on a directory kept across restarts (as
``crossbook cluster`` uses it), crashes, and failures to start."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossbook.infra.postgres import (
    DEFAULT_PORT,
    PostgresError,
    PostgresStartError,
    free_port,
    start_postgres,
    stop_postgres,
)

pytestmark = pytest.mark.timeout(120)


def test_temporary_server_is_removed_with_its_directory_when_stopped() -> None:
    server = start_postgres()
    try:
        assert server.temporary and server.port != DEFAULT_PORT
        with server.connect() as conn:
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        pids = server.processes()
        assert server.pid in pids
    finally:
        stop_postgres(server)
    assert not server.base_dir.exists()
    assert server.processes() == [] and server.pid is None


def test_server_restarts_on_its_existing_data_directory_with_its_data(pg_dir: Path) -> None:
    base, port = pg_dir / "pg", free_port()
    server = start_postgres(base_dir=base, port=port, fsync=True)
    try:
        with server.connect() as conn:
            conn.execute("CREATE TABLE kept (v text)")
            conn.execute("INSERT INTO kept VALUES ('before restart')")
    finally:
        stop_postgres(server)
    assert server.data_dir.is_dir() and not server.running  # a kept directory stays

    again = start_postgres(base_dir=base, port=port, fsync=True)
    try:
        assert again.dsn() == server.dsn()
        with again.connect() as conn:
            assert conn.execute("SELECT v FROM kept").fetchall() == [("before restart",)]
    finally:
        stop_postgres(again)


def test_server_killed_by_a_crash_restarts_on_its_directory(pg_dir: Path) -> None:
    base = pg_dir / "pg"
    server = start_postgres(base_dir=base, fsync=True)
    try:
        with server.connect() as conn:
            conn.execute("CREATE TABLE kept (v int)")
            conn.execute("INSERT INTO kept VALUES (1)")
        server.kill()  # SIGKILL of every process: stale postmaster.pid and socket lock
        assert server.processes() == []
        server.start(timeout=60)
        with server.connect() as conn:  # crash recovery replayed the committed row
            assert conn.execute("SELECT v FROM kept").fetchall() == [(1,)]
    finally:
        stop_postgres(server)


def test_server_left_running_by_an_earlier_process_is_adopted(pg_dir: Path) -> None:
    first = start_postgres(base_dir=pg_dir / "pg")
    try:
        adopted = start_postgres(base_dir=pg_dir / "pg")  # e.g. after a supervisor restart
        assert (adopted.port, adopted.pid) == (first.port, first.pid)
        with pytest.raises(PostgresStartError, match="already runs"):
            start_postgres(base_dir=pg_dir / "pg", port=free_port())
    finally:
        stop_postgres(first)


def test_default_port_is_refused(pg_dir: Path) -> None:
    with pytest.raises(PostgresError, match="default port"):
        start_postgres(base_dir=pg_dir / "pg", port=DEFAULT_PORT)
    assert not (pg_dir / "pg").exists()


def test_server_that_cannot_start_fails_with_its_log() -> None:
    with pytest.raises(PostgresStartError) as failure:
        start_postgres(settings={"shared_buffers": "not-a-size"})
    message = str(failure.value)
    assert "shared_buffers" in message and "not-a-size" in message
