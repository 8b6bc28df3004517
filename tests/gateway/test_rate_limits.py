"""Rate limits: request weight per IP and per API key, order rate per key (HTTP 429)."""

from __future__ import annotations

import httpx

from tests.gateway.conftest import Server
from tests.gateway.test_binance_rest import Client


def test_order_rate_per_api_key_answers_429_with_binance_body(server: Server) -> None:
    client = Client(server, server.users[0])
    codes = []
    for i in range(70):
        r = client.signed("POST", "/api/v3/order/test", symbol="BTCUSDT", side="BUY",
                          type="LIMIT", timeInForce="GTC", quantity="0.01000",
                          price=f"{40000 + i}.00")  # fmt: skip
        codes.append(r.status_code)
    # /order/test is not an order placement: it is only weighed
    assert set(codes) == {200}
    statuses = []
    for i in range(120):
        r = client.signed("POST", "/api/v3/order", symbol="BTCUSDT", side="BUY", type="LIMIT",
                          timeInForce="GTC", quantity="0.00010", price=f"{30000 + i}.00")  # fmt: skip
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert r.json()["code"] == -1003
            assert r.headers["retry-after"] == "1"
            break
    assert 429 in statuses
    client.signed("DELETE", "/api/v3/openOrders", symbol="BTCUSDT")


def test_ip_weight_limit_answers_429(server: Server) -> None:
    http = httpx.Client(base_url=server.url)
    last = None
    for _ in range(400):  # exchangeInfo weighs 20: 6000 per minute is 300 calls
        last = http.get("/api/v3/exchangeInfo")
        if last.status_code == 429:
            break
    assert last is not None and last.status_code == 429
    assert last.json()["code"] == -1003
    for _ in range(50):  # what is left of the window fits a few light requests
        native = http.get("/v1/markets")
        if native.status_code == 429:
            break
    assert native.status_code == 429 and native.json()["error"]["code"] == "rate_limited"
