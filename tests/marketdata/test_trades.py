"""Recent trades: records, the bounded buffer and lookups by id and time."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from crossbook.domain.enums import Side
from crossbook.marketdata import MarketData, Trade
from tests.marketdata.fills import T0, TRADE_MARKET, build, commands


def test_trade_records() -> None:
    md = MarketData([TRADE_MARKET])
    events = build([(5, [(100, 7, True), (101, 3, False)])])[0]
    trades = [u for u in md.apply(events) if type(u) is Trade]
    assert trades == [
        Trade("TRD", 1, 100, 7, True, T0 + 5),  # taker sold: the buyer was the maker
        Trade("TRD", 2, 101, 3, False, T0 + 5),
    ]
    assert events[0].taker_side is Side.SELL
    assert md.trades("TRD") == trades
    assert md.last_price("TRD") == 101


@settings(max_examples=100, deadline=None)
@given(
    commands,
    st.integers(1, 40),
    st.one_of(st.none(), st.integers(0, 120)),
    st.one_of(st.none(), st.integers(0, 10**15)),
    st.one_of(st.none(), st.integers(0, 10**15)),
    st.integers(0, 50),
)
def test_lookups_match_a_filter(
    cmds: list, cap: int, from_id: int | None, start: int | None, end: int | None, limit: int
) -> None:
    md = MarketData([TRADE_MARKET], trade_history=cap)
    for events in build(cmds):
        md.apply(events)
    kept = md.trades("TRD", limit=10**6)
    everything = [e for events in build(cmds) for e in events]
    assert [t.trade_id for t in kept] == [e.trade_id for e in everything][-cap:]
    start_ts = None if start is None else T0 + start
    end_ts = None if end is None else T0 + end
    match = [
        t for t in kept
        if (from_id is None or t.trade_id >= from_id)
        and (start_ts is None or t.ts >= start_ts)
        and (end_ts is None or t.ts <= end_ts)
    ]  # fmt: skip
    got = md.trades("TRD", from_id=from_id, start=start_ts, end=end_ts, limit=limit)
    if from_id is not None or start is not None:
        assert got == match[:limit]
    else:
        assert got == (match[-limit:] if limit else [])


def ids(trades: list[Trade]) -> list[int]:
    return [t.trade_id for t in trades]


def test_time_bounds_are_inclusive() -> None:
    md = MarketData([TRADE_MARKET])
    for events in build([(10, [(100, 1, True)]), (10, [(101, 1, True), (102, 1, False)]),
                         (10, [(103, 1, True)])]):  # fmt: skip
        md.apply(events)
    assert ids(md.trades("TRD", start=T0 + 20)) == [2, 3, 4]
    assert ids(md.trades("TRD", start=T0 + 20, end=T0 + 20)) == [2, 3]
    assert ids(md.trades("TRD", end=T0 + 20, limit=2)) == [2, 3]
    assert ids(md.trades("TRD", from_id=3, limit=1)) == [3]
    assert ids(md.trades("TRD", from_id=0, start=T0 + 21)) == [4]
