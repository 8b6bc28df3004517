"""Crossbook's native REST API (``/v1``), described by the app's OpenAPI document.

Authentication: an API key signs each request with three headers, ``CB-ACCESS-KEY``,
``CB-ACCESS-TIMESTAMP`` (ms) and ``CB-ACCESS-SIGN`` = lowercase hex
HMAC-SHA256(secret, timestamp + METHOD + path[?query] + body), checked over the raw
bytes received; or a session token from ``POST /v1/session`` (email and password) as
``Authorization: Bearer <token>``. Every user-scoped route acts on the caller only.
API keys are managed with ``POST /v1/api-keys`` {read, trade, withdraw, label} (the
secret is returned once), ``GET /v1/api-keys`` (no secrets) and
``DELETE /v1/api-keys/{key}`` (own keys only); a request signed with a key may not grant
or revoke more than that key's own permissions.
Amounts are decimal strings; errors are ``{"error": {"code", "message"}}``.
"""

import hmac
import secrets
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from crossbook.domain.commands import AmendOrder, CancelAll, CancelOrder, PlaceOrder
from crossbook.domain.enums import OrderType, SelfTradePrevention, Side, TimeInForce, Trigger
from crossbook.domain.markets import Market
from crossbook.domain.money import AmountError, format_amount, parse_amount
from crossbook.gateway.context import Gateway
from crossbook.gateway.orders import OrderView, order_from_events, own_part, rejection

RECV_WINDOW_MS = 5_000
SESSION_TTL_S = 12 * 3600


class ApiFailure(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def failure_response(exc: ApiFailure) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": exc.code, "message": exc.message}}, status_code=exc.status
    )


# ------------------------------------------------------------------ models


class MarketInfo(BaseModel):
    symbol: str
    base: str
    quote: str
    tick_size: str
    step_size: str
    min_quantity: str
    max_quantity: str
    min_notional: str


class AssetInfo(BaseModel):
    code: str
    scale: int


class Book(BaseModel):
    market: str
    update_id: int
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]


class TradeInfo(BaseModel):
    id: int
    price: str
    quantity: str
    taker_side: Literal["buy", "sell"]
    time: int


class Ticker(BaseModel):
    market: str
    last: str
    open: str
    high: str
    low: str
    volume: str
    quote_volume: str
    count: int
    best_bid: str
    best_ask: str


class Kline(BaseModel):
    open_time: int
    close_time: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    count: int
    closed: bool


class Balance(BaseModel):
    asset: str
    available: str
    held: str


class NewOrder(BaseModel):
    market: str
    side: Literal["buy", "sell"]
    type: Literal["limit", "market", "stop_limit", "stop_market"] = "limit"
    price: str | None = None
    quantity: str | None = None
    quote_quantity: str | None = None
    time_in_force: Literal["gtc", "ioc", "fok"] | None = None
    post_only: bool = False
    stop_price: str | None = None
    trigger: Literal["auto", "at_or_above", "at_or_below"] = "auto"
    display_quantity: str | None = None
    stp: Literal["none", "expire_taker", "expire_maker", "expire_both"] = "expire_maker"
    client_order_id: str = Field(default="", max_length=36)


class Amendment(BaseModel):
    price: str | None = None
    quantity: str | None = None


class Fill(BaseModel):
    trade_id: int
    price: str
    quantity: str
    fee: str
    fee_asset: str
    maker: bool


class Order(BaseModel):
    market: str
    order_id: int
    client_order_id: str
    side: str | None
    type: str | None
    time_in_force: str | None
    price: str
    quantity: str
    quote_quantity: str
    stop_price: str
    status: str
    reason: str
    filled: str
    filled_quote: str
    leaves: str
    created: int
    updated: int
    fills: list[Fill] = []


class Login(BaseModel):
    email: str
    password: str


class Session(BaseModel):
    token: str
    user_id: int
    expires: int


class CancelAfter(BaseModel):
    market: str
    seconds: int = Field(ge=0, le=86_400)


class NewApiKeyRequest(BaseModel):
    read: bool = True
    trade: bool = False
    withdraw: bool = False
    label: str = Field(default="", max_length=64)


class CreatedApiKey(BaseModel):
    api_key: str
    secret: str


