"""The L2 book and its update stream against the real matching engine.

Property: for random command streams, a Binance-style client that buffers
``DepthUpdate``s from any point at or before it takes a ``depth()`` snapshot, drops the
updates with ``final <= lastUpdateId`` and applies the rest under the sync rules ends up
with exactly ``engine.depth()``, after every later command. A client that starts
buffering after the snapshot and missed a change detects the gap.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossbook.domain.events import Event
from crossbook.engine.views import Level
from crossbook.marketdata import DepthUpdate, MarketData, merge_depth_updates
from tests.marketdata.streams import MARKETS, Step, run, specs

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class GapDetected(Exception):
    pass


class Client:
    """What ccxt does with ``<sym>@depth`` and ``/api/v3/depth``."""

    def __init__(self, snapshot: tuple[int, list[Level], list[Level]]) -> None:
        self.last_update_id, bids, asks = snapshot
        self.bids = dict(bids)
        self.asks = dict(asks)
        self.prev: int | None = None

    def on_update(self, u: DepthUpdate) -> None:
        if self.prev is None:
            if u.final_update_id <= self.last_update_id:
                return  # older than the snapshot
            if not u.first_update_id <= self.last_update_id + 1 <= u.final_update_id:
                raise GapDetected(u)
        elif u.first_update_id != self.prev + 1:
            raise GapDetected(u)
        self.prev = u.final_update_id
        for side, levels in ((self.bids, u.bids), (self.asks, u.asks)):
            for price, qty in levels:
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)

    def book(self) -> tuple[list[Level], list[Level]]:
        return sorted(self.bids.items(), reverse=True), sorted(self.asks.items())


def _record(steps: list[Step]) -> tuple[MarketData, list[dict[str, list[DepthUpdate]]], list]:
    """Apply every command; per command: its depth updates per market and the snapshot
    (full depth) a client could take right after it. Index 0 is "before anything"."""
    md = MarketData(MARKETS)
    updates: list[dict[str, list[DepthUpdate]]] = [{}]
    snapshots = [{m.symbol: md.depth(m.symbol, None) for m in MARKETS}]
    for step in steps:
        per: dict[str, list[DepthUpdate]] = {}
        for u in md.apply(step.events):
            if type(u) is DepthUpdate:
                per.setdefault(u.market, []).append(u)
        updates.append(per)
        snapshots.append({m.symbol: md.depth(m.symbol, None) for m in MARKETS})
    return md, updates, snapshots


@SETTINGS
@given(specs, st.data())
def test_client_sync_reproduces_engine_depth(specs_: list, data: st.DataObject) -> None:
    steps = list(run(specs_))
    md, updates, snapshots = _record(steps)
    n = len(steps)
    for symbol in (m.symbol for m in MARKETS):
        # the book always equals the engine's, and ids are contiguous from 1
        expected_first = 1
        for i, step in enumerate(steps, 1):
            assert snapshots[i][symbol][1:] == step.depth[symbol]
            us = updates[i].get(symbol, [])
            assert len(us) <= 1, "one depth update per command"
            for u in us:
                assert u.first_update_id == expected_first
                assert u.final_update_id - u.first_update_id + 1 == len(u.bids) + len(u.asks)
                assert [p for p, _ in u.bids] == sorted((p for p, _ in u.bids), reverse=True)
                assert [p for p, _ in u.asks] == sorted(p for p, _ in u.asks)
                expected_first = u.final_update_id + 1
        assert md.last_update_id(symbol) == expected_first - 1
        # clients: buffer from j, snapshot after k (j <= k), compare after every m >= k
        for k in sorted({*data.draw(st.lists(st.integers(0, n), max_size=6)), 0, n}):
            j = data.draw(st.integers(0, k), label="buffer start")
            client = Client(snapshots[k][symbol])
            for i in range(j + 1, n + 1):
                for u in updates[i].get(symbol, []):
                    client.on_update(u)
                if i >= k:
                    assert client.book() == steps[i - 1].depth[symbol]
            # the same through merged (``@100ms``-style) updates
            merged = [u for i in range(j + 1, n + 1) for u in updates[i].get(symbol, [])]
            client = Client(snapshots[k][symbol])
            for lo in range(0, len(merged), 3):
                client.on_update(merge_depth_updates(merged[lo : lo + 3]))
            assert client.book() == (steps[-1].depth[symbol] if steps else ([], []))


@SETTINGS
@given(specs, st.data())
def test_late_buffering_detects_missed_changes(specs_: list, data: st.DataObject) -> None:
    steps = list(run(specs_))
    _, updates, snapshots = _record(steps)
    n = len(steps)
    symbol = MARKETS[0].symbol
    k = data.draw(st.integers(0, n))
    j = data.draw(st.integers(k, n))  # buffering starts after command j > snapshot k
    missed = any(updates[i].get(symbol) for i in range(k + 1, j + 1))
    client = Client(snapshots[k][symbol])
    try:
        for i in range(j + 1, n + 1):
            for u in updates[i].get(symbol, []):
                client.on_update(u)
    except GapDetected:
        assert missed
    else:
        later = any(updates[i].get(symbol) for i in range(j + 1, n + 1))
        assert not (missed and later)
        if not missed:
            assert client.book() == (steps[-1].depth[symbol] if steps else ([], []))


@SETTINGS
@given(specs, st.data())
def test_redelivered_events_change_nothing(specs_: list, data: st.DataObject) -> None:
    md = MarketData(MARKETS)
    history: list[list[Event]] = []
    for step in run(specs_):
        md.apply(step.events)
        history.append(step.events)
        if data.draw(st.integers(0, 4)) == 0:
            before = md.state_hash()
            old = history[data.draw(st.integers(0, len(history) - 1))]
            assert md.apply(old) == []
            assert md.state_hash() == before
        for m in MARKETS:
            assert md.depth(m.symbol, None)[1:] == step.depth[m.symbol]


def test_depth_limit_is_a_prefix() -> None:
    md = MarketData(MARKETS)
    steps = list(run([(0, 0, i % 2 == 0, (i % 11) - 5, 1 + i % 4, 0, 0, 0) for i in range(40)]))
    for step in steps:
        md.apply(step.events)
    uid, bids, asks = md.depth("PLAIN", None)
    assert (bids, asks) == steps[-1].depth["PLAIN"]
    for limit in (0, 1, 2, 5, 100):
        assert md.depth("PLAIN", limit) == (uid, bids[:limit], asks[:limit])


def test_one_call_with_many_commands_equals_one_call_each() -> None:
    steps = list(
        run(
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
                for i in range(80)
            ]
        )
    )
    a, b = MarketData(MARKETS), MarketData(MARKETS)
    one_by_one = [u for s in steps for u in a.apply(s.events)]
    batched = b.apply([e for s in steps for e in s.events])
    assert one_by_one == batched
    assert a.state_hash() == b.state_hash()
