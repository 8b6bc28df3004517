"""Out-of-range and malformed parameters of the Binance-compatible API are refused with
a 4xx and a Binance code, never a server error (each case here was once an HTTP 500)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.gateway.conftest import Server
from tests.gateway.test_binance_rest import Client

HUGE = "9" * 25
I64_OVER = str(2**63)  # one past the largest 64-bit id or time


@pytest.fixture(scope="module")
def alice(server: Server) -> Client:
    return Client(server, server.users[0])


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v3/order", {"orderId": HUGE}),
        ("/api/v3/order", {"orderId": I64_OVER}),
        ("/api/v3/allOrders", {"orderId": HUGE}),
        ("/api/v3/allOrders", {"startTime": HUGE}),
        ("/api/v3/allOrders", {"endTime": I64_OVER}),
        ("/api/v3/myTrades", {"fromId": HUGE}),
        ("/api/v3/myTrades", {"orderId": I64_OVER}),
    ],
)
def test_signed_reads_refuse_ids_and_times_beyond_64_bits(
    alice: Client, path: str, params: dict[str, Any]
) -> None:
    r = alice.signed("GET", path, symbol="BTCUSDT", **params)
    assert (r.status_code, r.json()["code"]) == (400, -1100), r.text


def test_times_near_the_64_bit_limit_are_answered(alice: Client) -> None:
    # a valid ms time whose ns value is past 2**63: an empty answer, not an overflow
    for path in ("/api/v3/allOrders", "/api/v3/myTrades"):
        r = alice.signed("GET", path, symbol="BTCUSDT", startTime="9223372036855")
        assert (r.status_code, r.json()) == (200, []), r.text
        r = alice.signed("GET", path, symbol="BTCUSDT", endTime="9223372036854")
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("symbols", ["3", "null", '"BTCUSDT"', "{}"])
def test_exchange_info_refuses_symbols_that_are_not_a_list(alice: Client, symbols: str) -> None:
    r = alice.get("/api/v3/exchangeInfo", symbols=symbols)
    assert (r.status_code, r.json()["code"]) == (400, -1102), r.text
