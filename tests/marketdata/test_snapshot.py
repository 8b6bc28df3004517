"""Snapshots: canonical bytes, and restore + replay == the uninterrupted run."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossbook.domain.events import Event
from crossbook.marketdata import MarketData
from tests.marketdata.fills import TRADE_MARKET, build, commands
from tests.marketdata.streams import MARKETS, long_lists, run, spec

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _queries(md: MarketData) -> list[object]:
    out: list[object] = []
    for m in md.markets:
        out += [md.depth(m.symbol, None), md.book_ticker(m.symbol), md.ticker(m.symbol)]
        out += [md.trades(m.symbol, limit=10**6)]
        out += [md.klines(m.symbol, i, limit=10**6) for i in ("1m", "1h", "1w", "1M")]
    return out


def _check_cut(streams: list[list[Event]], cut: int, md_args: dict) -> None:
    whole = MarketData((*MARKETS, TRADE_MARKET), **md_args)
    expected = [whole.apply(events) for events in streams]
    first = MarketData((*MARKETS, TRADE_MARKET), **md_args)
    for events in streams[:cut]:
        first.apply(events)
    data = first.snapshot()
    restored = MarketData.restore(data)
    assert restored.snapshot() == data
    assert restored.state_hash() == first.state_hash()
    assert _queries(restored) == _queries(first)
    assert [restored.apply(events) for events in streams[cut:]] == expected[cut:]
    assert restored.snapshot() == whole.snapshot()
    assert _queries(restored) == _queries(whole)


@SETTINGS
@given(long_lists(spec, 40, 80), st.data())
def test_restore_and_replay_equals_uninterrupted_engine_stream(
    specs_: list, data: st.DataObject
) -> None:
    streams = [step.events for step in run(specs_)]
    cut = data.draw(st.integers(0, len(streams)))
    _check_cut(streams, cut, {})


@SETTINGS
@given(commands, st.data(), st.sampled_from([1, 10**9, 60 * 10**9]), st.integers(1, 5))
def test_restore_and_replay_equals_uninterrupted_trades(
    cmds: list, data: st.DataObject, resolution: int, history: int
) -> None:
    streams: list[list[Event]] = list(build(cmds))  # type: ignore[arg-type]
    cut = data.draw(st.integers(0, len(streams)))
    _check_cut(
        streams, cut,
        {"ticker_resolution": resolution, "trade_history": history, "kline_history": history},
    )  # fmt: skip


def test_same_events_same_bytes_and_queries_change_nothing() -> None:
    streams = [
        step.events
        for step in run(
            [
                (
                    i * 7 % 100,
                    i * 13 % 100,
                    i % 3 == 0,
                    (i % 11) - 5,
                    1 + i % 7,
                    i * 5 % 100,
                    i % 4,
                    i,
                )
                for i in range(120)
            ]
        )
    ]
    a, b = MarketData(MARKETS), MarketData(MARKETS)
    for events in streams:
        assert a.apply(events) == b.apply(events)
    h = a.state_hash()
    _queries(a)
    a.ticker("PLAIN", 10**20)
    assert a.state_hash() == h == b.state_hash()
    assert MarketData(MARKETS).state_hash() != h
