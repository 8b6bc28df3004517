"""Binance-compatible REST API (``/api/v3``, ``/sapi/v1``), as ../shared/API-COMPAT.md.

Signed requests are verified over the raw bytes received (query string and body);
every user-scoped request acts only on the authenticated key's owner. Errors are
``{"code": -NNNN, "msg": ...}`` with Binance's codes and messages where clients map them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crossbook.auth.models import is_api_key_format
from crossbook.cluster.client import ServiceUnavailable, SubmitError
from crossbook.domain.commands import CancelAll, CancelOrder, PlaceOrder
from crossbook.domain.enums import OrderType, RejectReason, SelfTradePrevention, Side, TimeInForce
from crossbook.domain.enums import Trigger as Trig
from crossbook.domain.markets import Market
from crossbook.domain.money import AmountError, format_amount, parse_amount
from crossbook.gateway.context import Gateway, HistoryUnavailable
from crossbook.gateway.orders import (
    OrderView,
    is_self_trade_expiry,
    order_from_events,
    own_part,
    rejection,
)

ORDER_TYPES = [
    "LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
    "TAKE_PROFIT_LIMIT",
]  # fmt: skip
STP_MODES = {m.name: m for m in SelfTradePrevention}
STATUS = {
    "new": "NEW",
    "triggered": "NEW",
    "partially_filled": "PARTIALLY_FILLED",
    "filled": "FILLED",
    "cancelled": "CANCELED",
    "expired": "EXPIRED",
    "rejected": "REJECTED",
}
INSUFFICIENT = "Account has insufficient balance for requested action."
REJECT_MESSAGES: dict[str, tuple[int, str]] = {
    RejectReason.INSUFFICIENT_BALANCE: (-2010, INSUFFICIENT),
    RejectReason.POST_ONLY_WOULD_TAKE: (-2010, "Order would immediately match and take."),
    RejectReason.DUPLICATE_CLIENT_ORDER_ID: (-2010, "Duplicate order sent."),
    RejectReason.DUPLICATE_ORDER_ID: (-2010, "Duplicate order sent."),
    RejectReason.STOP_WOULD_TRIGGER_IMMEDIATELY: (-2010, "Stop price would trigger immediately."),
    RejectReason.PRICE_NOT_ON_TICK: (-1013, "Filter failure: PRICE_FILTER"),
    RejectReason.INVALID_PRICE: (-1013, "Filter failure: PRICE_FILTER"),
    RejectReason.INVALID_STOP_PRICE: (-1013, "Filter failure: PRICE_FILTER"),
    RejectReason.QUANTITY_NOT_ON_STEP: (-1013, "Filter failure: LOT_SIZE"),
    RejectReason.QUANTITY_TOO_LOW: (-1013, "Filter failure: LOT_SIZE"),
    RejectReason.QUANTITY_TOO_HIGH: (-1013, "Filter failure: LOT_SIZE"),
    RejectReason.INVALID_QUANTITY: (-1013, "Filter failure: LOT_SIZE"),
    RejectReason.NOTIONAL_TOO_LOW: (-1013, "Filter failure: NOTIONAL"),
    RejectReason.INVALID_TIME_IN_FORCE: (-1115, "Invalid timeInForce."),
    RejectReason.INVALID_DISPLAY_QUANTITY: (-1013, "Filter failure: ICEBERG_PARTS"),
    RejectReason.UNKNOWN_MARKET: (-1121, "Invalid symbol."),
    RejectReason.QUOTE_QUANTITY_REQUIRED: (
        -1106, "Parameter 'quantity' sent when not required; use 'quoteOrderQty'.",
    ),
    RejectReason.QUANTITY_REQUIRED: (
        -1106, "Parameter 'quoteOrderQty' sent when not required; use 'quantity'.",
    ),
}  # fmt: skip


class FastJSON(Response):
    """A JSON response encoded with msgspec."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return msgspec.json.encode(content)


class BinanceError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status

    def response(self) -> Response:
        return FastJSON({"code": self.code, "msg": self.msg}, status_code=self.status)


def bad_param(name: str) -> BinanceError:
    return BinanceError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def ms(ts_ns: int) -> int:
    return ts_ns // 1_000_000


# ------------------------------------------------------------------ auth


class Caller:
    """An authenticated request: who, and its parameters (from the signed bytes)."""

    def __init__(self, user_id: int, params: dict[str, str], key: Any) -> None:
        self.user_id, self.params, self.key = user_id, params, key


async def signed(gw: Gateway, request: Request, permission: str) -> Caller:
    from crossbook.auth.errors import ApiError
    from crossbook.auth.signing import verify_signed_request

    api_key = request.headers.get("X-MBX-APIKEY", "")
    if not is_api_key_format(api_key):  # missing, empty or not a key at all
        raise BinanceError(-2014, "API-key format invalid.", 401)
    key = gw.auth.api_key(api_key)
    if key is None:
        raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
    body = await request.body()
    try:
        result = verify_signed_request(
            secret=key.secret,
            query=request.scope.get("query_string", b""),
            body=body,
            now_ms=gw.clock_ms(),
        )
    except ApiError as exc:
        raise BinanceError(exc.code, exc.msg, exc.http_status) from exc
    if not getattr(key, f"can_{permission}"):
        raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
    return Caller(key.user_id, dict(result.params), key)


