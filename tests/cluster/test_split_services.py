"""The accounts and engine services as separate asyncio services over a real JetStream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats

from crossbook.bus.server import NatsServer
from crossbook.cluster.accounts import AccountsService
from crossbook.cluster.client import AccountsClient
from crossbook.cluster.engine import EngineService
from crossbook.domain.commands import CancelOrder, PlaceOrder
from crossbook.domain.enums import Side
from crossbook.domain.events import OrderAccepted, OrderCancelled, OrderFilled
from crossbook.domain.ledger import Deposit, TransactionPosted
from crossbook.domain.markets import DEFAULT_MARKETS
from crossbook.exchange.core import ExchangeConfig

CONFIG = ExchangeConfig()
BTC = DEFAULT_MARKETS[0]


class Deployment:
    """Accounts shard 0 and one engine per market, each on its own connection."""

    def __init__(self, url: str, data_dir: Path) -> None:
        self.url = url
        self.data_dir = data_dir
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.services: dict[str, Any] = {}

    async def start_engine(self, market: Any) -> EngineService:
        nc = await nats.connect(self.url)
        service = EngineService(nc, self.data_dir, market)
        await service.start()
        self.services[market.symbol] = service
        self.tasks[market.symbol] = asyncio.create_task(service.run())
        return service

    async def start_accounts(self) -> AccountsService:
        nc = await nats.connect(self.url)
        service = AccountsService(nc, self.data_dir, CONFIG)
        await service.start()
        self.services["accounts"] = service
        self.tasks["accounts"] = asyncio.create_task(service.run())
        return service

    async def start(self) -> None:
        for market in CONFIG.markets:
            await self.start_engine(market)
        await self.start_accounts()

    async def stop(self, name: str) -> None:
        service = self.services.pop(name)
        await service.stop()
        await asyncio.wait_for(self.tasks.pop(name), 10)
        await service.close()
        await service.nc.close()

    async def stop_all(self) -> None:
        for name in list(self.services):
            await self.stop(name)


@contextlib.asynccontextmanager
async def running_exchange(url: str, data_dir: Path) -> AsyncIterator[tuple[Deployment, Any]]:
    """Every service started, and a client (a gateway's view of them); all stopped after."""
    deployment = Deployment(url, data_dir)
    await deployment.start()
    nc = await nats.connect(url)
    try:
        yield deployment, AccountsClient(nc)
    finally:
        await nc.close()
        await deployment.stop_all()


def deposit(user: int, asset: str, amount: int, ref: str) -> Deposit:
    return Deposit(seq=0, ts=0, user=user, asset=asset, amount=amount, network="test",
                   deposit_id=ref)  # fmt: skip


def limit(owner: int, side: Side, price: int, qty: int, coid: str = "") -> PlaceOrder:
    return PlaceOrder(seq=0, ts=0, market=BTC.symbol, owner=owner, side=side, price=price,
                      quantity=qty, client_order_id=coid)  # fmt: skip


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_order_is_acknowledged_with_its_fills_and_settlement(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    async def main() -> None:
        async with running_exchange(nats_server.url, tmp_path) as (deployment, client):
            price, qty = 50_000 * 10**BTC.price_scale, 10**6  # 0.01 BTC
            await client.submit_many([deposit(1, "BTC", 10**8, "d1"),
                                      deposit(2, "USDT", 10**12, "d2")])  # fmt: skip
            seq, sold = await client.submit(limit(1, Side.SELL, price, qty))
            assert [type(e) for e in sold][-1] is OrderAccepted or any(
                type(e) is OrderAccepted for e in sold
            )
            _, bought = await client.submit(limit(2, Side.BUY, price, qty))
            fills = [e for e in bought if type(e) is OrderFilled]
            assert len(fills) == 1 and fills[0].maker_order_id == seq
            settlement = [e for e in bought if type(e) is TransactionPosted and e.type == "trade"]
            assert settlement, bought
            accounts = deployment.services["accounts"].machine.accounts
            assert accounts.available(2, "BTC") > 0
            assert accounts.held(1, "BTC") == 0

    run(main())


def test_concurrent_submissions_all_settle_and_balance(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    async def main() -> None:
        async with running_exchange(nats_server.url, tmp_path) as (deployment, client):
            await client.submit_many(
                [deposit(u, a, 10**15, f"d{u}{a}") for u in range(1, 9) for a in ("BTC", "USDT")]
            )
            base = 50_000 * 10**BTC.price_scale
            orders = [
                limit(1 + i % 8, Side.BUY if i % 2 else Side.SELL,
                      base + (i % 7 - 3) * BTC.tick_size, 10**5 * (1 + i % 3), f"o{i}")
                for i in range(600)
            ]  # fmt: skip
            results = await asyncio.gather(*(client.submit(o) for o in orders))
            cancels = [CancelOrder(seq=0, ts=0, market=BTC.symbol, owner=1 + i % 8,
                                   client_order_id=f"o{i}") for i in range(0, 600, 5)]  # fmt: skip
            cancelled = await asyncio.gather(*(client.submit(c) for c in cancels))
            assert all(events for _, events in results)
            assert any(type(e) is OrderCancelled for _, ev in cancelled for e in ev)
            machine = deployment.services["accounts"].machine
            totals: dict[str, int] = {}
            for (_account, asset), amount in machine.accounts.balances.items():
                totals[asset] = totals.get(asset, 0) + amount
            assert all(v == 0 for v in totals.values()), totals
            engine = deployment.services[BTC.symbol].engine
            resting = {o.order_id for o in engine.engine.open_orders(BTC.symbol)}
            held = {oid for (m, oid) in machine.accounts.orders if m == BTC.symbol}
            assert held == resting

    run(main())


def test_engine_events_input_encodes_as_the_accounts_service_writes_it() -> None:
    """The accounts service writes EngineEventsReceived records by splicing the engine's
    own encoding of its events in; replay decodes them like any other input."""
    from crossbook.domain.codec import command_decoder, command_encoder
    from crossbook.domain.enums import CancelReason
    from crossbook.domain.routing import EngineEventsReceived

    events = [OrderCancelled(7, 8, "BTCUSDT", 7, 1, 'a"b', 5, CancelReason.USER)]
    payload = command_encoder.encode(events)
    received = EngineEventsReceived(seq=11, ts=12, market="BTCUSDT", source_seq=7, events=events)
    spliced = b'["engine_events",%d,%d,%s,%d,%s]' % (
        11,
        12,
        command_encoder.encode("BTCUSDT"),
        7,
        payload,
    )
    assert spliced == command_encoder.encode(received)
    assert command_decoder.decode(spliced) == received


def test_joined_event_lists_decode_as_one() -> None:
    from crossbook.cluster.wire import join_events

    assert join_events(b"[]", b"[1]") == b"[1]"
    assert join_events(b"[1,2]", b"[]") == b"[1,2]"
    assert join_events(b"[1,2]", b"[3]") == b"[1,2,3]"
