"""Authorization of every user-scoped endpoint of both APIs, and of the user data streams.

Two demo users: alice attacks, bob is the victim. Bob has resting orders, trades,
balances and a listen key; alice, with her own valid credentials, names bob's ids
everywhere an id can be named, and the test proves that nothing of bob's is visible to
her or changed by her. Then every endpoint is called with no credentials, a bad
signature, a stale timestamp, an unknown key and a key lacking the permission it needs:
each is refused with Binance's exact code (-2014, -1022, -1021, -2015) or the native
401/403, and none of them has any effect."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.gateway.conftest import Server, start_server, stop_server
from tests.gateway.deployments import every_deployment  # noqa: F401 (all three)
from tests.gateway.test_binance_rest import Client
from tests.gateway.test_native_api import Native

BTC, ETH = "BTCUSDT", "ETHUSDT"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory, deployment: str) -> Iterator[Server]:
    # many requests in a short time: rate limits are tested elsewhere
    data_dir = tmp_path_factory.mktemp("authz") / "data"
    srv = start_server(data_dir, extra=["--no-rate-limits"], deployment=deployment)
    try:
        yield srv
    finally:
        code = stop_server(srv)
        assert code == 0, srv.log.read_text()[-5000:]


class User:
    """One demo user, through both APIs."""

    def __init__(self, server: Server, creds: dict[str, Any]) -> None:
        self.server, self.creds = server, creds
        self.b = Client(server, creds)
        self.n = Native(server, creds)
        self.id = int(self.b.signed("GET", "/api/v3/account").json()["uid"])

    def session(self) -> str:
        r = httpx.post(f"{self.server.url}/v1/session",
                       json={"email": self.creds["email"], "password": "crossbook-demo"})  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["user_id"] == self.id
        return str(r.json()["token"])

    def state(self) -> dict[str, Any]:
        """Everything of this user that another user must not change."""
        account = self.b.signed("GET", "/api/v3/account").json()
        opened = self.b.signed("GET", "/api/v3/openOrders").json()
        native_open = self.n.call("GET", "/v1/orders").json()
        return {
            "balances": {b["asset"]: (b["free"], b["locked"]) for b in account["balances"]},
            "native_balances": self.n.call("GET", "/v1/balances").json(),
            "open": sorted(
                tuple(
                    o[k]
                    for k in (
                        "symbol",
                        "orderId",
                        "clientOrderId",
                        "price",
                        "origQty",
                        "executedQty",
                        "status",
                    )
                )
                for o in opened
            ),
            "native_open": sorted(json.dumps(o, sort_keys=True) for o in native_open),
        }


@pytest.fixture(scope="module")
def alice(auth_server: Server) -> User:
    return User(auth_server, auth_server.users[0])


@pytest.fixture(scope="module")
def bob(auth_server: Server) -> User:
    return User(auth_server, auth_server.users[1])


@pytest.fixture(scope="module")
def world(alice: User, bob: User) -> dict[str, Any]:
    """Bob's and alice's orders and one trade between them."""
    assert alice.id != bob.id
    # a trade: bob's ask, alice takes part of it
    r = bob.b.signed("POST", "/api/v3/order", symbol=BTC, side="SELL", type="LIMIT",
                     timeInForce="GTC", quantity="0.02000", price="61000.00",
                     newClientOrderId="bob-maker")  # fmt: skip
    assert r.status_code == 200, r.text
    bob_maker = r.json()["orderId"]
    r = alice.b.signed("POST", "/api/v3/order", symbol=BTC, side="BUY", type="LIMIT",
                       timeInForce="IOC", quantity="0.01000", price="61000.00",
                       newClientOrderId="alice-taker")  # fmt: skip
    assert r.json()["status"] == "FILLED", r.text
    alice_taker = r.json()["orderId"]
    # bob's resting orders, one per API and market
    r = bob.b.signed("POST", "/api/v3/order", symbol=BTC, side="BUY", type="LIMIT",
                     timeInForce="GTC", quantity="0.01000", price="40000.00",
                     newClientOrderId="bob-secret")  # fmt: skip
    assert r.status_code == 200, r.text
    bob_bid = r.json()["orderId"]
    r = bob.n.call("POST", "/v1/orders", {"market": ETH, "side": "sell", "price": "9000.00",
                                          "quantity": "1.0000", "client_order_id": "bob-eth"})  # fmt: skip
    assert r.status_code == 200, r.text
    bob_eth = r.json()["order_id"]
    # alice's resting orders: what the failed attempts below must leave alone
    r = alice.b.signed("POST", "/api/v3/order", symbol=BTC, side="BUY", type="LIMIT",
                       timeInForce="GTC", quantity="0.01000", price="30000.00",
                       newClientOrderId="alice-bid")  # fmt: skip
    alice_bid = r.json()["orderId"]
    r = alice.n.call("POST", "/v1/orders", {"market": ETH, "side": "sell", "price": "9500.00",
                                            "quantity": "1.0000"})  # fmt: skip
    alice_eth = r.json()["order_id"]
    return {
        "bob_orders": {(BTC, bob_maker), (BTC, bob_bid), (ETH, bob_eth)},
        "bob_maker": bob_maker, "bob_bid": bob_bid, "bob_eth": bob_eth,
        "alice_orders": {(BTC, alice_taker), (BTC, alice_bid), (ETH, alice_eth)},
        "alice_bid": alice_bid, "alice_eth": alice_eth,
    }  # fmt: skip


def restricted_key(owner: User, **grants: bool) -> dict[str, Any]:
    """A new API key of ``owner`` with these permissions, made through a session."""
    token = owner.session()
    r = httpx.post(f"{owner.server.url}/v1/api-keys", json={"label": "test", **grants},
                   headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert r.status_code == 200, r.text
    return {"apiKey": r.json()["api_key"], "secret": r.json()["secret"], "email": ""}


# ------------------------------------------------------------- cross-user access


def test_binance_endpoints_never_show_or_touch_another_users_data(
    alice: User, bob: User, world: dict[str, Any]
) -> None:
    before = bob.state()
    a = alice.b
    bid, eth = world["bob_bid"], world["bob_eth"]
    # one order, by id and by client id (also the cb<id> form of a missing client id)
    for params in ({"orderId": bid}, {"origClientOrderId": "bob-secret"},
                   {"origClientOrderId": f"cb{bid}"}):  # fmt: skip
        r = a.signed("GET", "/api/v3/order", symbol=BTC, **params)
        assert (r.status_code, r.json()["code"]) == (400, -2013), (params, r.text)
        r = a.signed("DELETE", "/api/v3/order", symbol=BTC, **params)
        assert (r.status_code, r.json()["code"]) == (400, -2011), (params, r.text)
    r = a.signed("GET", "/api/v3/order", symbol=ETH, orderId=eth)
    assert r.json()["code"] == -2013
    # lists: only alice's
    mine = {oid for _, oid in world["alice_orders"]}
    theirs = {oid for _, oid in world["bob_orders"]}
    for symbol in (None, BTC, ETH):
        opened = a.signed("GET", "/api/v3/openOrders", symbol=symbol).json()
        assert {o["orderId"] for o in opened} <= mine
    for symbol in (BTC, ETH):
        for extra in ({}, {"orderId": min(theirs)}, {"startTime": 0}):
            history = a.signed("GET", "/api/v3/allOrders", symbol=symbol, **extra).json()
            assert {o["orderId"] for o in history} <= mine, history
            trades = a.signed("GET", "/api/v3/myTrades", symbol=symbol, **extra).json()
            assert {t["orderId"] for t in trades} <= mine, trades
        for oid in theirs:
            assert a.signed("GET", "/api/v3/myTrades", symbol=symbol, orderId=oid).json() == []
    # the one trade between them shows alice's side only
    trades = a.signed("GET", "/api/v3/myTrades", symbol=BTC).json()
    assert len(trades) == 1 and trades[0]["isBuyer"] and not trades[0]["isMaker"]
    # account: alice's, whatever user-ish parameters she adds
    extras: list[dict[str, Any]] = [{}, {"uid": bob.id}, {"userId": bob.id}]
    for extra in extras:
        account = a.signed("GET", "/api/v3/account", **extra).json()
        assert account["uid"] == alice.id
    # cancelling "all" cancels alice's only; re-place what she lost
    cancelled = a.signed("DELETE", "/api/v3/openOrders", symbol=BTC).json()
    assert {o["orderId"] for o in cancelled} <= mine and cancelled
    r = a.signed("POST", "/api/v3/order", symbol=BTC, side="BUY", type="LIMIT", timeInForce="GTC",
                 quantity="0.01000", price="30000.00")  # fmt: skip
    world["alice_bid"] = r.json()["orderId"]
    world["alice_orders"].add((BTC, world["alice_bid"]))
    assert bob.state() == before


def test_native_endpoints_never_show_or_touch_another_users_data(
    alice: User, bob: User, world: dict[str, Any]
) -> None:
    before = bob.state()
    a = alice.n
    mine = {oid for _, oid in world["alice_orders"]}
    for symbol, oid in world["bob_orders"]:
        for method, body in (("GET", None), ("DELETE", None), ("PATCH", {"price": "9100.00"}),
                             ("PATCH", {"quantity": "0.5000"})):  # fmt: skip
            r = a.call(method, f"/v1/orders/{symbol}/{oid}", body)
            assert r.status_code == 404, (method, symbol, oid, r.text)
            assert r.json()["error"]["code"] == "unknown_order"
    for query in ("", f"market={BTC}", f"market={ETH}"):
        assert {o["order_id"] for o in a.call("GET", "/v1/orders", query=query).json()} <= mine
    for symbol in (BTC, ETH):
        history = a.call("GET", "/v1/orders/history", query=f"market={symbol}").json()
        assert {o["order_id"] for o in history} <= mine
        trades = a.call("GET", "/v1/trades/history", query=f"market={symbol}").json()
        assert {t["order_id"] for t in trades} <= mine
    ledger = a.call("GET", "/v1/ledger", query="limit=1000").json()
    assert ledger and all(f":{bob.id}:" not in e["account"] for e in ledger), ledger
    assert all(e["account"].startswith(f"user:{alice.id}:") for e in ledger), ledger
    balances = {b["asset"]: b for b in a.call("GET", "/v1/balances").json()}
    binance = alice.b.signed("GET", "/api/v3/account").json()["balances"]
    assert {b["asset"]: (b["free"], b["locked"]) for b in binance} == {
        k: (v["available"], v["held"]) for k, v in balances.items()
    }
    # cancel-all and the dead man's switch act on alice's orders only
    r = a.call("DELETE", "/v1/orders", query=f"market={ETH}")
    assert set(r.json()["cancelled"]) == {world["alice_eth"]}
    r = a.call("POST", "/v1/orders", {"market": ETH, "side": "sell", "price": "9500.00",
                                      "quantity": "1.0000"})  # fmt: skip
    doomed = r.json()["order_id"]
    assert (
        a.call("POST", "/v1/orders/cancel-after", {"market": ETH, "seconds": 1}).status_code == 200
    )
    time.sleep(1.8)
    assert a.call("GET", f"/v1/orders/{ETH}/{doomed}").json()["status"] == "cancelled"
    r = a.call("POST", "/v1/orders", {"market": ETH, "side": "sell", "price": "9500.00",
                                      "quantity": "1.0000"})  # fmt: skip
    world["alice_eth"] = r.json()["order_id"]
    world["alice_orders"].add((ETH, world["alice_eth"]))
    assert bob.state() == before


def test_sessions_and_api_keys_belong_to_their_owner(alice: User, bob: User) -> None:
    url = alice.server.url
    alice_token, bob_token = alice.session(), bob.session()
    # logging out ends the caller's session only
    r = httpx.delete(f"{url}/v1/session", headers={"Authorization": f"Bearer {alice_token}"})
    assert r.status_code == 200
    assert httpx.get(f"{url}/v1/balances",
                     headers={"Authorization": f"Bearer {alice_token}"}).status_code == 401  # fmt: skip
    assert httpx.get(f"{url}/v1/balances",
                     headers={"Authorization": f"Bearer {bob_token}"}).status_code == 200  # fmt: skip
    # a signed logout carrying a made-up token ends nothing either
    r = alice.n.call("DELETE", "/v1/session")
    assert r.status_code == 200
    assert httpx.get(f"{url}/v1/balances",
                     headers={"Authorization": f"Bearer {bob_token}"}).status_code == 200  # fmt: skip
    # keys: each user lists only their own, never secrets; nobody revokes another's key
    bob_key = restricted_key(bob, read=True)
    listed = bob.n.call("GET", "/v1/api-keys").json()
    assert bob_key["apiKey"] in {k["api_key"] for k in listed}
    assert all("secret" not in k for k in listed)
    assert bob.creds["secret"] not in json.dumps(listed)
    assert bob_key["apiKey"] not in {
        k["api_key"] for k in alice.n.call("GET", "/v1/api-keys").json()
    }
    r = alice.n.call("DELETE", f"/v1/api-keys/{bob_key['apiKey']}")
    assert r.status_code == 404
    assert Client(alice.server, bob_key).signed("GET", "/api/v3/account").status_code == 200
    # a read-only key cannot mint a trading key, nor revoke a stronger one
    reader = Native(alice.server, restricted_key(alice, read=True))
    r = reader.call("POST", "/v1/api-keys", {"read": True, "trade": True})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
    r = reader.call("DELETE", f"/v1/api-keys/{alice.creds['apiKey']}")
    assert r.status_code == 403
    r = reader.call("POST", "/v1/api-keys", {"read": True, "trade": False})
    assert r.status_code == 200
    # revoked: refused everywhere
    assert bob.n.call("DELETE", f"/v1/api-keys/{bob_key['apiKey']}").json() == {"ok": True}
    r = Client(alice.server, bob_key).signed("GET", "/api/v3/account")
    assert (r.status_code, r.json()["code"]) == (401, -2015)
    assert Native(alice.server, bob_key).call("GET", "/v1/balances").status_code == 401


def test_listen_keys_belong_to_their_owner(alice: User, bob: User) -> None:
    http = httpx.Client(base_url=alice.server.url)
    bob_key = http.post("/api/v3/userDataStream",
                        headers={"X-MBX-APIKEY": bob.creds["apiKey"]}).json()["listenKey"]  # fmt: skip
    alice_key = http.post("/api/v3/userDataStream",
                          headers={"X-MBX-APIKEY": alice.creds["apiKey"]}).json()["listenKey"]  # fmt: skip
    assert alice_key != bob_key
    # alice can neither close nor extend bob's key: it stays bob's, the same one
    for method in ("DELETE", "PUT"):
        r = http.request(method, "/api/v3/userDataStream", params={"listenKey": bob_key},
                         headers={"X-MBX-APIKEY": alice.creds["apiKey"]})  # fmt: skip
        assert r.status_code == 200
    again = http.post("/api/v3/userDataStream", headers={"X-MBX-APIKEY": bob.creds["apiKey"]})
    assert again.json()["listenKey"] == bob_key


# ------------------------------------------------------------ failed authentication

BINANCE = [
    ("GET", "/api/v3/account", {}, "read"),
    ("POST", "/api/v3/order", {"symbol": BTC, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                               "quantity": "0.01000", "price": "20000.00"}, "trade"),
    ("GET", "/api/v3/order", {"symbol": BTC, "orderId": "ALICE_BID"}, "read"),
    ("DELETE", "/api/v3/order", {"symbol": BTC, "orderId": "ALICE_BID"}, "trade"),
    ("GET", "/api/v3/openOrders", {"symbol": BTC}, "read"),
    ("DELETE", "/api/v3/openOrders", {"symbol": BTC}, "trade"),
    ("GET", "/api/v3/allOrders", {"symbol": BTC}, "read"),
    ("GET", "/api/v3/myTrades", {"symbol": BTC}, "read"),
]  # fmt: skip
NATIVE = [
    ("GET", "/v1/balances", None, "", "read"),
    ("GET", "/v1/ledger", None, "", "read"),
    ("POST", "/v1/orders", {"market": ETH, "side": "sell", "price": "9900.00",
                            "quantity": "1.0000"}, "", "trade"),
    ("GET", "/v1/orders", None, f"market={ETH}", "read"),
    ("DELETE", "/v1/orders", None, f"market={ETH}", "trade"),
    ("GET", "/v1/orders/ETHUSDT/ALICE_ETH", None, "", "read"),
    ("DELETE", "/v1/orders/ETHUSDT/ALICE_ETH", None, "", "trade"),
    ("PATCH", "/v1/orders/ETHUSDT/ALICE_ETH", {"price": "9600.00"}, "", "trade"),
    ("GET", "/v1/orders/history", None, f"market={ETH}", "read"),
    ("GET", "/v1/trades/history", None, f"market={ETH}", "read"),
    ("POST", "/v1/orders/cancel-after", {"market": ETH, "seconds": 1}, "", "trade"),
    ("DELETE", "/v1/session", None, "", None),
    ("GET", "/v1/api-keys", None, "", None),
    ("POST", "/v1/api-keys", {"read": True}, "", None),
]  # fmt: skip
BINANCE_FAILURES = {
    # failure: (how, HTTP status, Binance code)
    "no key header": (401, -2014),
    "empty key": (401, -2014),
    "malformed key": (401, -2014),
    "unknown key": (401, -2015),
    "bad signature": (400, -1022),
    "signature of other params": (400, -1022),
    "stale timestamp": (400, -1021),
    "future timestamp": (400, -1021),
    "no permission": (401, -2015),
}
NATIVE_FAILURES = {
    "no credentials": (401, "unauthenticated"),
    "unknown key": (401, "unauthenticated"),
    "bad signature": (401, "invalid_signature"),
    "signed for another path": (401, "invalid_signature"),
    "stale timestamp": (401, "invalid_timestamp"),
    "future timestamp": (401, "invalid_timestamp"),
    "unknown session": (401, "unauthenticated"),
    "no permission": (403, "forbidden"),
}


def fill_ids(value: Any, world: dict[str, Any]) -> Any:
    ids = {"ALICE_BID": str(world["alice_bid"]), "ALICE_ETH": str(world["alice_eth"])}
    if isinstance(value, str):
        for name, oid in ids.items():
            value = value.replace(name, oid)
        return value
    if isinstance(value, dict):
        return {k: fill_ids(v, world) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def keys_without(alice: User) -> dict[str, dict[str, Any]]:
    """Alice's keys lacking exactly one permission."""
    return {
        "read": restricted_key(alice, read=False, trade=True),
        "trade": restricted_key(alice, read=True, trade=False),
    }


