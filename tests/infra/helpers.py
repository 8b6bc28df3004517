"""Bounded waits for the infrastructure tests: polls, and calls that may block."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg
import pytest


def wait_until(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``check`` (errors count as "not yet") until true; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            if check():
                return
        except Exception as exc:  # e.g. a server not accepting connections yet
            last = exc
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what} (last error: {last})")
        time.sleep(0.02)


class Background:
    """Run ``fn`` in a daemon thread; ``result(timeout)`` fails the test if it has not
    returned in time (a commit that blocks must not hang the test run)."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self._value: object = None
        self._error: BaseException | None = None
        self._done = threading.Event()

        def run() -> None:
            try:
                self._value = fn()
            except BaseException as exc:
                self._error = exc
            finally:
                self._done.set()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: float, what: str) -> object:
        if not self._done.wait(timeout):
            pytest.fail(f"{what} did not return within {timeout}s")
        if self._error is not None:
            raise self._error
        return self._value


def execute(conninfo: str, sql: str, what: str, timeout: float = 30.0) -> list[tuple[object, ...]]:
    """Run one autocommit statement on ``conninfo`` (libpq DSN) and return its rows, failing
    the test if it does not return within ``timeout`` s (a commit waiting for a standby
    that will never acknowledge it blocks forever)."""

    def run() -> list[tuple[object, ...]]:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
            cur = conn.execute(sql)
            return list(cur.fetchall()) if cur.description is not None else []

    rows = Background(run).result(timeout, what)
    assert isinstance(rows, list)
    return rows
