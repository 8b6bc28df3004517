"""Requests waiting for the view wake only once what they wait for is there."""

from __future__ import annotations

import asyncio

import pytest

from crossbook.cluster.waiters import Waiters


def test_only_the_waiters_whose_state_is_reached_wake_and_a_timeout_leaves_none() -> None:
    async def main() -> None:
        waiters = Waiters()
        state = {"seq": 0}
        woken: list[int] = []

        async def wait(seq: int) -> None:
            await waiters.wait(lambda: state["seq"] >= seq, 5)
            woken.append(seq)

        tasks = [asyncio.create_task(wait(s)) for s in (3, 1, 2)]
        await asyncio.sleep(0)
        state["seq"] = 2
        waiters.moved()
        await asyncio.sleep(0.01)
        assert sorted(woken) == [1, 2]
        state["seq"] = 3
        waiters.moved()
        await asyncio.gather(*tasks)
        assert sorted(woken) == [1, 2, 3]

        await waiters.wait(lambda: True, 0.01)  # reached already: no wait
        with pytest.raises(TimeoutError):
            await waiters.wait(lambda: False, 0.01)
        assert waiters._waiting == []

    asyncio.run(main())
