"""Throughput of MarketData.apply on the standard workload (not a test; prints figures).

    .venv/bin/python -m tests.marketdata.bench_marketdata [N]

The workload's commands run through MatchingEngine first (untimed); then each command's
events are fed to ``apply`` in a timed loop (after ``tune_gc()``, like the engine
benchmarks). A second pass stretches the workload's
timestamps (1 us apart) to 1 s apart, so klines roll and the 24 h window slides.
"""

from __future__ import annotations

import sys
import time

import msgspec

from crossbook.bench.workload import START_TS, generate
from crossbook.engine.matching import MatchingEngine
from crossbook.marketdata import MarketData
from crossbook.runtime import tune_gc


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    w = generate(n)
    engine = MatchingEngine([w.market])
    warm = [engine.execute(c) for c in w.warmup]
    timed = [engine.execute(c) for c in w.commands]
    stretched = [
        [msgspec.structs.replace(e, ts=START_TS + (e.ts - START_TS) * 1000) for e in events]
        for events in timed
    ]
    n_events = sum(map(len, timed))
    for label, stream, tickers in (
        ("engine ts", timed, True),
        ("engine ts, no tickers", timed, False),
        ("ts x1000", stretched, True),
    ):
        md = MarketData([w.market], emit_tickers=tickers)
        for events in warm:
            md.apply(events)
        tune_gc()  # as the engine benchmarks do
        apply = md.apply
        updates = 0
        started = time.perf_counter()
        for events in stream:
            updates += len(apply(events))
        elapsed = time.perf_counter() - started
        print(
            f"{label:>22}: {len(stream) / elapsed:>9,.0f} commands/s "
            f"{n_events / elapsed:>10,.0f} events/s  {elapsed:.3f} s  "
            f"{updates / len(stream):.2f} updates/command"
        )
        assert md.depth(w.market.symbol, None)[1:] == engine.depth(w.market.symbol)


if __name__ == "__main__":
    main()
