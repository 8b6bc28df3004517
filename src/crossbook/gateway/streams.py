"""WebSocket streams: Binance-compatible market data and user data, fanned out.

Each durable batch from the runtime is turned into stream messages once: every
message is encoded a single time per form (raw for ``/ws``, wrapped as
``{"stream", "data"}`` for ``/stream``) and the same bytes are queued to every
subscriber. Each connection has a bounded send queue; a consumer that falls that far
behind is disconnected (close code 1008) rather than buffered without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import msgspec
import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect

from crossbook.domain.ledger import TransactionPosted
from crossbook.domain.markets import Market
from crossbook.domain.money import format_amount
from crossbook.gateway.orders import OrderTracker, OrderView
from crossbook.marketdata import DepthUpdate, KlineUpdate, MarketData, Trade, merge_depth_updates
from crossbook.marketdata import binance as fmt

log = structlog.get_logger("crossbook.streams")
encode = msgspec.json.encode

SEND_QUEUE = 2_000  # messages a connection may have pending before it is dropped
MAX_STREAMS = 1_024  # subscriptions per connection
MAX_INCOMING_PER_S = 10  # control messages per second per connection
PARTIAL_DEPTHS = (5, 10, 20)


def text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented WebSocket text frame (server to client, RFC 6455)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


class Connection:
    """One WebSocket client: its subscriptions and its bounded output.

    Under uvicorn the connection writes pre-built frames straight to its transport
    (one encoding of a message serves every subscriber, no task per message); the
    transport's write buffer is the bound. Elsewhere a bounded queue and a writer task
    do the same job. Either way a consumer too far behind is dropped.
    """

    MAX_BUFFERED = 4 << 20  # bytes waiting in the transport

    def __init__(self, ws: WebSocket, *, wrapped: bool) -> None:
        self.ws = ws
        self.wrapped = wrapped
        self.streams: set[str] = set()
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(SEND_QUEUE)
        self.dropped = False
        self._recent: list[float] = []
        sender = getattr(ws, "_send", None)
        transport = getattr(getattr(sender, "__self__", None), "transport", None)
        self.transport: asyncio.WriteTransport | None = (
            transport if hasattr(transport, "get_write_buffer_size") else None
        )

    def offer(self, text: str) -> None:
        if self.transport is not None:
            self.write_frame(text_frame(text.encode()))
            return
        if self.dropped:
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self._drop()

    def write_frame(self, frame: bytes) -> None:
        t = self.transport
        if self.dropped or t is None:
            return
        if t.is_closing():
            self.dropped = True
            return
        if t.get_write_buffer_size() > self.MAX_BUFFERED:
            self._drop()
            return
        t.write(frame)

    def _drop(self) -> None:
        self.dropped = True
        log.info("slow consumer dropped", client=str(self.ws.client))
        if self.transport is not None:
            self.transport.abort()
            return
        with contextlib.suppress(asyncio.QueueEmpty):
            while True:
                self.queue.get_nowait()
        self.queue.put_nowait(None)

    def allow_incoming(self) -> bool:
        now = time.monotonic()
        self._recent = [t for t in self._recent if now - t < 1.0]
        if len(self._recent) >= MAX_INCOMING_PER_S:
            return False
        self._recent.append(now)
        return True

    async def writer(self) -> None:
        if self.transport is not None:
            return  # frames go straight to the transport
        while True:
            text = await self.queue.get()
            if text is None:
                with contextlib.suppress(Exception):
                    await self.ws.close(code=1008, reason="slow consumer")
                return
            await self.ws.send_text(text)


def _frame_text(frame: bytes) -> str:
    n = frame[1]
    start = 2 if n < 126 else 4 if n == 126 else 10
    return frame[start:].decode()


class Hub:
    """Stream name -> subscribed connections, with one encoding per message and form."""

    def __init__(self) -> None:
        self.subscribers: dict[str, set[Connection]] = defaultdict(set)

    def has(self, stream: str) -> bool:
        return bool(self.subscribers.get(stream))

    def subscribe(self, conn: Connection, stream: str) -> None:
        self.subscribers[stream].add(conn)
        conn.streams.add(stream)

    def unsubscribe(self, conn: Connection, stream: str) -> None:
        subs = self.subscribers.get(stream)
        if subs is not None:
            subs.discard(conn)
            if not subs:
                del self.subscribers[stream]
        conn.streams.discard(stream)

    def drop(self, conn: Connection) -> None:
        for stream in list(conn.streams):
            self.unsubscribe(conn, stream)

    def publish(self, stream: str, payload: Any) -> None:
        subs = self.subscribers.get(stream)
        if not subs:
            return
        forms: dict[bool, bytes] = {}  # wrapped? -> the encoded frame, built once
        for conn in list(subs):
            frame = forms.get(conn.wrapped)
            if frame is None:
                body = {"stream": stream, "data": payload} if conn.wrapped else payload
                frame = forms[conn.wrapped] = text_frame(encode(body))
            if conn.transport is not None:
                conn.write_frame(frame)
            else:
                conn.offer(_frame_text(frame))


class MarketStreams:
    """Applies durable batches to market data and publishes Binance stream messages.

    Trades, klines and tickers go out with each batch. Book streams go out on a clock,
    as Binance's do: ``@depth@100ms`` every 100 ms and ``@depth`` every second, each
    message merging every change since the previous one of that stream (so update ids
    stay contiguous); partial books (``@depth5|10|20``) at the same speeds.
    """

    TICK_S = 0.1

    def __init__(self, marketdata: MarketData, markets: dict[str, Market]) -> None:
        self.md = marketdata
        self.markets = markets
        self.hub = Hub()
        self._pending_depth: dict[tuple[str, int], list[DepthUpdate]] = defaultdict(list)
        self._dirty_books: set[str] = set()
        self._dirty_slow: set[str] = set()
        self._ticks = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._clock(), name="depth-streams")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _clock(self) -> None:
        while True:
            await asyncio.sleep(self.TICK_S)
            try:
                self.flush_depth()
            except Exception as exc:  # never let one bad message stop the streams
                log.error("depth flush failed", error=repr(exc))

    def flush_depth(self) -> None:
        """Publish the merged book changes due on this tick."""
        self._ticks += 1
        speeds = (100, 1000) if self._ticks % 10 == 0 else (100,)
        hub = self.hub
        self._dirty_slow |= self._dirty_books
        for speed in speeds:
            suffix = "@100ms" if speed == 100 else ""
            for (symbol, s), parts in list(self._pending_depth.items()):
                if s != speed or not parts:
                    continue
                stream = f"{symbol.lower()}@depth{suffix}"
                if hub.has(stream):
                    m = self.markets[symbol]
                    merged = merge_depth_updates(parts)
                    # E is when this message is sent (as Binance's): the merge window is
                    # part of the stream's speed, not of its delivery
                    hub.publish(stream, fmt.depth_update_event(m, merged, time.time_ns()))
                self._pending_depth[(symbol, s)] = []
            dirty = self._dirty_books if speed == 100 else self._dirty_slow
            for symbol in dirty:
                m = self.markets[symbol]
                for n in PARTIAL_DEPTHS:
                    stream = f"{symbol.lower()}@depth{n}{suffix}"
                    if hub.has(stream):
                        hub.publish(stream, fmt.partial_depth_event(m, self.md.depth(symbol, n)))
        self._dirty_books = set()
        if 1000 in speeds:
            self._dirty_slow = set()

    def on_batch(self, items: list[tuple[Any, list[Any]]]) -> None:
        updates = self.md.apply(e for _, events in items for e in events)
        if not updates:
            return
        hub = self.hub
        depth: dict[str, list[DepthUpdate]] = defaultdict(list)
        latest: dict[tuple[str, str], Any] = {}
        trades_seen = False
        for u in updates:
            if isinstance(u, DepthUpdate):
                depth[u.market].append(u)
                continue
            m = self.markets[u.market]
            sym = u.market.lower()
            if isinstance(u, Trade):
                trades_seen = True
                if hub.has(f"{sym}@trade"):
                    hub.publish(f"{sym}@trade", fmt.trade_event(m, u))
                if hub.has(f"{sym}@aggTrade"):
                    hub.publish(f"{sym}@aggTrade", fmt.agg_trade_event(m, u))
            elif isinstance(u, KlineUpdate):
                stream = f"{sym}@kline_{u.interval}"
                if hub.has(stream):
                    if u.closed:
                        hub.publish(stream, fmt.kline_event(m, u))
                    else:
                        latest[(stream, "kline")] = (m, u)
            else:  # BookTicker, Ticker: only the newest of a batch matters
                latest[(u.market, type(u).__name__)] = (m, u)
        for symbol, parts in depth.items():
            # diff streams go out on the flush ticks, merged (contiguous update ids)
            for speed in (100, 1000):
                self._pending_depth[(symbol, speed)].extend(parts)
            self._dirty_books.add(symbol)
        for key, (m, u) in latest.items():
            sym = m.symbol.lower()
            if key[1] == "kline":
                hub.publish(key[0], fmt.kline_event(m, u))
            elif key[1] == "BookTicker":
                if hub.has(f"{sym}@bookTicker"):
                    hub.publish(f"{sym}@bookTicker", fmt.book_ticker_event(m, u))
            else:
                if hub.has(f"{sym}@ticker"):
                    hub.publish(f"{sym}@ticker", fmt.ticker_event(m, u))
                if hub.has(f"{sym}@miniTicker"):
                    hub.publish(f"{sym}@miniTicker", fmt.mini_ticker_event(m, u))
        if trades_seen and hub.has("!miniTicker@arr"):
            hub.publish(
                "!miniTicker@arr",
                [fmt.mini_ticker_event(self.markets[t.market], t) for t in self.md.tickers()],
            )
        if trades_seen and hub.has("!ticker@arr"):
            hub.publish(
                "!ticker@arr",
                [fmt.ticker_event(self.markets[t.market], t) for t in self.md.tickers()],
            )

    def valid_stream(self, name: str) -> bool:
        if name in ("!miniTicker@arr", "!ticker@arr"):
            return True
        sym, _, rest = name.partition("@")
        if sym.upper() not in self.markets or not rest:
            return False
        base = rest.removesuffix("@100ms").removesuffix("@1000ms")
        if base in ("depth", "trade", "aggTrade", "miniTicker", "ticker", "bookTicker"):
            return True
        if base in ("depth5", "depth10", "depth20"):
            return True
        if base.startswith("kline_"):
            from crossbook.marketdata import INTERVALS

            return base[6:] in INTERVALS
        return False


# ------------------------------------------------------------------ user data


class UserStreams:
    """Per-user executionReport / outboundAccountPosition / balanceUpdate events."""

    LISTEN_KEY_TTL = 60 * 60.0

    def __init__(self, gateway: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self.gw = gateway
        self.tracker = OrderTracker(gateway.markets)
        self.listen_keys: dict[str, tuple[int, float]] = {}
        self.by_user: dict[int, set[tuple[Connection, int | None]]] = defaultdict(set)
        self._clock = clock
        self._seed_open_orders()

    def _seed_open_orders(self) -> None:
        """Open orders from before this process started, so their reports are complete."""
        for symbol, book in self.gw.runtime.core.engine.books.items():
            for o in book.open_orders():
                v = OrderView(
                    symbol, o.order_id, o.owner, o.client_order_id, o.side, o.type,
                    o.time_in_force, o.price, o.quantity, 0, o.stop_price,
                    o.display_quantity, False, "", "new", "", o.quantity - o.leaves, 0,
                    o.leaves, 0, 0,
                )  # fmt: skip
                self.tracker.views[(symbol, o.order_id)] = v

    # listen keys (the older REST + /ws/<listenKey> way)
    def listen_key(self, user: int) -> str:
        for key, (owner, _) in self.listen_keys.items():
            if owner == user:
                self.listen_keys[key] = (user, self._clock() + self.LISTEN_KEY_TTL)
                return key
        key = secrets.token_urlsafe(45)[:60]
        self.listen_keys[key] = (user, self._clock() + self.LISTEN_KEY_TTL)
        return key

    def keepalive(self, user: int, key: str) -> None:
        owner = self.listen_keys.get(key)
        if owner is not None and owner[0] == user:
            self.listen_keys[key] = (user, self._clock() + self.LISTEN_KEY_TTL)

    def close_key(self, user: int, key: str) -> None:
        owner = self.listen_keys.get(key)
        if owner is not None and owner[0] == user:
            del self.listen_keys[key]

    def user_of_key(self, key: str) -> int | None:
        owner = self.listen_keys.get(key)
        if owner is None or owner[1] < self._clock():
            return None
        return owner[0]

    def attach(self, user: int, conn: Connection, subscription: int | None) -> None:
        self.by_user[user].add((conn, subscription))

    def detach(self, conn: Connection) -> None:
        for user in list(self.by_user):
            subs = self.by_user[user]
            for item in [s for s in subs if s[0] is conn]:
                subs.discard(item)
            if not subs:
                del self.by_user[user]

    def on_batch(self, items: list[tuple[Any, list[Any]]]) -> None:
        per_user: dict[int, list[dict[str, Any]]] = defaultdict(list)
        balances_touched: dict[int, set[str]] = defaultdict(set)
        last_fill_views: list[tuple[OrderView, int]] = []  # (view, index of its report)
        for _, events in items:
            for e in events:
                if type(e) is TransactionPosted:
                    if not self.by_user:
                        continue
                    for p in e.postings:
                        if p.account.startswith("user:"):
                            user = int(p.account.split(":")[1])
                            if user in self.by_user:
                                balances_touched[user].add(p.asset)
                    if e.type == "trade":
                        for v, index in last_fill_views:
                            self.tracker.fee_for(v, e)
                            per_user[v.owner][index] = self.execution_report(v, e.ts, "TRADE")
                    if e.type in ("deposit", "withdrawal", "withdrawal_hold", "adjustment"):
                        for p in e.postings:
                            if p.account.endswith(":available"):
                                user = int(p.account.split(":")[1])
                                if user in self.by_user:
                                    update = self.balance_update(p.asset, p.amount, e.ts)
                                    per_user[user].append(update)
                    continue
                changes = self.tracker.apply(e)
                last_fill_views = []
                for v, ev in changes:
                    if v.owner not in self.by_user:
                        continue  # nobody listening: keep the state, skip the message
                    x = _execution_type(ev)
                    reports = per_user[v.owner]
                    reports.append(self.execution_report(v, ev.ts, x))
                    if x == "TRADE":
                        last_fill_views.append((v, len(reports) - 1))
        if not self.by_user:
            return
        now_ms = time.time_ns() // 1_000_000
        for user, assets in balances_touched.items():
            if user in self.by_user:
                per_user[user].append(self.account_position(user, assets, now_ms))
        for user, payloads in per_user.items():
            for conn, subscription in list(self.by_user.get(user, ())):
                for payload in payloads:
                    if subscription is None:
                        conn.offer(encode(payload).decode())
                    else:
                        conn.offer(
                            encode({"subscriptionId": subscription, "event": payload}).decode()
                        )

    def execution_report(self, v: OrderView, ts: int, x: str) -> dict[str, Any]:
        from crossbook.gateway.binance_rest import STATUS, binance_type

        m = self.gw.markets[v.market]
        fill = v.fills[-1] if (x == "TRADE" and v.fills) else None
        status = STATUS.get(v.status, "NEW")
        last_qty = fill.quantity if fill else 0
        last_price = fill.price if fill else 0
        last_quote = last_price * last_qty * 10**m.quote_scale // m.notional_divisor
        commission_scale = (
            m.base_scale if (fill and fill.commission_asset == m.base) else m.quote_scale
        )
        return {
            "e": "executionReport", "E": ts // 1_000_000, "s": m.symbol,
            "c": v.client_order_id or f"cb{v.order_id}", "S": (v.side.name if v.side else "BUY"),
            "o": binance_type(v) if v.type else "LIMIT",
            "f": v.time_in_force.name if v.time_in_force else "GTC",
            "q": format_amount(v.quantity, m.base_scale),
            "p": format_amount(v.price, m.price_scale),
            "P": format_amount(v.stop_price, m.price_scale),
            "F": format_amount(v.display_quantity, m.base_scale), "g": -1,
            "C": v.client_order_id if x == "CANCELED" else "", "x": x, "X": status,
            "r": "NONE" if x != "REJECTED" else v.reason.upper(), "i": v.order_id,
            "l": format_amount(last_qty, m.base_scale),
            "z": format_amount(v.filled, m.base_scale),
            "L": format_amount(last_price, m.price_scale),
            "n": format_amount(fill.commission if fill else 0, commission_scale),
            "N": fill.commission_asset if fill else None, "T": ts // 1_000_000,
            "t": fill.trade_id if fill else -1, "I": 0, "w": v.is_open and v.status != "triggered",
            "m": bool(fill and fill.is_maker), "M": False, "O": v.created_ts // 1_000_000,
            "Z": format_amount(v.filled_quote(m), m.quote_scale),
            "Y": format_amount(last_quote, m.quote_scale),
            "Q": format_amount(v.quote_quantity, m.quote_scale),
            "W": v.created_ts // 1_000_000, "V": "EXPIRE_MAKER",
        }  # fmt: skip

    def account_position(self, user: int, assets: set[str], now_ms: int) -> dict[str, Any]:
        acc = self.gw.runtime.core.accounts
        return {
            "e": "outboundAccountPosition",
            "E": now_ms,
            "u": now_ms,
            "B": [
                {
                    "a": a,
                    "f": format_amount(acc.available(user, a), self.gw.assets[a].scale),
                    "l": format_amount(acc.held(user, a), self.gw.assets[a].scale),
                }
                for a in sorted(assets)
            ],
        }

    def balance_update(self, asset: str, delta: int, ts: int) -> dict[str, Any]:
        return {
            "e": "balanceUpdate",
            "E": ts // 1_000_000,
            "a": asset,
            "d": format_amount(delta, self.gw.assets[asset].scale),
            "T": ts // 1_000_000,
        }


def _execution_type(e: Any) -> str:
    return {
        "OrderAccepted": "NEW",
        "OrderRejected": "REJECTED",
        "OrderFilled": "TRADE",
        "OrderCancelled": "CANCELED",
        "OrderExpired": "EXPIRED",
        "OrderAmended": "REPLACED",
        "OrderTriggered": "NEW",
    }.get(type(e).__name__, "NEW")


# ---------------------------------------------------------------- endpoints


async def serve_market(
    ws: WebSocket,
    streams: MarketStreams,
    users: UserStreams,
    *,
    wrapped: bool,
    initial: list[str],
    listen_key: str | None,
) -> None:
    """``/ws``, ``/ws/<name>``, ``/stream?streams=``: SUBSCRIBE / UNSUBSCRIBE /
    LIST_SUBSCRIPTIONS control messages; a listen key path attaches user data."""
    await ws.accept()
    conn = Connection(ws, wrapped=wrapped)
    writer = asyncio.create_task(conn.writer())
    hub = streams.hub
    try:
        if listen_key is not None:
            user = users.user_of_key(listen_key)
            if user is not None:
                users.attach(user, conn, None)
        for name in initial:
            if streams.valid_stream(name):
                hub.subscribe(conn, name)
        while not conn.dropped:
            try:
                text = await ws.receive_text()
            except (WebSocketDisconnect, RuntimeError):
                break
            if not conn.allow_incoming():
                conn.offer(encode({"error": {"code": 1, "msg": "Too many requests"}}).decode())
                continue
            reply = control(conn, hub, streams, text)
            if reply is not None:
                conn.offer(encode(reply).decode())
    finally:
        hub.drop(conn)
        users.detach(conn)
        writer.cancel()
        with contextlib.suppress(BaseException):
            await writer


def control(conn: Connection, hub: Hub, streams: MarketStreams, text: str) -> Any:
    try:
        msg = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return {"error": {"code": 3, "msg": "Invalid JSON"}}
    if not isinstance(msg, dict):
        return {"error": {"code": 3, "msg": "Invalid request"}}
    method, params, rid = msg.get("method"), msg.get("params", []), msg.get("id")
    if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            return {
                "error": {"code": 2, "msg": "Invalid request: params must be streams"},
                "id": rid,
            }
        if method == "SUBSCRIBE":
            bad = [p for p in params if not streams.valid_stream(p)]
            if bad:
                return {"error": {"code": 2, "msg": f"Invalid stream name: {bad[0]}"}, "id": rid}
            if len(conn.streams | set(params)) > MAX_STREAMS:
                return {"error": {"code": 2, "msg": "Too many streams"}, "id": rid}
            for p in params:
                hub.subscribe(conn, p)
        else:
            for p in params:
                hub.unsubscribe(conn, p)
        return {"result": None, "id": rid}
    if method == "LIST_SUBSCRIPTIONS":
        return {"result": sorted(conn.streams), "id": rid}
    if method in ("SET_PROPERTY", "GET_PROPERTY"):
        return {"result": None if method == "SET_PROPERTY" else False, "id": rid}
    return {"error": {"code": 2, "msg": f"Unknown method: {method}"}, "id": rid}


async def serve_ws_api(ws: WebSocket, gw: Any, users: UserStreams) -> None:
    """``/ws-api/v3``: the user data subscription of current Binance clients."""
    from crossbook.auth.errors import ApiError
    from crossbook.auth.signing import verify_ws_api_params

    await ws.accept()
    conn = Connection(ws, wrapped=False)
    writer = asyncio.create_task(conn.writer())
    next_subscription = 0
    try:
        while not conn.dropped:
            try:
                text = await ws.receive_text()
            except (WebSocketDisconnect, RuntimeError):
                break
            if not conn.allow_incoming():
                continue
            try:
                msg = msgspec.json.decode(text)
                rid, method, params = msg.get("id"), msg.get("method"), msg.get("params") or {}
                if not isinstance(params, dict):
                    raise AttributeError("params must be an object")
            except (msgspec.DecodeError, AttributeError):
                conn.offer(
                    encode(
                        {"id": None, "status": 400, "error": {"code": -1000, "msg": "Invalid JSON"}}
                    ).decode()
                )
                continue
            if method == "ping":
                conn.offer(encode({"id": rid, "status": 200, "result": {}}).decode())
                continue
            if method == "time":
                conn.offer(
                    encode(
                        {"id": rid, "status": 200, "result": {"serverTime": gw.clock_ms()}}
                    ).decode()
                )
                continue
            if method != "userDataStream.subscribe.signature":
                conn.offer(
                    encode(
                        {
                            "id": rid,
                            "status": 400,
                            "error": {"code": -1100, "msg": f"Unknown method {method}"},
                        }
                    ).decode()
                )
                continue
            key = gw.auth.api_key(str(params.get("apiKey", "")))
            if key is None:
                conn.offer(
                    encode(
                        {
                            "id": rid,
                            "status": 401,
                            "error": {
                                "code": -2015,
                                "msg": "Invalid API-key, IP, or permissions for action.",
                            },
                        }
                    ).decode()
                )
                continue
            try:
                verify_ws_api_params(
                    key.secret, {k: str(v) for k, v in params.items()}, now_ms=gw.clock_ms()
                )
            except ApiError as exc:
                conn.offer(
                    encode(
                        {
                            "id": rid,
                            "status": exc.http_status,
                            "error": {"code": exc.code, "msg": exc.msg},
                        }
                    ).decode()
                )
                continue
            users.attach(key.user_id, conn, next_subscription)
            conn.offer(
                encode(
                    {"id": rid, "status": 200, "result": {"subscriptionId": next_subscription}}
                ).decode()
            )
            next_subscription += 1
    finally:
        users.detach(conn)
        writer.cancel()
        with contextlib.suppress(BaseException):
            await writer


async def serve_native(ws: WebSocket, gw: Any, streams: MarketStreams, users: UserStreams) -> None:
    """``/v1/ws``: market streams (the same names and messages as the Binance-compatible
    streams, SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS) plus a ``login`` request that
    attaches the user's private events and may ask for cancel-on-disconnect:
    ``{"id", "method": "login", "params": {"apiKey", "timestamp", "signature",
    "cancelOnDisconnect": true}}`` signed like the WebSocket API (params sorted by name,
    ``cancelOnDisconnect`` included). When a session that asked for it ends, all of its
    user's open orders in every market are cancelled."""
    from crossbook.auth.errors import ApiError
    from crossbook.auth.signing import verify_ws_api_params
    from crossbook.domain.commands import CancelAll

    await ws.accept()
    conn = Connection(ws, wrapped=True)
    writer = asyncio.create_task(conn.writer())
    cancel_user: int | None = None
    try:
        while not conn.dropped:
            try:
                text = await ws.receive_text()
            except (WebSocketDisconnect, RuntimeError):
                break
            if not conn.allow_incoming():
                conn.offer(encode({"error": {"code": 1, "msg": "Too many requests"}}).decode())
                continue
            try:
                msg = msgspec.json.decode(text)
            except msgspec.DecodeError:
                conn.offer(encode({"error": {"code": 3, "msg": "Invalid JSON"}}).decode())
                continue
            if isinstance(msg, dict) and msg.get("method") == "login":
                params = msg.get("params") or {}
                if not isinstance(params, dict):
                    params = {}
                rid = msg.get("id")
                key = gw.auth.api_key(str(params.get("apiKey", "")))
                try:
                    if key is None:
                        raise ApiError(
                            -2015, "Invalid API-key, IP, or permissions for action.", 401
                        )
                    verify_ws_api_params(
                        key.secret, {k: str(v) for k, v in params.items()}, now_ms=gw.clock_ms()
                    )
                except ApiError as exc:
                    reply = {
                        "id": rid,
                        "status": exc.http_status,
                        "error": {"code": exc.code, "msg": exc.msg},
                    }
                    conn.offer(encode(reply).decode())
                    continue
                users.attach(key.user_id, conn, None)
                if str(params.get("cancelOnDisconnect", "")).lower() == "true":
                    cancel_user = key.user_id
                conn.offer(
                    encode({"id": rid, "status": 200, "result": {"userId": key.user_id}}).decode()
                )
                continue
            reply = control(conn, streams.hub, streams, text)
            if reply is not None:
                conn.offer(encode(reply).decode())
    finally:
        streams.hub.drop(conn)
        users.detach(conn)
        writer.cancel()
        with contextlib.suppress(BaseException):
            await writer
        if cancel_user is not None:
            for symbol in gw.markets:
                with contextlib.suppress(Exception):
                    await gw.runtime.submit(
                        CancelAll(seq=0, ts=0, market=symbol, owner=cancel_user)
                    )
            log.info("cancelled on disconnect", user=cancel_user)
