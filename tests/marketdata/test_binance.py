"""Binance-format messages: exact shapes and strings for a small BTCUSDT scenario."""

from __future__ import annotations

from crossbook.domain.commands import PlaceOrder
from crossbook.domain.enums import OrderType, Side, TimeInForce
from crossbook.domain.markets import DEFAULT_MARKETS
from crossbook.engine.matching import MatchingEngine
from crossbook.marketdata import (
    BookTicker,
    DepthUpdate,
    KlineUpdate,
    MarketData,
    Ticker,
    Trade,
)
from crossbook.marketdata import binance as bn

BTC = DEFAULT_MARKETS[0]  # price 2 decimals, BTC 8, USDT 6
T0 = 1_767_225_600_123_456_789  # 2026-01-01T00:00:00.123456789Z
MS = 1_767_225_600_123


def scenario() -> tuple[MarketData, list[list[object]]]:
    engine = MatchingEngine([BTC])
    md = MarketData([BTC])
    cmds = [
        PlaceOrder(seq=1, ts=T0, market="BTCUSDT", owner=1, side=Side.SELL,
                   price=5_000_000, quantity=50_000_000),  # 0.5 @ 50000.00
        PlaceOrder(seq=2, ts=T0, market="BTCUSDT", owner=2, side=Side.BUY,
                   price=4_999_000, quantity=10_000_000),  # 0.1 @ 49990.00
        PlaceOrder(seq=3, ts=T0 + 10**9, market="BTCUSDT", owner=3, side=Side.BUY,
                   type=OrderType.MARKET, quantity=20_000_000, time_in_force=TimeInForce.IOC),
    ]  # fmt: skip
    return md, [md.apply(engine.execute(c)) for c in cmds]  # type: ignore[misc]


def test_stream_events() -> None:
    _md, updates = scenario()
    depth = next(u for u in updates[2] if type(u) is DepthUpdate)
    assert bn.depth_update_event(BTC, depth) == {
        "e": "depthUpdate", "E": MS + 1000, "s": "BTCUSDT", "U": 3, "u": 3, "b": [],
        "a": [["50000.00", "0.30000000"]],
    }  # fmt: skip
    trade = next(u for u in updates[2] if type(u) is Trade)
    assert bn.trade_event(BTC, trade) == {
        "e": "trade", "E": MS + 1000, "s": "BTCUSDT", "t": 1, "p": "50000.00",
        "q": "0.20000000", "T": MS + 1000, "m": False, "M": True,
    }  # fmt: skip
    assert bn.agg_trade_event(BTC, trade, event_ts=T0 + 2 * 10**9) == {
        "e": "aggTrade", "E": MS + 2000, "s": "BTCUSDT", "a": 1, "p": "50000.00",
        "q": "0.20000000", "f": 1, "l": 1, "T": MS + 1000, "m": False, "M": True,
    }  # fmt: skip
    kline = next(u for u in updates[2] if type(u) is KlineUpdate and u.interval == "1m")
    start = 1_767_225_600_000
    assert bn.kline_event(BTC, kline, event_ts=T0 + 10**9) == {
        "e": "kline", "E": MS + 1000, "s": "BTCUSDT",
        "k": {
            "t": start, "T": start + 59_999, "s": "BTCUSDT", "i": "1m", "f": 1, "L": 1,
            "o": "50000.00", "c": "50000.00", "h": "50000.00", "l": "50000.00",
            "v": "0.20000000", "n": 1, "x": False, "q": "10000.000000", "V": "0.20000000",
            "Q": "10000.000000", "B": "0",
        },
    }  # fmt: skip
    ticker = next(u for u in updates[2] if type(u) is Ticker)
    assert bn.ticker_event(BTC, ticker) == {
        "e": "24hrTicker", "E": MS + 1000, "s": "BTCUSDT", "p": "0.00", "P": "0.000",
        "w": "50000.00", "x": "0.00", "c": "50000.00", "Q": "0.20000000", "b": "49990.00",
        "B": "0.10000000", "a": "50000.00", "A": "0.30000000", "o": "50000.00",
        "h": "50000.00", "l": "50000.00", "v": "0.20000000", "q": "10000.000000",
        # the window starts on its 1 s bucket: up to 1 s more than 24 h
        "O": (MS + 1000 - 86_400_000) // 1000 * 1000, "C": MS + 1000, "F": 1, "L": 1, "n": 1,
    }  # fmt: skip
    assert bn.mini_ticker_event(BTC, ticker) == {
        "e": "24hrMiniTicker", "E": MS + 1000, "s": "BTCUSDT", "c": "50000.00",
        "o": "50000.00", "h": "50000.00", "l": "50000.00", "v": "0.20000000",
        "q": "10000.000000",
    }  # fmt: skip
    book = next(u for u in updates[2] if type(u) is BookTicker)
    assert bn.book_ticker_event(BTC, book) == {
        "u": 3, "s": "BTCUSDT", "b": "49990.00", "B": "0.10000000", "a": "50000.00",
        "A": "0.30000000",
    }  # fmt: skip
    names = [name for u in updates[2] for name, _ in bn.stream_events(BTC, u)]
    assert names[:4] == ["btcusdt@trade", "btcusdt@aggTrade", "btcusdt@depth", "btcusdt@bookTicker"]
    assert names[4:19] == [
        f"btcusdt@kline_{i}"
        for i in (
            "1m",
            "3m",
            "5m",
            "15m",
            "30m",
            "1h",
            "2h",
            "4h",
            "6h",
            "8h",
            "12h",
            "1d",
            "3d",
            "1w",
            "1M",
        )
    ]
    assert names[19:] == ["btcusdt@ticker", "btcusdt@miniTicker"]
    assert "pu" not in bn.depth_update_event(BTC, depth)


