"""A real Crossbook server for API tests, with its own data dir on a free loopback port,
stopped with SIGTERM at teardown: ``crossbook run --demo`` (the embedded deployment) or
``crossbook cluster --demo`` (the production layout: JetStream, PostgreSQL and every
service its own process), or that with two accounts shards (``sharded``). The
``deployment`` fixture runs a module's tests on the first two; a module that overrides
it with ``ALL_DEPLOYMENTS`` runs them on all three."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from crossbook.infra.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


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


DEPLOYMENTS = ("embedded", "cluster")
ALL_DEPLOYMENTS = (*DEPLOYMENTS, "sharded")


def start_server(
    data_dir: Path,
    *,
    market_maker: bool = False,
    timeout: float = 90.0,
    extra: list[str] | None = None,
    deployment: str = "embedded",
) -> Server:
    port = free_port()
    log = data_dir.parent / f"server-{port}.log"
    command = {"embedded": "run", "cluster": "cluster", "sharded": "cluster"}[deployment]
    if command == "cluster":
        searchable_by_everyone(data_dir.parent)
    args = [sys.executable, "-m", "crossbook.cli", command, "--data-dir", str(data_dir),
            "--port", str(port), "--demo"]  # fmt: skip
    if deployment == "sharded":
        args += ["--accounts-shards", "2"]
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


def searchable_by_everyone(path: Path) -> None:
    """``o+x`` on ``path`` and its parents up to the temp root: the cluster's PostgreSQL
    runs as the ``postgres`` OS user (as root) and must reach its directory."""
    for p in [path, *path.parents]:
        if p == Path(p.anchor) or p == Path("/tmp"):
            break
        p.chmod(p.stat().st_mode | 0o001)


def stop_server(server: Server, timeout: float = 30.0) -> int:
    server.proc.send_signal(signal.SIGTERM)
    try:
        return server.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        raise


@pytest.fixture(scope="module", params=DEPLOYMENTS)
def deployment(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, deployment: str) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("exchange") / "data"
    srv = start_server(data_dir, deployment=deployment)
    try:
        yield srv
    finally:
        code = stop_server(srv)
        assert code == 0, srv.log.read_text()[-5000:]