async def key_only(gw: Gateway, request: Request) -> Any:
    api_key = request.headers.get("X-MBX-APIKEY", "")
    if not is_api_key_format(api_key):  # as for signed requests
        raise BinanceError(-2014, "API-key format invalid.", 401)
    key = gw.auth.api_key(api_key)
    if key is None:
        raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
    return key


def public_params(request: Request) -> dict[str, str]:
    try:
        return dict(
            parse_qsl(request.scope.get("query_string", b"").decode(), strict_parsing=False)
        )
    except UnicodeDecodeError as exc:
        raise BinanceError(-1100, "Illegal characters found in a parameter.") from exc


# --------------------------------------------------------------- parsing


def market_of(gw: Gateway, params: dict[str, str], required: bool = True) -> Market | None:
    symbol = params.get("symbol")
    if not symbol:
        if required:
            raise bad_param("symbol")
        return None
    market = gw.markets.get(symbol.upper())
    if market is None:
        raise BinanceError(-1121, "Invalid symbol.")
    return market


def amount(params: dict[str, str], name: str, scale: int, required: bool = False) -> int:
    text = params.get(name)
    if text is None or text == "":
        if required:
            raise bad_param(name)
        return 0
    try:
        value = parse_amount(text, scale)
    except AmountError as exc:
        if "decimal places" in str(exc):
            raise BinanceError(-1111, f"Parameter '{name}' has too much precision.") from exc
        raise BinanceError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is "
            "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
        ) from exc
    if value < 0:
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'.")
    return value


I64_MAX = 2**63 - 1


def integer(params: dict[str, str], name: str, default: int | None = None) -> int | None:
    text = params.get(name)
    if text is None or text == "":
        return default
    # ids and times are 64-bit (LONG) on Binance, and in the SQL history: a larger
    # value would overflow the query (HTTP 500) instead of being refused
    if not text.isdigit() or len(text) > 19 or int(text) > I64_MAX:
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'.")
    return int(text)


def ns_bounds(start_ms: int | None, end_ms: int | None) -> tuple[int | None, int | None]:
    """startTime/endTime (ms, inclusive) as ns bounds, capped to 64 bits."""
    start = min(start_ms * 1_000_000, I64_MAX) if start_ms is not None else None
    end = min(end_ms * 1_000_000 + 999_999, I64_MAX) if end_ms is not None else None
    return start, end


def choice(params: dict[str, str], name: str, allowed: dict[str, Any], code: int) -> Any:
    text = params.get(name)
    if text is None:
        raise bad_param(name)
    value = allowed.get(text.upper())
    if value is None:
        raise BinanceError(code, f"Invalid {name}.")
    return value


def place_command(m: Market, user: int, p: dict[str, str]) -> PlaceOrder:
    """Translate Binance order parameters into a PlaceOrder (seq/ts set by the runtime)."""
    side = choice(p, "side", {"BUY": Side.BUY, "SELL": Side.SELL}, -1117)
    kind = p.get("type", "").upper()
    if kind not in ORDER_TYPES:
        raise BinanceError(-1116, "Invalid orderType.")
    quantity = amount(p, "quantity", m.base_scale)
    quote = amount(p, "quoteOrderQty", m.quote_scale)
    price = amount(p, "price", m.price_scale)
    stop = amount(p, "stopPrice", m.price_scale)
    iceberg = amount(p, "icebergQty", m.base_scale)
    coid = p.get("newClientOrderId", "")
    if len(coid) > 36:
        raise BinanceError(-1100, "Illegal characters found in parameter 'newClientOrderId'.")
    stp = SelfTradePrevention.EXPIRE_MAKER
    if "selfTradePreventionMode" in p:
        stp = choice(p, "selfTradePreventionMode", STP_MODES, -1100)
    is_limit = kind in ("LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")
    if is_limit and not price:
        raise bad_param("price")
    if kind in ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT") and not stop:
        raise bad_param("stopPrice")
    if kind != "MARKET" and not quantity:
        raise bad_param("quantity")
    if kind == "MARKET" and not quantity and not quote:
        raise BinanceError(
            -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"
        )
    if kind == "MARKET" and quantity and quote:
        raise BinanceError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
    tif = TimeInForce.GTC
    if kind in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"):
        tif = choice(p, "timeInForce", {t.name: t for t in TimeInForce}, -1115)
    elif kind in ("MARKET", "STOP_LOSS", "TAKE_PROFIT"):
        tif = TimeInForce.IOC
    elif "timeInForce" in p:
        raise BinanceError(-1106, "Parameter 'timeInForce' sent when not required.")
    order_type = {
        "LIMIT": OrderType.LIMIT, "LIMIT_MAKER": OrderType.LIMIT, "MARKET": OrderType.MARKET,
        "STOP_LOSS": OrderType.STOP_MARKET, "TAKE_PROFIT": OrderType.STOP_MARKET,
        "STOP_LOSS_LIMIT": OrderType.STOP_LIMIT, "TAKE_PROFIT_LIMIT": OrderType.STOP_LIMIT,
    }[kind]  # fmt: skip
    trigger = Trig.AUTO
    if kind.startswith("TAKE_PROFIT"):
        trigger = Trig.AT_OR_BELOW if side is Side.BUY else Trig.AT_OR_ABOVE
    elif kind.startswith("STOP_LOSS"):
        trigger = Trig.AT_OR_ABOVE if side is Side.BUY else Trig.AT_OR_BELOW
    return PlaceOrder(
        seq=0, ts=0, market=m.symbol, owner=user, side=side, type=order_type,
        price=price if is_limit else 0, quantity=quantity, quote_quantity=quote,
        time_in_force=tif, post_only=kind == "LIMIT_MAKER",
        stop_price=stop if order_type in (OrderType.STOP_LIMIT, OrderType.STOP_MARKET) else 0,
        trigger=trigger, display_quantity=iceberg, stp=stp, client_order_id=coid,
    )  # fmt: skip