def test_rest_responses() -> None:
    md, _ = scenario()
    assert bn.depth_response(BTC, md.depth("BTCUSDT", 5)) == {
        "lastUpdateId": 3,
        "bids": [["49990.00", "0.10000000"]],
        "asks": [["50000.00", "0.30000000"]],
    }
    trades = md.trades("BTCUSDT")
    assert bn.trades_response(BTC, trades) == [
        {"id": 1, "price": "50000.00", "qty": "0.20000000", "quoteQty": "10000.000000",
         "time": MS + 1000, "isBuyerMaker": False, "isBestMatch": True},
    ]  # fmt: skip
    assert bn.agg_trades_response(BTC, trades) == [
        {"a": 1, "p": "50000.00", "q": "0.20000000", "f": 1, "l": 1, "T": MS + 1000,
         "m": False, "M": True},
    ]  # fmt: skip
    start = 1_767_225_600_000
    assert bn.klines_response(BTC, md.klines("BTCUSDT", "1h")) == [
        [start, "50000.00", "50000.00", "50000.00", "50000.00", "0.20000000",
         start + 3_599_999, "10000.000000", 1, "0.20000000", "10000.000000", "0"],
    ]  # fmt: skip
    ticker = bn.ticker_24hr_response(BTC, md.ticker("BTCUSDT"))
    assert list(ticker) == [
        "symbol", "priceChange", "priceChangePercent", "weightedAvgPrice", "prevClosePrice",
        "lastPrice", "lastQty", "bidPrice", "bidQty", "askPrice", "askQty", "openPrice",
        "highPrice", "lowPrice", "volume", "quoteVolume", "openTime", "closeTime", "firstId",
        "lastId", "count",
    ]  # fmt: skip
    assert ticker["lastPrice"] == "50000.00" and ticker["count"] == 1
    assert 86_400_000 <= ticker["closeTime"] - ticker["openTime"] < 86_401_000
    assert bn.ticker_price_response(BTC, md.last_price("BTCUSDT")) == {
        "symbol": "BTCUSDT", "price": "50000.00",
    }  # fmt: skip
    assert bn.book_ticker_response(BTC, md.book_ticker("BTCUSDT")) == {
        "symbol": "BTCUSDT", "bidPrice": "49990.00", "bidQty": "0.10000000",
        "askPrice": "50000.00", "askQty": "0.30000000",
    }  # fmt: skip


def test_percent_and_rounding() -> None:
    assert bn._percent(-50, 200) == "-25.000"
    assert bn._percent(1, 3) == "33.333"
    assert bn._percent(2, 3) == "66.667"
    assert bn._percent(-2, 3) == "-66.667"
    assert bn._percent(1, 200_000) == "0.001"  # 0.0005 rounds half away from zero
    assert bn._percent(1, 200_001) == "0.000"
    assert bn._percent(5, 0) == "0.000"
    # quote amounts are rounded down to the quote asset's 6 decimals
    t = Trade("BTCUSDT", 9, 1, 1, True, 0)  # 0.01 USDT x 0.00000001 BTC
    assert bn.trades_response(BTC, [t])[0]["quoteQty"] == "0.000000"
    assert bn.ms(1_999_999) == 1
