"""Fault tests of the production layout against real servers, named after the fault.

Services run as their own processes (``python -m crossbook service ...``): one engine
per market, the accounts service and the ledger writer, over a private nats-server
(or a three-node JetStream cluster) and a private PostgreSQL. After each fault, once
the load is done and the services are stopped in order (accounts, engines, then the
ledger writer, which projects the log to its end first):

- the deployment's logs verify (``crossbook.cluster.verify``: replay byte for byte,
  ledger invariants, no duplicate seqs) and the SQL projection equals the replayed
  accounts (``crossbook.verify.sql_errors``);
- per market, the engine log's command seqs strictly increase and are exactly the
  orders log's, and the accounts settled every forwarded command;
- every acknowledged command is in the accounts log exactly once, at the seq it was
  acknowledged with; a command whose outcome is unknown (timed out) is there at most
  once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS

from crossbook.bus.jetstream import JetStreamLog, stream_name
from crossbook.bus.server import NatsCluster, NatsServer
from crossbook.cluster.client import AccountsClient, SubmitError
from crossbook.cluster.engine import EngineService
from crossbook.cluster.processes import ServiceProcess, accounts_process, engine_process
from crossbook.cluster.topology import accounts_log, engine_log, orders_log
from crossbook.cluster.verify import replay_deployment
from crossbook.domain.codec import command_decoder
from crossbook.domain.commands import PlaceOrder
from crossbook.domain.enums import Side
from crossbook.domain.events import OrderAccepted, OrderRejected
from crossbook.domain.ledger import Deposit
from crossbook.exchange.core import ExchangeConfig
from crossbook.journal.framing import COMMAND
from crossbook.service import load_config
from crossbook.verify import sql_errors

BTC = "BTCUSDT"


class Deployment:
    """Engines (``engines``: the markets whose engine runs as a process; all by
    default), the accounts service and the ledger writer, each its own process."""

    def __init__(
        self,
        url: str,
        data_dir: Path,
        database_url: str,
        *,
        replicas: int = 1,
        snapshot_every: int = 400,
        engines: list[str] | None = None,
    ) -> None:
        self.url = url
        self.data_dir = data_dir
        self.database_url = database_url
        self.config: ExchangeConfig = load_config(data_dir).exchange
        common: dict[str, Any] = {"replicas": replicas, "snapshot_every": snapshot_every}
        symbols = [m.symbol for m in self.config.markets] if engines is None else engines
        self.engines = {s: engine_process(s, data_dir, url, **common) for s in symbols}
        self.accounts = accounts_process(data_dir, url, **common)
        self.ledger_writer = ServiceProcess(
            "ledger-writer-0",
            ["ledger-writer", "--data-dir", str(data_dir), "--nats-url", url,
             "--database-url", database_url],
            log_dir=data_dir / "logs",
        )  # fmt: skip

    @property
    def processes(self) -> list[ServiceProcess]:
        """In the order of a clean stop: accounts, engines, the ledger writer."""
        return [self.accounts, *self.engines.values(), self.ledger_writer]

    def start(self) -> None:
        """Engines, accounts, ledger writer: each one's input exists before it reads."""
        for process in [*self.engines.values(), self.accounts, self.ledger_writer]:
            process.start(timeout=30)

    def stop(self) -> list[str]:
        """Stop in order (SIGTERM); what did not end with exit code 0."""
        problems = []
        for process in self.processes:
            was_running = process.running()
            code = process.stop(timeout=30)
            if code != 0:
                how = "was killed after 30 s" if was_running and code is None else f"exited {code}"
                problems.append(f"{process.name} {how}:\n{process._tail(3000)}")
        return problems

    def kill_all(self) -> None:
        for process in self.processes:
            process.kill()

    def check_alive(self) -> None:
        for process in self.processes:
            if process.proc is not None and not process.running():
                raise AssertionError(
                    f"{process.name} died (exit {process.proc.returncode}) while it should "
                    f"run through the fault; log {process.log_file}:\n{process._tail(3000)}"
                )

    async def until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait (at most ``timeout`` s) until ``done()``, failing at once if a service
        process died."""
        deadline = time.monotonic() + timeout
        while not done():
            self.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout} s")
            await asyncio.sleep(0.05)

    async def finish(self, aw: Awaitable[Any], timeout: float, what: str) -> Any:
        task = asyncio.ensure_future(aw)
        try:
            await self.until(task.done, timeout, what)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        return task.result()


@contextlib.contextmanager
def running(deployment: Deployment, *, start: bool = True) -> Iterator[None]:
    """Start the services (unless the body does), run the body; then stop the services
    in order and require clean exits (after a failure: stop them anyway, without hiding
    the failure)."""
    try:
        if start:
            deployment.start()
        yield
    except BaseException:
        deployment.stop()
        deployment.kill_all()
        raise
    problems = deployment.stop()
    assert not problems, "services did not stop cleanly:\n" + "\n".join(problems)


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
    failed (unknown outcome). After a failed window it backs off a little, as a client
    would."""

    def __init__(self, client: AccountsClient, commands: list[PlaceOrder], window: int = 40):
        self.client = client
        self.commands = commands
        self.window = window
        self.acked: dict[str, tuple[int, list[Any]]] = {}
        self.unknown: set[str] = set()

    @property
    def done(self) -> int:
        return len(self.acked) + len(self.unknown)

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
            if any(isinstance(r, SubmitError) for r in results):
                await asyncio.sleep(0.1)


