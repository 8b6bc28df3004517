"""The native /v1 API against a real server: flows, errors and authorization."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import Server
from tests.gateway.deployments import every_deployment  # noqa: F401 (all three)


class Native:
    def __init__(self, server: Server, user: dict[str, Any]) -> None:
        self.key, self.secret = user["apiKey"], user["secret"]
        self.http = httpx.Client(base_url=server.url, timeout=10)

    def call(self, method: str, path: str, body: Any = None, *, query: str = "",
             secret: str | None = None, skew_ms: int = 0) -> httpx.Response:  # fmt: skip
        ts = str(int(time.time() * 1000) + skew_ms)
        raw = json.dumps(body).encode() if body is not None else b""
        target = path + (f"?{query}" if query else "")
        payload = ts.encode() + method.encode() + target.encode() + raw
        sign = hmac.new((secret or self.secret).encode(), payload, hashlib.sha256).hexdigest()
        headers = {"CB-ACCESS-KEY": self.key, "CB-ACCESS-TIMESTAMP": ts, "CB-ACCESS-SIGN": sign}
        if raw:
            headers["Content-Type"] = "application/json"
        return self.http.request(method, target, content=raw or None, headers=headers)


@pytest.fixture(scope="module")
def alice(server: Server) -> Native:
    return Native(server, server.users[0])


@pytest.fixture(scope="module")
def bob(server: Server) -> Native:
    return Native(server, server.users[1])


def test_public_market_data_and_openapi(server: Server) -> None:
    http = httpx.Client(base_url=server.url)
    markets = http.get("/v1/markets").json()
    assert {m["symbol"] for m in markets} >= {"BTCUSDT", "ETHUSDT"}
    assert http.get("/v1/markets/BTCUSDT/book").json()["market"] == "BTCUSDT"
    assert http.get("/v1/markets/NOPE/book").status_code == 404
    assert http.get("/v1/markets/BTCUSDT/klines", params={"interval": "7m"}).status_code == 400
    doc = http.get("/openapi.json").json()
    assert "/v1/orders" in doc["paths"] and "/v1/balances" in doc["paths"]


def test_order_lifecycle(alice: Native, bob: Native) -> None:
    r = alice.call("POST", "/v1/orders", {"market": "BTCUSDT", "side": "sell",
                                          "price": "61000.00", "quantity": "0.02000"})  # fmt: skip
    assert r.status_code == 200, r.text
    order = r.json()
    assert order["status"] == "new" and order["leaves"] == "0.02000000"
    oid = order["order_id"]
    r = bob.call("POST", "/v1/orders", {"market": "BTCUSDT", "side": "buy", "price": "61000.00",
                                        "quantity": "0.01000", "time_in_force": "ioc"})  # fmt: skip
    assert r.json()["status"] == "filled"
    assert r.json()["fills"][0]["fee_asset"] == "BTC"
    got = alice.call("GET", f"/v1/orders/BTCUSDT/{oid}").json()
    assert got["status"] == "partially_filled" and got["filled"] == "0.01000000"
    r = alice.call("PATCH", f"/v1/orders/BTCUSDT/{oid}", {"price": "62000.00"})
    assert r.status_code == 200, r.text
    assert r.json()["price"] == "62000.00"
    assert [
        o["order_id"] for o in alice.call("GET", "/v1/orders", query="market=BTCUSDT").json()
    ] == [oid]
    assert alice.call("DELETE", f"/v1/orders/BTCUSDT/{oid}").json()["status"] == "cancelled"
    history = alice.call("GET", "/v1/orders/history", query="market=BTCUSDT").json()
    assert oid in [o["order_id"] for o in history]
    trades = bob.call("GET", "/v1/trades/history", query="market=BTCUSDT").json()
    assert trades[-1]["side"] == "buy"
    ledger = bob.call("GET", "/v1/ledger").json()
    assert {e["type"] for e in ledger} >= {"trade", "deposit"} or {e["type"] for e in ledger} >= {
        "trade"
    }
    balances = {b["asset"]: b for b in alice.call("GET", "/v1/balances").json()}
    assert balances["BTC"]["held"] == "0.00000000"


def test_other_users_orders_are_invisible(alice: Native, bob: Native) -> None:
    oid = alice.call("POST", "/v1/orders", {"market": "BTCUSDT", "side": "sell",
                                            "price": "90000.00", "quantity": "0.01000"}).json()["order_id"]  # fmt: skip
    for method, path, body in (
        ("GET", f"/v1/orders/BTCUSDT/{oid}", None),
        ("DELETE", f"/v1/orders/BTCUSDT/{oid}", None),
        ("PATCH", f"/v1/orders/BTCUSDT/{oid}", {"price": "91000.00"}),
    ):
        assert bob.call(method, path, body).status_code == 404, (method, path)
    assert oid not in [o["order_id"] for o in bob.call("GET", "/v1/orders").json()]
    assert alice.call("DELETE", "/v1/orders", query="market=BTCUSDT").json()["cancelled"] == [oid]


def test_authentication_failures(alice: Native, server: Server) -> None:
    assert httpx.get(f"{server.url}/v1/balances").status_code == 401
    assert alice.call("GET", "/v1/balances", secret="z" * 64).status_code == 401
    assert alice.call("GET", "/v1/balances", skew_ms=-60_000).status_code == 401
    r = alice.call("POST", "/v1/orders", {"market": "BTCUSDT", "side": "buy", "price": "1.001",
                                          "quantity": "1"})  # fmt: skip
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_amount"
    r = alice.call("POST", "/v1/orders", {"market": "BTCUSDT", "side": "buy",
                                          "price": "50000.00", "quantity": "1000"})  # fmt: skip
    assert r.json()["error"]["code"] == "insufficient_balance"


def test_session_login(server: Server) -> None:
    http = httpx.Client(base_url=server.url)
    email = server.users[0]["email"]
    assert (
        http.post("/v1/session", json={"email": email, "password": "wrong-password"}).status_code
        == 401
    )
    token = http.post("/v1/session", json={"email": email, "password": "crossbook-demo"}).json()[
        "token"
    ]
    r = http.get("/v1/balances", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and len(r.json()) >= 3


def test_dead_mans_switch_cancels(alice: Native) -> None:
    oid = alice.call("POST", "/v1/orders", {"market": "ETHUSDT", "side": "sell",
                                            "price": "9000.00", "quantity": "1.0000"}).json()["order_id"]  # fmt: skip
    assert (
        alice.call(
            "POST", "/v1/orders/cancel-after", {"market": "ETHUSDT", "seconds": 1}
        ).status_code
        == 200
    )
    time.sleep(2.0)
    assert alice.call("GET", f"/v1/orders/ETHUSDT/{oid}").json()["status"] == "cancelled"
