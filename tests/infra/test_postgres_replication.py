"""Synchronous replication and failover of a real PostgreSQL primary/standby pair.

Each test is named after the failure it provokes. Every wait is a bounded poll; a commit
that may block runs in a background thread joined with a bound.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from crossbook.infra.postgres import PostgresReplicaSet
from crossbook.ledger import make_engine
from tests.infra.helpers import Background, execute, wait_until

pytestmark = pytest.mark.timeout(120)


def _create_table(rs: PostgresReplicaSet) -> None:
    execute(rs.libpq_dsn(), "CREATE TABLE acks (id bigint PRIMARY KEY, writer int NOT NULL)",
            "creating the table on the primary")  # fmt: skip


def _ids(conn: psycopg.Connection[tuple[int]]) -> set[int]:
    return {row[0] for row in conn.execute("SELECT id FROM acks").fetchall()}


def _waiting_for_standby(rs: PostgresReplicaSet) -> int:
    """Number of backends of the primary waiting in a commit for the sync standby."""
    with rs.primary.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"
        ).fetchone()
    return int(row[0]) if row else 0


def test_commit_blocks_while_sync_standby_is_down(replica_set: PostgresReplicaSet) -> None:
    rs = replica_set
    _create_table(rs)
    rs.stop_standby()

    def commit() -> float:
        with rs.primary.connect() as conn:
            conn.execute("INSERT INTO acks VALUES (1, 0)")  # autocommit: this is the commit
        return time.monotonic()

    writer = Background(commit)
    wait_until("the commit to wait for the standby (wait_event SyncRep)",
               lambda: _waiting_for_standby(rs) == 1)  # fmt: skip
    assert not writer.done, "the commit returned with its synchronous standby down"
    with rs.primary.connect() as conn:  # nobody sees a commit the standby does not have
        assert _ids(conn) == set()

    restarted = time.monotonic()
    rs.start_standby()
    returned = writer.result(60, "the commit after the standby came back")
    assert isinstance(returned, float) and returned >= restarted
    with rs.standby.connect() as conn:  # remote_apply: applied there before returning
        assert _ids(conn) == {1}


def test_primary_killed_after_commit_standby_has_every_acknowledged_row(
    replica_set: PostgresReplicaSet,
) -> None:
    rs = replica_set
    _create_table(rs)
    writers, min_acked = 4, 200
    acked: set[int] = set()
    in_doubt: set[int] = set()  # sent, but the primary died before acknowledging
    lock = threading.Lock()
    failures: list[str] = []

    def write(w: int) -> None:
        try:
            conn = psycopg.connect(rs.primary.libpq_dsn(), autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            failures.append(f"writer {w} could not connect: {exc}")
            return
        with conn:
            for i in range(1_000_000):
                row_id = w * 1_000_000 + i
                try:
                    conn.execute("INSERT INTO acks VALUES (%s, %s)", (row_id, w))
                except psycopg.Error:
                    with lock:
                        in_doubt.add(row_id)
                    return
                with lock:
                    acked.add(row_id)

    threads = [threading.Thread(target=write, args=(w,), daemon=True) for w in range(writers)]
    for t in threads:
        t.start()
    wait_until(f"{min_acked} acknowledged commits", lambda: len(acked) >= min_acked or
               bool(failures))  # fmt: skip
    assert not failures, failures

    rs.kill_primary()  # SIGKILL, mid-stream: the writers are still committing
    for t in threads:
        t.join(30)
        assert not t.is_alive(), "a writer is still blocked after the primary was killed"
    assert len(in_doubt) == writers  # every writer saw its connection die
    with lock:
        acknowledged = set(acked)

    new_primary = rs.promote()
    with psycopg.connect(rs.libpq_dsn(), autocommit=True, connect_timeout=10) as conn:
        assert conn.info.port == new_primary.port
        present = _ids(conn)
    lost = acknowledged - present
    assert not lost, f"{len(lost)} acknowledged rows lost, e.g. {sorted(lost)[:5]}"
    phantom = present - acknowledged - in_doubt
    assert not phantom, f"rows nobody wrote: {sorted(phantom)[:5]}"


def test_promoted_standby_accepts_writes(replica_set: PostgresReplicaSet) -> None:
    rs = replica_set
    _create_table(rs)
    old_port, standby_port = rs.primary.port, rs.standby.port
    engine = make_engine(rs.dsn("postgres"))  # pool_pre_ping: survives the failover
    try:
        with engine.begin() as conn:
            assert conn.execute(text("SELECT inet_server_port()")).scalar_one() == old_port
            conn.execute(text("INSERT INTO acks VALUES (1, 0)"))

        rs.kill_primary()
        # Until promotion no node accepts writes, and the DSN must not settle for the
        # read-only standby.
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(rs.libpq_dsn(), connect_timeout=10).close()

        promoted = rs.promote()
        assert promoted.port == standby_port and rs.primary is promoted

        def write_after_failover() -> int:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO acks VALUES (2, 0)"))
                return int(conn.execute(text("SELECT inet_server_port()")).scalar_one())

        # Bounded: with synchronous_standby_names left set, this would block forever.
        port = Background(write_after_failover).result(30, "a write on the promoted node")
        assert port == standby_port
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_is_in_recovery()")).scalar_one() is False
            assert conn.execute(text("SHOW synchronous_standby_names")).scalar_one() == ""
            ids = conn.execute(text("SELECT id FROM acks ORDER BY id")).scalars().all()
        assert ids == [1, 2]
    finally:
        engine.dispose()


def test_rebuilt_old_primary_is_a_sync_standby_of_the_promoted_node(
    replica_set: PostgresReplicaSet,
) -> None:
    rs = replica_set
    _create_table(rs)
    rs.kill_primary()
    new_primary = rs.promote()
    execute(new_primary.libpq_dsn(), "INSERT INTO acks VALUES (1, 0)",
            "a write on the promoted node, alone")  # fmt: skip

    rs.rebuild_standby()  # the old primary's node, from a fresh base backup
    assert rs.primary is new_primary and rs.standby.is_standby
    with new_primary.connect() as conn:
        assert conn.execute("SHOW synchronous_standby_names").fetchone() == ("FIRST 1 (standby1)",)
    execute(new_primary.libpq_dsn(), "INSERT INTO acks VALUES (2, 0)",
            "a write with the rebuilt standby up")  # fmt: skip
    with rs.standby.connect() as conn:  # remote_apply again: there once acknowledged
        assert _ids(conn) == {1, 2}

    rs.stop_standby()  # and commits are protected again: they wait for it

    def commit() -> None:
        with new_primary.connect() as conn:
            conn.execute("INSERT INTO acks VALUES (3, 0)")

    writer = Background(commit)
    wait_until("the commit to wait for the rebuilt standby",
               lambda: _waiting_for_standby(rs) == 1)  # fmt: skip
    assert not writer.done
    rs.start_standby()
    writer.result(60, "the commit after the rebuilt standby came back")


def test_replica_set_restarts_on_its_directory_with_the_same_dsn_and_roles(
    pg_dir: Path,
) -> None:
    base = pg_dir
    rs = PostgresReplicaSet(base, fsync=False)
    try:
        rs.start()
        _create_table(rs)
        dsn = rs.libpq_dsn()
        execute(dsn, "INSERT INTO acks VALUES (1, 0)", "a write before the failover")
        rs.kill_primary()
        promoted_port = rs.promote().port
        execute(dsn, "INSERT INTO acks VALUES (2, 0)", "a write after the failover")
        rs.stop()

        # A new process (e.g. `crossbook cluster` restarted) on the same directory: the
        # promoted node stays primary, the old primary comes back only as its standby.
        again = PostgresReplicaSet(base, fsync=False)
        rs = again
        again.start()
        assert again.libpq_dsn() == dsn
        assert again.primary.port == promoted_port and again.standby.is_standby
        rows = execute(dsn, "INSERT INTO acks VALUES (3, 0) RETURNING inet_server_port()",
                       "a write after the restart")  # fmt: skip
        assert rows == [(promoted_port,)]
        with again.standby.connect() as conn:
            assert _ids(conn) == {1, 2, 3}
    finally:
        rs.stop()
