"""Unmodified ccxt (``ccxt.binance`` and ``ccxt.pro.binance``) against a real server, as
../shared/API-COMPAT.md describes; afterwards ``crossbook verify`` on its data dir."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import ccxt
import ccxt.pro as ccxtpro
import pytest

from tests.gateway.conftest import ROOT, Server, start_server, stop_server
from tests.gateway.deployments import every_deployment  # noqa: F401 (all three)

OPTIONS = {
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
    "defaultType": "spot",
}


def point_at(urls: Any, http: str, ws: str) -> Any:
    """Rewrite every Binance URL to the test server, keeping the path."""
    if isinstance(urls, dict):
        return {k: point_at(v, http, ws) for k, v in urls.items()}
    if isinstance(urls, str):
        if urls.startswith("wss://"):
            return re.sub(r"^wss://[^/]+", ws, urls)
        return re.sub(r"^https?://[^/]+", http, urls)
    return urls


def client(cls: Any, server: Server, user: dict[str, Any]) -> Any:
    ex = cls({"apiKey": user["apiKey"], "secret": user["secret"], "options": dict(OPTIONS),
              "enableRateLimit": False})  # fmt: skip
    ex.urls["api"] = point_at(ex.urls["api"], server.url, server.ws_url)
    return ex


@pytest.fixture(scope="module")
def exchange_server(tmp_path_factory: pytest.TempPathFactory, deployment: str) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("ccxt") / "data"
    srv = start_server(data_dir, deployment=deployment)
    try:
        yield srv
    finally:
        assert stop_server(srv) == 0, srv.log.read_text()[-3000:]
        verify = subprocess.run(
            [sys.executable, "-m", "crossbook.cli", "verify", "--data-dir", str(data_dir)],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert verify.returncode == 0, verify.stdout + verify.stderr


@pytest.fixture(scope="module")
def alice(exchange_server: Server) -> Any:
    ex = client(ccxt.binance, exchange_server, exchange_server.users[0])
    ex.load_markets()
    return ex


@pytest.fixture(scope="module")
def bob(exchange_server: Server) -> Any:
    ex = client(ccxt.binance, exchange_server, exchange_server.users[1])
    ex.load_markets()
    return ex


def test_load_markets_and_public_data(alice: Any) -> None:
    assert {"BTC/USDT", "ETH/USDT"} <= set(alice.markets)
    m = alice.market("BTC/USDT")
    assert m["spot"] and m["precision"]["price"] == 0.01 and m["limits"]["cost"]["min"] == 5
    alice.create_order("BTC/USDT", "limit", "sell", 0.01, 51000)
    alice.create_order("BTC/USDT", "limit", "buy", 0.01, 49000)
    book = alice.fetch_order_book("BTC/USDT")
    assert book["bids"][0][0] == 49000 and book["asks"][0][0] == 51000
    assert alice.fetch_ticker("BTC/USDT")["symbol"] == "BTC/USDT"
    assert set(alice.fetch_tickers(["BTC/USDT", "ETH/USDT"])) == {"BTC/USDT", "ETH/USDT"}
    alice.cancel_all_orders("BTC/USDT")


def test_balance_orders_and_trades(alice: Any, bob: Any) -> None:
    before = bob.fetch_balance()
    assert before["BTC"]["free"] >= 10 and before["USDT"]["free"] >= 1_000_000
    maker = alice.create_order("BTC/USDT", "limit", "sell", 0.02, 50000)
    assert maker["status"] == "open"
    taker = bob.create_order("BTC/USDT", "limit", "buy", 0.01, 50000, {"timeInForce": "IOC"})
    assert taker["status"] == "closed" and taker["filled"] == 0.01
    fetched = alice.fetch_order(maker["id"], "BTC/USDT")
    assert fetched["filled"] == 0.01 and fetched["remaining"] == 0.01
    assert [o["id"] for o in alice.fetch_open_orders("BTC/USDT")] == [maker["id"]]
    cancelled = alice.cancel_order(maker["id"], "BTC/USDT")
    assert cancelled["status"] == "canceled"
    assert maker["id"] in [o["id"] for o in alice.fetch_closed_orders("BTC/USDT")] + [
        o["id"] for o in alice.fetch_orders("BTC/USDT")
    ]
    trades = bob.fetch_my_trades("BTC/USDT")
    assert trades[-1]["side"] == "buy" and trades[-1]["amount"] == 0.01
    assert trades[-1]["fee"]["currency"] == "BTC"
    assert alice.fetch_trades("BTC/USDT")[-1]["price"] == 50000
    assert bob.fetch_ohlcv("BTC/USDT", "1m")[-1][4] == 50000


def test_order_types(alice: Any, bob: Any) -> None:
    alice.create_order("BTC/USDT", "limit", "sell", 0.05, 50100)
    fok = bob.create_order("BTC/USDT", "limit", "buy", 1, 50100, {"timeInForce": "FOK"})
    assert fok["status"] == "expired" and fok["filled"] == 0
    post = bob.create_order("BTC/USDT", "limit", "buy", 0.01, 49900, {"postOnly": True})
    assert post["status"] == "open"
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        bob.create_order("BTC/USDT", "limit", "buy", 0.01, 50100, {"postOnly": True})
    bought = bob.create_order("BTC/USDT", "market", "buy", None, None, {"quoteOrderQty": 501})
    assert bought["filled"] == 0.01
    sold = alice.create_order("BTC/USDT", "market", "sell", 0.01)
    assert sold["filled"] == 0.01 and sold["average"] == 49900
    stop = bob.create_order("BTC/USDT", "limit", "sell", 0.01, 40000, {"stopPrice": 41000})
    assert stop["status"] == "open"
    assert bob.cancel_order(stop["id"], "BTC/USDT")["status"] == "canceled"
    with pytest.raises(ccxt.InsufficientFunds):
        bob.create_order("BTC/USDT", "limit", "buy", 1000, 50000)
    with pytest.raises(ccxt.OrderNotFound):
        bob.cancel_order("999999999", "BTC/USDT")
    bob.cancel_all_orders("BTC/USDT")
    alice.cancel_all_orders("BTC/USDT")


def test_pro_depth_trades_and_user_stream(exchange_server: Server) -> None:
    async def scenario() -> None:
        watcher = client(ccxtpro.binance, exchange_server, exchange_server.users[0])
        trader = client(ccxtpro.binance, exchange_server, exchange_server.users[1])
        try:
            await watcher.load_markets()
            await trader.load_markets()
            book = await asyncio.wait_for(watcher.watch_order_book("BTC/USDT"), 10)
            orders_task = asyncio.create_task(watcher.watch_orders("BTC/USDT"))
            book_task = asyncio.create_task(watcher.watch_order_book("BTC/USDT"))
            await asyncio.sleep(0.5)
            await watcher.create_order("BTC/USDT", "limit", "sell", 0.03, 52000)
            await asyncio.wait_for(book_task, 10)
            # the first diff after subscribing may be an earlier change: give ours time
            for _ in range(50):
                book = watcher.orderbooks["BTC/USDT"].limit()
                if book["asks"] and book["asks"][0] == [52000, 0.03]:
                    break
                await asyncio.sleep(0.1)
            assert book["asks"][0] == [52000, 0.03]
            orders = await asyncio.wait_for(orders_task, 10)
            assert orders[-1]["price"] == 52000
            trades_task = asyncio.create_task(watcher.watch_trades("BTC/USDT"))
            balance_task = asyncio.create_task(watcher.watch_balance())
            await asyncio.sleep(0.5)
            await trader.create_order("BTC/USDT", "limit", "buy", 0.01, 52000)
            trades = await asyncio.wait_for(trades_task, 10)
            assert trades[-1]["price"] == 52000 and trades[-1]["amount"] == 0.01
            balance = await asyncio.wait_for(balance_task, 10)
            assert "USDT" in balance
            # the book follows further changes (ccxt checks the diff stream's sequence)
            for i in range(5):
                await trader.create_order("BTC/USDT", "limit", "buy", 0.01, 48000 + i)
            for _ in range(50):
                book = watcher.orderbooks["BTC/USDT"].limit()
                if book["bids"] and book["bids"][0] == [48004, 0.01]:
                    break
                await asyncio.sleep(0.1)
            assert book["bids"][0] == [48004, 0.01]
            assert book["asks"][0] == [52000, 0.02]
            assert len(book["bids"]) == 5
        finally:
            await watcher.cancel_all_orders("BTC/USDT")
            await trader.cancel_all_orders("BTC/USDT")
            await watcher.close()
            await trader.close()

    asyncio.run(scenario())
