"""Accounts split over two shards, as separate services over a real JetStream: one
accounts service per shard, one engine per market merging both shards' forwards, and
one ledger writer per shard into one PostgreSQL database."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest

from crossbook.bus.server import NatsServer
from crossbook.cluster.accounts import AccountsService
from crossbook.cluster.boot import load_sharded_boot_snapshot, save_sharded_boot_snapshot
from crossbook.cluster.client import AccountsClient
from crossbook.cluster.engine import EngineService
from crossbook.cluster.ledger import LedgerWriterService
from crossbook.cluster.marketdata import MarketDataService
from crossbook.cluster.sharded_runtime import ShardedClusterRuntime
from crossbook.cluster.verify import replay_deployment, verify_deployment
from crossbook.domain.commands import CancelOrder, PlaceOrder
from crossbook.domain.enums import Side
from crossbook.domain.events import OrderFilled
from crossbook.domain.ledger import Deposit, TransactionPosted
from crossbook.domain.markets import DEFAULT_MARKETS
from crossbook.domain.sharding import shard_of
from crossbook.exchange.core import ExchangeConfig
from crossbook.verify import cluster_sql_errors
from tests.cluster.test_marketdata_service import gateway_state
from tests.cluster.test_split_services import Deployment

SHARDS = 2
CONFIG = ExchangeConfig(accounts_shards=SHARDS)
BTC = DEFAULT_MARKETS[0]
PRICE = 50_000 * 10**BTC.price_scale


class ShardedDeployment(Deployment):
    """Both accounts shards and one engine per market, each on its own connection."""

    async def _run(self, name: str, service: Any) -> Any:
        await service.start()
        self.services[name] = service
        self.tasks[name] = asyncio.create_task(service.run())
        return service

    async def start_engine(self, market: Any) -> EngineService:  # type: ignore[override]
        nc = await nats.connect(self.url)
        return await self._run(
            market.symbol, EngineService(nc, self.data_dir, market, shards=SHARDS)
        )

    async def start(self) -> None:
        for market in CONFIG.markets:
            await self.start_engine(market)
        for k in range(SHARDS):
            nc = await nats.connect(self.url)
            await self._run(f"accounts-{k}", AccountsService(nc, self.data_dir, CONFIG, shard=k))

    def accounts_service(self, k: int) -> Any:
        return self.services[f"accounts-{k}"]

    def accounts(self, k: int) -> Any:
        return self.accounts_service(k).machine.accounts

    async def crash(self, name: str) -> None:
        """Gone without a word: no snapshot, nothing more committed or acked."""
        service = self.services.pop(name)
        task = self.tasks.pop(name)
        for side_task in [*getattr(service, "_tasks", []), task]:
            side_task.cancel()
        with contextlib.suppress(BaseException):
            await task
        await service.nc.close()

    async def settled(self, timeout: float = 30) -> None:
        """Until every forward ran and every shard received every engine record."""
        deadline = time.monotonic() + timeout
        while True:
            engines = {m.symbol: self.services[m.symbol].engine for m in CONFIG.markets}
            shards = [self.services[f"accounts-{k}"] for k in range(SHARDS)]
            if all(
                s.machine.engine_seqs[m] == e.position
                and e.applied[s.shard] == s.orders[m].last_seq
                and not s._waiting
                for s in shards
                for m, e in engines.items()
            ):
                return
            assert time.monotonic() < deadline, "the shards did not settle"
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def sharded_exchange(
    url: str, data_dir: Path
) -> AsyncIterator[tuple[ShardedDeployment, list[AccountsClient]]]:
    deployment = ShardedDeployment(url, data_dir)
    await deployment.start()
    nc = await nats.connect(url)
    try:
        yield deployment, [AccountsClient(nc, k) for k in range(SHARDS)]
    finally:
        await nc.close()
        await deployment.stop_all()


def deposit(user: int, asset: str, amount: int) -> Deposit:
    return Deposit(seq=0, ts=0, user=user, asset=asset, amount=amount, network="test",
                   deposit_id=f"d-{user}-{asset}")  # fmt: skip


def limit(owner: int, side: Side, price: int, qty: int, coid: str = "") -> PlaceOrder:
    return PlaceOrder(seq=0, ts=0, market=BTC.symbol, owner=owner, side=side, price=price,
                      quantity=qty, client_order_id=coid)  # fmt: skip


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 120))


def merged_balances(deployment: ShardedDeployment) -> dict[tuple[str, str], int]:
    merged: dict[tuple[str, str], int] = defaultdict(int)
    for k in range(SHARDS):
        for key, amount in deployment.accounts(k).balances.items():
            merged[key] += amount
    return {key: v for key, v in merged.items() if v}


def test_a_trade_between_users_of_two_shards_settles_in_halves_through_clearing(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    async def main() -> None:
        async with sharded_exchange(nats_server.url, tmp_path) as (deployment, clients):
            seller, buyer = 2, 1  # shard 0 and shard 1
            await clients[0].submit(deposit(seller, "BTC", 10**8))
            await clients[1].submit(deposit(buyer, "USDT", 10**12))
            seq, _ = await clients[0].submit(limit(seller, Side.SELL, PRICE, 10**6))
            _, bought = await clients[1].submit(limit(buyer, Side.BUY, PRICE, 10**6))
            fills = [e for e in bought if type(e) is OrderFilled]
            assert len(fills) == 1 and fills[0].maker_order_id == seq * SHARDS + 0
            half = [e for e in bought if type(e) is TransactionPosted and e.type == "trade"]
            assert len(half) == 1
            assert {p.account for p in half[0].postings} >= {"clearing:BTCUSDT", "user:1:held"}
            await deployment.settled()
            balances = merged_balances(deployment)
            assert not any(account.startswith("clearing:") for account, _ in balances)
            assert deployment.accounts(1).available(buyer, "BTC") > 0
            assert deployment.accounts(0).available(seller, "USDT") > 0
            assert deployment.accounts(0).held(seller, "BTC") == 0
            assert await verify_deployment(clients[0].nc, CONFIG) == []

    run(main())


def load(users: range, n: int, rng: random.Random) -> list[Any]:
    orders: list[Any] = []
    for i in range(n):
        owner = rng.choice(users)
        price = PRICE + rng.randint(-3, 3) * BTC.tick_size
        orders.append(limit(owner, rng.choice([Side.BUY, Side.SELL]), price,
                            10**5 * rng.randint(1, 3), f"o{i}"))  # fmt: skip
    return orders


async def fund(clients: list[AccountsClient], users: range) -> None:
    """Every user, plenty of both assets, through the user's shard."""
    for k in range(SHARDS):
        await clients[k].submit_many(
            [deposit(u, a, 10**15) for u in users if u % SHARDS == k for a in ("BTC", "USDT")]
        )


