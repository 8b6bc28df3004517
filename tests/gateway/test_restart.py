"""The exchange process stopped (SIGTERM) or killed (SIGKILL) and started again on the
same data dir: acknowledged orders, balances, trades and klines are all still there."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.gateway.conftest import ROOT, start_server, stop_server
from tests.gateway.test_binance_rest import Client


def snapshot(server: object) -> dict[str, object]:
    alice = Client(server, server.users[0])  # type: ignore[arg-type]
    http = httpx.Client(base_url=server.url)  # type: ignore[attr-defined]
    return {
        "balances": alice.signed("GET", "/api/v3/account").json()["balances"],
        "open": [o["orderId"] for o in alice.signed("GET", "/api/v3/openOrders").json()],
        "trades": http.get("/api/v3/trades", params={"symbol": "BTCUSDT"}).json(),
        "klines": http.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m"}).json(),
        "depth": http.get("/api/v3/depth", params={"symbol": "BTCUSDT"}).json(),
    }


def trade_a_little(server: object) -> None:
    alice = Client(server, server.users[0])  # type: ignore[arg-type]
    bob = Client(server, server.users[1])  # type: ignore[arg-type]
    for i in range(3):
        alice.signed("POST", "/api/v3/order", symbol="BTCUSDT", side="SELL", type="LIMIT",
                     timeInForce="GTC", quantity="0.01000", price=f"{50000 + i}.00")  # fmt: skip
    bob.signed("POST", "/api/v3/order", symbol="BTCUSDT", side="BUY", type="LIMIT",
               timeInForce="GTC", quantity="0.01500", price="50001.00")  # fmt: skip


def test_clean_restart_keeps_everything(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data)
    trade_a_little(server)
    before = snapshot(server)
    assert stop_server(server) == 0
    server = start_server(data)
    try:
        after = snapshot(server)
    finally:
        assert stop_server(server) == 0
    assert after == before
    assert len(before["trades"]) == 2 and before["klines"]  # type: ignore[arg-type]


def test_exchange_killed_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data)
    trade_a_little(server)
    before = snapshot(server)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=10)
    server = start_server(data)
    try:
        after = snapshot(server)
    finally:
        assert stop_server(server) == 0
    assert after == before
    verify = subprocess.run(
        [sys.executable, "-m", "crossbook.cli", "verify", "--data-dir", str(data)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
