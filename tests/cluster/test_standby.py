"""Standbys (``--lease-ttl``) take over when the leading instance is killed: an engine or
accounts standby follows its log while it waits (hot), so little is left at takeover."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import nats
import pytest

from crossbook.bus.server import NatsServer
from crossbook.cluster.accounts import AccountsService
from crossbook.cluster.client import AccountsClient
from crossbook.cluster.processes import ServiceProcess, accounts_process, engine_process
from crossbook.cluster.verify import verify_deployment
from crossbook.exchange.core import ExchangeConfig
from crossbook.service import load_config
from tests.cluster.test_faults import BTC, Load, assert_each_acknowledged_once, fund, orders
from tests.cluster.test_split_services import running_exchange


def engine_instance(tag: str, data_dir: Path, url: str) -> ServiceProcess:
    return engine_process(BTC, data_dir, url, snapshot_every=300, lease_ttl=1.5, tag=f"-{tag}")


def start_leader_and_standby(leader: ServiceProcess, standby: ServiceProcess) -> None:
    leader.start()
    standby.start(timeout=0)
    wait_until("the second instance waits as a standby", lambda: _said_standby(standby))


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
        start_leader_and_standby(leader, standby)
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
        start_leader_and_standby(leader, standby)
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
        start_leader_and_standby(leader, standby)

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
                # hot: it followed the log while waiting (snapshots every 300 inputs would
                # leave up to 300 to replay for a cold one)
                assert standby.ready["replayed"] < 50, standby.ready
                assert standby.ready["snapshot_seq"] > 300, standby.ready
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


def _followed_then_taken_over(
    url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch, *, lose_a_forward: bool
) -> tuple[bool, Any, str]:
    """Run the exchange, follow its accounts log with a second instance, stop the leader
    and take over; (whether the new leader went on with the machine it followed, its
    machine, the old leader's state hash)."""
    from crossbook.cluster import accounts as accounts_module

    monkeypatch.setattr(accounts_module, "FOLLOWED_FORWARDS", 20)

    async def main() -> tuple[bool, Any, str]:
        async with running_exchange(url, data_dir) as (deployment, client):
            await fund(client)
            leader = deployment.services["accounts"]
            nc = await nats.connect(url)
            standby = AccountsService(nc, data_dir / "standby", ExchangeConfig())
            current: dict[str, Any] = {}
            follower = asyncio.create_task(standby.follow(current))
            await Load(client, orders(300, "h")).run()
            deadline = time.monotonic() + 20
            while current.get("machine") is None or (
                current["machine"].last_seq < leader.machine.last_seq
            ):
                assert time.monotonic() < deadline, "the standby did not catch up"
                await asyncio.sleep(0.05)
            assert current["machine"].state_hash() == leader.machine.state_hash()
            assert len(current["forwards"]) == 20 and current["dropped"]
            expected = leader.machine.state_hash()
            await deployment.stop("accounts")
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
            if lose_a_forward:  # as if a forward the orders log lacks had been dropped
                current["dropped"][BTC] = 10**12
            await standby.start(current)
            try:
                followed = standby.machine is current["machine"]
                return followed, standby.machine, expected
            finally:
                await standby.stop()
                await standby.close()
                await nc.close()

    return asyncio.run(asyncio.wait_for(main(), 90))


def test_hot_accounts_standby_takes_over_from_the_state_it_followed(
    nats_server: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    followed, machine, expected = _followed_then_taken_over(
        nats_server.url, tmp_path, monkeypatch, lose_a_forward=False
    )
    assert followed
    assert machine.state_hash() == expected


def test_hot_standby_that_dropped_a_needed_forward_recovers_from_its_snapshot_instead(
    nats_server: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    followed, machine, expected = _followed_then_taken_over(
        nats_server.url, tmp_path, monkeypatch, lose_a_forward=True
    )
    assert not followed  # recovered from a snapshot (the one the leader shared) and the log
    assert machine.state_hash() == expected
