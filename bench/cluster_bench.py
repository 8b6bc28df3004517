"""The distributed pipeline through JetStream: order entry to acknowledged fill events.

Starts private nats-server(s) (one node for 1 replica; a three-node cluster for 3),
one engine process per market and one accounts process per shard (``--accounts-shards``,
1 by default; ``python -m crossbook service ...``), funds 200 users, then submits orders from this process through
:class:`~crossbook.cluster.client.AccountsClient` (what a gateway uses). A command is
acknowledged once the accounts log holds it, its engine has run it, and its events
are settled in the accounts log (so the latency covers four JetStream commits).

Two phases per replica count:

- ``max``: closed loop with ``--window`` commands in flight: throughput and latency;
- ``half_load``: open loop at half the measured throughput for ``--seconds``: latency;
- ``fixed_rate``: the same at ``--rate`` commands/s (10,000 by default).

The mix on one market: 80% limit orders crossing around one price (most fill, some
rest), 20% cancels by client order id. Prints one JSON line per replica count.

    .venv/bin/python bench/cluster_bench.py [--orders 60000] [--replicas 1 3]
        [--accounts-shards 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import nats

from crossbook.bus.server import NatsCluster, NatsServer
from crossbook.cluster.client import AccountsClient
from crossbook.cluster.processes import ServiceProcess, accounts_process, engine_process
from crossbook.domain.commands import CancelOrder, PlaceOrder
from crossbook.domain.enums import Side
from crossbook.domain.ledger import Deposit
from crossbook.exchange.core import ExchangeConfig
from crossbook.runtime import tune_gc
from crossbook.service import DataDirConfig, load_config

MARKET = "BTCUSDT"
USERS = 200


def commands(n: int, start: int) -> list[Any]:
    out: list[Any] = []
    mid = 50_000_00
    for i in range(start, start + n):
        owner = 1 + i % USERS
        if i % 5 == 4:
            out.append(CancelOrder(seq=0, ts=0, market=MARKET, owner=1 + (i - 3) % USERS,
                                   client_order_id=f"o{i - 3}"))  # fmt: skip
        else:
            out.append(PlaceOrder(seq=0, ts=0, market=MARKET, owner=owner,
                                  side=Side.BUY if i % 2 else Side.SELL,
                                  price=mid + (i * 7 % 11 - 5) * 100,
                                  quantity=10_000 * (1 + i % 4), client_order_id=f"o{i}"))  # fmt: skip
    return out


def percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {
        "p50_ms": at(0.5),
        "p99_ms": at(0.99),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
    }


class Router:
    """What a gateway does with several shards: each command to its user's shard."""

    def __init__(self, clients: list[AccountsClient]) -> None:
        self.clients = clients

    async def submit(self, command: Any) -> Any:
        user = getattr(command, "owner", None) or command.user
        return await self.clients[user % len(self.clients)].submit(command)

    async def submit_many(self, commands: list[Any]) -> None:
        await asyncio.gather(*(
            self.clients[k].submit_many(
                [c for c in commands if c.user % len(self.clients) == k]
            )
            for k in range(len(self.clients))
        ))  # fmt: skip


async def closed_loop(client: Any, cmds: list[Any], window: int) -> dict[str, Any]:
    latencies: list[float] = []
    it = iter(cmds)

    async def worker() -> None:
        for command in it:
            t0 = time.perf_counter()
            await client.submit(command)
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(window)))
    elapsed = time.perf_counter() - start
    return {"commands": len(cmds), "commands_per_s": round(len(cmds) / elapsed),
            "window": window, **percentiles(latencies)}  # fmt: skip


async def open_loop(client: Any, cmds: list[Any], rate: float) -> dict[str, Any]:
    latencies: list[float] = []
    tick = 0.002
    per_tick = max(1, round(rate * tick))
    tasks: list[asyncio.Task[None]] = []

    async def one(command: Any) -> None:
        t0 = time.perf_counter()
        await client.submit(command)
        latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    for i in range(0, len(cmds), per_tick):
        due = start + (i / per_tick) * tick
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks += [asyncio.create_task(one(c)) for c in cmds[i : i + per_tick]]
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    return {"commands": len(cmds), "offered_per_s": round(rate),
            "commands_per_s": round(len(cmds) / elapsed), **percentiles(latencies)}  # fmt: skip


async def drive(url: str, args: argparse.Namespace) -> dict[str, Any]:
    nc = await nats.connect(url)
    client = Router([AccountsClient(nc, k, timeout=60) for k in range(args.accounts_shards)])
    try:
        await client.submit_many(
            [Deposit(seq=0, ts=0, user=u, asset=a, amount=10**18, network="bench",
                     deposit_id=f"seed-{u}-{a}") for u in range(1, USERS + 1)
             for a in ("BTC", "USDT")]
        )  # fmt: skip
        await closed_loop(client, commands(5_000, 0), args.window)  # warm-up
        top = await closed_loop(client, commands(args.orders, 10_000), args.window)
        out: dict[str, Any] = {"max": top}
        start = 10_000 + args.orders
        rates = {"half_load": top["commands_per_s"] / 2}
        if args.rate:
            rates["fixed_rate"] = args.rate
        for name, rate in rates.items():
            n = int(rate * args.seconds)
            out[name] = await open_loop(client, commands(n, start), rate)
            start += n
        return out
    finally:
        await nc.close()


def run(replicas: int, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="crossbook-cluster-bench-") as tmp:
        base = Path(tmp)
        servers: NatsServer | NatsCluster
        if replicas == 1:
            servers = NatsServer(base / "js").start()
            url = servers.url
        else:
            servers = NatsCluster(base / "cluster", size=replicas).start()
            url = ",".join(servers.urls)
        data_dir = base / "data"
        exchange = ExchangeConfig(accounts_shards=args.accounts_shards)
        config = load_config(data_dir, DataDirConfig(kind="exchange", exchange=exchange)).exchange
        processes: list[ServiceProcess] = [
            engine_process(m.symbol, data_dir, url, replicas=replicas) for m in config.markets
        ]
        processes += [
            accounts_process(data_dir, url, shard=k, replicas=replicas)
            for k in range(config.accounts_shards)
        ]
        try:
            for p in processes:
                p.start()
            result = run_loop(drive(url.split(",")[0], args))
        finally:
            for p in processes:
                p.stop()
            servers.stop()
    return {"bench": "cluster_pipeline", "replicas": replicas,
            "accounts_shards": args.accounts_shards, **result}  # fmt: skip


def run_loop(main: Any) -> Any:
    """On uvloop, as the gateways run."""
    import uvloop

    tune_gc()
    return uvloop.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=60_000)
    parser.add_argument("--window", type=int, default=1_000, help="commands in flight")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the half-load run")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--accounts-shards", type=int, default=1)
    parser.add_argument(
        "--rate", type=float, default=10_000, help="also measure latency at this rate (0: no)"
    )
    args = parser.parse_args()
    for replicas in args.replicas:
        print(json.dumps(run(replicas, args)), flush=True)


if __name__ == "__main__":
    main()
