"""Rate limits shared by several gateways through one Redis (a private redis-server).

Two independent gateways over the same Redis share one budget per IP, per API key and
per key's order rate: requests spread over both are answered 429 exactly when the
shared limit is exceeded. With memory storage each gateway has its own budget (the
same requests pass). Redis down or hanging mid-run: no 500, limits enforced per process
(fail open to local counters), logged once without credentials, shared again once
Redis is back. Finally two real ``crossbook run --rate-limit-storage`` processes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from structlog.testing import capture_logs

from crossbook.gateway.ratelimit import RateLimitMiddleware, RateLimits, storage_label
from crossbook.infra.ports import free_port
from crossbook.infra.redis import RedisServer
from tests.gateway.conftest import Server, start_server, stop_server

OK, LIMITED = 200, 429
STORAGES = ["redis", "memory"]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as server:  # fails (never skips) if it can't
        yield server


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The app behind the middleware: 200 for every request; runs a lifespan."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].removeprefix("lifespan.")
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def gateways(
    storage: str, redis_server: RedisServer | None = None, **limits: int
) -> tuple[RateLimitMiddleware, RateLimitMiddleware]:
    """Two independent gateways' middlewares: over one Redis, or each with its memory."""
    if storage == "redis":
        assert redis_server is not None
        uri = redis_server.limits_uri
    else:
        uri = "memory://"
    config = RateLimits(storage_uri=uri, **limits)
    return RateLimitMiddleware(hello, config), RateLimitMiddleware(hello, config)


