"""Child process for the crash tests: feeds a deterministic workload to a journaled
service (the engine alone, or the whole exchange with its SQL projection) in small
batches and prints ``ACK <seq>`` after each durable batch."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from crossbook.bench.workload import funded, generate
from crossbook.exchange.core import ExchangeConfig
from crossbook.service import DataDirConfig, EngineService, JournaledService

N_COMMANDS = 30_000
BOOK_SIZE = 300
BATCH = 25


def workload_commands(kind: str = "engine") -> list[Any]:
    w = generate(N_COMMANDS if kind == "engine" else N_COMMANDS // 3, book_size=BOOK_SIZE, seed=11)
    if kind == "engine":
        return [*w.warmup, *w.commands]
    warmup, commands = funded(w, owners=200)
    return [*warmup, *commands]


def main(data_dir: str, kind: str) -> None:
    commands = workload_commands(kind)
    path = Path(data_dir)
    service: JournaledService
    if kind == "engine":
        service = EngineService(path, fsync=True, snapshot_every=1_000)
    else:
        config = DataDirConfig(kind="exchange", exchange=ExchangeConfig())
        service = JournaledService(path, config=config, fsync=True, snapshot_every=1_000)
    start = service.machine.last_seq
    todo = [c for c in commands if c.seq > start]
    print(f"START {start}", flush=True)
    in_flight = None
    for n, i in enumerate(range(0, len(todo), BATCH)):
        chunk = todo[i : i + BATCH]
        if kind == "engine":
            service.submit_stamped(chunk)
            print(f"ACK {chunk[-1].seq}", flush=True)
            continue
        # the exchange runs pipelined: a batch is acknowledged once its fsync is done,
        # while the next batch already executes
        acked = service.submit_pipelined(chunk)
        if in_flight is not None:
            in_flight[1].result()
            print(f"ACK {in_flight[0]}", flush=True)
        in_flight = (chunk[-1].seq, acked)
        if n % 10 == 0:
            from crossbook.projection import project

            project(path, journal=service.journal)
    if in_flight is not None:
        in_flight[1].result()
        print(f"ACK {in_flight[0]}", flush=True)
    if kind == "exchange":
        from crossbook.projection import project

        project(path, journal=service.journal)
    service.close()
    print("DONE", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "engine")
