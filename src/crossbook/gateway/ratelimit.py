"""Request-weight rate limits per IP and per API key (the ``limits`` library).

Every HTTP request costs a weight (Binance's weights for its endpoints, 1 elsewhere)
against a moving one-minute window per IP and per API key; order placements also
count against a per-key order window. Over a limit: HTTP 429 with the API's error
body (``-1003`` for Binance paths) and ``Retry-After``.

Counters live in memory (``storage_uri="memory://"``: one gateway process) or in Redis
(``storage_uri="async+redis://HOST:PORT[/DB]"``, also ``async+rediss://`` and
``async+redis+unix://``), shared by every gateway process that names the same server:
a client's budget is then one budget however its requests are spread over the
gateways. The Redis client is ``redis-py``'s asyncio client (``limits``'
``implementation="redispy"``) with short socket timeouts (:data:`REDIS_TIMEOUT`) and
one immediate retry (a reconnect after a Redis restart), on a connection pool this
middleware owns and closes at lifespan shutdown.

Redis unreachable (down, restarting, timing out): **fail open to per-process limits**.
A request is never answered 500 because of the counter store, and the API does not go
down with it (fail-closed would turn a Redis outage into a whole-exchange outage);
neither is it left unprotected: each gateway process then enforces the same limits on
its own in-memory counters, so a client gets at most one budget per gateway process
while the outage lasts. The first failure logs a warning
(``rate-limit storage unavailable``, with the storage's scheme/host/port only: never
credentials from the URI, never API keys); Redis is probed again at most every
:data:`STORAGE_RETRY_SECONDS` by one request (the others keep using the local
counters), and when it answers again the shared counters are used again and
``rate-limit storage available again`` is logged with the outage's duration.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msgspec
import structlog
from limits import RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = structlog.get_logger("crossbook.ratelimit")

REDIS_SCHEMES = ("async+redis", "async+rediss", "async+redis+unix")
REDIS_TIMEOUT = 0.5
"""Seconds a Redis connect or command may take before the storage counts as down."""
STORAGE_RETRY_SECONDS = 1.0
"""While the shared storage is down, probe it again at most this often."""
STORAGE_ERRORS: tuple[type[BaseException], ...] = (StorageError, OSError, TimeoutError)

WEIGHTS: dict[tuple[str, str], int] = {
    ("GET", "/api/v3/exchangeInfo"): 20,
    ("GET", "/api/v3/account"): 20,
    ("GET", "/api/v3/allOrders"): 20,
    ("GET", "/api/v3/myTrades"): 20,
    ("GET", "/api/v3/openOrders"): 6,
    ("GET", "/api/v3/ticker/24hr"): 2,
    ("GET", "/api/v3/trades"): 25,
    ("GET", "/api/v3/historicalTrades"): 25,
    ("GET", "/api/v3/aggTrades"): 2,
    ("GET", "/api/v3/klines"): 2,
    ("GET", "/api/v3/order"): 4,
    ("GET", "/v1/orders/history"): 10,
    ("GET", "/v1/trades/history"): 10,
    ("GET", "/v1/ledger"): 10,
}
ORDER_PATHS = {("POST", "/api/v3/order"), ("POST", "/v1/orders")}


@dataclass(frozen=True)
class RateLimits:
    ip_weight_per_minute: int = 6_000
    key_weight_per_minute: int = 6_000
    orders_per_second: int = 50
    storage_uri: str = "memory://"
    enabled: bool = True


def weight(method: str, path: str, query: bytes) -> int:
    if path == "/api/v3/depth":
        limit = 100
        for part in query.split(b"&"):
            if part.startswith(b"limit="):
                try:
                    limit = int(part[6:])
                except ValueError:
                    limit = 100
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
    return WEIGHTS.get((method, path), 1)


def storage_label(uri: str) -> str:
    """The storage URI without credentials, query or path: safe to log."""
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return uri.split(":", 1)[0]
    return f"{parts.scheme}://{host}{port}"


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, limits: RateLimits) -> None:
        self.app = app
        self.config = limits
        uri = limits.storage_uri
        if not uri.startswith("async+"):
            uri = "async+" + uri  # the asyncio flavour of the same storage
        self.storage_uri = storage_label(uri)
        self._pool: Any = None
        options: dict[str, Any] = {"wrap_exceptions": True}
        if uri.split(":", 1)[0] in REDIS_SCHEMES:
            self._pool = _redis_pool(uri)
            options.update(implementation="redispy", connection_pool=self._pool)
        self.limiter = MovingWindowRateLimiter(storage_from_string(uri, **options))
        # per-process counters: the fallback while a shared storage is unreachable
        self.local: MovingWindowRateLimiter | None = None
        if not isinstance(self.limiter.storage, MemoryStorage):
            self.local = MovingWindowRateLimiter(MemoryStorage())
        self.retry_seconds = STORAGE_RETRY_SECONDS
        self._down_since: float | None = None  # monotonic start of the current outage
        self._retry_at = 0.0
        self.ip_limit = RateLimitItemPerMinute(limits.ip_weight_per_minute)
        self.key_limit = RateLimitItemPerMinute(limits.key_weight_per_minute)
        self.order_limit = RateLimitItemPerSecond(limits.orders_per_second)

    @property
    def shared_storage_down(self) -> bool:
        """True while the shared storage is unreachable (per-process limits apply)."""
        return self._down_since is not None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan" and self._pool is not None:
            await self.app(scope, receive, self._closing_send(send))
            return
        if scope["type"] != "http" or not self.config.enabled:
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        cost = weight(method, path, scope.get("query_string", b""))
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        key = ""
        for name, value in scope.get("headers", ()):
            if name in (b"x-mbx-apikey", b"cb-access-key"):
                key = value.decode("latin-1")[:128]
                break
        order = (method, path) in ORDER_PATHS
        if await self._allowed(ip, key, cost, order):
            await self.app(scope, receive, send)
            return
        await self._reject(path, send)

    async def _allowed(self, ip: str, key: str, cost: int, order: bool) -> bool:
        local = self.local
        if local is None:
            return await self._check(self.limiter, ip, key, cost, order)
        if self._down_since is not None:
            now = time.monotonic()
            if now < self._retry_at:
                return await self._check(local, ip, key, cost, order)
            self._retry_at = now + self.retry_seconds  # this request probes; others wait
        try:
            ok = await self._check(self.limiter, ip, key, cost, order)
        except STORAGE_ERRORS as exc:
            self._storage_failed(exc)
            return await self._check(local, ip, key, cost, order)
        if self._down_since is not None:
            self._storage_recovered()
        return ok

    async def _check(
        self, limiter: MovingWindowRateLimiter, ip: str, key: str, cost: int, order: bool
    ) -> bool:
        hit = limiter.hit
        ok = await hit(self.ip_limit, "ip", ip, cost=cost)
        if ok and key:
            ok = await hit(self.key_limit, "key", key, cost=cost)
            if ok and order:
                ok = await hit(self.order_limit, "orders", key)
        return ok

    def _storage_failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._retry_at = now + self.retry_seconds
        if self._down_since is not None:
            return  # still down: logged when the outage began
        self._down_since = now
        cause = exc.__cause__ if isinstance(exc, StorageError) and exc.__cause__ else exc
        log.warning(
            "rate-limit storage unavailable; enforcing limits per process until it is back",
            storage=self.storage_uri,
            error=type(cause).__name__,
            detail=str(cause)[:200],
            retry_seconds=self.retry_seconds,
        )

    def _storage_recovered(self) -> None:
        assert self._down_since is not None
        outage = time.monotonic() - self._down_since
        self._down_since = None
        log.info(
            "rate-limit storage available again; limits are shared again",
            storage=self.storage_uri,
            outage_seconds=round(outage, 3),
        )

    def _closing_send(self, send: Any) -> Send:
        async def closing_send(message: Any) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.aclose()
            await send(message)

        return closing_send

    async def aclose(self) -> None:
        """Close the Redis connection pool (if any); later requests reconnect."""
        if self._pool is not None:
            await self._pool.disconnect()

    async def _reject(self, path: str, send: Any) -> None:
        body: dict[str, Any]
        if path.startswith("/v1/"):
            body = {"error": {"code": "rate_limited", "message": "too many requests; slow down"}}
        else:
            body = {
                "code": -1003,
                "msg": "Too many requests; please use the websocket for live updates.",
            }
        payload = msgspec.json.encode(body)
        await send({
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"retry-after", b"1"),
            ],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": payload})


def _redis_pool(uri: str) -> Any:
    """redis-py's asyncio connection pool for a ``limits`` Redis URI (short timeouts,
    one immediate retry: enough to reconnect after a restart, never a long stall)."""
    from redis.asyncio import ConnectionPool
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    url = uri.removeprefix("async+").replace("redis+unix://", "unix://", 1)
    return ConnectionPool.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT,
        socket_connect_timeout=REDIS_TIMEOUT,
        retry=Retry(NoBackoff(), 1),
    )
