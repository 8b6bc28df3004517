"""Service snapshots shared through the object store: an instance started with an empty
data dir (another machine) restores from the shared snapshot instead of the whole log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats

from crossbook.bus.server import NatsServer
from crossbook.cluster.accounts import AccountsService
from crossbook.cluster.engine import EngineService
from crossbook.cluster.shared_snapshots import SNAPSHOT_BUCKET
from crossbook.cluster.topology import engine_log
from crossbook.journal.snapshots import encode_snapshot
from tests.cluster.test_marketdata_service import _trade
from tests.cluster.test_split_services import BTC, CONFIG, deposit, run, running_exchange


def test_services_on_a_new_machine_restore_from_the_shared_snapshots(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    async def main() -> None:
        async with running_exchange(nats_server.url, tmp_path / "first") as (deployment, client):
            await client.submit_many(
                [deposit(u, a, 10**15, f"d{u}{a}") for u in range(1, 9) for a in ("BTC", "USDT")]
            )
            await _trade(client, 0, 200)
            engine_hash = deployment.services[BTC.symbol].engine.state_hash()
            accounts_hash = deployment.services["accounts"].machine.state_hash()
            last = deployment.services["accounts"].machine.last_seq
            await deployment.stop(BTC.symbol)  # a clean stop: a final snapshot, shared
            await deployment.stop("accounts")

            elsewhere = tmp_path / "second"  # nothing of the first machine's data dir
            nc = await nats.connect(nats_server.url)
            engine = EngineService(nc, elsewhere, BTC)
            accounts = AccountsService(nc, elsewhere, CONFIG)
            try:
                await engine.start()
                await accounts.start()
                assert engine.stats.recovered is not None
                assert engine.stats.recovered.commands_replayed == 0
                assert engine.engine.state_hash() == engine_hash
                assert accounts.stats.recovered is not None
                assert accounts.stats.recovered.snapshot_seq == last
                assert accounts.stats.recovered.commands_replayed == 0
                assert accounts.machine.state_hash() == accounts_hash
            finally:
                for service in (accounts, engine):
                    await service.stop()
                    await service.close()
                await nc.close()

    run(main())


def test_a_shared_snapshot_beyond_the_log_end_is_not_used(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """After the log was recreated, an old shared snapshot describes another history."""

    async def main() -> None:
        async with running_exchange(nats_server.url, tmp_path / "first") as (deployment, client):
            await client.submit_many([deposit(1, "BTC", 10**9, "d1")])
            await _trade(client, 0, 20)
            engine = deployment.services[BTC.symbol]
            far = engine.engine.last_seq + 1_000
            expected = engine.engine.state_hash()
            await deployment.stop(BTC.symbol)  # shares its own final snapshot; replaced:
            store = await client.nc.jetstream().object_store(SNAPSHOT_BUCKET)
            await store.put(engine_log(BTC.symbol), encode_snapshot(far, engine.engine.snapshot()))
            nc = await nats.connect(nats_server.url)
            fresh = EngineService(nc, tmp_path / "second", BTC)
            try:
                await fresh.start()
                assert fresh.stats.recovered is not None
                assert fresh.stats.recovered.snapshot_seq == 0  # the whole log instead
                assert fresh.engine.state_hash() == expected
            finally:
                await fresh.stop()
                await asyncio.wait_for(fresh.close(), 10)
                await nc.close()

    run(main())


def test_the_newest_of_snapshots_offered_in_quick_succession_is_shared(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    from crossbook.cluster.shared_snapshots import SnapshotSharer, fetch_shared_snapshot
    from crossbook.journal.snapshots import SnapshotStore

    async def main() -> None:
        nc = await nats.connect(nats_server.url)
        try:
            store = SnapshotStore(tmp_path / "here")
            sharer = SnapshotSharer(nc.jetstream(), store, "engine-TEST")
            for seq in (10, 20, 30):
                store.write(seq, b"x" * 300_000 + str(seq).encode())
                sharer.offer()  # while an upload runs, the next one follows it
            await sharer.close()
            assert sharer.shared_seq == 30
            there = SnapshotStore(tmp_path / "there")
            fetched = await fetch_shared_snapshot(nc.jetstream(), there, "engine-TEST", log_end=30)
            assert fetched == 30
            assert there.latest() == (30, b"x" * 300_000 + b"30")
        finally:
            await nc.close()

    run(main())
