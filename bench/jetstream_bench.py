"""JetStreamLog commit throughput and latency on private nats-servers.

Prints one JSON line: records/s through ``JetStreamLog.commit`` in batches of 512
records (100-byte payloads), with 1 replica (single node) and with 3 (a three-node
cluster on this machine, if it starts), and the commit latency p50/p99 in ms.

    .venv/bin/python bench/jetstream_bench.py [--batches N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from crossbook.bus.jetstream import JetStreamLog
from crossbook.bus.server import NatsCluster, NatsServer, NatsServerError
from crossbook.journal.framing import COMMAND

BATCH = 512
PAYLOAD = b"x" * 100


async def _run(servers: str | list[str], replicas: int, batches: int) -> dict[str, Any]:
    log = await JetStreamLog.open(servers, f"bench{replicas}", replicas=replicas)
    latencies: list[float] = []
    seq = 0
    start = time.perf_counter()
    for _ in range(batches):
        for _ in range(BATCH):
            seq += 1
            log.append(COMMAND, seq, PAYLOAD)
        t0 = time.perf_counter()
        await log.commit()
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    await log.close()
    latencies.sort()
    return {
        "records_per_s": round(seq / elapsed),
        "commit_p50_ms": round(latencies[len(latencies) // 2] * 1e3, 3),
        "commit_p99_ms": round(
            latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3, 3
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=400)
    args = parser.parse_args()
    out: dict[str, Any] = {"batch": BATCH, "payload_bytes": len(PAYLOAD), "batches": args.batches}
    with tempfile.TemporaryDirectory() as tmp:
        with NatsServer(Path(tmp) / "single") as server:
            out["r1"] = asyncio.run(_run(server.url, 1, args.batches))
        try:
            t0 = time.perf_counter()
            with NatsCluster(Path(tmp) / "cluster") as cluster:
                out["cluster_start_s"] = round(time.perf_counter() - t0, 2)
                out["r3"] = asyncio.run(_run(cluster.urls, 3, args.batches))
        except NatsServerError as exc:
            out["r3"] = f"cluster did not start: {exc}"[:300]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