class ApiKeyEntry(BaseModel):
    api_key: str
    read: bool
    trade: bool
    withdraw: bool
    label: str
    created: int
    revoked: bool


class LedgerEntry(BaseModel):
    tx_id: int
    type: str
    ref: str
    asset: str
    account: str
    amount: str
    time: int


# ------------------------------------------------------------------- router


def router(gw: Gateway) -> APIRouter:
    from crossbook.ledger import queries

    api = APIRouter(prefix="/v1")
    sessions: dict[str, tuple[int, float]] = {}
    deadman: dict[tuple[int, str], Any] = {}

    def market(symbol: str) -> Market:
        m = gw.markets.get(symbol.upper())
        if m is None:
            raise ApiFailure(404, "unknown_market", f"no market {symbol!r}")
        return m

    def dec(text: str | None, scale: int, name: str) -> int:
        if text is None or text == "":
            return 0
        try:
            value = parse_amount(text, scale)
        except AmountError as exc:
            raise ApiFailure(400, "invalid_amount", f"{name}: {exc}") from exc
        except TypeError as exc:
            raise ApiFailure(400, "invalid_amount", f"{name} must be a decimal string") from exc
        if value < 0:
            raise ApiFailure(400, "invalid_amount", f"{name} must not be negative")
        return value

    async def caller(
        request: Request,
        cb_access_key: Annotated[str | None, Header()] = None,
        cb_access_timestamp: Annotated[str | None, Header()] = None,
        cb_access_sign: Annotated[str | None, Header()] = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> tuple[int, Any]:
        """(user id, API key or None for a session) of an authenticated request."""
        if authorization and authorization.startswith("Bearer "):
            token = authorization[7:]
            found = sessions.get(token)
            if found is None or found[1] < time.monotonic():
                raise ApiFailure(401, "unauthenticated", "session expired or unknown")
            return found[0], None
        if not (cb_access_key and cb_access_timestamp and cb_access_sign):
            raise ApiFailure(401, "unauthenticated", "sign the request or use a session")
        key = gw.auth.api_key(cb_access_key)
        if key is None:
            raise ApiFailure(401, "unauthenticated", "invalid API key")
        if not cb_access_timestamp.isdigit():
            raise ApiFailure(401, "invalid_timestamp", "CB-ACCESS-TIMESTAMP must be ms")
        if abs(gw.clock_ms() - int(cb_access_timestamp)) > RECV_WINDOW_MS:
            raise ApiFailure(401, "invalid_timestamp", "timestamp outside the 5 s window")
        body = await request.body()
        # the path as sent (percent-encoded), not as decoded: the signature covers the
        # bytes received, so a symbol or key with escaped characters verifies too
        path = request.scope.get("raw_path") or request.scope["path"].encode()
        query = request.scope.get("query_string", b"")
        payload = (
            cb_access_timestamp.encode()
            + request.method.encode()
            + path
            + (b"?" + query if query else b"")
            + body
        )
        expected = hmac.new(key.secret.encode(), payload, "sha256").hexdigest()
        if not hmac.compare_digest(expected, cb_access_sign.lower()):
            raise ApiFailure(401, "invalid_signature", "signature does not match")
        return key.user_id, key

    Caller = Annotated[tuple[int, Any], Depends(caller)]

    def need(who: tuple[int, Any], permission: str) -> int:
        user, key = who
        if key is not None and not getattr(key, f"can_{permission}"):
            raise ApiFailure(403, "forbidden", f"the API key lacks the {permission} permission")
        return user

    def order_model(m: Market, v: OrderView) -> Order:
        return Order(
            market=m.symbol,
            order_id=v.order_id,
            client_order_id=v.client_order_id,
            side=v.side.value if v.side else None,
            type=v.type.value if v.type else None,
            time_in_force=v.time_in_force.value if v.time_in_force else None,
            price=format_amount(v.price, m.price_scale),
            quantity=format_amount(v.quantity, m.base_scale),
            quote_quantity=format_amount(v.quote_quantity, m.quote_scale),
            stop_price=format_amount(v.stop_price, m.price_scale),
            status=v.status,
            reason=v.reason,
            filled=format_amount(v.filled, m.base_scale),
            filled_quote=format_amount(v.filled_quote(m), m.quote_scale),
            leaves=format_amount(v.leaves, m.base_scale)
            if v.quantity
            else format_amount(v.leaves, m.quote_scale),
            created=v.created_ts // 1_000_000,
            updated=v.updated_ts // 1_000_000,
            fills=[
                Fill(
                    trade_id=f.trade_id,
                    price=format_amount(f.price, m.price_scale),
                    quantity=format_amount(f.quantity, m.base_scale),
                    fee=format_amount(f.commission, gw.assets[f.commission_asset].scale)
                    if f.commission_asset
                    else "0",
                    fee_asset=f.commission_asset,
                    maker=f.is_maker,
                )
                for f in v.fills
            ],
        )

    # -------------------------------------------------------------- public

    @api.get("/markets", response_model=list[MarketInfo], tags=["market data"])
    async def markets() -> list[MarketInfo]:
        return [
            MarketInfo(
                symbol=m.symbol,
                base=m.base,
                quote=m.quote,
                tick_size=format_amount(m.tick_size, m.price_scale),
                step_size=format_amount(m.step_size, m.base_scale),
                min_quantity=format_amount(m.min_quantity, m.base_scale),
                max_quantity=format_amount(m.max_quantity, m.base_scale),
                min_notional=format_amount(m.min_notional, m.quote_scale),
            )
            for m in gw.markets.values()
        ]

    @api.get("/assets", response_model=list[AssetInfo], tags=["market data"])
    async def assets() -> list[AssetInfo]:
        return [AssetInfo(code=a.code, scale=a.scale) for a in gw.assets.values()]

    @api.get("/markets/{symbol}/book", response_model=Book, tags=["market data"])
    async def book(symbol: str, limit: Annotated[int, Query(ge=1, le=5000)] = 100) -> Book:
        m = market(symbol)
        update_id, bids, asks = gw.marketdata.depth(m.symbol, limit)
        return Book(
            market=m.symbol,
            update_id=update_id,
            bids=[
                (format_amount(p, m.price_scale), format_amount(q, m.base_scale)) for p, q in bids
            ],
            asks=[
                (format_amount(p, m.price_scale), format_amount(q, m.base_scale)) for p, q in asks
            ],
        )

    @api.get("/markets/{symbol}/trades", response_model=list[TradeInfo], tags=["market data"])
    async def trades(
        symbol: str, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[TradeInfo]:
        m = market(symbol)
        return [
            TradeInfo(
                id=t.trade_id,
                price=format_amount(t.price, m.price_scale),
                quantity=format_amount(t.quantity, m.base_scale),
                taker_side="sell" if t.buyer_is_maker else "buy",
                time=t.ts // 1_000_000,
            )
            for t in gw.marketdata.trades(m.symbol, limit=limit)
        ]

    @api.get("/markets/{symbol}/ticker", response_model=Ticker, tags=["market data"])
    async def ticker(symbol: str) -> Ticker:
        from crossbook.marketdata import quote_minor

        m = market(symbol)
        t = gw.marketdata.ticker(m.symbol, max(time.time_ns(), gw.marketdata.now))
        p, b = m.price_scale, m.base_scale
        return Ticker(
            market=m.symbol,
            last=format_amount(t.last, p),
            open=format_amount(t.open, p),
            high=format_amount(t.high, p),
            low=format_amount(t.low, p),
            volume=format_amount(t.volume, b),
            quote_volume=format_amount(quote_minor(m, t.quote_volume), m.quote_scale),
            count=t.count,
            best_bid=format_amount(t.bid_price, p),
            best_ask=format_amount(t.ask_price, p),
        )

    @api.get("/markets/{symbol}/klines", response_model=list[Kline], tags=["market data"])
    async def klines(
        symbol: str,
        interval: str = "1m",
        limit: Annotated[int, Query(ge=1, le=1000)] = 500,
        start: Annotated[int | None, Query(ge=0, le=2**62)] = None,
        end: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    ) -> list[Kline]:
        from crossbook.marketdata import INTERVALS

        m = market(symbol)
        if interval not in INTERVALS:
            raise ApiFailure(
                400, "invalid_interval", f"interval must be one of {sorted(INTERVALS)}"
            )
        rows = gw.marketdata.klines(
            m.symbol,
            interval,
            start * 1_000_000 if start is not None else None,
            end * 1_000_000 if end is not None else None,
            limit,
            now=max(time.time_ns(), gw.marketdata.now),
        )
        p = m.price_scale
        return [
            Kline(
                open_time=k.open_time // 10**6,
                close_time=k.close_time // 10**6,
                open=format_amount(k.open, p),
                high=format_amount(k.high, p),
                low=format_amount(k.low, p),
                close=format_amount(k.close, p),
                volume=format_amount(k.volume, m.base_scale),
                count=k.count,
                closed=k.closed,
            )
            for k in rows
        ]

    # ------------------------------------------------------------- session

    @api.post("/session", response_model=Session, tags=["account"])
    async def login(body: Login) -> Session:
        user = gw.auth.authenticate(body.email, body.password)
        if user is None:
            raise ApiFailure(401, "unauthenticated", "wrong email or password")
        token = secrets.token_urlsafe(32)
        sessions[token] = (user, time.monotonic() + SESSION_TTL_S)
        return Session(token=token, user_id=user, expires=gw.clock_ms() + SESSION_TTL_S * 1000)

    @api.delete("/session", tags=["account"])
    async def logout(
        who: Caller, authorization: Annotated[str | None, Header()] = None
    ) -> dict[str, bool]:
        if authorization and authorization.startswith("Bearer "):
            sessions.pop(authorization[7:], None)
        return {"ok": True}

    # ------------------------------------------------------------ API keys
    # A session may grant anything; a signed request (an API key) may only create keys
    # with no permission its own key lacks, and only revoke such keys: a read-only key
    # cannot mint a trading key.

    def key_grants(key: Any) -> tuple[bool, bool, bool]:
        return bool(key.can_read), bool(key.can_trade), bool(key.can_withdraw)

    def within(caller_key: Any, wanted: tuple[bool, bool, bool]) -> bool:
        if caller_key is None:
            return True
        grants = key_grants(caller_key)
        return all(have or not want for have, want in zip(grants, wanted, strict=True))

    @api.post("/api-keys", response_model=CreatedApiKey, tags=["account"])
    async def create_key(body: NewApiKeyRequest, who: Caller) -> CreatedApiKey:
        """A new API key of the caller; the secret is shown only in this answer."""
        user, key = who
        if not within(key, (body.read, body.trade, body.withdraw)):
            raise ApiFailure(403, "forbidden", "an API key cannot grant what it lacks")
        if not body.label.isprintable():
            raise ApiFailure(400, "invalid_label", "label must be printable")
        created = gw.auth.create_api_key(
            user, read=body.read, trade=body.trade, withdraw=body.withdraw, label=body.label
        )
        return CreatedApiKey(api_key=created.api_key, secret=created.secret)

    @api.get("/api-keys", response_model=list[ApiKeyEntry], tags=["account"])
    async def list_keys(who: Caller) -> list[ApiKeyEntry]:
        """The caller's API keys, revoked ones too; never their secrets."""
        return [
            ApiKeyEntry(
                api_key=k.api_key,
                read=k.can_read,
                trade=k.can_trade,
                withdraw=k.can_withdraw,
                label=k.label,
                created=k.created_ms,
                revoked=k.revoked,
            )
            for k in gw.auth.list_api_keys(who[0])
        ]

    @api.delete("/api-keys/{api_key}", tags=["account"])
    async def revoke_key(api_key: str, who: Caller) -> dict[str, bool]:
        """Revoke one of the caller's keys (another user's key answers 404)."""
        user, key = who
        target = next((k for k in gw.auth.list_api_keys(user) if k.api_key == api_key), None)
        if target is None or target.revoked:
            raise ApiFailure(404, "unknown_api_key", "no such API key")
        if not within(key, (target.can_read, target.can_trade, target.can_withdraw)):
            raise ApiFailure(403, "forbidden", "an API key cannot revoke a stronger key")
        if not gw.auth.revoke_api_key(user, api_key):
            raise ApiFailure(404, "unknown_api_key", "no such API key")
        return {"ok": True}

    # ------------------------------------------------------------- account

    @api.get("/balances", response_model=list[Balance], tags=["account"])
    async def balances(who: Caller) -> list[Balance]:
        user = need(who, "read")
        acc = gw.runtime.core.accounts
        return [
            Balance(
                asset=a.code,
                available=format_amount(acc.available(user, a.code), a.scale),
                held=format_amount(acc.held(user, a.code), a.scale),
            )
            for a in gw.assets.values()
        ]

    @api.get("/ledger", response_model=list[LedgerEntry], tags=["account"])
    async def ledger(
        who: Caller, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[LedgerEntry]:
        user = need(who, "read")
        await gw.history_ready(user)
        rows = queries.postings_of(gw.projector.engine, user, limit=limit)
        return [
            LedgerEntry(
                tx_id=r.tx_id,
                type=r.type,
                ref=r.ref,
                asset=r.asset,
                account=r.account,
                amount=format_amount(r.amount, gw.assets[r.asset].scale),
                time=r.ts // 10**6,
            )
            for r in rows
        ]

    # -------------------------------------------------------------- orders

    @api.post("/orders", response_model=Order, tags=["orders"])
    async def place(body: NewOrder, who: Caller) -> Order:
        user = need(who, "trade")
        m = market(body.market)
        typ = OrderType(body.type)
        tif = body.time_in_force or (
            "ioc" if typ in (OrderType.MARKET, OrderType.STOP_MARKET) else "gtc"
        )
        command = PlaceOrder(
            seq=0,
            ts=0,
            market=m.symbol,
            owner=user,
            side=Side(body.side),
            type=typ,
            price=dec(body.price, m.price_scale, "price"),
            quantity=dec(body.quantity, m.base_scale, "quantity"),
            quote_quantity=dec(body.quote_quantity, m.quote_scale, "quote_quantity"),
            time_in_force=TimeInForce(tif),
            post_only=body.post_only,
            stop_price=dec(body.stop_price, m.price_scale, "stop_price"),
            trigger=Trigger(body.trigger),
            display_quantity=dec(body.display_quantity, m.base_scale, "display_quantity"),
            stp=SelfTradePrevention(body.stp),
            client_order_id=body.client_order_id,
        )
        stamped, events = await gw.runtime.submit(command)
        reason = rejection(events)
        if reason is not None:
            raise ApiFailure(400, reason, f"order rejected: {reason}")
        view = order_from_events(m, stamped.order_id or stamped.seq, events)
        assert view is not None
        return order_model(m, view)

    def find_row(m: Market, user: int, order_id: int) -> Any:
        row = queries.get_order(gw.projector.engine, m.symbol, order_id)
        if row is None or row.owner != user or row.status == "rejected":
            raise ApiFailure(404, "unknown_order", "no such order")
        return row

    @api.get("/orders", response_model=list[Order], tags=["orders"])
    async def open_orders(
        who: Caller, market_: Annotated[str | None, Query(alias="market")] = None
    ) -> list[Order]:
        from crossbook.gateway.binance_rest import row_view

        user = need(who, "read")
        m = market(market_) if market_ else None
        await gw.history_ready(user)
        rows = queries.open_orders(gw.projector.engine, market=m.symbol if m else None, owner=user)
        return [order_model(gw.markets[r.market], row_view(r)) for r in rows]

    @api.get("/orders/history", response_model=list[Order], tags=["orders"])
    async def order_history(
        who: Caller,
        market_: Annotated[str, Query(alias="market")],
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[Order]:
        from crossbook.gateway.binance_rest import row_view

        user = need(who, "read")
        m = market(market_)
        await gw.history_ready(user)
        rows = queries.orders_of(gw.projector.engine, user, market=m.symbol, limit=limit)
        return [order_model(m, row_view(r)) for r in rows]

    @api.get("/orders/{symbol}/{order_id}", response_model=Order, tags=["orders"])
    async def get_order(
        symbol: str, order_id: Annotated[int, Path(ge=1, le=2**63 - 1)], who: Caller
    ) -> Order:
        from crossbook.gateway.binance_rest import row_view

        user = need(who, "read")
        m = market(symbol)
        await gw.history_ready(user)
        return order_model(m, row_view(find_row(m, user, order_id)))

    @api.delete("/orders/{symbol}/{order_id}", response_model=Order, tags=["orders"])
    async def cancel(
        symbol: str, order_id: Annotated[int, Path(ge=1, le=2**63 - 1)], who: Caller
    ) -> Order:
        from crossbook.gateway.binance_rest import row_view

        user = need(who, "trade")
        m = market(symbol)
        _, events = await gw.runtime.submit(
            CancelOrder(seq=0, ts=0, market=m.symbol, owner=user, order_id=order_id)
        )
        if rejection(events) is not None:
            raise ApiFailure(404, "unknown_order", "no such open order")
        await gw.history_ready(user)
        return order_model(m, row_view(find_row(m, user, order_id)))

    @api.delete("/orders", tags=["orders"])
    async def cancel_all(
        who: Caller, market_: Annotated[str, Query(alias="market")]
    ) -> dict[str, list[int]]:
        user = need(who, "trade")
        m = market(market_)
        _, events = await gw.runtime.submit(CancelAll(seq=0, ts=0, market=m.symbol, owner=user))
        return {"cancelled": [e.order_id for e in events if type(e).__name__ == "OrderCancelled"]}

    @api.patch("/orders/{symbol}/{order_id}", response_model=Order, tags=["orders"])
    async def amend(
        symbol: str,
        order_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
        body: Amendment,
        who: Caller,
    ) -> Order:
        from crossbook.gateway.binance_rest import row_view

        user = need(who, "trade")
        m = market(symbol)
        _, events = await gw.runtime.submit(
            AmendOrder(
                seq=0,
                ts=0,
                market=m.symbol,
                owner=user,
                order_id=order_id,
                price=dec(body.price, m.price_scale, "price"),
                quantity=dec(body.quantity, m.base_scale, "quantity"),
            )
        )
        reason = rejection(events)
        if reason is not None:
            status = 404 if reason == "unknown_order" else 400
            raise ApiFailure(status, reason, f"amend rejected: {reason}")
        await gw.history_ready(user)
        return order_model(m, row_view(find_row(m, user, order_id)))

    @api.post("/orders/cancel-after", tags=["orders"])
    async def cancel_after(body: CancelAfter, who: Caller) -> dict[str, Any]:
        """Dead-man's switch: cancel all of the caller's orders in ``market`` unless this
        is called again within ``seconds`` (0 switches it off)."""
        import asyncio

        user = need(who, "trade")
        m = market(body.market)
        key = (user, m.symbol)
        previous = deadman.pop(key, None)
        if previous is not None:
            previous.cancel()
        if body.seconds == 0:
            return {"market": m.symbol, "cancel_at": None}

        async def fire() -> None:
            await asyncio.sleep(body.seconds)
            deadman.pop(key, None)
            await gw.runtime.submit(CancelAll(seq=0, ts=0, market=m.symbol, owner=user))

        deadman[key] = asyncio.create_task(fire())
        return {"market": m.symbol, "cancel_at": gw.clock_ms() + body.seconds * 1000}

    @api.get("/trades/history", tags=["orders"])
    async def trade_history(
        who: Caller,
        market_: Annotated[str, Query(alias="market")],
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        user = need(who, "read")
        m = market(market_)
        await gw.history_ready(user)
        rows = queries.trades_of(gw.projector.engine, user, market=m.symbol, limit=limit)
        fees = queries.trade_fees(gw.projector.engine, m.symbol, [t.trade_id for t in rows])
        out = []
        for t in rows:
            maker, side = own_part(t.maker_owner, t.taker_owner, t.taker_side, user)
            asset = m.base if side == "buy" else m.quote
            out.append(
                {
                    "trade_id": t.trade_id,
                    "order_id": t.maker_order_id if maker else t.taker_order_id,
                    "side": side,
                    "maker": maker,
                    "price": format_amount(t.price, m.price_scale),
                    "quantity": format_amount(t.quantity, m.base_scale),
                    "fee": format_amount(
                        fees.get(t.trade_id, {}).get(asset, 0), gw.assets[asset].scale
                    ),
                    "fee_asset": asset,
                    "time": t.ts // 1_000_000,
                }
            )
        return out

    return api
