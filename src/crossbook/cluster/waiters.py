"""Coroutines waiting for a state to be reached, woken only when it is."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


class Waiters:
    """Requests waiting until the view reaches what their reply reported.

    Each waits on its own future with its own condition; when the view moves on, only
    those whose condition now holds are woken (a shared ``Condition.notify_all`` woke
    every waiter on every batch of every log followed, most of them to sleep again)."""

    def __init__(self) -> None:
        self._waiting: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    async def wait(self, reached: Callable[[], bool], timeout: float) -> None:
        """Until ``reached()``; ``TimeoutError`` after ``timeout`` s."""
        if reached():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (reached, future)
        self._waiting.append(entry)
        try:
            await asyncio.wait_for(future, timeout)
        finally:
            if future.cancelled() or not future.done():  # timed out: no longer waiting
                with contextlib.suppress(ValueError):
                    self._waiting.remove(entry)

    def moved(self) -> None:
        """The view moved on: wake those whose condition holds now."""
        if not self._waiting:
            return
        waiting = []
        for entry in self._waiting:
            reached, future = entry
            if future.done():
                continue
            if reached():
                future.set_result(None)
            else:
                waiting.append(entry)
        self._waiting = waiting