async def submit_all(clients: list[AccountsClient], commands: list[Any]) -> list[Any]:
    return await asyncio.gather(*(clients[shard_of(c.owner, SHARDS)].submit(c) for c in commands))


def test_orders_of_two_shards_all_settle_verify_and_project_into_one_database(
    nats_server: NatsServer, tmp_path: Path, database_url: str
) -> None:
    async def main() -> None:
        users = range(1, 9)
        rng = random.Random(5)
        async with sharded_exchange(nats_server.url, tmp_path) as (deployment, clients):
            await fund(clients, users)
            orders = load(users, 600, rng)
            results = await submit_all(clients, orders)
            assert all(events for _, events in results)
            cancels = [CancelOrder(seq=0, ts=0, market=BTC.symbol, owner=o.owner,
                                   client_order_id=o.client_order_id)
                       for o in orders[::5]]  # fmt: skip
            await submit_all(clients, cancels)
            await deployment.settled()
            fills = [e for _, events in results for e in events if type(e) is OrderFilled]
            across = [f for f in fills if f.taker_owner % SHARDS != f.maker_owner % SHARDS]
            assert across, "the load made no trade between the shards"
            engine = deployment.services[BTC.symbol].engine
            resting = {o.order_id for o in engine.engine.open_orders(BTC.symbol)}
            held = {oid for k in range(SHARDS) for (m, oid) in deployment.accounts(k).orders
                    if m == BTC.symbol}  # fmt: skip
            assert held == resting

            writers = []
            for k in range(SHARDS):
                nc = await nats.connect(nats_server.url)
                writer = LedgerWriterService(nc, database_url, shard=k, shards=SHARDS)
                await writer.start()
                writers.append((writer, asyncio.create_task(writer.run())))
            for writer, task in writers:
                await writer.stop()
                await asyncio.wait_for(task, 60)
                await writer.close()
                await writer.nc.close()
            errors, machines = await replay_deployment(clients[0].nc, CONFIG)
            assert errors == []
            assert await asyncio.to_thread(cluster_sql_errors, database_url, machines) == []

    run(main())


