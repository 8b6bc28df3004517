"""Fault tests of the production layout against a real nats-server, named after the
fault. Services run as their own processes (``python -m crossbook service ...``);
after each fault every acknowledged command is in the logs exactly once and the
deployment's logs verify (replay byte for byte, ledger invariants, no duplicate seqs).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from pathlib import Path
from typing import Any

import nats
import pytest

from crossbook.bus.server import NatsServer
from crossbook.cluster.client import AccountsClient, SubmitError
from crossbook.cluster.engine import EngineService
from crossbook.cluster.processes import ServiceProcess, accounts_process, engine_process
from crossbook.cluster.verify import verify_deployment
from crossbook.domain.commands import PlaceOrder
from crossbook.domain.enums import Side
from crossbook.domain.events import OrderAccepted, OrderRejected
from crossbook.domain.ledger import Deposit
from crossbook.exchange.core import ExchangeConfig
from crossbook.service import load_config

BTC = "BTCUSDT"


class Deployment:
    def __init__(self, url: str, data_dir: Path, snapshot_every: int = 400) -> None:
        self.url = url
        self.data_dir = data_dir
        self.config: ExchangeConfig = load_config(data_dir).exchange
        self.processes: dict[str, ServiceProcess] = {}
        for market in self.config.markets:
            self.processes[market.symbol] = engine_process(
                market.symbol, data_dir, url, snapshot_every=snapshot_every
            )
        self.processes["accounts"] = accounts_process(data_dir, url, snapshot_every=snapshot_every)

    def start(self) -> None:
        for process in self.processes.values():
            process.start()

    def stop(self) -> None:
        for name, process in self.processes.items():
            code = process.stop()
            assert code in (0, None), f"{name} exited with {code}:\n{process._tail()}"


def orders(n: int, tag: str) -> list[PlaceOrder]:
    """Crossing limit orders of 8 users around one price (many fill, some rest)."""
    mid = 50_000_00
    return [
        PlaceOrder(seq=0, ts=0, market=BTC, owner=1 + i % 8,
                   side=Side.BUY if i % 2 else Side.SELL,
                   price=mid + (i % 9 - 4) * 100, quantity=100_000 * (1 + i % 3),
                   client_order_id=f"{tag}{i}")
        for i in range(n)
    ]  # fmt: skip


async def fund(client: AccountsClient) -> None:
    await client.submit_many(
        [Deposit(seq=0, ts=0, user=u, asset=a, amount=10**16, network="test",
                 deposit_id=f"seed-{u}-{a}") for u in range(1, 9) for a in ("BTC", "USDT")]
    )  # fmt: skip


class Load:
    """Submits orders ``window`` at a time; remembers what was acknowledged and what
    failed (unknown outcome)."""

    def __init__(self, client: AccountsClient, commands: list[PlaceOrder], window: int = 40):
        self.client = client
        self.commands = commands
        self.window = window
        self.acked: dict[str, tuple[int, list[Any]]] = {}
        self.unknown: set[str] = set()

    async def run(self) -> None:
        for i in range(0, len(self.commands), self.window):
            part = self.commands[i : i + self.window]
            results = await asyncio.gather(
                *(self.client.submit(c) for c in part), return_exceptions=True
            )
            for command, result in zip(part, results, strict=True):
                if isinstance(result, SubmitError):
                    self.unknown.add(command.client_order_id)
                elif isinstance(result, BaseException):
                    raise result
                else:
                    self.acked[command.client_order_id] = result

    async def wait_for(self, count: int, timeout: float = 60) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.acked) + len(self.unknown) < count:
            assert asyncio.get_running_loop().time() < deadline, "load stalled"
            await asyncio.sleep(0.02)


def assert_each_acknowledged_once(load: Load) -> None:
    for coid, (seq, events) in load.acked.items():
        outcomes = [e for e in events if type(e) in (OrderAccepted, OrderRejected)]
        assert len(outcomes) == 1, f"{coid} (seq {seq}): {events!r}"
    seqs = Counter(seq for seq, _ in load.acked.values())
    assert all(n == 1 for n in seqs.values())


async def verified(url: str, config: ExchangeConfig) -> list[str]:
    nc = await nats.connect(url)
    try:
        return await verify_deployment(nc, config)
    finally:
        await nc.close()


def test_engine_killed_with_sigkill_mid_stream_resumes_from_snapshot_and_log(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    deployment = Deployment(nats_server.url, tmp_path)
    deployment.start()

    async def main() -> Load:
        nc = await nats.connect(nats_server.url)
        client = AccountsClient(nc, timeout=30)
        try:
            await fund(client)
            load = Load(client, orders(3000, "k"))
            task = asyncio.create_task(load.run())
            await load.wait_for(1200)
            engine = deployment.processes[BTC]
            engine.kill()
            await asyncio.sleep(0.2)
            await asyncio.to_thread(engine.start)
            assert engine.ready["snapshot_seq"] > 0, engine.ready
            await asyncio.wait_for(task, 120)
            return load
        finally:
            await nc.close()

    try:
        load = asyncio.run(main())
    finally:
        deployment.stop()
    assert not load.unknown and len(load.acked) == 3000
    assert_each_acknowledged_once(load)
    errors = asyncio.run(verified(nats_server.url, deployment.config))
    assert not errors, "\n".join(errors[:20])


def test_jetstream_server_restarted_under_load_loses_and_doubles_nothing(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    deployment = Deployment(nats_server.url, tmp_path)
    deployment.start()

    async def main() -> Load:
        nc = await nats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
        client = AccountsClient(nc, timeout=5)
        try:
            await fund(client)
            load = Load(client, orders(2500, "r"))
            task = asyncio.create_task(load.run())
            await load.wait_for(800)
            await asyncio.to_thread(nats_server.restart)
            await asyncio.wait_for(task, 180)
            return load
        finally:
            await nc.close()

    try:
        load = asyncio.run(main())
    finally:
        deployment.stop()
    assert len(load.acked) + len(load.unknown) == 2500
    assert len(load.acked) > 1500, f"only {len(load.acked)} acknowledged"
    assert_each_acknowledged_once(load)
    errors = asyncio.run(verified(nats_server.url, deployment.config))
    assert not errors, "\n".join(errors[:20])


class CrashAfterCommit(Exception):
    """The engine dies after its log holds the batch, before it acks its input."""


def test_engine_killed_between_commit_and_ack_skips_the_redelivered_commands(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    config = load_config(tmp_path).exchange
    market = next(m for m in config.markets if m.symbol == BTC)
    others = [engine_process(m.symbol, tmp_path, nats_server.url)
              for m in config.markets if m.symbol != BTC]  # fmt: skip
    accounts = accounts_process(tmp_path, nats_server.url)

    async def main() -> int:
        nc_engine = await nats.connect(nats_server.url)
        crashing = EngineService(nc_engine, tmp_path, market, ack_wait=1.0)
        await crashing.start()
        for p in [*others, accounts]:
            await asyncio.to_thread(p.start)
        original = crashing._commit

        async def commit_then_crash() -> None:
            await original()
            if crashing.stats.commands >= 50:
                raise CrashAfterCommit

        crashing._commit = commit_then_crash  # type: ignore[method-assign]
        nc = await nats.connect(nats_server.url)
        client = AccountsClient(nc, timeout=30)
        try:
            await fund(client)
            load = Load(client, orders(300, "a"))
            task = asyncio.create_task(load.run())
            with pytest.raises(CrashAfterCommit):
                await crashing.run()
            with contextlib.suppress(Exception):
                await crashing.consumer.close()
            await nc_engine.close()  # gone without acking its last batch
            nc_engine = await nats.connect(nats_server.url)
            restarted = EngineService(nc_engine, tmp_path, market, ack_wait=1.0)
            await restarted.start()
            running = asyncio.create_task(restarted.run())
            await asyncio.wait_for(task, 60)
            await restarted.stop()
            await running
            await restarted.close()
            await nc_engine.close()
            assert len(load.acked) == 300 and not load.unknown
            assert_each_acknowledged_once(load)
            return restarted.stats.redelivered_skipped
        finally:
            await nc.close()

    try:
        skipped = asyncio.run(asyncio.wait_for(main(), 120))
    finally:
        for p in [accounts, *others]:
            p.stop()
    assert skipped > 0, "nothing was redelivered"
    errors = asyncio.run(verified(nats_server.url, config))
    assert not errors, "\n".join(errors[:20])