def assert_load_went_through(load: Load) -> None:
    """All 2,501 commands had an outcome, most were acknowledged, each exactly once."""
    assert load.done == 2501
    assert len(load.acked) > 1500, f"only {len(load.acked)} acknowledged"
    assert_each_acknowledged_once(load)


def assert_each_acknowledged_once(load: Load) -> None:
    for coid, (seq, events) in load.acked.items():
        outcomes = [e for e in events if type(e) in (OrderAccepted, OrderRejected)]
        assert len(outcomes) == 1, f"{coid} (seq {seq}): {events!r}"
    seqs = Counter(seq for seq, _ in load.acked.values())
    doubled = sorted(s for s, n in seqs.items() if n > 1)
    assert not doubled, f"seqs acknowledged for more than one command: {doubled[:20]}"


_probes = itertools.count(1)


async def settle(deployment: Deployment, client: AccountsClient, load: Load) -> None:
    """Wait until everything forwarded to BTC is settled: a resting probe order is
    acknowledged only once its engine events are back, and forwards, the engine and
    the accounts' tail of its events are all in order, so every earlier BTC forward is
    settled by then. (Tried again if a request times out; the probe counts as load.)"""
    deadline = time.monotonic() + 30
    while True:
        coid = f"probe{next(_probes)}"
        probe = PlaceOrder(seq=0, ts=0, market=BTC, owner=1, side=Side.BUY, price=40_000_00,
                           quantity=100_000, client_order_id=coid)  # fmt: skip
        try:
            seq, events = await deployment.finish(client.submit(probe), 35, "probe order")
        except SubmitError:
            load.unknown.add(coid)
            assert time.monotonic() < deadline, "no probe order acknowledged within 30 s"
            continue
        load.acked[coid] = (seq, events)
        assert any(type(e) is OrderAccepted for e in events), f"probe refused: {events!r}"
        return


async def read_log(nc: NATS, name: str) -> list[tuple[int, int, bytes]]:
    log = await JetStreamLog.open(nc, name)
    try:
        return [r async for r in log.records()]
    finally:
        await log.close()


def _strictly_increasing(name: str, seqs: list[int]) -> None:
    repeated = sorted(s for s, n in Counter(seqs).items() if n > 1)
    assert not repeated, f"{name}: command seqs recorded more than once: {repeated[:20]}"
    backwards = [(a, b) for a, b in itertools.pairwise(seqs) if b <= a]
    assert not backwards, f"{name}: command seqs out of order: {backwards[:20]}"


async def check_deployment(url: str, deployment: Deployment, loads: list[Load]) -> None:
    """The checks of the module doc, on a stopped deployment's logs and SQL."""
    config = deployment.config
    nc = await nats.connect(url.split(","))
    try:
        errors, (machine,) = await replay_deployment(nc, config)
        logs = {
            name: await read_log(nc, name)
            for name in [accounts_log(0)]
            + [f(m.symbol) for m in config.markets for f in (engine_log, orders_log)]
        }
    finally:
        await nc.close()
    assert not errors, "crossbook verify (logs):\n" + "\n".join(errors[:20])
    sql = await asyncio.to_thread(sql_errors, deployment.database_url, machine)
    assert not sql, "crossbook verify (SQL projection):\n" + "\n".join(sql[:20])

    for market in config.markets:
        symbol = market.symbol
        engine_records = [(seq, p) for kind, seq, p in logs[engine_log(symbol)] if kind == COMMAND]
        ran = [command_decoder.decode(p).seq for _, p in engine_records]
        forwarded = [seq for kind, seq, _ in logs[orders_log(symbol)] if kind == COMMAND]
        _strictly_increasing(engine_log(symbol), ran)
        _strictly_increasing(orders_log(symbol), forwarded)
        assert ran == forwarded, (
            f"{symbol}: the engine ran {len(ran)} commands, orders-{symbol} holds "
            f"{len(forwarded)}; only in the engine log: {sorted(set(ran) - set(forwarded))[:10]}, "
            f"only in the orders log: {sorted(set(forwarded) - set(ran))[:10]}"
        )
        positions = [seq for seq, _ in engine_records]
        assert positions == list(range(1, len(positions) + 1)), f"{symbol}: engine log positions"
        assert machine.engine_seqs[symbol] == len(positions), (
            f"{symbol}: the accounts settled engine records up to "
            f"{machine.engine_seqs[symbol]}, but engine-{symbol} holds {len(positions)}"
        )

    commands: dict[int, list[Any]] = defaultdict(list)
    for kind, seq, payload in logs[accounts_log(0)]:
        if kind == COMMAND:
            commands[seq].append(command_decoder.decode(payload))
    placed = Counter(
        c.client_order_id for cs in commands.values() for c in cs if type(c) is PlaceOrder
    )
    for load in loads:
        for coid, (seq, _) in load.acked.items():
            found = commands.get(seq, [])
            assert len(found) == 1, f"acknowledged {coid} (seq {seq}): {len(found)} records"
            assert getattr(found[0], "client_order_id", None) == coid, (
                f"acknowledged {coid} at seq {seq}, the accounts log has {found[0]!r} there"
            )
            assert placed[coid] == 1, f"acknowledged {coid} is in the accounts log {placed[coid]}x"
        doubled = sorted(c for c in load.unknown if placed[c] > 1)
        assert not doubled, f"commands of unknown outcome applied twice: {doubled[:20]}"