@pytest.mark.parametrize("failure", list(BINANCE_FAILURES))
@pytest.mark.parametrize(("method", "path", "params", "permission"), BINANCE,
                         ids=[f"{m} {p}" for m, p, _, _ in BINANCE])  # fmt: skip
def test_binance_refuses_bad_credentials(
    alice: User, bob: User, world: dict[str, Any], keys_without: dict[str, dict[str, Any]],
    method: str, path: str, params: dict[str, Any], permission: str, failure: str,
) -> None:  # fmt: skip
    before, bob_before = alice.state(), bob.state()
    params = fill_ids(params, world)
    a = alice.b
    if failure == "no key header":
        query = "&".join(f"{k}={v}" for k, v in params.items())
        query += f"&timestamp={int(time.time() * 1000)}"
        sig = hmac.new(alice.creds["secret"].encode(), query.encode(), hashlib.sha256).hexdigest()
        r = a.http.request(method, f"{path}?{query}&signature={sig}")
    elif failure == "empty key":
        r = a.signed(method, path, key="", **params)
    elif failure == "malformed key":
        r = a.signed(method, path, key="not a key!", **params)
    elif failure == "unknown key":
        r = a.signed(method, path, key="y" * 64, **params)
    elif failure == "bad signature":
        r = a.signed(method, path, secret="x" * 64, **params)
    elif failure == "signature of other params":
        # a valid signature, then parameters appended after it: not covered, refused
        query = "&".join(f"{k}={v}" for k, v in params.items())
        query += f"&timestamp={int(time.time() * 1000)}"
        sig = hmac.new(alice.creds["secret"].encode(), query.encode(), hashlib.sha256).hexdigest()
        r = a.http.request(method, f"{path}?{query}&signature={sig}&symbol={ETH}",
                           headers={"X-MBX-APIKEY": a.key})  # fmt: skip
    elif failure == "stale timestamp":
        r = a.signed(method, path, ts_offset=-60_000, **params)
    elif failure == "future timestamp":
        r = a.signed(method, path, ts_offset=60_000, **params)
    else:
        lacking = Client(alice.server, keys_without[permission])
        r = lacking.signed(method, path, **params)
    status, code = BINANCE_FAILURES[failure]
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    assert alice.state() == before
    assert bob.state() == bob_before


