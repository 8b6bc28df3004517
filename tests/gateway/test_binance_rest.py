"""The Binance-compatible REST API against a real server: flows, errors, authorization."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.gateway.conftest import Server
from tests.gateway.deployments import every_deployment  # noqa: F401 (all three)


class Client:
    """A minimal signed client, the way Binance documents (and ccxt does) it."""

    def __init__(self, server: Server, user: dict[str, Any]) -> None:
        self.url = server.url
        self.key, self.secret = user["apiKey"], user["secret"]
        self.http = httpx.Client(base_url=server.url, timeout=10)

    def signed(self, method: str, path: str, *, key: str | None = None,
               secret: str | None = None, ts_offset: int = 0, **params: Any) -> httpx.Response:  # fmt: skip
        params.setdefault("timestamp", int(time.time() * 1000) + ts_offset)
        query = urlencode({k: v for k, v in params.items() if v is not None})
        sig = hmac.new((secret or self.secret).encode(), query.encode(), hashlib.sha256).hexdigest()
        headers = {"X-MBX-APIKEY": key if key is not None else self.key}
        if method in ("POST", "PUT"):
            return self.http.request(method, path, content=f"{query}&signature={sig}",
                                     headers={**headers, "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        return self.http.request(method, f"{path}?{query}&signature={sig}", headers=headers)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params)


@pytest.fixture(scope="module")
def alice(server: Server) -> Client:
    return Client(server, server.users[0])


@pytest.fixture(scope="module")
def bob(server: Server) -> Client:
    return Client(server, server.users[1])


def balances(client: Client) -> dict[str, tuple[str, str]]:
    r = client.signed("GET", "/api/v3/account")
    assert r.status_code == 200, r.text
    return {b["asset"]: (b["free"], b["locked"]) for b in r.json()["balances"]}


def test_public_endpoints(alice: Client) -> None:
    assert alice.get("/api/v3/ping").json() == {}
    assert abs(alice.get("/api/v3/time").json()["serverTime"] - time.time() * 1000) < 5000
    info = alice.get("/api/v3/exchangeInfo").json()
    assert {s["symbol"] for s in info["symbols"]} >= {"BTCUSDT", "ETHUSDT"}
    btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    assert {f["filterType"] for f in btc["filters"]} >= {"PRICE_FILTER", "LOT_SIZE", "NOTIONAL"}
    depth = alice.get("/api/v3/depth", symbol="BTCUSDT", limit=5).json()
    assert set(depth) == {"lastUpdateId", "bids", "asks"}
    assert alice.get("/api/v3/depth", symbol="NOPE").json()["code"] == -1121


def test_demo_users_are_funded(alice: Client) -> None:
    b = balances(alice)
    assert float(b["BTC"][0]) >= 10 and float(b["ETH"][0]) >= 100
    assert float(b["USDT"][0]) >= 1_000_000


def test_limit_order_lifecycle(alice: Client, bob: Client) -> None:
    r = alice.signed("POST", "/api/v3/order", symbol="BTCUSDT", side="SELL", type="LIMIT",
                     timeInForce="GTC", quantity="0.01000", price="60000.00",
                     newClientOrderId="alice-1")  # fmt: skip
    assert r.status_code == 200, r.text
    order = r.json()
    assert order["status"] == "NEW" and order["clientOrderId"] == "alice-1"
    assert balances(alice)["BTC"][1] == "0.01000000"
    # bob takes half of it
    r = bob.signed("POST", "/api/v3/order", symbol="BTCUSDT", side="BUY", type="LIMIT",
                   timeInForce="IOC", quantity="0.00500", price="60000.00",
                   newOrderRespType="FULL")  # fmt: skip
    assert r.status_code == 200, r.text
    taker = r.json()
    assert taker["status"] == "FILLED" and taker["executedQty"] == "0.00500000"
    assert taker["fills"][0]["price"] == "60000.00"
    assert taker["fills"][0]["commissionAsset"] == "BTC"
    r = alice.signed("GET", "/api/v3/order", symbol="BTCUSDT", orderId=order["orderId"])
    assert r.json()["status"] == "PARTIALLY_FILLED", r.text
    opened = alice.signed("GET", "/api/v3/openOrders", symbol="BTCUSDT").json()
    assert [o["orderId"] for o in opened] == [order["orderId"]]
    trades = bob.signed("GET", "/api/v3/myTrades", symbol="BTCUSDT").json()
    assert trades[-1]["isBuyer"] and not trades[-1]["isMaker"]
    r = alice.signed("DELETE", "/api/v3/order", symbol="BTCUSDT", origClientOrderId="alice-1")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "CANCELED"
    assert balances(alice)["BTC"][1] == "0.00000000"
    history = alice.signed("GET", "/api/v3/allOrders", symbol="BTCUSDT").json()
    assert history[-1]["orderId"] == order["orderId"]


def test_users_cannot_touch_each_others_orders(alice: Client, bob: Client) -> None:
    r = alice.signed("POST", "/api/v3/order", symbol="BTCUSDT", side="SELL", type="LIMIT",
                     timeInForce="GTC", quantity="0.01000", price="70000.00")  # fmt: skip
    oid = r.json()["orderId"]
    assert bob.signed("GET", "/api/v3/order", symbol="BTCUSDT", orderId=oid).json()["code"] == -2013
    assert (
        bob.signed("DELETE", "/api/v3/order", symbol="BTCUSDT", orderId=oid).json()["code"] == -2011
    )
    assert oid not in [o["orderId"] for o in bob.signed("GET", "/api/v3/openOrders").json()]
    bob.signed("DELETE", "/api/v3/openOrders", symbol="BTCUSDT")
    mine = alice.signed("GET", "/api/v3/openOrders", symbol="BTCUSDT").json()
    assert oid in [o["orderId"] for o in mine]
    assert alice.signed("DELETE", "/api/v3/openOrders", symbol="BTCUSDT").status_code == 200


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        ({"secret": "x" * 64}, -1022),
        ({"key": "y" * 64}, -2015),
        ({"key": ""}, -2014),
        ({"ts_offset": -60_000}, -1021),
        ({"ts_offset": 60_000}, -1021),
    ],
)
def test_signature_key_and_timestamp_failures(
    alice: Client, tamper: dict[str, Any], code: int
) -> None:
    r = alice.signed("GET", "/api/v3/account", **tamper)
    assert r.status_code in (400, 401)
    assert r.json()["code"] == code


def test_order_rejections_have_binance_codes(alice: Client) -> None:
    def place(**params: Any) -> dict[str, Any]:
        base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                "quantity": "0.01000", "price": "50000.00"}  # fmt: skip
        r = alice.signed("POST", "/api/v3/order", **{**base, **params})
        assert r.status_code == 400, r.text
        return dict(r.json())

    assert place(quantity="1000")["msg"] == "Account has insufficient balance for requested action."
    assert place(price="50000.001")["code"] == -1111
    assert place(price="50000.005".replace("5", "5"))["code"] in (-1111, -1013)
    assert place(symbol="NOPE")["code"] == -1121
    assert place(type="WHAT")["code"] == -1116
    assert place(timeInForce="")["code"] in (-1102, -1115)
    assert place(quantity="0.00000")["code"] in (-1013, -1102)
    assert place(quantity="abc")["code"] == -1100
    ask = alice.signed("POST", "/api/v3/order", symbol="BTCUSDT", side="SELL", type="LIMIT",
                       timeInForce="GTC", quantity="0.01000", price="49000.00").json()  # fmt: skip
    assert place(type="LIMIT_MAKER", timeInForce=None, price="49000.00")["msg"] == (
        "Order would immediately match and take."
    )
    alice.signed("DELETE", "/api/v3/order", symbol="BTCUSDT", orderId=ask["orderId"])