async def wait_until_replicated(url: str, config: ExchangeConfig, timeout: float = 30) -> None:
    """Every log's stream has a leader and its two other replicas are current again."""
    names = [accounts_log(0)] + [
        f(m.symbol) for m in config.markets for f in (engine_log, orders_log)
    ]
    nc = await connect(url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            behind = []
            for name in names:
                cluster = (await nc.jetstream().stream_info(stream_name(name))).cluster
                peers = [] if cluster is None else (cluster.replicas or [])
                if (
                    cluster is None
                    or not cluster.leader
                    or len(peers) != 2
                    or not all(p.current and not p.offline for p in peers)
                ):
                    behind.append(f"{name}: {cluster!r}")
            if not behind:
                return
            assert time.monotonic() < deadline, "streams not replicated again:\n" + "\n".join(
                behind
            )
            await asyncio.sleep(0.2)
    finally:
        await nc.close()


async def connect(url: str) -> NATS:
    return await nats.connect(url.split(","), max_reconnect_attempts=-1, reconnect_time_wait=0.1)


def test_engine_killed_with_sigkill_mid_stream_resumes_from_snapshot_and_log(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    deployment = Deployment(nats_server.url, tmp_path, database_url)

    async def main() -> Load:
        nc = await connect(nats_server.url)
        client = AccountsClient(nc, timeout=30)
        try:
            await fund(client)
            load = Load(client, orders(3000, "k"))
            task = asyncio.create_task(load.run())
            await deployment.until(lambda: load.done >= 1200, 30, "1200 orders before the kill")
            engine = deployment.engines[BTC]
            engine.kill()
            await asyncio.sleep(0.2)
            await asyncio.to_thread(engine.start)
            assert engine.ready["snapshot_seq"] > 0, engine.ready
            await deployment.finish(task, 40, "the load after the engine's restart")
            await settle(deployment, client, load)
            return load
        finally:
            await nc.close()

    with running(deployment):
        load = asyncio.run(main())
    assert not load.unknown and len(load.acked) == 3001
    assert_each_acknowledged_once(load)
    asyncio.run(check_deployment(nats_server.url, deployment, [load]))


def test_jetstream_server_restarted_under_load_loses_and_doubles_nothing(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    deployment = Deployment(nats_server.url, tmp_path, database_url)

    async def main() -> Load:
        nc = await connect(nats_server.url)
        client = AccountsClient(nc, timeout=5)
        try:
            await fund(client)
            load = Load(client, orders(2500, "r"))
            task = asyncio.create_task(load.run())
            await deployment.until(lambda: load.done >= 800, 30, "800 orders before the restart")
            await asyncio.to_thread(nats_server.restart)
            await deployment.finish(task, 50, "the load after the server's restart")
            await settle(deployment, client, load)
            return load
        finally:
            await nc.close()

    with running(deployment):
        load = asyncio.run(main())
    assert_load_went_through(load)
    asyncio.run(check_deployment(nats_server.url, deployment, [load]))


def test_three_node_jetstream_cluster_loses_its_stream_leader_under_load(
    nats_cluster: NatsCluster, database_url: str, tmp_path: Path
) -> None:
    url = ",".join(nats_cluster.urls)
    deployment = Deployment(url, tmp_path / "data", database_url, replicas=3)
    stream = stream_name(accounts_log(0))

    async def main() -> Load:
        nc = await connect(url)
        client = AccountsClient(nc, timeout=5)
        try:
            await fund(client)
            load = Load(client, orders(2500, "l"))
            task = asyncio.create_task(load.run())
            await deployment.until(lambda: load.done >= 800, 30, "800 orders before the kill")
            info = await nc.jetstream().stream_info(stream)
            assert info.cluster is not None and info.cluster.leader, info
            killed = nats_cluster.node_index(info.cluster.leader)
            nats_cluster.kill_node(killed)  # SIGKILL
            at_kill = load.done
            await deployment.until(
                lambda: load.done >= at_kill + 400, 30, f"400 orders with node n{killed} down"
            )
            await asyncio.to_thread(nats_cluster.start_node, killed)
            await deployment.finish(task, 40, "the load after the node came back")
            await settle(deployment, client, load)
            info = await nc.jetstream().stream_info(stream)
            assert info.cluster is not None and info.cluster.leader, info
            return load
        finally:
            await nc.close()

    with running(deployment):
        load = asyncio.run(main())
    assert_load_went_through(load)
    asyncio.run(wait_until_replicated(url, deployment.config))
    asyncio.run(check_deployment(url, deployment, [load]))


def test_accounts_killed_with_sigkill_mid_stream_resumes_and_settles_everything(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    deployment = Deployment(nats_server.url, tmp_path, database_url)

    async def main() -> list[Load]:
        nc = await connect(nats_server.url)
        client = AccountsClient(nc, timeout=3)
        try:
            await fund(client)
            loads = [Load(client, orders(1500, f"a{k}-")) for k in range(2)]
            tasks = [asyncio.create_task(load.run()) for load in loads]
            await deployment.until(
                lambda: sum(load.done for load in loads) >= 1200, 30, "1200 orders before the kill"
            )
            accounts = deployment.accounts
            assert accounts.proc is not None
            # frozen first, so that the kill surely meets requests in flight (delivered,
            # perhaps half committed, never answered); then SIGKILL
            accounts.proc.send_signal(signal.SIGSTOP)
            await asyncio.sleep(0.3)
            accounts.kill()
            await asyncio.to_thread(accounts.start)
            assert accounts.ready["snapshot_seq"] > 0, accounts.ready
            for task in tasks:
                await deployment.finish(task, 40, "the load after the accounts' restart")
            await settle(deployment, client, loads[0])
            return loads
        finally:
            await nc.close()

    with running(deployment):
        loads = asyncio.run(main())
    assert sum(load.done for load in loads) == 3001
    unknown = sum(len(load.unknown) for load in loads)
    assert unknown > 0, "no request was in flight when the accounts service was killed"
    assert unknown < 600, f"{unknown} requests of unknown outcome"
    for load in loads:
        assert_each_acknowledged_once(load)
    asyncio.run(check_deployment(nats_server.url, deployment, loads))


class CrashAfterCommit(Exception):
    """The engine dies after its log holds the batch, before it acks its input."""


def test_engine_killed_between_commit_and_ack_skips_the_redelivered_commands(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    deployment = Deployment(nats_server.url, tmp_path, database_url, engines=[
        m.symbol for m in load_config(tmp_path).exchange.markets if m.symbol != BTC
    ])  # fmt: skip
    market = next(m for m in deployment.config.markets if m.symbol == BTC)

    async def main() -> tuple[Load, int]:
        nc_engine = await nats.connect(nats_server.url)
        crashing = EngineService(nc_engine, tmp_path, market, ack_wait=1.0)
        await crashing.start()
        await asyncio.to_thread(deployment.start)
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
            load = Load(client, orders(300, "c"))
            task = asyncio.create_task(load.run())
            with pytest.raises(CrashAfterCommit):
                await asyncio.wait_for(crashing.run(), 30)
            with contextlib.suppress(Exception):
                await crashing.consumer.close()
            await nc_engine.close()  # gone without acking its last batch
            nc_engine = await nats.connect(nats_server.url)
            restarted = EngineService(nc_engine, tmp_path, market, ack_wait=1.0)
            await restarted.start()
            running = asyncio.create_task(restarted.run())
            await deployment.finish(task, 40, "the load after the engine's restart")
            await settle(deployment, client, load)
            await restarted.stop()
            await asyncio.wait_for(running, 10)
            await restarted.close()
            await nc_engine.close()
            return load, restarted.stats.redelivered_skipped
        finally:
            await nc.close()

    with running(deployment, start=False):
        load, skipped = asyncio.run(asyncio.wait_for(main(), 90))
    assert len(load.acked) == 301 and not load.unknown
    assert_each_acknowledged_once(load)
    assert skipped > 0, "nothing was redelivered"
    asyncio.run(check_deployment(nats_server.url, deployment, [load]))
