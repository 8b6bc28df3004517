"""``crossbook cluster`` supervises its services: one that dies is started again."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from crossbook.verify import verify
from tests.gateway.conftest import start_server, stop_server
from tests.gateway.test_binance_rest import Client


def engine_pid(data_dir: Path) -> int | None:
    found = subprocess.run(
        ["pgrep", "-f", f"service engine --market BTCUSDT --data-dir {data_dir}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    pids = [int(p) for p in found.stdout.split()]
    return pids[0] if pids else None


def place(client: Client, price: str) -> int:
    r = client.signed("POST", "/api/v3/order", symbol="BTCUSDT", side="BUY", type="LIMIT",
                      timeInForce="GTC", quantity="0.001", price=price)  # fmt: skip
    assert r.status_code == 200, r.text
    return int(r.json()["orderId"])


def place_through_failover(client: Client, price: str, coid: str, timeout: float = 30) -> int:
    """Place an order as a careful client does while the exchange fails over: a 503
    (nobody took it, or the outcome is unknown) is sent again with the same client
    order id; "duplicate" means an earlier try went through: look that one up."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.signed("POST", "/api/v3/order", symbol="BTCUSDT", side="BUY",
                          type="LIMIT", timeInForce="GTC", quantity="0.001", price=price,
                          newClientOrderId=coid)  # fmt: skip
        if r.status_code == 200:
            return int(r.json()["orderId"])
        if r.status_code == 400 and "Duplicate" in r.text:
            found = client.signed("GET", "/api/v3/order", symbol="BTCUSDT",
                                  origClientOrderId=coid)  # fmt: skip
            assert found.status_code == 200, found.text
            return int(found.json()["orderId"])
        assert r.status_code == 503, r.text
        assert r.json()["code"] in (-1001, -1007), r.text
        assert time.monotonic() < deadline, f"no order through the failover in {timeout}s"
        time.sleep(0.5)


def test_engine_killed_under_crossbook_cluster_is_started_again(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir, deployment="cluster", extra=["--no-rate-limits"])
    try:
        client = Client(server, server.users[0])
        place(client, "20000")
        killed = engine_pid(data_dir)
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        second = place(client, "20001")  # waits for the engine to be back
        deadline = time.monotonic() + 30
        while engine_pid(data_dir) in (None, killed):
            assert time.monotonic() < deadline, "the engine was not started again"
            time.sleep(0.1)
        r = client.signed("GET", "/api/v3/order", symbol="BTCUSDT", orderId=second)
        assert r.status_code == 200 and r.json()["status"] == "NEW", r.text
        assert "started it again" in server.log.read_text()
    finally:
        assert stop_server(server) == 0, server.log.read_text()[-3000:]
    report = verify(data_dir)
    assert report.ok, [(name, errors) for name, errors in report.checks if errors]


def test_cluster_with_standbys_survives_its_leading_engine(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir, deployment="cluster", extra=["--no-rate-limits", "--standbys"])
    try:
        client = Client(server, server.users[0])
        place(client, "20000")
        found = subprocess.run(
            ["pgrep", "-f", f"service engine --market BTCUSDT --data-dir {data_dir}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert len(found.stdout.split()) == 2, "a leader and a standby"
        leader_out = data_dir / "logs" / "engine-BTCUSDT.out"
        assert '"ready": true' in leader_out.read_text()
        leader = next(
            int(pid) for pid in found.stdout.split()
            if "engine-BTCUSDT.out" in Path(f"/proc/{pid}/fd/1").resolve().name
        )  # fmt: skip
        os.kill(leader, signal.SIGKILL)
        second = place(client, "20001")  # served by the standby once it leads
        r = client.signed("GET", "/api/v3/order", symbol="BTCUSDT", orderId=second)
        assert r.status_code == 200 and r.json()["status"] == "NEW", r.text
    finally:
        assert stop_server(server) == 0, server.log.read_text()[-3000:]
    report = verify(data_dir)
    assert report.ok, [(name, errors) for name, errors in report.checks if errors]


@pytest.mark.parametrize(
    "service", [["accounts"], ["marketdata"], ["ledger-writer", "--database-url", "x"]]
)
def test_a_service_for_a_shard_that_does_not_exist_is_refused(
    service: list[str], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from typer.testing import CliRunner

    from crossbook.cli import app

    args = ["service", *service, "--data-dir", str(tmp_path), "--shard", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    said = result.output + capfd.readouterr().err
    assert "shard 1 does not exist: the deployment has 1 (0..0)" in said


def test_the_embedded_exchange_refuses_a_data_dir_of_several_shards(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from typer.testing import CliRunner

    from crossbook.cli import app
    from crossbook.exchange.core import ExchangeConfig
    from crossbook.service import DataDirConfig, load_config

    config = ExchangeConfig(accounts_shards=2)
    load_config(tmp_path, DataDirConfig(kind="exchange", exchange=config))
    result = CliRunner().invoke(app, ["run", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    said = " ".join((result.output + capfd.readouterr().err).split())
    assert "a deployment of 2 accounts shards: run it with crossbook cluster" in said


def test_sharded_cluster_with_standbys_survives_the_leader_of_a_shard(tmp_path: Path) -> None:
    """Two accounts shards with a standby each: the leader of shard 1 SIGKILLed, its
    standby takes over, orders of both shards' users go on, and the logs verify."""
    data_dir = tmp_path / "data"
    server = start_server(data_dir, deployment="sharded", extra=["--no-rate-limits", "--standbys"])
    try:
        clients = {u["userId"] % 2: Client(server, u) for u in server.users[:2]}
        assert set(clients) == {0, 1}, "the demo users are on both shards"
        for client in clients.values():  # a failover may take the gateway's full timeout
            client.http = httpx.Client(base_url=server.url, timeout=30)
        place(clients[1], "20000")
        found = subprocess.run(
            ["pgrep", "-f", f"service accounts --shard 1 --data-dir {data_dir}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert len(found.stdout.split()) == 2, "a leader and a standby"
        leader = next(
            int(pid) for pid in found.stdout.split()
            if Path(f"/proc/{pid}/fd/1").resolve().name == "accounts-1.out"
        )  # fmt: skip
        os.kill(leader, signal.SIGKILL)
        # once NATS has dropped the dead leader's connection, the gateway holds the
        # order until the standby leads (a request sent before that may be lost with
        # it: the 503 "outcome unknown" that place_through_failover handles)
        time.sleep(0.5)
        second = place_through_failover(clients[1], "20001", "after-kill")
        place(clients[0], "20002")
        r = clients[1].signed("GET", "/api/v3/order", symbol="BTCUSDT", orderId=second)
        assert r.status_code == 200 and r.json()["status"] == "NEW", r.text
    finally:
        assert stop_server(server) == 0, server.log.read_text()[-3000:]
    report = verify(data_dir)
    assert report.ok, [(name, errors) for name, errors in report.checks if errors]
