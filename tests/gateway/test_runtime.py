"""The asyncio runtime in front of the journaled core: durability before acks, order of
publication, and a journal failure that stops the exchange cleanly."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from crossbook.domain.ledger import Deposit
from crossbook.gateway.runtime import ExchangeRuntime


def deposit(i: int) -> Deposit:
    return Deposit(seq=0, ts=0, user=1, asset="USDT", amount=10 + i, network="test",
                   deposit_id=f"d{i}")  # fmt: skip


def test_submissions_are_sequenced_published_in_order_and_durable(tmp_path: Path) -> None:
    published: list[int] = []

    async def scenario() -> list[Any]:
        runtime = ExchangeRuntime(tmp_path / "data")
        runtime.subscribe(lambda items: published.extend(c.seq for c, _ in items))
        await runtime.start()
        results = await asyncio.gather(*(runtime.submit(deposit(i)) for i in range(200)))
        await runtime.stop()
        return results

    results = asyncio.run(scenario())
    assert [c.seq for c, _ in results] == list(range(1, 201))
    assert published == list(range(1, 201))
    # a fresh runtime on the same data dir recovers every acknowledged deposit
    again = ExchangeRuntime(tmp_path / "data")
    again.open()
    assert again.core.accounts.available(1, "USDT") == sum(10 + i for i in range(200))
    assert again.service is not None
    again.service.close()


def test_journal_failure_fails_waiting_requests_and_refuses_new_ones(tmp_path: Path) -> None:
    async def scenario() -> tuple[BaseException | None, BaseException | None]:
        runtime = ExchangeRuntime(tmp_path / "data")
        await runtime.start()
        await runtime.submit(deposit(0))
        assert runtime.service is not None

        def broken_write() -> None:
            raise OSError(28, "No space left on device")

        runtime.service.journal.write = broken_write  # type: ignore[method-assign]
        first = second = None
        try:
            await asyncio.wait_for(runtime.submit(deposit(1)), 5)
        except OSError as exc:
            first = exc
        try:
            await runtime.submit(deposit(2))
        except RuntimeError as exc:
            second = exc
        return first, second

    first, second = asyncio.run(scenario())
    assert isinstance(first, OSError)
    assert isinstance(second, RuntimeError)
