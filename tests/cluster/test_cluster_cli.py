"""``crossbook cluster`` supervises its services: one that dies is started again."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

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
