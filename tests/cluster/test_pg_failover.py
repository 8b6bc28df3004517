"""``crossbook cluster --pg-standby``: the ledger's PostgreSQL primary is lost, its
synchronous standby is promoted, and history goes on (a failover drill)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import httpx

from crossbook.cluster.deploy import DATABASE, LocalCluster
from crossbook.infra.ports import free_port
from crossbook.infra.postgres import PostgresReplicaSet
from crossbook.verify import verify
from tests.cluster.test_cluster_cli import place
from tests.gateway.conftest import searchable_by_everyone
from tests.gateway.test_binance_rest import Client


def wait_for(what: str, check: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} within {timeout}s"
        time.sleep(0.1)


def history_ids(client: Client) -> set[int]:
    r = client.signed("GET", "/api/v3/allOrders", symbol="BTCUSDT")
    return {o["orderId"] for o in r.json()} if r.status_code == 200 else set()


def test_primary_lost_standby_promoted_history_goes_on(tmp_path: Path) -> None:
    searchable_by_everyone(tmp_path)
    data_dir = tmp_path / "cluster"
    port = free_port()
    cluster = LocalCluster(data_dir, port=port, demo=True, market_maker=False,
                           rate_limits=False, pg_standby=True)  # fmt: skip
    cluster.start()
    try:
        creds_path = data_dir / "demo-credentials.json"
        wait_for("demo credentials", creds_path.exists)
        user = json.loads(creds_path.read_text())["users"][0]
        server = SimpleNamespace(url=f"http://127.0.0.1:{port}")
        client = Client(server, user)  # type: ignore[arg-type]
        first = place(client, "20000")
        wait_for("the order in SQL history", lambda: first in history_ids(client))

        replica_set = cluster.postgres
        assert isinstance(replica_set, PostgresReplicaSet)
        with replica_set.standby.connect(DATABASE) as conn:  # synchronous: already there
            rows = conn.execute("SELECT count(*) FROM orders WHERE order_id = %s", (first,))
            assert rows.fetchone() == (1,)

        replica_set.kill_primary()
        replica_set.promote()
        second = place(client, "20001")  # the exchange does not wait for SQL
        wait_for("history after the failover", lambda: {first, second} <= history_ids(client))
        health = httpx.get(f"{server.url}/healthz", timeout=5).json()
        assert health["healthy"] is True
        assert not cluster.dead(), [p.name for p in cluster.dead()]
    finally:
        problems = cluster.stop()
    assert not problems, problems
    report = verify(data_dir)
    failed = {name: errors for name, errors in report.checks if errors}
    assert report.ok, failed