# ------------------------------------------------------------ formatting


def binance_type(v: OrderView, requested: str | None = None) -> str:
    if requested:
        return requested
    if v.type is OrderType.LIMIT:
        return "LIMIT_MAKER" if v.post_only else "LIMIT"
    if v.type is OrderType.MARKET:
        return "MARKET"
    # stops placed through this API carry the stop-loss/take-profit choice in the trigger
    base = "STOP_LOSS" if v.stop_trigger in ("", "auto", _stop_loss_trigger(v)) else "TAKE_PROFIT"
    return base + ("_LIMIT" if v.type is OrderType.STOP_LIMIT else "")


def _stop_loss_trigger(v: OrderView) -> str:
    return "at_or_above" if v.side is Side.BUY else "at_or_below"


def order_json(
    m: Market, v: OrderView, *, full: bool = False, requested: str | None = None
) -> dict[str, Any]:
    status = STATUS[v.status]
    if status == "EXPIRED" and is_self_trade_expiry(v):
        status = "EXPIRED_IN_MATCH"
    quote_sized = v.type in (OrderType.MARKET, OrderType.STOP_MARKET) and not v.quantity
    out: dict[str, Any] = {
        "symbol": m.symbol,
        "orderId": v.order_id,
        "orderListId": -1,
        "clientOrderId": v.client_order_id or f"cb{v.order_id}",
        "price": format_amount(v.price, m.price_scale),
        "origQty": format_amount(v.quantity if not quote_sized else v.filled, m.base_scale),
        "executedQty": format_amount(v.filled, m.base_scale),
        "cummulativeQuoteQty": format_amount(v.filled_quote(m), m.quote_scale),
        # a market order sized by quantity carries a budget cap that is not the client's
        "origQuoteOrderQty": format_amount(v.quote_quantity if quote_sized else 0, m.quote_scale),
        "status": status,
        "timeInForce": (v.time_in_force or TimeInForce.GTC).name,
        "type": binance_type(v, requested),
        "side": (v.side or Side.BUY).name,
        "stopPrice": format_amount(v.stop_price, m.price_scale),
        "icebergQty": format_amount(v.display_quantity, m.base_scale),
        "time": ms(v.created_ts),
        "updateTime": ms(v.updated_ts),
        "transactTime": ms(v.updated_ts),
        "workingTime": ms(v.created_ts),
        "isWorking": v.is_open,
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }
    if full:
        out["fills"] = [
            {
                "price": format_amount(f.price, m.price_scale),
                "qty": format_amount(f.quantity, m.base_scale),
                "commission": format_amount(
                    f.commission, m.base_scale if f.commission_asset == m.base else m.quote_scale
                ),
                "commissionAsset": f.commission_asset,
                "tradeId": f.trade_id,
            }
            for f in v.fills
        ]
    return out


def row_view(row: Any) -> OrderView:
    """An OrderView from a ledger ``orders`` row."""
    return OrderView(
        market=row.market, order_id=row.order_id, owner=row.owner,
        client_order_id=row.client_order_id,
        side=Side(row.side) if row.side else None,
        type=OrderType(row.type) if row.type else None,
        time_in_force=TimeInForce(row.time_in_force) if row.time_in_force else None,
        price=row.price or 0, quantity=row.quantity or 0, quote_quantity=row.quote_quantity or 0,
        stop_price=row.stop_price or 0, display_quantity=row.display_quantity or 0,
        post_only=bool(row.post_only), status=row.status, reason=row.reason or "",
        filled=row.filled, filled_scaled=row.filled_quote_scaled, leaves=row.leaves,
        created_ts=row.created_ts, updated_ts=row.updated_ts,
    )  # fmt: skip


def reject_error(reason: str) -> BinanceError:
    code, msg = REJECT_MESSAGES.get(reason, (-2010, f"Order rejected: {reason}."))
    return BinanceError(code, msg)


# ---------------------------------------------------------------- routes


