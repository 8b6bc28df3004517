"""Throughput of the ledger projection writer on SQLite and on a private PostgreSQL.

Builds a stream of about ``--events`` events by running the standard engine workload
(``crossbook.bench.workload.generate``: warm-up book, then the mixed command stream)
through the real exchange pipeline (``ExchangeCore``: holds, settlements with fees and
releases as ``TransactionPosted``, interleaved with the engine events), after funding
every owner. The items are then written with ``ProjectionWriter.write`` in batches of
``--batch`` items into a freshly migrated database of each backend; only the writes are
timed. The PostgreSQL server is private (temporary directory, free loopback port,
``fsync`` on unless ``--no-fsync``) and stopped at the end.

Prints one JSON line per backend: ``backend``, ``events``, ``items`` (= commands),
``projection_rows``, ``seconds``, ``projection_rows_per_s``, ``events_per_s``,
``items_per_s``, ``batch``, ``writer_cpu_s`` (CPU time of this process during the writes)
and, on PostgreSQL, ``server_cpu_s`` (CPU time of the server process serving the writer's
connection: the two run on different cores).

Usage: python bench/projection_bench.py [--events 200000] [--batch 1000]
       [--backend sqlite|postgresql|both] [--no-fsync]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for tests.pg (the private PostgreSQL helpers)

from tests.pg import private_postgres  # noqa: E402

from crossbook.bench.workload import generate  # noqa: E402
from crossbook.domain.commands import Command, PlaceOrder  # noqa: E402
from crossbook.domain.ledger import Deposit  # noqa: E402
from crossbook.exchange.core import ExchangeCore  # noqa: E402
from crossbook.ledger import ProjectionWriter, migrate  # noqa: E402

LOG = "exchange"
Item = tuple[int, list[Any]]


def _shift(c: Command, offset: int) -> Command:
    """Move ``seq``/``ts`` up by ``offset``, keeping order ids (implicit ids made explicit)."""
    if type(c) is PlaceOrder and c.order_id == 0:
        return msgspec.structs.replace(c, seq=c.seq + offset, ts=c.ts + offset, order_id=c.seq)
    return msgspec.structs.replace(c, seq=c.seq + offset, ts=c.ts + offset)


def build_items(n_events: int, *, owners: int = 200, seed: int = 7) -> list[Item]:
    """About ``n_events`` events (at least; cut at an item boundary) of one exchange log."""
    n_commands = max(1000, n_events // 3)
    while True:
        workload = generate(n_commands, owners=owners, seed=seed)
        core = ExchangeCore()
        items: list[Item] = []
        seq, total = 0, 0
        ts0 = workload.warmup[0].ts - 10_000 if workload.warmup else 0
        for user in range(owners):
            for asset, amount in (("BTC", 10**14), ("ETH", 10**27), ("USDT", 10**18)):
                seq += 1
                deposit = Deposit(seq=seq, ts=ts0 + seq, user=user, asset=asset, amount=amount,
                                  network="bench", deposit_id=f"{user}-{asset}")  # fmt: skip
                events = core.execute(deposit)
                items.append((seq, events))
                total += len(events)
        for command in workload.warmup + workload.commands:
            c = _shift(command, seq)
            events = core.execute(c)
            items.append((c.seq, events))
            total += len(events)
            if total >= n_events:
                return items
        n_commands *= 2


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(url: str, backend: str, items: list[Item], batch: int) -> dict[str, Any]:
    migrate(url)
    events = sum(len(e) for _, e in items)
    rows = 0
    with ProjectionWriter(url) as writer:
        server = None  # the PostgreSQL backend of the writer's (pooled, reused) connection
        if backend == "postgresql":
            with writer.engine.connect() as conn:
                server = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        server_cpu = _process_cpu(server) if server else 0.0
        cpu = time.process_time()
        start = time.perf_counter()
        for i in range(0, len(items), batch):
            rows += writer.write(LOG, items[i : i + batch]).rows
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu
        server_cpu = _process_cpu(server) - server_cpu if server else 0.0
        assert writer.last_seq(LOG) == items[-1][0]
    return {
        "backend": backend,
        "events": events,
        "items": len(items),
        "projection_rows": rows,
        "seconds": round(seconds, 3),
        "projection_rows_per_s": round(rows / seconds),
        "events_per_s": round(events / seconds),
        "items_per_s": round(len(items) / seconds),
        "batch": batch,
        "writer_cpu_s": round(cpu, 3),
        **({"server_cpu_s": round(server_cpu, 3)} if server else {}),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000, help="items per write")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--no-fsync", action="store_true", help="PostgreSQL without fsync")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    items = build_items(args.events)
    print(f"# built {len(items)} items in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    if args.backend in ("sqlite", "both"):
        tmp = Path(tempfile.mkdtemp(prefix="crossbook-projection-bench-"))
        try:
            print(json.dumps(run(f"sqlite:///{tmp / 'ledger.db'}", "sqlite", items, args.batch)))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.backend in ("postgresql", "both"):
        with private_postgres(fsync=not args.no_fsync) as server:
            url = server.create_database("projection_bench")
            print(json.dumps(run(url, "postgresql", items, args.batch)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
