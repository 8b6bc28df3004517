"""The market data service keeps the gateways' boot snapshot fresh; a gateway booted from
it and the log's tail reaches exactly the state of a gateway that replayed the whole log."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

import msgspec

from crossbook.bus.server import NatsServer
from crossbook.cluster.boot import BootSnapshot, load_boot_snapshot, save_boot_snapshot
from crossbook.cluster.client import AccountsClient
from crossbook.cluster.gateway_runtime import ClusterRuntime
from crossbook.cluster.marketdata import MarketDataService
from crossbook.cluster.processes import marketdata_process
from crossbook.cluster.verify import verify_deployment
from crossbook.domain.commands import CancelOrder
from crossbook.domain.enums import Side
from crossbook.marketdata import MarketData
from tests.cluster.test_split_services import BTC, CONFIG, deposit, limit, run, running_exchange


async def _trade(client: AccountsClient, start: int, n: int) -> None:
    base = 50_000 * 10**BTC.price_scale
    orders = [
        limit(1 + i % 8, Side.BUY if i % 2 else Side.SELL,
              base + (i % 7 - 3) * BTC.tick_size, 10**5 * (1 + i % 3), f"o{i}")
        for i in range(start, start + n)
    ]  # fmt: skip
    await asyncio.gather(*(client.submit(o) for o in orders))
    cancels = [CancelOrder(seq=0, ts=0, market=BTC.symbol, owner=1 + i % 8,
                           client_order_id=f"o{i}") for i in range(start, start + n, 5)]  # fmt: skip
    await asyncio.gather(*(client.submit(c) for c in cancels))


async def gateway_state(runtime: Any, *, boot: bool) -> tuple[Any, bytes, bytes]:
    """A gateway's runtime (of either kind) with its market data, started as a gateway
    starts and stopped again; its view's and market data's snapshots."""
    snap = await runtime.connect(boot=boot)
    md = MarketData.restore(snap.marketdata) if snap else MarketData(runtime.config.markets)
    await runtime.catch_up([md.apply])
    await runtime.stop()
    return runtime, runtime.view.snapshot(), md.snapshot()


async def _gateway_state(url: str, tmp: Path, *, boot: bool) -> tuple[ClusterRuntime, bytes, bytes]:
    return await gateway_state(ClusterRuntime(tmp, CONFIG, url), boot=boot)


async def _wait(predicate: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_a_gateway_booted_from_the_snapshot_equals_one_that_replayed_the_whole_log(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    async def main() -> None:
        async with running_exchange(nats_server.url, tmp_path) as (deployment, client):
            service = MarketDataService(nats_server.url, tmp_path, CONFIG, snapshot_every=200)
            await client.submit_many(
                [deposit(u, a, 10**15, f"d{u}{a}") for u in range(1, 9) for a in ("BTC", "USDT")]
            )
            await _trade(client, 0, 300)
            await service.start()
            assert service.stats.recovered is not None
            assert service.stats.recovered.snapshot_seq == 0  # nothing to boot from yet
            task = asyncio.create_task(service.run())
            await _wait(lambda: service.stats.snapshots >= 1)
            await _trade(client, 300, 300)  # more after the first snapshot
            accounts = deployment.services["accounts"]
            await _wait(lambda: service.stats.last_seq == accounts.machine.last_seq)
            await service.stop()
            await task
            await service.close()
            snap = await load_boot_snapshot(client.nc.jetstream(), 0)
            assert snap is not None and snap.seq == accounts.machine.last_seq

            await _trade(client, 600, 100)  # the log moves on past the snapshot
            booted, view, md = await _gateway_state(nats_server.url, tmp_path, boot=True)
            replayed, full_view, full_md = await _gateway_state(
                nats_server.url, tmp_path, boot=False
            )
            assert 0 < booted.replayed < replayed.replayed
            assert booted.view.last_seq == replayed.view.last_seq
            assert view == full_view
            assert md == full_md
            assert await verify_deployment(client.nc, CONFIG) == []

            # a boot snapshot that does not match the log is reported
            wrong = msgspec.structs.replace(snap, marketdata=full_md)  # market data of later
            await save_boot_snapshot(client.nc.jetstream(), wrong)
            errors = await verify_deployment(client.nc, CONFIG)
            assert errors == [
                f"boot snapshot at seq {snap.seq}: its market data differs from the replay's"
            ]

    run(main())


def test_a_boot_snapshot_beyond_the_log_end_is_not_used(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """After the log was recreated, an old snapshot would describe another history."""

    async def main() -> None:
        async with running_exchange(nats_server.url, tmp_path) as (_, client):
            await client.submit_many([deposit(1, "BTC", 10**9, "d1")])
            runtime, view, md = await _gateway_state(nats_server.url, tmp_path, boot=False)
            stale = BootSnapshot(
                version=1, shard=0, seq=runtime.view.last_seq + 1_000,
                markets=[m.symbol for m in CONFIG.markets], view=view, marketdata=md,
            )  # fmt: skip
            await save_boot_snapshot(client.nc.jetstream(), stale)
            booted, booted_view, _ = await _gateway_state(nats_server.url, tmp_path, boot=True)
            assert booted.replayed == runtime.replayed  # the whole log, not the snapshot
            assert booted_view == view
            assert await verify_deployment(client.nc, CONFIG) == [
                f"boot snapshot at seq {stale.seq}: the accounts log ends at {runtime.view.last_seq}"
            ]

    run(main())


def test_the_marketdata_service_process_reports_its_snapshots(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    async def main() -> None:
        process = marketdata_process(
            tmp_path, nats_server.url, snapshot_every=10, snapshot_interval=0.5, metrics_port=0
        )
        async with running_exchange(nats_server.url, tmp_path) as (deployment, client):
            try:
                await client.submit_many(
                    [deposit(u, "USDT", 10**12, f"d{u}") for u in range(1, 30)]
                )
                await asyncio.to_thread(process.start, 60.0)
                port = process.ready["metrics_port"]

                def metrics() -> dict[str, Any]:
                    url = f"http://127.0.0.1:{port}/healthz"
                    with urllib.request.urlopen(url, timeout=5) as r:
                        return dict(json.loads(r.read()))

                await _wait(lambda: metrics()["snapshots"] >= 1)
                health = metrics()
                assert health["healthy"] is True
                accounts = deployment.services["accounts"]
                assert health["snapshot_seq"] == accounts.machine.last_seq
                assert await asyncio.to_thread(process.stop) == 0
            finally:
                await asyncio.to_thread(process.stop)

    run(main())