def test_engine_killed_mid_stream_with_two_shards_loses_and_doubles_nothing(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    async def main() -> None:
        users = range(1, 7)
        rng = random.Random(11)
        async with sharded_exchange(nats_server.url, tmp_path) as (deployment, clients):
            await fund(clients, users)
            first = asyncio.ensure_future(submit_all(clients, load(users, 300, rng)))
            await asyncio.sleep(0.3)
            await deployment.crash(BTC.symbol)
            await asyncio.sleep(0.2)
            await deployment.start_engine(BTC)
            second = await submit_all(clients, load(users, 200, rng))
            assert all(events for _, events in (await first) + second)
            await deployment.settled()
            assert await verify_deployment(clients[0].nc, CONFIG) == []
            restarted = deployment.services[BTC.symbol].engine
            assert restarted.applied == [
                deployment.services[f"accounts-{k}"].orders[BTC.symbol].last_seq
                for k in range(SHARDS)
            ]

    run(main())


def test_a_service_refuses_a_snapshot_of_another_shard(tmp_path: Path) -> None:
    from crossbook.exchange.split import AccountsMachine

    service = AccountsService(None, tmp_path, CONFIG, shard=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shard 0"):
        service.restore(AccountsMachine(CONFIG, 0).snapshot())
    assert service.restore(AccountsMachine(CONFIG, 1).snapshot()).shard == 1
    unsharded = msgspec.structs.replace(CONFIG, accounts_shards=1)
    with pytest.raises(ValueError, match="another configuration"):
        service.restore(AccountsMachine(unsharded, 0).snapshot())


def test_a_shard_killed_between_the_halves_of_a_trade_settles_its_half_on_restart(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    async def main() -> None:
        async with sharded_exchange(nats_server.url, tmp_path) as (deployment, clients):
            maker, taker = 1, 2  # shard 1 and shard 0
            await clients[1].submit(deposit(maker, "BTC", 10**8))
            await clients[0].submit(deposit(taker, "USDT", 10**12))
            await clients[1].submit(limit(maker, Side.SELL, PRICE, 10**6))
            await deployment.crash("accounts-1")
            _, bought = await clients[0].submit(limit(taker, Side.BUY, PRICE, 10**6))
            assert any(type(e) is OrderFilled for e in bought)
            # the taker's half is settled, the maker's is not: clearing is not back at zero
            assert deployment.accounts(0).balances[("clearing:BTCUSDT", "BTC")] == -(10**6)
            assert await verify_deployment(clients[0].nc, CONFIG) == []  # in flight, not wrong

            nc = await nats.connect(nats_server.url)
            await deployment._run("accounts-1", AccountsService(nc, tmp_path, CONFIG, shard=1))
            await deployment.settled()
            assert ("clearing:BTCUSDT", "BTC") not in merged_balances(deployment)
            assert deployment.accounts(1).held(maker, "BTC") == 0
            assert deployment.accounts(1).available(maker, "USDT") > 0
            assert await verify_deployment(clients[0].nc, CONFIG) == []

    run(main())


def test_a_shard_leaves_out_engine_records_about_none_of_its_users(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """Orders of shard 0's users only: shard 1 logs no engine events, only records that
    keep its position in the engine log current (and a restart resumes from there)."""
    from crossbook.domain.codec import command_decoder
    from crossbook.domain.routing import EngineEventsReceived
    from crossbook.journal.framing import COMMAND
    from tests.cluster.test_faults import read_log

    async def main() -> None:
        async with sharded_exchange(nats_server.url, tmp_path) as (deployment, clients):
            await clients[0].submit_many([deposit(u, a, 10**15) for u in (2, 4)
                                          for a in ("BTC", "USDT")])  # fmt: skip
            rng = random.Random(3)
            await submit_all(clients, load(range(2, 5, 2), 100, rng))
            await deployment.settled()
            engine = deployment.services[BTC.symbol].engine
            inputs = [command_decoder.decode(p) for kind, _, p in
                      await read_log(clients[1].nc, "accounts-1") if kind == COMMAND]  # fmt: skip
            received = [c for c in inputs if type(c) is EngineEventsReceived]
            assert received and all(c.events == [] for c in received)
            assert len(received) < engine.position
            assert deployment.accounts(1).balances == {}
            await deployment.stop("accounts-1")
            nc = await nats.connect(nats_server.url)
            await deployment._run("accounts-1", AccountsService(nc, tmp_path, CONFIG, shard=1))
            await deployment.settled()
            assert await verify_deployment(clients[0].nc, CONFIG) == []

    run(main())


async def _sharded_gateway_state(
    url: str, tmp: Path, *, boot: bool
) -> tuple[ShardedClusterRuntime, bytes, bytes]:
    return await gateway_state(ShardedClusterRuntime(tmp, CONFIG, url), boot=boot)


def test_a_sharded_gateway_booted_from_the_snapshot_equals_one_that_replayed_every_log(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    async def main() -> None:
        users = range(1, 9)
        rng = random.Random(8)
        async with sharded_exchange(nats_server.url, tmp_path) as (deployment, clients):
            await fund(clients, users)
            await submit_all(clients, load(users, 300, rng))
            service = MarketDataService(nats_server.url, tmp_path, CONFIG, snapshot_every=100)
            await service.start()
            task = asyncio.create_task(service.run())
            await submit_all(clients, load(users, 300, rng))  # more while it follows
            await deployment.settled()
            await service.stop()
            await task
            await service.close()
            js = clients[0].nc.jetstream()
            snap = await load_sharded_boot_snapshot(js, SHARDS)
            assert snap is not None
            assert snap.seqs == [deployment.accounts_service(k).machine.last_seq
                                 for k in range(SHARDS)]  # fmt: skip

            await submit_all(clients, load(users, 100, rng))  # the logs move on
            await deployment.settled()
            booted, view, md = await _sharded_gateway_state(nats_server.url, tmp_path, boot=True)
            replayed, full_view, full_md = await _sharded_gateway_state(
                nats_server.url, tmp_path, boot=False
            )
            assert 0 < booted.replayed < replayed.replayed
            assert view == full_view
            assert md == full_md
            assert await verify_deployment(clients[0].nc, CONFIG) == []

            # one that does not match the logs is reported; one beyond them is not used
            wrong = msgspec.structs.replace(snap, marketdata=full_md)
            await save_sharded_boot_snapshot(js, wrong)
            assert await verify_deployment(clients[0].nc, CONFIG) == [
                f"boot snapshot at seqs {snap.seqs}: its market data differs from the replay's"
            ]
            beyond = msgspec.structs.replace(snap, seqs=[s + 1_000 for s in snap.seqs])
            await save_sharded_boot_snapshot(js, beyond)
            runtime = ShardedClusterRuntime(tmp_path, CONFIG, nats_server.url)
            assert await runtime.connect(boot=True) is None
            await runtime.stop()

    run(main())
