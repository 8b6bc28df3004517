"""Each service process answers /healthz and Prometheus /metrics on its metrics port."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import nats

from crossbook.bus.server import NatsServer
from crossbook.cluster.client import AccountsClient
from crossbook.cluster.processes import accounts_process, engine_process
from crossbook.domain.ledger import Deposit
from crossbook.service import load_config


def test_services_report_health_and_metrics(nats_server: NatsServer, tmp_path: Path) -> None:
    config = load_config(tmp_path).exchange
    processes = [
        engine_process(m.symbol, tmp_path, nats_server.url, metrics_port=0) for m in config.markets
    ]
    processes.append(accounts_process(tmp_path, nats_server.url, metrics_port=0))
    try:
        for p in processes:
            p.start()

        async def deposit() -> None:
            nc = await nats.connect(nats_server.url)
            try:
                await AccountsClient(nc).submit_many(
                    [Deposit(seq=0, ts=0, user=1, asset="BTC", amount=5, network="t",
                             deposit_id="d1")]
                )  # fmt: skip
            finally:
                await nc.close()

        asyncio.run(deposit())
        accounts = processes[-1]
        base = f"http://127.0.0.1:{accounts.ready['metrics_port']}"
        health = httpx.get(f"{base}/healthz", timeout=5)
        assert health.status_code == 200 and health.json()["healthy"] is True
        assert health.json()["last_seq"] >= 1
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        assert 'crossbook_inputs_total{service="accounts-0"} 1.0' in metrics
        assert 'crossbook_lag{service="accounts-0"} 0.0' in metrics
        assert "crossbook_commit_seconds_bucket" in metrics
        engine = processes[0]
        engine_base = f"http://127.0.0.1:{engine.ready['metrics_port']}"
        assert httpx.get(f"{engine_base}/healthz", timeout=5).status_code == 200
        assert "crossbook_queue_depth" in httpx.get(f"{engine_base}/metrics", timeout=5).text
        assert httpx.get(f"{base}/nothing", timeout=5).status_code == 404
    finally:
        for p in processes:
            p.stop()
