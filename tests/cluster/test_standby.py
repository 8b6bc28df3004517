"""Standbys (``--lease-ttl``) take over when the leading instance is killed: an engine
standby follows its log while it waits (hot), an accounts standby recovers at takeover."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nats

from crossbook.bus.server import NatsServer
from crossbook.cluster.client import AccountsClient
from crossbook.cluster.processes import ServiceProcess, accounts_process, engine_process
from crossbook.cluster.verify import verify_deployment
from crossbook.exchange.core import ExchangeConfig
from crossbook.service import load_config
from tests.cluster.test_faults import BTC, Load, assert_each_acknowledged_once, fund, orders


def engine_instance(tag: str, data_dir: Path, url: str) -> ServiceProcess:
    return engine_process(BTC, data_dir, url, snapshot_every=300, lease_ttl=1.5, tag=f"-{tag}")


def wait_until(what: str, check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} within {timeout}s"
        time.sleep(0.05)


def test_leading_engine_killed_standby_takes_over_and_nothing_is_lost(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    config = load_config(tmp_path).exchange
    url = nats_server.url
    others = [engine_process(m.symbol, tmp_path, url) for m in config.markets if m.symbol != BTC]
    leader, standby = engine_instance("a", tmp_path, url), engine_instance("b", tmp_path, url)
    accounts = accounts_process(tmp_path, url)
    processes = [*others, leader, standby, accounts]
    try:
        for p in others:
            p.start()
        leader.start()
        standby.start(timeout=0)
        wait_until("the second instance waits as a standby", lambda: _said_standby(standby))
        accounts.start()

        async def main() -> Load:
            nc = await nats.connect(url)
            client = AccountsClient(nc, timeout=30)
            try:
                await fund(client)
                load = Load(client, orders(2000, "s"))
                task = asyncio.create_task(load.run())
                await until_done(load, 600)
                started = time.monotonic()
                leader.kill()
                await asyncio.to_thread(standby.wait_ready, 30)
                took = time.monotonic() - started
                assert took < 10, f"takeover took {took:.1f}s"
                # hot: it followed the log while waiting, so hardly anything was left
                assert standby.ready["replayed"] < 50, standby.ready
                await asyncio.wait_for(task, 60)
                return load
            finally:
                await nc.close()

        load = asyncio.run(main())
        assert len(load.acked) == 2000 and not load.unknown
        assert_each_acknowledged_once(load)
    finally:
        for p in reversed(processes):
            p.stop()

    assert_logs_verify(url, config)


def assert_logs_verify(url: str, config: ExchangeConfig) -> None:
    async def check() -> list[str]:
        nc = await nats.connect(url)
        try:
            return await verify_deployment(nc, config)
        finally:
            await nc.close()

    errors = asyncio.run(check())
    assert not errors, "\n".join(errors[:20])


async def until_done(load: Load, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while load.done < count:
        assert time.monotonic() < deadline, "load stalled"
        await asyncio.sleep(0.02)


def _said_standby(process: ServiceProcess) -> bool:
    text = process.ready_file.read_text() if process.ready_file.exists() else ""
    return '"standby": true' in text


def test_standby_stopped_while_waiting_exits_cleanly(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    load_config(tmp_path)
    leader = engine_instance("a", tmp_path, nats_server.url)
    standby = engine_instance("b", tmp_path, nats_server.url)
    try:
        leader.start()
        standby.start(timeout=0)
        wait_until("the standby says so", lambda: _said_standby(standby))
        assert standby.stop() == 0
        assert leader.running()
    finally:
        standby.stop()
        assert leader.stop() == 0


def accounts_instance(tag: str, data_dir: Path, url: str) -> ServiceProcess:
    return accounts_process(data_dir, url, snapshot_every=300, lease_ttl=1.5, tag=f"-{tag}")


def test_leading_accounts_killed_standby_takes_over_and_settles_everything(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    config = load_config(tmp_path).exchange
    url = nats_server.url
    engines = [engine_process(m.symbol, tmp_path, url) for m in config.markets]
    leader, standby = accounts_instance("a", tmp_path, url), accounts_instance("b", tmp_path, url)
    processes = [*engines, leader, standby]
    try:
        for p in engines:
            p.start()
        leader.start()
        standby.start(timeout=0)
        wait_until("the second instance waits as a standby", lambda: _said_standby(standby))

        async def main() -> Load:
            nc = await nats.connect(url)
            client = AccountsClient(nc, timeout=5)
            try:
                await fund(client)
                load = Load(client, orders(1500, "t"))
                task = asyncio.create_task(load.run())
                await until_done(load, 500)
                leader.kill()  # requests in flight are lost with it: unknown outcome
                await asyncio.to_thread(standby.wait_ready, 30)
                await asyncio.wait_for(task, 90)
                # the new leader serves (and settles) what comes after the takeover
                after = orders(1, "after")[0]
                seq, events = await client.submit(after)
                load.acked[after.client_order_id] = (seq, events)
                return load
            finally:
                await nc.close()

        load = asyncio.run(main())
        # while no instance serves, requests fail at once (no responders): unknown
        assert len(load.acked) + len(load.unknown) == 1501
        assert len(load.acked) > 500
        assert_each_acknowledged_once(load)
    finally:
        for p in reversed(processes):
            p.stop()

    assert_logs_verify(url, config)