@pytest.mark.parametrize("failure", ["no key header", "empty key", "unknown key"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_binance_user_data_stream_needs_a_valid_key(alice: User, method: str, failure: str) -> None:
    # userDataStream is key-only (no signature, any permission), as on Binance
    headers = {"no key header": {}, "empty key": {"X-MBX-APIKEY": ""},
               "unknown key": {"X-MBX-APIKEY": "y" * 64}}[failure]  # fmt: skip
    r = alice.b.http.request(method, "/api/v3/userDataStream", headers=headers,
                             params={"listenKey": "x" * 60} if method != "POST" else None)  # fmt: skip
    expected = -2015 if failure == "unknown key" else -2014
    assert (r.status_code, r.json()["code"]) == (401, expected), r.text


# every endpoint with every failure, except "no permission" for the endpoints that need
# no permission beyond a valid key or session
NATIVE_CASES = [
    pytest.param(*endpoint, failure, id=f"{endpoint[0]} {endpoint[1]}-{failure}")
    for endpoint in NATIVE
    for failure in NATIVE_FAILURES
    if not (failure == "no permission" and endpoint[4] is None)
]


@pytest.mark.parametrize(("method", "path", "body", "query", "permission", "failure"), NATIVE_CASES)
def test_native_refuses_bad_credentials(
    alice: User, bob: User, world: dict[str, Any], keys_without: dict[str, dict[str, Any]],
    method: str, path: str, body: Any, query: str, permission: str | None, failure: str,
) -> None:  # fmt: skip
    before, bob_before = alice.state(), bob.state()
    keys_before = alice.n.call("GET", "/v1/api-keys").json()
    path = fill_ids(path, world)
    a = alice.n
    target = path + (f"?{query}" if query else "")
    raw = json.dumps(body).encode() if body is not None else None
    json_headers = {"Content-Type": "application/json"} if raw else {}
    if failure == "no credentials":
        r = a.http.request(method, target, content=raw, headers=json_headers)
    elif failure == "unknown key":
        r = Native(alice.server, {"apiKey": "y" * 64, "secret": "x" * 64}).call(
            method, path, body, query=query
        )
    elif failure == "bad signature":
        r = a.call(method, path, body, query=query, secret="x" * 64)
    elif failure == "signed for another path":
        ts = str(int(time.time() * 1000))
        payload = ts.encode() + b"GET/v1/elsewhere"
        sign = hmac.new(a.secret.encode(), payload, hashlib.sha256).hexdigest()
        r = a.http.request(method, target, content=raw, headers={
            **json_headers, "CB-ACCESS-KEY": a.key, "CB-ACCESS-TIMESTAMP": ts,
            "CB-ACCESS-SIGN": sign})  # fmt: skip
    elif failure == "stale timestamp":
        r = a.call(method, path, body, query=query, skew_ms=-60_000)
    elif failure == "future timestamp":
        r = a.call(method, path, body, query=query, skew_ms=60_000)
    elif failure == "unknown session":
        r = a.http.request(method, target, content=raw,
                           headers={**json_headers, "Authorization": "Bearer nope"})  # fmt: skip
    else:
        assert permission is not None
        r = Native(alice.server, keys_without[permission]).call(method, path, body, query=query)
    status, code = NATIVE_FAILURES[failure]
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    time.sleep(0.05 if "cancel-after" not in path else 1.5)  # a switch would have fired
    assert alice.state() == before
    assert bob.state() == bob_before
    assert alice.n.call("GET", "/v1/api-keys").json() == keys_before


def test_native_signature_covers_the_path_as_sent(alice: User, world: dict[str, Any]) -> None:
    """The signature is over the raw request target: a percent-encoded path verifies
    when signed as sent, and not when signed decoded."""
    url = urlsplit(alice.server.url)
    oid = world["alice_eth"]
    sent = f"/v1/orders/ETH%55SDT/{oid}"
    for signed_path, expected in ((sent, 200), (f"/v1/orders/ETHUSDT/{oid}", 401)):
        ts = str(int(time.time() * 1000))
        sign = hmac.new(alice.n.secret.encode(), f"{ts}GET{signed_path}".encode(),
                        hashlib.sha256).hexdigest()  # fmt: skip
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
        conn.request("GET", sent, headers={"CB-ACCESS-KEY": alice.n.key,
                                           "CB-ACCESS-TIMESTAMP": ts, "CB-ACCESS-SIGN": sign})  # fmt: skip
        resp = conn.getresponse()
        body = json.loads(resp.read())
        conn.close()
        assert resp.status == expected, body
        if expected == 200:
            assert body["order_id"] == oid and body["market"] == ETH


# ------------------------------------------------------------------- WebSockets


def ws_subscribe(ws: ClientConnection, creds: dict[str, Any], *, secret: str | None = None,
                 ts_offset: int = 0, rid: str = "1") -> dict[str, Any]:  # fmt: skip
    params = {"apiKey": creds["apiKey"], "timestamp": int(time.time() * 1000) + ts_offset,
              "recvWindow": 5000}  # fmt: skip
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
    params["signature"] = hmac.new((secret or creds["secret"]).encode(), payload.encode(),
                                   hashlib.sha256).hexdigest()  # fmt: skip
    ws.send(json.dumps({"id": rid, "method": "userDataStream.subscribe.signature",
                        "params": params}))  # fmt: skip
    while True:
        msg = json.loads(ws.recv(timeout=5))
        if msg.get("id") == rid:
            return dict(msg)


def drain(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            out.append(json.loads(ws.recv(timeout=left)))
        except TimeoutError:
            break
        except ConnectionClosed:
            break
    return out


def activity(alice: User, bob: User) -> tuple[set[int], set[int]]:
    """Both users place and cancel orders and trade with each other; their order ids."""
    a_ids, b_ids = set(), set()
    r = bob.b.signed("POST", "/api/v3/order", symbol=BTC, side="SELL", type="LIMIT",
                     timeInForce="GTC", quantity="0.01000", price="62000.00")  # fmt: skip
    b_ids.add(r.json()["orderId"])
    r = alice.b.signed("POST", "/api/v3/order", symbol=BTC, side="BUY", type="LIMIT",
                       timeInForce="IOC", quantity="0.00500", price="62000.00")  # fmt: skip
    a_ids.add(r.json()["orderId"])
    r = bob.n.call("POST", "/v1/orders", {"market": ETH, "side": "buy", "price": "1000.00",
                                          "quantity": "1.0000"})  # fmt: skip
    b_ids.add(r.json()["order_id"])
    bob.n.call("DELETE", f"/v1/orders/{ETH}/{r.json()['order_id']}")
    r = alice.n.call("POST", "/v1/orders", {"market": ETH, "side": "buy", "price": "1000.00",
                                            "quantity": "1.0000"})  # fmt: skip
    a_ids.add(r.json()["order_id"])
    alice.n.call("DELETE", f"/v1/orders/{ETH}/{r.json()['order_id']}")
    bob.b.signed("DELETE", "/api/v3/openOrders", symbol=BTC)
    return a_ids, b_ids


def check_own_events(events: list[dict[str, Any]], own: set[int], other: set[int]) -> None:
    reports = [e for e in events if e.get("e") == "executionReport"]
    seen = {e["i"] for e in reports}
    assert own <= seen, (own, events)
    assert not seen & other, (seen, other)


def test_ws_api_refuses_a_wrong_signature_and_streams_only_the_callers_events(
    alice: User, bob: User
) -> None:
    url = f"{alice.server.ws_url}/ws-api/v3"
    with connect(url) as ws:
        cases = [
            ({"secret": "x" * 64}, -1022),
            ({"secret": bob.creds["secret"]}, -1022),  # alice's key, bob's secret
            ({"ts_offset": -60_000}, -1021),
        ]
        for i, (tamper, code) in enumerate(cases):
            reply = ws_subscribe(ws, alice.creds, rid=f"bad{i}", **tamper)
            assert reply["status"] in (400, 401) and reply["error"]["code"] == code, reply
        reply = ws_subscribe(ws, {"apiKey": "y" * 64, "secret": "x" * 64}, rid="unknown")
        assert reply["error"]["code"] == -2015, reply
        # refused subscriptions get nothing: not alice's events, not anyone's
        a_ids, b_ids = activity(alice, bob)
        assert drain(ws, 1.0) == []
    with connect(url) as ws_a, connect(url) as ws_b:
        assert ws_subscribe(ws_a, alice.creds)["status"] == 200
        assert ws_subscribe(ws_b, bob.creds)["status"] == 200
        a_ids, b_ids = activity(alice, bob)
        events_a = [m["event"] for m in drain(ws_a, 1.5)]
        events_b = [m["event"] for m in drain(ws_b, 0.3)]
    check_own_events(events_a, a_ids, b_ids)
    check_own_events(events_b, b_ids, a_ids)


def test_listen_key_stream_carries_only_its_owners_events(alice: User, bob: User) -> None:
    http = httpx.Client(base_url=alice.server.url)
    keys = {}
    for user in (alice, bob):
        r = http.post("/api/v3/userDataStream", headers={"X-MBX-APIKEY": user.creds["apiKey"]})
        keys[user.id] = r.json()["listenKey"]
    ws_url = alice.server.ws_url
    with connect(f"{ws_url}/ws/{keys[alice.id]}") as ws_a, \
            connect(f"{ws_url}/ws/{keys[bob.id]}") as ws_b:  # fmt: skip
        time.sleep(0.2)  # attached once the server has accepted
        a_ids, b_ids = activity(alice, bob)
        events_a = drain(ws_a, 1.5)
        events_b = drain(ws_b, 0.3)
    check_own_events(events_a, a_ids, b_ids)
    check_own_events(events_b, b_ids, a_ids)
    # alice's account updates are alice's balances
    positions = [e for e in events_a if e.get("e") == "outboundAccountPosition"]
    assert positions
    account = alice.b.signed("GET", "/api/v3/account").json()
    free = {b["asset"]: b["free"] for b in account["balances"]}
    last = {b["a"]: b["f"] for b in positions[-1]["B"]}
    assert all(free[asset] == value for asset, value in last.items()), (last, free)
