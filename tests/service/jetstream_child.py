"""Child process for the JetStream failover tests: takes the leader lease of a log,
runs a journaled service on it (fenced writer) and feeds it the crash tests'
deterministic workload in small batches, printing ``ACK <seq>`` after each batch the
stream acknowledged. Usage: ``URL LOG DATA_DIR BUCKET TTL [KIND]``."""

from __future__ import annotations

import sys
from pathlib import Path

from crossbook.exchange.core import ExchangeConfig
from crossbook.ha.leader import Leadership, lease_name, open_leader
from crossbook.service import DataDirConfig, engine_config
from tests.service.crash_child import workload_commands

BATCH = 25


def config_for(kind: str) -> DataDirConfig:
    if kind == "engine":
        return engine_config()
    return DataDirConfig(kind="exchange", exchange=ExchangeConfig())


def main(url: str, log: str, data_dir: str, bucket: str, ttl: float, kind: str) -> None:
    commands = workload_commands(kind)
    leadership = Leadership(url, lease_name(log), "child", ttl=ttl, bucket=bucket)
    leadership.acquire(timeout=30)
    service = open_leader(
        Path(data_dir), url, log, leadership, config=config_for(kind), snapshot_every=2_000
    )
    start = service.machine.last_seq
    print(f"START {start} {leadership.epoch}", flush=True)
    todo = [c for c in commands if c.seq > start]
    for i in range(0, len(todo), BATCH):
        chunk = todo[i : i + BATCH]
        service.submit_stamped(chunk)
        print(f"ACK {chunk[-1].seq}", flush=True)
    service.close()
    leadership.close()
    print("DONE", flush=True)


if __name__ == "__main__":
    main(
        sys.argv[1],
        sys.argv[2],
        sys.argv[3],
        sys.argv[4],
        float(sys.argv[5]),
        sys.argv[6] if len(sys.argv) > 6 else "engine",
    )
