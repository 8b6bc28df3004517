"""The standard benchmark workload, through the engine alone and through the whole
exchange core (account-service events mixed in), feeding MarketData."""

from __future__ import annotations

from crossbook.bench.workload import funded, generate
from crossbook.domain.events import OrderFilled
from crossbook.engine.matching import MatchingEngine
from crossbook.exchange.core import ExchangeCore
from crossbook.marketdata import DepthUpdate, MarketData, Trade


def test_engine_workload() -> None:
    w = generate(3000, book_size=400)
    engine = MatchingEngine([w.market])
    md = MarketData([w.market])
    symbol = w.market.symbol
    fills = 0
    next_id = 1
    for i, command in enumerate(w.warmup + w.commands):
        events = engine.execute(command)
        fills += sum(type(e) is OrderFilled for e in events)
        for u in md.apply(events):
            if type(u) is DepthUpdate:
                assert u.first_update_id == next_id
                next_id = u.final_update_id + 1
        if i % 97 == 0:
            assert md.depth(symbol, None)[1:] == engine.depth(symbol)
    assert md.depth(symbol, None)[1:] == engine.depth(symbol)
    ticker = md.ticker(symbol)
    assert ticker.count == fills > 100  # the whole run is within 24 h
    assert (ticker.bid_price, ticker.ask_price) == (
        engine.depth(symbol)[0][0][0], engine.depth(symbol)[1][0][0],
    )  # fmt: skip
    assert MarketData.restore(md.snapshot()).state_hash() == md.state_hash()


def test_exchange_core_events_mixed_in() -> None:
    w = generate(1500, book_size=300)
    warmup, commands = funded(w)
    core = ExchangeCore()
    md = MarketData(core.config.markets)
    trades = 0
    for command in warmup + commands:
        trades += sum(type(u) is Trade for u in md.apply(core.execute(command)))
    for market in core.config.markets:
        assert md.depth(market.symbol, None)[1:] == core.engine.depth(market.symbol)
    assert trades == md.ticker(w.market.symbol).count > 50
