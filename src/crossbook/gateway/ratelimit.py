"""Request-weight rate limits per IP and per API key (the ``limits`` library).

Every HTTP request costs a weight (Binance's weights for its endpoints, 1 elsewhere)
against a moving one-minute window per IP and per API key; order placements also
count against a per-key order window. Over a limit: HTTP 429 with the API's error
body (``-1003`` for Binance paths) and ``Retry-After``. Counters live in memory
(one gateway) or in Redis (``storage_uri``, shared by several gateways).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import msgspec
from limits import RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

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


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, limits: RateLimits) -> None:
        self.app = app
        self.config = limits
        uri = limits.storage_uri
        if "+" not in uri.split(":", 1)[0]:
            uri = "async+" + uri  # the asyncio flavour of the same storage
        self.limiter = MovingWindowRateLimiter(storage_from_string(uri))
        self.ip_limit = RateLimitItemPerMinute(limits.ip_weight_per_minute)
        self.key_limit = RateLimitItemPerMinute(limits.key_weight_per_minute)
        self.order_limit = RateLimitItemPerSecond(limits.orders_per_second)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
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
        hit = self.limiter.hit
        ok = await hit(self.ip_limit, "ip", ip, cost=cost)
        if ok and key:
            ok = await hit(self.key_limit, "key", key, cost=cost)
            if ok and (method, path) in ORDER_PATHS:
                ok = await hit(self.order_limit, "orders", key)
        if ok:
            await self.app(scope, receive, send)
            return
        await self._reject(path, send)

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
