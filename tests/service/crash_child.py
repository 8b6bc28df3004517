"""Child process for the crash tests: feeds a deterministic workload to an
EngineService in small batches and prints ``ACK <seq>`` after each durable batch."""

from __future__ import annotations

import sys
from pathlib import Path

from crossbook.bench.workload import generate
from crossbook.service import EngineService

N_COMMANDS = 30_000
BOOK_SIZE = 300
BATCH = 25


def workload_commands() -> list:
    w = generate(N_COMMANDS, book_size=BOOK_SIZE, seed=11)
    return [*w.warmup, *w.commands]


def main(data_dir: str) -> None:
    commands = workload_commands()
    service = EngineService(Path(data_dir), fsync=True, snapshot_every=1_000)
    start = service.engine.last_seq
    todo = [c for c in commands if c.seq > start]
    print(f"START {start}", flush=True)
    for i in range(0, len(todo), BATCH):
        chunk = todo[i : i + BATCH]
        service.submit_stamped(chunk)
        print(f"ACK {chunk[-1].seq}", flush=True)
    service.close()
    print("DONE", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