def handler(fn: Callable[[Request], Any]) -> Callable[[Request], Any]:
    """Wrap a route: BinanceError -> its error body; plain values -> JSON."""

    async def wrapped(request: Request) -> Response:
        try:
            result = await fn(request)
        except BinanceError as exc:
            return exc.response()
        except ServiceUnavailable:
            return BinanceError(
                -1001, "Internal error; unable to process your request. Please try again.", 503
            ).response()
        except (HistoryUnavailable, SubmitError):
            return BinanceError(
                -1007,
                "Timeout waiting for response from backend server. "
                "Send status unknown; execution status unknown.",
                503,
            ).response()
        if isinstance(result, Response):
            return result
        return FastJSON(result)

    return wrapped


def routes(gw: Gateway) -> list[Route]:
    from crossbook.ledger import queries

    async def ping(request: Request) -> Any:
        return {}

    async def server_time(request: Request) -> Any:
        return {"serverTime": gw.clock_ms()}

    async def exchange_info(request: Request) -> Any:
        p = public_params(request)
        wanted: list[Market] = list(gw.markets.values())
        if "symbol" in p:
            m = market_of(gw, p)
            assert m is not None
            wanted = [m]
        elif "symbols" in p:
            import json

            try:
                names = json.loads(p["symbols"])
            except ValueError as exc:
                raise bad_param("symbols") from exc
            if not isinstance(names, list):  # e.g. symbols=3 (was a 500)
                raise bad_param("symbols")
            wanted = []
            for name in names:
                m = gw.markets.get(str(name).upper())
                if m is None:
                    raise BinanceError(-1121, "Invalid symbol.")
                wanted.append(m)
        return {
            "timezone": "UTC",
            "serverTime": gw.clock_ms(),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 6000,
                },
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            ],
            "exchangeFilters": [],
            "symbols": [symbol_info(m) for m in wanted],
        }

    async def account(request: Request) -> Any:
        caller = await signed(gw, request, "read")
        acc = gw.runtime.core.accounts
        balances = []
        for code, asset in sorted(gw.assets.items()):
            free, locked = acc.available(caller.user_id, code), acc.held(caller.user_id, code)
            balances.append({
                "asset": code,
                "free": format_amount(free, asset.scale),
                "locked": format_amount(locked, asset.scale),
            })  # fmt: skip
        return {
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0,
            "sellerCommission": 0, "canTrade": bool(caller.key.can_trade),
            "canWithdraw": bool(caller.key.can_withdraw), "canDeposit": True,
            "brokered": False, "requireSelfTradePrevention": False, "preventSor": False,
            "updateTime": gw.clock_ms(), "accountType": "SPOT", "balances": balances,
            "permissions": ["SPOT"], "uid": caller.user_id,
        }  # fmt: skip

    async def new_order(request: Request, test: bool = False) -> Any:
        caller = await signed(gw, request, "trade")
        p = caller.params
        m = market_of(gw, p)
        assert m is not None
        command = place_command(m, caller.user_id, p)
        if test:
            return {}
        stamped, events = await gw.runtime.submit(command)
        gw.remember(caller.user_id, stamped.seq)
        reason = rejection(events)
        if reason is not None:
            raise reject_error(reason)
        view = order_from_events(m, stamped.order_id or stamped.seq, events)
        assert view is not None
        kind = p.get("type", "").upper()
        resp = p.get("newOrderRespType", "FULL" if kind in ("MARKET", "LIMIT") else "ACK")
        if resp.upper() == "ACK":
            return {
                "symbol": m.symbol, "orderId": view.order_id, "orderListId": -1,
                "clientOrderId": view.client_order_id or f"cb{view.order_id}",
                "transactTime": ms(stamped.ts),
            }  # fmt: skip
        return order_json(m, view, full=resp.upper() == "FULL", requested=kind)

    async def new_order_route(request: Request) -> Any:
        return await new_order(request)

    async def test_order_route(request: Request) -> Any:
        return await new_order(request, test=True)

    def lookup_ids(m: Market, user: int, p: dict[str, str]) -> tuple[int, str]:
        order_id = integer(p, "orderId", 0) or 0
        coid = p.get("origClientOrderId", "")
        if not order_id and coid.startswith("cb") and coid[2:].isdigit():
            order_id, coid = int(coid[2:]), ""
        if not order_id and not coid:
            raise BinanceError(
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        return order_id, coid

    async def cancel_order(request: Request) -> Any:
        caller = await signed(gw, request, "trade")
        p = caller.params
        m = market_of(gw, p)
        assert m is not None
        order_id, coid = lookup_ids(m, caller.user_id, p)
        stamped, events = await gw.runtime.submit(
            CancelOrder(
                seq=0,
                ts=0,
                market=m.symbol,
                owner=caller.user_id,
                order_id=order_id,
                client_order_id=coid,
            )
        )
        gw.remember(caller.user_id, stamped.seq)
        if rejection(events) is not None:
            raise BinanceError(-2011, "Unknown order sent.")
        cancelled = next(e for e in events if type(e).__name__ == "OrderCancelled")
        await gw.history_ready(caller.user_id)
        row = queries.get_order(gw.projector.engine, m.symbol, cancelled.order_id)
        assert row is not None
        out = order_json(m, row_view(row))
        out["origClientOrderId"] = out["clientOrderId"]
        return out

    async def cancel_all(request: Request) -> Any:
        caller = await signed(gw, request, "trade")
        m = market_of(gw, caller.params)
        assert m is not None
        stamped, events = await gw.runtime.submit(
            CancelAll(seq=0, ts=0, market=m.symbol, owner=caller.user_id)
        )
        gw.remember(caller.user_id, stamped.seq)
        ids = [e.order_id for e in events if type(e).__name__ == "OrderCancelled"]
        await gw.history_ready(caller.user_id)
        out = []
        for order_id in ids:
            row = queries.get_order(gw.projector.engine, m.symbol, order_id)
            if row is not None:
                item = order_json(m, row_view(row))
                item["origClientOrderId"] = item["clientOrderId"]
                out.append(item)
        return out

    async def get_order(request: Request) -> Any:
        caller = await signed(gw, request, "read")
        p = caller.params
        m = market_of(gw, p)
        assert m is not None
        order_id, coid = lookup_ids(m, caller.user_id, p)
        await gw.history_ready(caller.user_id)
        if order_id:
            row = queries.get_order(gw.projector.engine, m.symbol, order_id)
        else:
            row = queries.order_by_client_id(gw.projector.engine, m.symbol, caller.user_id, coid)
        if row is None or row.owner != caller.user_id or row.status == "rejected":
            raise BinanceError(-2013, "Order does not exist.")
        return order_json(m, row_view(row))

    async def open_orders(request: Request) -> Any:
        caller = await signed(gw, request, "read")
        m = market_of(gw, caller.params, required=False)
        await gw.history_ready(caller.user_id)
        rows = queries.open_orders(
            gw.projector.engine, market=m.symbol if m else None, owner=caller.user_id
        )
        return [order_json(gw.markets[r.market], row_view(r)) for r in rows]

    async def all_orders(request: Request) -> Any:
        caller = await signed(gw, request, "read")
        p = caller.params
        m = market_of(gw, p)
        assert m is not None
        limit = min(integer(p, "limit", 500) or 500, 1000)
        start_ns, end_ns = ns_bounds(integer(p, "startTime"), integer(p, "endTime"))
        await gw.history_ready(caller.user_id)
        rows = queries.orders_of(
            gw.projector.engine, caller.user_id, market=m.symbol, from_id=integer(p, "orderId"),
            start_ts=start_ns, end_ts=end_ns, limit=limit,
        )  # fmt: skip
        return [order_json(m, row_view(r)) for r in rows if r.status != "rejected"]

    async def my_trades(request: Request) -> Any:
        caller = await signed(gw, request, "read")
        p = caller.params
        m = market_of(gw, p)
        assert m is not None
        limit = min(integer(p, "limit", 500) or 500, 1000)
        start_ns, end_ns = ns_bounds(integer(p, "startTime"), integer(p, "endTime"))
        order_id = integer(p, "orderId")
        await gw.history_ready(caller.user_id)
        if order_id is not None:
            # only the caller's own order: the trades of another user's order that the
            # caller was the counterparty of would reveal that user's order ids
            own = queries.get_order(gw.projector.engine, m.symbol, order_id)
            if own is None or own.owner != caller.user_id:
                return []
        rows = queries.trades_of(
            gw.projector.engine, caller.user_id, market=m.symbol,
            order_id=order_id, from_id=integer(p, "fromId"),
            start_ts=start_ns, end_ts=end_ns, limit=limit,
        )  # fmt: skip
        fees = queries.trade_fees(gw.projector.engine, m.symbol, [t.trade_id for t in rows])
        out = []
        for t in rows:
            is_maker, own_side = own_part(
                t.maker_owner, t.taker_owner, t.taker_side, caller.user_id
            )
            is_buyer = own_side == "buy"
            asset = m.base if is_buyer else m.quote
            notional = t.price * t.quantity * 10**m.quote_scale // m.notional_divisor
            commission = fees.get(t.trade_id, {}).get(asset, 0)
            out.append({
                "symbol": m.symbol, "id": t.trade_id,
                "orderId": t.maker_order_id if is_maker else t.taker_order_id,
                "orderListId": -1,
                "price": format_amount(t.price, m.price_scale),
                "qty": format_amount(t.quantity, m.base_scale),
                "quoteQty": format_amount(notional, m.quote_scale),
                "commission": format_amount(commission, gw.assets[asset].scale),
                "commissionAsset": asset,
                "time": ms(t.ts), "isBuyer": is_buyer, "isMaker": is_maker, "isBestMatch": True,
            })  # fmt: skip
        return out

    async def user_data_stream(request: Request) -> Any:
        key = await key_only(gw, request)
        streams = getattr(gw, "user_streams", None)
        if request.method == "POST":
            if streams is None:
                raise BinanceError(-1000, "User data streams are not available.")
            return {"listenKey": streams.listen_key(key.user_id)}
        listen_key = (public_params(request).get("listenKey") or "") if streams else ""
        if streams is not None and listen_key:
            if request.method == "PUT":
                streams.keepalive(key.user_id, listen_key)
            else:
                streams.close_key(key.user_id, listen_key)
        return {}

    async def system_status(request: Request) -> Any:
        return {"status": 0, "msg": "normal"}

    async def empty_list(request: Request) -> Any:
        return []

    async def no_symbols(request: Request) -> Any:
        return {"symbols": []}

    async def capital_config(request: Request) -> Any:
        await signed(gw, request, "read")
        return [
            {
                "coin": code,
                "name": code,
                "depositAllEnable": True,
                "withdrawAllEnable": True,
                "free": "0",
                "locked": "0",
                "trading": True,
                "networkList": [],
            }
            for code in sorted(gw.assets)
        ]

    def r(path: str, fn: Callable[[Request], Any], methods: list[str]) -> Route:
        return Route(path, handler(fn), methods=methods)

    return [
        r("/api/v3/ping", ping, ["GET"]),
        r("/api/v3/time", server_time, ["GET"]),
        r("/api/v3/exchangeInfo", exchange_info, ["GET"]),
        r("/api/v3/account", account, ["GET"]),
        r("/api/v3/order", new_order_route, ["POST"]),
        r("/api/v3/order/test", test_order_route, ["POST"]),
        Route("/api/v3/order", handler(cancel_order), methods=["DELETE"], name="cancel"),
        Route("/api/v3/order", handler(get_order), methods=["GET"], name="get_order"),
        r("/api/v3/openOrders", open_orders, ["GET"]),
        Route("/api/v3/openOrders", handler(cancel_all), methods=["DELETE"], name="cancel_all"),
        r("/api/v3/allOrders", all_orders, ["GET"]),
        r("/api/v3/myTrades", my_trades, ["GET"]),
        r("/api/v3/userDataStream", user_data_stream, ["POST", "PUT", "DELETE"]),
        r("/sapi/v1/system/status", system_status, ["GET"]),
        r("/sapi/v1/capital/config/getall", capital_config, ["GET"]),
        r("/sapi/v1/margin/allPairs", empty_list, ["GET"]),
        r("/sapi/v1/margin/isolated/allPairs", empty_list, ["GET"]),
        r("/fapi/v1/exchangeInfo", no_symbols, ["GET"]),
        r("/dapi/v1/exchangeInfo", no_symbols, ["GET"]),
        *capital_routes(gw),
    ]


def symbol_info(m: Market) -> dict[str, Any]:
    tick = format_amount(m.tick_size, m.price_scale)
    step = format_amount(m.step_size, m.base_scale)
    max_price = format_amount(10 ** (m.price_scale + 9), m.price_scale)
    return {
        "symbol": m.symbol,
        "status": "TRADING",
        "baseAsset": m.base,
        "baseAssetPrecision": m.base_scale,
        "quoteAsset": m.quote,
        "quotePrecision": m.quote_scale,
        "quoteAssetPrecision": m.quote_scale,
        "baseCommissionPrecision": m.base_scale,
        "quoteCommissionPrecision": m.quote_scale,
        "orderTypes": ORDER_TYPES,
        "icebergAllowed": True,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "amendAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": tick,
                "maxPrice": max_price,
                "tickSize": tick,
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": format_amount(m.min_quantity, m.base_scale),
                "maxQty": format_amount(m.max_quantity, m.base_scale),
                "stepSize": step,
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": format_amount(0, m.base_scale),
                "maxQty": format_amount(m.max_quantity, m.base_scale),
                "stepSize": format_amount(0, m.base_scale),
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": format_amount(m.min_notional, m.quote_scale),
                "applyMinToMarket": True,
                "maxNotional": format_amount(9_000_000 * 10**m.quote_scale, m.quote_scale),
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "ICEBERG_PARTS", "limit": 100},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": [m.name for m in SelfTradePrevention],
    }


