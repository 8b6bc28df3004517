"""A real Crossbook server for API tests: ``crossbook run --demo`` in a subprocess on a
free loopback port, with its own data dir; stopped with SIGTERM at teardown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    ws_url: str
    data_dir: Path
    proc: subprocess.Popen[bytes]
    credentials: dict[str, Any]
    log: Path

    @property
    def users(self) -> list[dict[str, Any]]:
        return list(self.credentials["users"])


def start_server(
    data_dir: Path,
    *,
    market_maker: bool = False,
    timeout: float = 60.0,
    extra: list[str] | None = None,
) -> Server:
    port = free_port()
    log = data_dir.parent / f"server-{port}.log"
    args = [sys.executable, "-m", "crossbook.cli", "run", "--data-dir", str(data_dir),
            "--port", str(port), "--demo"]  # fmt: skip
    if not market_maker:
        args.append("--no-market-maker")
    args += extra or []
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    creds_path = data_dir / "demo-credentials.json"
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if (
                httpx.get(f"{url}/api/v3/ping", timeout=1).status_code == 200
                and creds_path.exists()
            ):
                credentials = json.loads(creds_path.read_text())
                # the demo deposits are submitted after start: wait for them
                if len(credentials.get("users", [])) >= 2:
                    break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"server did not start in {timeout}s:\n{log.read_text()}")
        time.sleep(0.2)
    time.sleep(0.3)
    return Server(url, f"ws://127.0.0.1:{port}", data_dir, proc, credentials, log)


def stop_server(server: Server, timeout: float = 30.0) -> int:
    server.proc.send_signal(signal.SIGTERM)
    try:
        return server.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        raise


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("exchange") / "data"
    srv = start_server(data_dir)
    try:
        yield srv
    finally:
        code = stop_server(srv)
        assert code == 0, srv.log.read_text()[-5000:]
