"""Engine benchmarks: the engine alone, journaled with group commit, and replay.

Each returns one flat dict of figures (``commands_per_s``, latency percentiles in
microseconds, ``peak_rss_mb``). Throughput is timed in a pass without per-command
timers; latency in a second pass over the same stream on a fresh engine.
"""

from __future__ import annotations

import gc
import resource
import shutil
import tempfile
import time
from array import array
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from crossbook.bench.workload import Workload
from crossbook.engine.matching import MatchingEngine
from crossbook.runtime import tune_gc


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def percentiles(samples_ns: array[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    n = len(ordered)

    def at(q: float) -> float:
        return round(ordered[min(n - 1, int(q * n))] / 1000, 2)

    return {"p50_us": at(0.50), "p99_us": at(0.99), "p999_us": at(0.999), "max_us": at(1.0)}


def _warm_engine(workload: Workload) -> MatchingEngine:
    engine = MatchingEngine([workload.market])
    for command in workload.warmup:
        engine.execute(command)
    tune_gc()
    return engine


def bench_engine(workload: Workload) -> dict[str, object]:
    """The pure engine: ``execute`` in a loop, no I/O."""
    engine = _warm_engine(workload)
    execute = engine.execute
    commands = workload.commands
    events = 0
    started = time.perf_counter()
    for command in commands:
        events += len(execute(command))
    elapsed = time.perf_counter() - started

    engine = _warm_engine(workload)
    execute = engine.execute
    samples = array("q", bytes(8 * len(commands)))
    clock = time.perf_counter_ns
    for i, command in enumerate(commands):
        t0 = clock()
        execute(command)
        samples[i] = clock() - t0
    book = engine.books[workload.market.symbol]
    return {
        "mode": "engine",
        "commands": len(commands),
        "commands_per_s": round(len(commands) / elapsed),
        **percentiles(samples),
        "events_per_command": round(events / len(commands), 2),
        "book_orders": len(book.orders),
        "peak_rss_mb": peak_rss_mb(),
    }


def bench_journaled(
    workload: Workload, data_dir: Path, *, batch: int = 512, fsync: bool = True
) -> dict[str, object]:
    """Through :class:`EngineService`: journal, execute, one fsync per batch."""
    from crossbook.service import EngineService

    service = EngineService(data_dir, fsync=fsync, snapshot_every=10**12)
    warm = workload.warmup
    for i in range(0, len(warm), batch):
        service.submit_stamped(warm[i : i + batch])
    tune_gc()
    commands = workload.commands
    batch_ns = array("q")
    clock = time.perf_counter_ns
    submit = service.submit_stamped
    started = time.perf_counter()
    for i in range(0, len(commands), batch):
        t0 = clock()
        submit(commands[i : i + batch])
        batch_ns.append(clock() - t0)
    elapsed = time.perf_counter() - started
    service.close()
    figures = percentiles(batch_ns)
    journal_bytes = sum(p.stat().st_size for p in (data_dir / "journal").iterdir())
    return {
        "mode": "journaled",
        "commands": len(commands),
        "commands_per_s": round(len(commands) / elapsed),
        "batch": batch,
        "fsync": fsync,
        "batch_p50_us": figures["p50_us"],
        "batch_p99_us": figures["p99_us"],
        "batch_p999_us": figures["p999_us"],
        "journal_mb": round(journal_bytes / 2**20, 1),
        "peak_rss_mb": peak_rss_mb(),
    }


def bench_replay(data_dir: Path) -> dict[str, object]:
    """Recovery of a data dir with no snapshot: decode and re-execute every command."""
    from crossbook.service import recover

    gc.collect()
    started = time.perf_counter()
    engine, journal, stats = recover(data_dir)
    elapsed = time.perf_counter() - started
    journal.close()
    return {
        "mode": "replay",
        "commands": stats.commands_replayed,
        "commands_per_s": round(stats.commands_replayed / elapsed),
        "seconds": round(elapsed, 3),
        "state_hash": engine.state_hash()[:16],
        "peak_rss_mb": peak_rss_mb(),
    }


def run_all(
    workload: Workload,
    *,
    modes: tuple[str, ...] = ("engine", "journaled", "replay"),
    fsync: bool = True,
    batch: int = 512,
    report: Callable[[dict[str, object]], None],
) -> None:
    """Run the chosen benchmarks in order, reporting each result as it is ready."""
    tmp = Path(tempfile.mkdtemp(prefix="crossbook-bench-"))
    try:
        if "engine" in modes:
            report(bench_engine(workload))
        if "journaled" in modes or "replay" in modes:
            report_journal = bench_journaled(workload, tmp, batch=batch, fsync=fsync)
            if "journaled" in modes:
                report(report_journal)
        if "replay" in modes:
            report(bench_replay(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_pipeline(
    workload: Workload, data_dir: Path, *, batch: int = 512, fsync: bool = True
) -> dict[str, object]:
    """The whole embedded exchange through the journaled service: accounts hold funds,
    the engine matches, accounts settle; one fsync per batch, overlapped with the next
    batch's execution. A command's latency is from the start of its batch to the
    batch being durable (when it is acknowledged)."""
    from crossbook.bench.workload import funded
    from crossbook.exchange.core import ExchangeConfig
    from crossbook.service import DataDirConfig, JournaledService

    config = DataDirConfig(kind="exchange", exchange=ExchangeConfig())
    service = JournaledService(data_dir, config=config, fsync=fsync, snapshot_every=10**12)
    warmup, commands = funded(workload)
    for i in range(0, len(warmup), batch):
        service.submit_stamped(warmup[i : i + batch])
    tune_gc()
    batch_ns = array("q")
    clock = time.perf_counter_ns
    submit = service.submit_pipelined
    events = 0
    started = time.perf_counter()
    in_flight: tuple[int, Future[list[list[Any]]]] | None = None
    for i in range(0, len(commands), batch):
        t0 = clock()
        acked = submit(commands[i : i + batch])  # runs while the previous batch syncs
        if in_flight is not None:
            events += sum(len(e) for e in in_flight[1].result())
            batch_ns.append(clock() - in_flight[0])
        in_flight = (t0, acked)
    if in_flight is not None:
        events += sum(len(e) for e in in_flight[1].result())
        batch_ns.append(clock() - in_flight[0])
    elapsed = time.perf_counter() - started
    service.close()
    figures = percentiles(batch_ns)
    return {
        "mode": "pipeline",
        "commands": len(commands),
        "commands_per_s": round(len(commands) / elapsed),
        "p50_us": figures["p50_us"],
        "p99_us": figures["p99_us"],
        "batch": batch,
        "fsync": fsync,
        "events_per_command": round(events / len(commands), 2),
        "peak_rss_mb": peak_rss_mb(),
    }
