"""Synthetic trade streams: commands made only of ``OrderFilled`` events."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

from crossbook.domain.enums import Side
from crossbook.domain.events import OrderFilled
from crossbook.domain.markets import Market
from crossbook.marketdata.intervals import DAY_NS, HOUR_NS, MINUTE_NS, SECOND_NS
from tests.marketdata.streams import long_lists

TRADE_MARKET = Market(
    symbol="TRD", base="AAA", quote="QQQ", base_scale=3, quote_scale=2, price_scale=2,
    tick_size=1, step_size=1, min_quantity=1, max_quantity=10**9,
)  # fmt: skip
OTHER_MARKET = Market(
    symbol="OTH", base="BBB", quote="QQQ", base_scale=0, quote_scale=2, price_scale=2,
    tick_size=1, step_size=1, min_quantity=1, max_quantity=10**9,
)  # fmt: skip
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z (a Thursday)

_GAPS = st.one_of(
    st.integers(0, 5 * SECOND_NS),
    st.integers(0, 90 * MINUTE_NS),
    st.integers(0, 30 * HOUR_NS),
    st.integers(0, 40 * DAY_NS),
    st.sampled_from([DAY_NS - 1, DAY_NS, DAY_NS + 1, SECOND_NS, MINUTE_NS]),
)
# one command: (gap, [(price, quantity, taker sells)])
command = st.tuples(
    _GAPS,
    st.lists(st.tuples(st.integers(1, 500), st.integers(1, 10**6), st.booleans()),
             min_size=1, max_size=4),
)  # fmt: skip
commands = long_lists(command, 25, 60)


def build(
    cmds: Sequence[tuple[int, Sequence[tuple[int, int, bool]]]], market: str = "TRD",
    seq0: int = 0, ts0: int = T0, id0: int = 0,
) -> list[list[OrderFilled]]:  # fmt: skip
    """Event lists, one per command, with increasing seq, ts and trade ids."""
    out = []
    ts, trade_id = ts0, id0
    for seq, (gap, fills) in enumerate(cmds, seq0 + 1):
        ts += gap
        events = []
        for price, qty, taker_sells in fills:
            trade_id += 1
            events.append(
                OrderFilled(
                    seq, ts, market, trade_id, price, qty,
                    Side.SELL if taker_sells else Side.BUY, 1000 + seq, 1, 0, trade_id, 2, 0,
                )
            )  # fmt: skip
        out.append(events)
    return out
