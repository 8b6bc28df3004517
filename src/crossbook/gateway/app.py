"""The gateway application: one ASGI app serving REST and WebSocket on one port.

``create_app(data_dir, ...)`` wires the embedded exchange: on startup it recovers
the data dir (journal + snapshot), catches the SQL projection up, restores market
data, and starts the runtime; on shutdown it drains the queue, makes everything
durable, and snapshots market data.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.routing import Route, Router, WebSocketRoute
from starlette.websockets import WebSocket

from crossbook.exchange.core import ExchangeConfig
from crossbook.gateway import binance_rest, health, marketdata_rest, native_api
from crossbook.gateway.context import Gateway, HistoryUnavailable
from crossbook.gateway.projector import LedgerWriterProcess
from crossbook.gateway.ratelimit import RateLimitMiddleware, RateLimits
from crossbook.gateway.runtime import ExchangeRuntime
from crossbook.gateway.streams import (
    MarketStreams,
    UserStreams,
    serve_market,
    serve_native,
    serve_ws_api,
)
from crossbook.marketdata import MarketData
from crossbook.runtime import tune_gc

log = structlog.get_logger("crossbook.gateway")

MARKETDATA_FILE = "marketdata.snap"


@dataclass(frozen=True)
class ClusterSettings:
    """Where a gateway of the production layout finds the exchange."""

    nats_url: str
    shard: int = 0


@dataclass
class AppState:
    """Everything the running app holds (``app.state.crossbook``)."""

    data_dir: Path
    runtime: Any  # ExchangeRuntime, or a ClusterRuntime (same surface)
    gateway: Gateway | None = None
    market_streams: MarketStreams | None = None
    user_streams: UserStreams | None = None
    on_started: list[Callable[[AppState], Any]] = field(default_factory=list)
    fast_router: Any = None


def _load_marketdata(data_dir: Path, runtime: ExchangeRuntime) -> MarketData:
    """Market data as of the last clean shutdown, rolled forward over the journal.

    The snapshot file starts with the input seq it covers (8 bytes, little endian);
    only the journal's events after it are applied. Without a usable snapshot the
    whole journal is replayed (klines and tickers are rebuilt from the trades)."""
    from crossbook.domain.codec import events_decoder
    from crossbook.journal.framing import EVENTS

    markets = runtime.core.config.markets
    path = data_dir / MARKETDATA_FILE
    md: MarketData | None = None
    covered = 0
    if path.exists():
        try:
            raw = path.read_bytes()
            covered = int.from_bytes(raw[:8], "little")
            md = MarketData.restore(raw[8:])
        except Exception as exc:  # a damaged cache is rebuilt from the journal
            log.warning("market data snapshot unusable; rebuilding", error=repr(exc))
            md, covered = None, 0
    if md is None or {m.symbol for m in md.markets} != {m.symbol for m in markets}:
        md, covered = MarketData(markets), 0
    assert runtime.service is not None
    for _kind, _seq, payload in runtime.service.journal.records(after_seq=covered, kind=EVENTS):
        md.apply(events_decoder.decode(payload))
    return md


def _save_marketdata(data_dir: Path, md: MarketData, covered: int) -> None:
    tmp = data_dir / (MARKETDATA_FILE + ".tmp")
    tmp.write_bytes(covered.to_bytes(8, "little") + md.snapshot())
    tmp.replace(data_dir / MARKETDATA_FILE)


def create_app(
    data_dir: Path,
    *,
    config: ExchangeConfig | None = None,
    database_url: str | None = None,
    fsync: bool = True,
    auth: Any = None,
    rate_limits: RateLimits | None = None,
    cluster: ClusterSettings | None = None,
) -> FastAPI:
    """The app of the embedded exchange on ``data_dir``; with ``cluster``, a gateway of
    the production layout instead (the exchange runs in other processes, reached over
    NATS; SQL history is the ledger writer service's, at ``database_url``)."""
    from crossbook.ledger.db import default_url

    data_dir.mkdir(parents=True, exist_ok=True)
    runtime: Any
    if cluster is None:
        runtime = ExchangeRuntime(data_dir, config, fsync=fsync)
    elif config is not None and config.accounts_shards > 1:
        from crossbook.cluster.sharded_runtime import ShardedClusterRuntime

        runtime = ShardedClusterRuntime(data_dir, config, cluster.nats_url)
    else:
        from crossbook.cluster.gateway_runtime import ClusterRuntime

        runtime = ClusterRuntime(
            data_dir, config or ExchangeConfig(), cluster.nats_url, shard=cluster.shard
        )
    state = AppState(data_dir, runtime)
    url = database_url or default_url(data_dir)

    async def open_embedded() -> tuple[Any, MarketData]:
        runtime.open()
        assert runtime.service is not None
        projector = LedgerWriterProcess(data_dir, url)
        projector.catch_up(runtime.service.journal)
        projector.start()
        return projector, _load_marketdata(data_dir, runtime)

    async def open_cluster() -> tuple[Any, MarketData]:
        from crossbook.cluster.ledger import LedgerProgress, ShardedLedgerProgress

        boot = await runtime.connect()  # the view from a boot snapshot, if there is one
        md = MarketData.restore(boot.marketdata) if boot else MarketData(runtime.config.markets)
        await runtime.catch_up([md.apply])
        projector: Any
        if runtime.config.accounts_shards > 1:
            shards = runtime.config.accounts_shards
            projector = ShardedLedgerProgress(
                runtime.nc, url, shards, lambda: list(runtime.published_seqs)
            )
        else:
            projector = LedgerProgress(runtime.nc, url, shard=runtime.shard)
        await projector.start()
        return projector, md

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        projector, md = await (open_embedded() if cluster is None else open_cluster())
        auth_store = auth
        if auth_store is None:
            from crossbook.auth.store import AuthStore

            auth_store = AuthStore(url, data_dir=data_dir, auto_migrate=True)
        gw = Gateway(runtime, projector, auth_store, md)
        streams = MarketStreams(md, gw.markets)
        users = UserStreams(gw)
        gw.user_streams = users  # type: ignore[attr-defined]
        state.gateway, state.market_streams, state.user_streams = gw, streams, users
        if cluster is None:
            runtime.subscribe(projector.feed)
        runtime.subscribe(streams.on_batch, feed="market")
        runtime.subscribe(users.on_batch, feed="accounts")
        install_routes(app, state)
        await runtime.start()
        streams.start()
        tune_gc()  # long-lived state out of the collector's way: fewer, shorter pauses
        for hook in state.on_started:
            result = hook(state)
            if hasattr(result, "__await__"):
                await result
        log.info("exchange started", data_dir=str(data_dir), last_seq=runtime.published_seq)
        try:
            yield
        finally:
            await streams.stop()
            await runtime.stop()
            projector.stop()
            if cluster is None:  # gateways of a cluster rebuild market data from the log
                _save_marketdata(data_dir, md, runtime.published_seq)
            log.info("exchange stopped", last_seq=runtime.published_seq)

    app = FastAPI(
        title="Crossbook",
        version="0.1.0",
        description="Crossbook exchange API: native (/v1) and Binance-compatible (/api/v3).",
        lifespan=lifespan,
    )
    app.state.crossbook = state

    async def api_failure(request: Any, exc: Exception) -> Any:
        assert isinstance(exc, native_api.ApiFailure)
        return native_api.failure_response(exc)

    app.add_exception_handler(native_api.ApiFailure, api_failure)

    async def history_unavailable(request: Any, exc: Exception) -> Any:
        return native_api.failure_response(
            native_api.ApiFailure(503, "history_unavailable", "history is catching up; retry")
        )

    app.add_exception_handler(HistoryUnavailable, history_unavailable)

    from crossbook.cluster.client import ServiceUnavailable, SubmitError

    async def submit_failed(request: Any, exc: Exception) -> Any:
        if isinstance(exc, ServiceUnavailable):  # nobody took it: nothing was applied
            code, message = "unavailable", "the exchange is failing over; retry"
        else:
            code, message = "outcome_unknown", "no acknowledgement in time: look it up first"
        return native_api.failure_response(native_api.ApiFailure(503, code, message))

    app.add_exception_handler(SubmitError, submit_failed)
    return CrossbookApp(app, state, rate_limits or RateLimits())  # type: ignore[return-value]


class CrossbookApp:
    """The ASGI entry point: rate limits in front of everything; the Binance-compatible
    routes and the WebSocket endpoints served by a plain router (no framework
    middleware on the hot path); everything else (native API, OpenAPI, lifespan) by
    the FastAPI app."""

    FAST_PREFIXES = ("/api/", "/sapi/", "/fapi/", "/dapi/", "/ws", "/stream")

    def __init__(self, app: FastAPI, state: AppState, limits: RateLimits) -> None:
        self.app = app
        self.state = app.state
        self.fast = Router()
        state.fast_router = self.fast
        self._routes_seen = -1
        self._table_cache: dict[tuple[str, str], Any] = {}
        self.entry = RateLimitMiddleware(self._dispatch, limits)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.entry(scope, receive, send)

    async def _dispatch(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            endpoint = self._table.get((scope["method"], scope["path"]))
            if endpoint is not None:  # the plain HTTP routes: no router, no framework
                response = await endpoint(MiniRequest(scope, receive))
                await response(scope, receive, send)
                return
        if scope["type"] != "lifespan" and scope["path"].startswith(self.FAST_PREFIXES):
            await self.fast(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    @property
    def _table(self) -> dict[tuple[str, str], Any]:
        """(method, path) -> endpoint of the fast router's plain HTTP routes."""
        if self._routes_seen != len(self.fast.routes):
            table: dict[tuple[str, str], Any] = {}
            for route in self.fast.routes:
                if isinstance(route, Route) and "{" not in route.path:
                    for method in route.methods or ():
                        table.setdefault((method, route.path), route.endpoint)
            self._table_cache = table
            self._routes_seen = len(self.fast.routes)
        return self._table_cache


class MiniRequest:
    """What the plain HTTP handlers use of a request: headers, raw body, scope, method."""

    __slots__ = ("_body", "_headers", "receive", "scope")

    def __init__(self, scope: Any, receive: Any) -> None:
        self.scope = scope
        self.receive = receive
        self._body: bytes | None = None
        self._headers: Headers | None = None

    @property
    def method(self) -> str:
        return str(self.scope["method"])

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(scope=self.scope)
        return self._headers

    async def body(self) -> bytes:
        if self._body is None:
            chunks = []
            while True:
                message = await self.receive()
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            self._body = b"".join(chunks)
        return self._body


def install_routes(app: FastAPI, state: AppState) -> None:
    gw = state.gateway
    streams, users = state.market_streams, state.user_streams
    assert gw is not None and streams is not None and users is not None
    fast = state.fast_router
    fast.routes.extend(binance_rest.routes(gw))
    fast.routes.extend(marketdata_rest.routes(gw, binance_rest.handler))
    app.include_router(native_api.router(gw))

    async def ws_root(ws: WebSocket) -> None:
        await serve_market(ws, streams, users, wrapped=False, initial=[], listen_key=None)

    async def ws_named(ws: WebSocket) -> None:
        name = ws.path_params["name"]
        # /ws/<stream> subscribes to it; /ws/<listenKey> attaches user data
        if users.user_of_key(name) is not None:
            await serve_market(ws, streams, users, wrapped=False, initial=[], listen_key=name)
        else:
            initial = [s for s in name.split("/") if s]
            await serve_market(ws, streams, users, wrapped=False, initial=initial, listen_key=None)

    async def stream(ws: WebSocket) -> None:
        names = [s for s in ws.query_params.get("streams", "").split("/") if s]
        await serve_market(ws, streams, users, wrapped=True, initial=names, listen_key=None)

    async def ws_api(ws: WebSocket) -> None:
        await serve_ws_api(ws, gw, users)

    async def ws_native(ws: WebSocket) -> None:
        await serve_native(ws, gw, streams, users)

    app.router.routes.append(WebSocketRoute("/v1/ws", ws_native))
    app.router.routes.extend(health.routes(state))

    fast.routes.extend(
        [
            WebSocketRoute("/ws", ws_root),
            WebSocketRoute("/ws/{name:path}", ws_named),
            WebSocketRoute("/stream", stream),
            WebSocketRoute("/ws-api/v3", ws_api),
        ]
    )