# --------------------------------------------------------------- capital
#
# Deposits and withdrawals (``/sapi/v1/capital``). Deposit addresses come from the
# exchange's HD wallet (crossbook.wallet.addresses); history from the ledger's
# ``deposit`` / ``withdrawal_hold`` / ``withdrawal`` / ``withdrawal_release``
# transactions of the caller's own accounts, pending withdrawals from the live account
# state. The ledger does not record a withdrawal's destination address (nor the txid
# of a settled one): the address of a pending withdrawal is read from the live state,
# and of a settled or cancelled one from an in-memory map kept by this process (so it
# is "" for withdrawals requested before the last restart or through another process).

WITHDRAW_ORDER_ID_MAX = 64
WITHDRAW_STATUS_PROCESSING, WITHDRAW_STATUS_COMPLETED, WITHDRAW_STATUS_CANCELLED = 4, 6, 1


def invalid_param(name: str) -> BinanceError:
    return BinanceError(-1130, f"Data sent for parameter '{name}' is not valid.")


def utc_text(ts_ns: int) -> str:
    """``YYYY-MM-DD HH:MM:SS`` (UTC), Binance's applyTime format."""
    import datetime as dt

    return dt.datetime.fromtimestamp(ts_ns // 1_000_000_000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


class WithdrawalNote(msgspec.Struct, frozen=True):
    """What this process remembers of a withdrawal it accepted (not in the ledger)."""

    address: str
    network: str
    amount: int
    fee: int


class Capital:
    """The capital routes' state: the HD wallet (opened on first use) and the notes of
    the withdrawals accepted by this process."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self._wallet: Any = None
        self.notes: dict[str, WithdrawalNote] = {}

    def wallet(self) -> Any:
        if self._wallet is None:
            from crossbook.auth.crypto import MasterKeyError
            from crossbook.wallet.addresses import WalletError, open_wallet

            try:
                self._wallet = open_wallet(self.gw.runtime.data_dir)
            except (WalletError, MasterKeyError, OSError) as exc:
                raise BinanceError(-1000, "Deposit addresses are not available.", 500) from exc
        return self._wallet

    def address(self, network: str, user: int) -> str:
        try:
            return str(self.wallet().address(network, user))
        except ValueError as exc:  # a user id beyond the derivable range
            raise BinanceError(-4000, "No deposit address for this account.") from exc

    def coin(self, params: dict[str, str], required: bool = True) -> Any:
        code = params.get("coin", "")
        if not code:
            if required:
                raise bad_param("coin")
            return None
        asset = self.gw.assets.get(code.upper())
        if asset is None:
            raise invalid_param("coin")
        return asset

    def network(self, coin: str, params: dict[str, str]) -> str:
        from crossbook.wallet.addresses import (
            UnsupportedNetwork,
            default_network,
            networks_of,
            normalize_network,
        )

        text = params.get("network", "")
        if not text:
            return default_network(coin)
        try:
            name = normalize_network(text)
        except UnsupportedNetwork as exc:
            raise invalid_param("network") from exc
        if name not in networks_of(coin):
            raise invalid_param("network")
        return name


def transfer_bounds(p: dict[str, str]) -> tuple[int | None, int | None, int]:
    start_ns, end_ns = ns_bounds(integer(p, "startTime"), integer(p, "endTime"))
    limit = integer(p, "limit", 1000) or 1000
    return start_ns, end_ns, min(limit, 1000)


def capital_routes(gw: Gateway) -> list[Route]:
    from crossbook.domain.ledger import CommandRejected, RequestWithdrawal
    from crossbook.ledger import queries
    from crossbook.wallet.addresses import NETWORKS, networks_of, validate_address

    cap = Capital(gw)

    async def deposit_address(request: Request) -> Any:
        caller = await signed(gw, request, "read")
        asset = cap.coin(caller.params)
        network = cap.network(asset.code, caller.params)
        address = cap.address(network, caller.user_id)
        return {"address": address, "coin": asset.code, "tag": "", "url": ""}

    async def deposit_history(request: Request) -> Any:
        caller = await signed(gw, request, "read")
        p = caller.params
        asset = cap.coin(p, required=False)
        start_ns, end_ns, limit = transfer_bounds(p)
        status = integer(p, "status")
        await gw.history_ready(caller.user_id)
        if status is not None and status != 1:  # every ledger deposit is credited
            return []
        rows = queries.transfers_of(
            gw.projector.engine, caller.user_id, ("deposit",),
            asset=asset.code if asset else None, start_ts=start_ns, end_ts=end_ns, limit=limit,
        )  # fmt: skip
        own = f"user:{caller.user_id}:available"
        out = []
        for row in rows:
            credit = next((x for x in row.postings if x[0] == own), None)
            if credit is None:
                continue
            _, code, value = credit
            network = next(
                (a.removeprefix("external:") for a, _, _ in row.postings
                 if a.startswith("external:")), "",
            )  # fmt: skip
            deposit_id = row.ref.removeprefix("deposit:")
            address = cap.address(network, caller.user_id) if network in NETWORKS else ""
            scale = gw.assets[code].scale if code in gw.assets else 0
            out.append({
                "id": deposit_id, "amount": format_amount(value, scale), "coin": code,
                "network": network, "status": 1, "address": address, "addressTag": "",
                "txId": deposit_id, "insertTime": ms(row.ts), "completeTime": ms(row.ts),
                "transferType": 0, "confirmTimes": "1/1", "unlockConfirm": 0, "walletType": 0,
            })  # fmt: skip
        return out

    async def withdraw_apply(request: Request) -> Any:
        import secrets

        caller = await signed(gw, request, "withdraw")
        p = caller.params
        asset = cap.coin(p)
        network = cap.network(asset.code, p)
        address = p.get("address", "")
        if not address:
            raise bad_param("address")
        if not validate_address(network, address):
            raise BinanceError(-4033, "Illegal address.")
        if p.get("addressTag"):  # neither Bitcoin nor Ethereum addresses take a tag
            raise BinanceError(-4008, "Address tag validation is not passed.")
        value = amount(p, "amount", asset.scale, required=True)
        if value <= 0:
            raise invalid_param("amount")
        order_id = p.get("withdrawOrderId", "")
        if len(order_id) > WITHDRAW_ORDER_ID_MAX or not (
            order_id.isascii() and order_id.isprintable() and " " not in order_id
        ):
            raise invalid_param("withdrawOrderId")
        # a client's id is scoped to its user: it never collides with another user's
        wid = f"u{caller.user_id}-{order_id}" if order_id else f"w{secrets.token_hex(12)}"
        fee = 0
        stamped, events = await gw.runtime.submit(
            RequestWithdrawal(
                seq=0, ts=0, user=caller.user_id, asset=asset.code, amount=value, fee=fee,
                network=network, address=address, withdrawal_id=wid,
            )
        )  # fmt: skip
        gw.remember(caller.user_id, stamped.seq)
        refused = next((e for e in events if isinstance(e, CommandRejected)), None)
        if refused is not None:
            if refused.reason == RejectReason.INSUFFICIENT_BALANCE.value:
                raise BinanceError(-4026, INSUFFICIENT)
            if refused.reason == "duplicate_withdrawal":
                raise BinanceError(-4000, "Duplicate withdrawOrderId.")
            raise BinanceError(-4000, f"Withdrawal rejected: {refused.reason}.")
        cap.notes[wid] = WithdrawalNote(address, network, value, fee)
        return {"id": wid}

    async def withdraw_history(request: Request) -> Any:
        caller = await signed(gw, request, "read")
        p = caller.params
        user = caller.user_id
        asset = cap.coin(p, required=False)
        start_ns, end_ns, limit = transfer_bounds(p)
        status_filter = integer(p, "status")
        wanted_order_id = p.get("withdrawOrderId", "")
        await gw.history_ready(user)
        engine = gw.projector.engine
        holds = queries.transfers_of(
            engine, user, ("withdrawal_hold",), asset=asset.code if asset else None,
            start_ts=start_ns, end_ts=end_ns, limit=limit,
        )  # fmt: skip
        closing_rows = queries.transfers_of(
            engine, user, ("withdrawal", "withdrawal_release"),
            refs=[h.ref for h in holds], limit=max(len(holds), 1),
        )  # fmt: skip
        closes = {row.ref: row for row in closing_rows}
        live = gw.runtime.core.accounts.withdrawals
        available = f"user:{user}:available"
        prefix = f"u{user}-"
        out = []
        for hold in holds:
            wid = hold.ref.removeprefix("withdrawal:")
            order_id = wid[len(prefix) :] if wid.startswith(prefix) else ""
            if wanted_order_id and order_id != wanted_order_id:
                continue
            debit = next((x for x in hold.postings if x[0] == available), None)
            if debit is None:
                continue
            _, code, held_total = debit
            total = -held_total
            note = cap.notes.get(wid)
            pending = live.get(wid)
            closing = closes.get(hold.ref)
            extra: dict[str, Any] = {}
            if closing is not None and closing.type == "withdrawal":
                status = WITHDRAW_STATUS_COMPLETED
                sent = [(a, v) for a, _, v in closing.postings if a.startswith("external:")]
                network = sent[0][0].removeprefix("external:") if sent else ""
                value = sum(v for _, v in sent)
                fee = sum(v for a, _, v in closing.postings if a == "fees")
                address = note.address if note else ""
                extra["completeTime"] = utc_text(closing.ts)
            elif closing is not None:
                status = WITHDRAW_STATUS_CANCELLED
                fee = note.fee if note else 0
                value, network = total - fee, note.network if note else ""
                address = note.address if note else ""
            else:
                status = WITHDRAW_STATUS_PROCESSING
                if pending is not None and pending.user == user:
                    value, fee = pending.amount, pending.fee
                    network, address = pending.network, pending.address
                else:  # released meanwhile: the next read shows how it ended
                    fee = note.fee if note else 0
                    value, network = total - fee, note.network if note else ""
                    address = note.address if note else ""
            if status_filter is not None and status != status_filter:
                continue
            scale = gw.assets[code].scale if code in gw.assets else 0
            item: dict[str, Any] = {
                "id": wid, "amount": format_amount(value, scale),
                "transactionFee": format_amount(fee, scale), "coin": code, "status": status,
                "address": address, "txId": "", "applyTime": utc_text(hold.ts),
                "network": network or (networks_of(code)[0] if status != 6 else ""),
                "transferType": 0, "info": "", "confirmNo": 0, "walletType": 0, "txKey": "",
            }  # fmt: skip
            if order_id:
                item["withdrawOrderId"] = order_id
            item.update(extra)
            out.append(item)
        return out

    def r(path: str, fn: Callable[[Request], Any], methods: list[str]) -> Route:
        return Route(path, handler(fn), methods=methods)

    return [
        r("/sapi/v1/capital/deposit/address", deposit_address, ["GET"]),
        r("/sapi/v1/capital/deposit/hisrec", deposit_history, ["GET"]),
        r("/sapi/v1/capital/withdraw/apply", withdraw_apply, ["POST"]),
        r("/sapi/v1/capital/withdraw/history", withdraw_history, ["GET"]),
    ]