async def call(
    gateway: RateLimitMiddleware,
    path: str,
    *,
    ip: str = "10.0.0.1",
    key: str | None = None,
    method: str = "GET",
) -> int:
    transport = httpx.ASGITransport(gateway, raise_app_exceptions=False, client=(ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.request(
            method, path, headers={"X-MBX-APIKEY": key} if key else None
        )
    if response.status_code == LIMITED:
        assert response.headers["retry-after"] == "1"
    return response.status_code


async def close(*mws: RateLimitMiddleware) -> None:
    for mw in mws:
        await mw.aclose()


@pytest.mark.parametrize("storage", STORAGES)
def test_ip_budget_is_shared_across_gateways(storage: str, redis_server: RedisServer) -> None:
    a, b = gateways(storage, redis_server, ip_weight_per_minute=10)
    order, light = "/api/v3/order", "/v1/markets"  # weights 4 and 1
    plan = [(a, order), (b, order), (a, order), (b, light), (a, light), (b, light), (a, light)]
    # shared: 4, 8, (12 > 10), 9, 10, (11), (11); memory: a 4 8 9 10, b 4 5 6
    expected = {
        "redis": [OK, OK, LIMITED, OK, OK, LIMITED, LIMITED],
        "memory": [OK] * 7,
    }[storage]

    async def main() -> None:
        try:
            assert [await call(gw, path) for gw, path in plan] == expected
            # what is left: nothing shared; 4 more on b alone with memory storage
            more = [await call(gw, light) for gw in (a, b) * 5]
            assert more.count(OK) == {"redis": 0, "memory": 4}[storage]
            # another IP has its own budget
            assert await call(b, light, ip="10.0.0.2") == OK
        finally:
            await close(a, b)

    asyncio.run(main())
    if storage == "redis":  # the counters are in Redis, under the client's IP
        client = redis.Redis.from_url(redis_server.url)
        try:
            assert any(b"/ip/10.0.0.1/" in k for k in client.keys("LIMITS*"))
        finally:
            client.close()


@pytest.mark.parametrize("storage", STORAGES)
def test_key_budget_is_shared_across_gateways_and_ips(
    storage: str, redis_server: RedisServer
) -> None:
    a, b = gateways(storage, redis_server, ip_weight_per_minute=1000, key_weight_per_minute=6)
    klines = "/api/v3/klines"  # weight 2: three calls fill the key's budget of 6
    expected = {
        "redis": [OK, OK, OK, LIMITED, LIMITED, LIMITED, LIMITED, LIMITED],
        "memory": [OK] * 6 + [LIMITED] * 2,
    }[storage]

    async def main() -> None:
        try:
            statuses = [
                await call(gw, klines, ip=f"10.0.1.{i}", key="shared-key")
                for i, gw in enumerate((a, b) * 4)
            ]
            assert statuses == expected
            # per key, not global: another key and key-less requests still pass on both
            for gw in (a, b):
                assert await call(gw, klines, ip="10.0.1.0", key="other-key") == OK
                assert await call(gw, klines, ip="10.0.1.0") == OK
        finally:
            await close(a, b)

    asyncio.run(main())


@pytest.mark.parametrize("storage", STORAGES)
def test_order_rate_is_shared_across_gateways(storage: str, redis_server: RedisServer) -> None:
    a, b = gateways(storage, redis_server, orders_per_second=2)
    expected = {"redis": [OK, OK, LIMITED, LIMITED], "memory": [OK] * 4}[storage]

    async def main() -> None:
        try:
            statuses = [
                await call(gw, "/v1/orders", method="POST", key="trader") for gw in (a, b, a, b)
            ]
            assert statuses == expected
        finally:
            await close(a, b)

    asyncio.run(main())


def test_redis_outage_fails_open_to_per_process_limits(redis_server: RedisServer) -> None:
    a, b = gateways("redis", redis_server, ip_weight_per_minute=5)
    for gw in (a, b):
        gw.retry_seconds = 0.2
    light = "/v1/markets"

    async def main() -> None:
        try:
            assert [await call(gw, light) for gw in (a, b, a)] == [OK] * 3  # shared: 3 of 5
            redis_server.stop()
            with capture_logs() as logs:
                # no 500: each gateway now counts on its own (a fresh budget of 5 each)
                assert [await call(a, light) for _ in range(6)] == [OK] * 5 + [LIMITED]
                assert [await call(b, light) for _ in range(6)] == [OK] * 5 + [LIMITED]
                assert a.shared_storage_down and b.shared_storage_down
            warnings = [e for e in logs if e["log_level"] == "warning"]
            assert len(warnings) == 2  # once per gateway and outage, not per request
            for event in warnings:
                assert "rate-limit storage unavailable" in event["event"]
                assert event["storage"] == redis_server.limits_uri
                assert event["error"] == "ConnectionError"

            redis_server.start()  # same port, empty (nothing persisted)
            await asyncio.sleep(0.25)
            with capture_logs() as logs:
                statuses = [await call(gw, light) for gw in (a, b) * 3]
            # each gateway probes once, finds Redis, and counts there again: 5 shared
            assert statuses == [OK] * 5 + [LIMITED]
            assert not a.shared_storage_down and not b.shared_storage_down
            back = [e for e in logs if "available again" in e["event"]]
            assert len(back) == 2 and all(e["outage_seconds"] > 0 for e in back)
        finally:
            await close(a, b)

    asyncio.run(main())


def test_hanging_redis_times_out_instead_of_stalling(redis_server: RedisServer) -> None:
    a, _ = gateways("redis", redis_server, ip_weight_per_minute=100)
    pid = redis_server.pid
    assert pid is not None

    async def main() -> None:
        try:
            assert await call(a, "/v1/markets") == OK  # connected
            os.kill(pid, signal.SIGSTOP)
            try:
                with capture_logs() as logs:
                    started = time.monotonic()
                    assert await call(a, "/v1/markets") == OK
                    took = time.monotonic() - started
                    assert await call(a, "/v1/markets") == OK  # no new probe yet: instant
                    after = time.monotonic() - started - took
            finally:
                os.kill(pid, signal.SIGCONT)
            assert took < 3.0, took  # two 0.5 s timeouts (one retry), not a stall
            assert after < 0.5, after
            assert [e["error"] for e in logs if e["log_level"] == "warning"] == ["TimeoutError"]
        finally:
            await a.aclose()

    asyncio.run(main())


def test_logs_never_show_the_storage_password() -> None:
    port = free_port()  # nothing listens there
    uri = f"async+redis://:s3cret-pass@127.0.0.1:{port}/0?password=s3cret-query"
    assert storage_label(uri) == f"async+redis://127.0.0.1:{port}"
    gw = RateLimitMiddleware(hello, RateLimits(storage_uri=uri))

    async def main() -> None:
        try:
            with capture_logs() as logs:
                assert await call(gw, "/v1/markets", key="my-api-key") == OK
        finally:
            await gw.aclose()
        assert len(logs) == 1 and logs[0]["storage"] == f"async+redis://127.0.0.1:{port}"
        assert "s3cret" not in repr(logs) and "my-api-key" not in repr(logs)

    asyncio.run(main())


def test_lifespan_shutdown_closes_the_redis_connections(redis_server: RedisServer) -> None:
    gw, _ = gateways("redis", redis_server)
    probe = redis.Redis.from_url(redis_server.url)

    def clients() -> int:
        return int(probe.info("clients")["connected_clients"])

    async def main() -> None:
        inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        sent: list[str] = []

        async def send(message: dict[str, str]) -> None:
            sent.append(message["type"])

        task = asyncio.create_task(gw({"type": "lifespan"}, inbox.get, send))
        await inbox.put({"type": "lifespan.startup"})
        assert await call(gw, "/v1/markets") == OK
        assert clients() == 2  # the probe and the gateway
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(task, 5)
        assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
        deadline = time.monotonic() + 5
        while clients() != 1:
            assert time.monotonic() < deadline, "gateway's Redis connection still open"
            await asyncio.sleep(0.01)

    try:
        asyncio.run(main())
    finally:
        probe.close()


# -- two real gateway processes (``crossbook run``) over one Redis -------------------


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    base = tmp_path_factory.mktemp("shared-limits")
    with RedisServer(base / "redis") as store:
        extra = ["--rate-limit-storage", store.url]  # a plain redis:// URL works too
        servers: list[Server | BaseException] = [RuntimeError("not started")] * 2

        def start(i: int) -> None:
            try:
                (base / f"exchange{i}").mkdir()
                servers[i] = start_server(base / f"exchange{i}" / "data", extra=extra)
            except BaseException as exc:
                servers[i] = exc

        threads = [threading.Thread(target=start, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        started = [s for s in servers if isinstance(s, Server)]
        try:
            for s in servers:
                if not isinstance(s, Server):
                    raise s
            yield started
        finally:
            for s in started:
                code = stop_server(s)
                assert code == 0, s.log.read_text()[-5000:]


def test_two_gateway_processes_share_ip_and_key_budgets(two_servers: list[Server]) -> None:
    a, b = two_servers
    # loopback source addresses the start-up pings (from 127.0.0.1) have not used
    clients = [
        httpx.Client(transport=httpx.HTTPTransport(local_address=f"127.0.0.{i}"), timeout=10)
        for i in (2, 3, 4)
    ]
    # depth with limit=5000 weighs 250: the default 6000 per minute is 24 calls
    params = {"symbol": "BTCUSDT", "limit": "5000"}
    try:
        one_ip, two_ips = clients[2], clients[:2]
        statuses = [
            one_ip.get(f"{srv.url}/api/v3/depth", params=params).status_code for srv in (a, b) * 13
        ]
        assert statuses == [OK] * 24 + [LIMITED] * 2
        # one API key from two other IPs through both processes: 24 calls in all again
        # (12 per IP, half of each IP's own budget)
        statuses = [
            http.get(
                f"{srv.url}/api/v3/depth", params=params, headers={"X-MBX-APIKEY": "k-shared"}
            ).status_code
            for http, srv in zip(two_ips * 13, (a, b) * 13, strict=True)
        ]
        assert statuses == [OK] * 24 + [LIMITED] * 2
    finally:
        for http in clients:
            http.close()
