"""The private redis-server helper: loopback only, free port, no persistence, bounded
readiness wait, stop by PID, a clear error (with the log) when it cannot start."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import redis

from crossbook.infra.ports import free_port
from crossbook.infra.redis import RedisServer, RedisServerError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_starts_answers_and_stops(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    with server:
        assert server.running and server.ping()
        assert server.port != 6379
        assert server.url == f"redis://127.0.0.1:{server.port}"
        assert server.limits_uri == f"async+redis://127.0.0.1:{server.port}"
        pid = server.pid
        assert pid is not None and _alive(pid)
        client = redis.Redis.from_url(server.url, socket_timeout=2)
        try:
            assert client.config_get("bind") == {"bind": "127.0.0.1"}
            assert client.config_get("save") == {"save": ""}
            assert client.config_get("appendonly") == {"appendonly": "no"}
            dir_ = client.config_get("dir")["dir"]
            assert Path(dir_).resolve() == (tmp_path / "redis").resolve()
            client.set("k", "v")
            assert client.get("k") == b"v"
        finally:
            client.close()
    assert not server.running and server.pid is None
    assert not _alive(pid)
    assert not server.ping()
    assert (tmp_path / "redis" / "redis.log").exists()
    server.stop()  # idempotent


def test_restart_keeps_the_port_and_starts_empty(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis") as server:
        port = server.port
        client = redis.Redis.from_url(server.url, socket_timeout=2)
        try:
            client.set("k", "v")
            server.stop()
            assert not server.ping()
            server.start()
            assert server.port == port and server.ping()
            assert client.get("k") is None  # nothing persisted; the client reconnected
        finally:
            client.close()


def test_port_in_use_fails_with_the_server_log(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        server = RedisServer(tmp_path / "redis", port=port)
        with pytest.raises(RedisServerError) as info:
            server.start(timeout=5)
    message = str(info.value)
    assert "exited with code" in message and "Address already in use" in message
    assert not server.running


def test_refuses_default_port_and_missing_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(RedisServerError, match="default Redis port"):
        RedisServer(tmp_path / "redis", port=6379)
    monkeypatch.setenv("CROSSBOOK_REDIS_SERVER", str(tmp_path / "no-such-redis-server"))
    with pytest.raises(RedisServerError, match="not executable"):
        RedisServer(tmp_path / "redis").start()
    with pytest.raises(RedisServerError, match="cannot run"):
        RedisServer(tmp_path / "redis", binary=str(tmp_path / "missing")).start()
