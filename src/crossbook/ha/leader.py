"""Leader lease, fencing and hot standby for a journaled service on JetStream.

* :class:`Leadership` holds a lease (``crossbook.bus.lease.LeaseStore``, JetStream KV
  with TTL) and renews it on a timer thread; ``epoch`` is unique per tenure and is
  the log writer's id. When a renewal is refused (someone else took the lease) or
  cannot be made before the lease lapses, ``on_lost`` is called once: the holder
  must stop accepting work. Safety does not depend on it: the new leader's ``fence``
  makes every later commit of the old one fail (``FencedError``), writing nothing.
* :func:`open_leader` opens the log as its writer (fenced, ``writer_id`` = epoch),
  recovers the service (snapshot or a current machine + the log's tail) and returns
  a :class:`~crossbook.service.JournaledService` ready for submissions.
* :class:`Standby` is another reader of the same log: it replays new commands into
  its own machine as they appear (polling ``records(after_seq=...)``), writes its own
  snapshots, and when the lease is free acquires it, fences the log, replays the
  tail it had not seen yet and becomes the leader.

::

    standby = Standby(data_dir, url, "exchange", holder="node-b")
    service = standby.run()          # follows until it leads; then submit(...)
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats

from crossbook.bus.jetstream import _LoopThread
from crossbook.bus.lease import Lease, LeaseHeld, LeaseLost, LeaseStore
from crossbook.domain.codec import command_decoder
from crossbook.ha.journal import JetStreamJournal
from crossbook.journal.framing import COMMAND
from crossbook.journal.snapshots import SnapshotStore
from crossbook.service import DataDirConfig, JournaledService, Machine, recover

__all__ = ["Leadership", "Standby", "lease_name", "open_leader"]

DEFAULT_TTL = 5.0
DEFAULT_BUCKET = "cb_leases"


def lease_name(log_name: str) -> str:
    """The lease that says who may write log ``log_name``."""
    return f"log-{log_name}"


class Leadership:
    """A leader lease on JetStream KV, renewed every ``ttl / 3`` s on a timer thread.

    ``try_acquire`` / ``acquire`` take it; ``epoch`` identifies the tenure; ``on_lost``
    (called once, from the timer thread, with the reason) tells the holder it is no
    longer the leader. Own NATS connection, on a private event-loop thread.
    """

    def __init__(
        self,
        servers: str | list[str],
        name: str,
        holder: str,
        *,
        ttl: float = DEFAULT_TTL,
        bucket: str = DEFAULT_BUCKET,
        on_lost: Callable[[str], None] | None = None,
        renew_every: float | None = None,
        replicas: int = 1,
    ) -> None:
        self.name = name
        self.holder = holder
        self.ttl = ttl
        self.renew_every = renew_every if renew_every is not None else ttl / 3
        self.on_lost = on_lost
        self._runner = _LoopThread()
        try:
            self._nc = self._runner.run(
                nats.connect(
                    servers, max_reconnect_attempts=-1, reconnect_time_wait=0.1, connect_timeout=5
                )
            )
            self._store = self._runner.run(
                LeaseStore.open(self._nc, bucket=bucket, ttl=ttl, replicas=replicas)
            )
        except BaseException:
            self._runner.stop()
            raise
        self._lease: Lease | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self._closed = False
        self.lost_reason: str | None = None

    # -- state -----------------------------------------------------------------------

    @property
    def held(self) -> bool:
        with self._lock:
            return self._lease is not None

    @property
    def epoch(self) -> int:
        """The lease's epoch (the KV revision that created it); raises if not held."""
        with self._lock:
            if self._lease is None:
                raise LeaseLost(f"lease {self.name!r} is not held by {self.holder!r}")
            return self._lease.epoch

    @property
    def writer_id(self) -> str:
        """The log writer id for this tenure."""
        return f"{self.holder}.{self.epoch}"

    def current_holder(self) -> str | None:
        return self._runner.run(self._store.holder(self.name), timeout=10)

    # -- acquiring -------------------------------------------------------------------

    def try_acquire(self) -> bool:
        """Take the lease if it is free; start renewing it. False if it is held."""
        if self._closed:
            raise LeaseLost("leadership is closed")
        if self.held:
            return True
        try:
            lease = self._runner.run(self._store.acquire(self.name, self.holder), timeout=10)
        except LeaseHeld:
            return False
        with self._lock:
            self._lease = lease
            self.lost_reason = None
        self._stop.clear()
        self._timer = threading.Thread(
            target=self._renew_loop, name=f"lease-{self.name}", daemon=True
        )
        self._timer.start()
        return True

    def acquire(self, timeout: float | None = None, poll: float = 0.1) -> None:
        """Block until the lease is ours (``TimeoutError`` after ``timeout`` s)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.try_acquire():
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"lease {self.name!r} still held after {timeout}s")
            time.sleep(poll)

    # -- renewing --------------------------------------------------------------------

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.renew_every):
            with self._lock:
                lease = self._lease
            if lease is None:
                return
            try:
                renewed = self._runner.run(self._store.renew(lease), timeout=self.renew_every)
            except LeaseLost as exc:
                self._lost(str(exc))
                return
            except Exception as exc:  # server unreachable, timeout: retry until it lapses
                if lease.remaining() <= self.renew_every:
                    self._lost(f"lease {self.name!r} could not be renewed in time: {exc!r}")
                    return
                continue
            with self._lock:
                if self._lease is None:
                    return
                self._lease = renewed

    def _lost(self, reason: str) -> None:
        with self._lock:
            if self._lease is None:
                return
            self._lease = None
            self.lost_reason = reason
        if self.on_lost is not None:
            self.on_lost(reason)

    def _stop_timer(self) -> None:
        self._stop.set()
        timer = self._timer
        if timer is not None and timer is not threading.current_thread():
            timer.join(10)
        self._timer = None

    # -- giving up -------------------------------------------------------------------

    def release(self) -> None:
        """Stop renewing and give the lease up (a clean hand-over; no ``on_lost``)."""
        self._stop_timer()
        with self._lock:
            lease, self._lease = self._lease, None
        if lease is not None:
            with contextlib.suppress(LeaseLost):
                self._runner.run(self._store.release(lease), timeout=10)

    def close(self, *, release: bool = True) -> None:
        """Stop renewing, release the lease (unless ``release=False``: it then lapses
        after its TTL, as when the process dies) and close the connection."""
        if self._closed:
            return
        try:
            if release:
                self.release()
            else:
                self._stop_timer()
                with self._lock:
                    self._lease = None
            with contextlib.suppress(Exception):
                self._runner.run(self._nc.close(), timeout=10)
        finally:
            self._closed = True
            self._runner.stop()

    def __enter__(self) -> Leadership:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_leader(
    data_dir: Path,
    servers: str | list[str],
    log_name: str,
    leadership: Leadership,
    *,
    machine: Machine | None = None,
    config: DataDirConfig | None = None,
    replicas: int = 1,
    snapshot_every: int = 250_000,
    clock: Callable[[], int] = time.time_ns,
) -> JournaledService[JetStreamJournal]:
    """The service as the log's writer: opens the log fenced with the lease's writer
    id (so the previous writer can no longer commit), then recovers: from
    ``machine`` (a standby's, already current) or the data dir's newest snapshot,
    plus the log's tail. ``leadership`` must be held."""
    journal = JetStreamJournal.open(
        servers, log_name, writer_id=leadership.writer_id, fence=True, replicas=replicas
    )
    try:
        return JournaledService(
            data_dir,
            config=config,
            snapshot_every=snapshot_every,
            clock=clock,
            journal=journal,
            machine=machine,
        )
    except BaseException:
        journal.close()
        raise


class Standby:
    """A hot standby: follows log ``log_name`` into its own machine, takes over when
    the lease is free (see the module doc). Not thread-safe; drive it from one thread
    (``run``, or ``follow`` / ``try_take_over`` in a loop of one's own)."""

    def __init__(
        self,
        data_dir: Path,
        servers: str | list[str],
        log_name: str,
        *,
        holder: str,
        config: DataDirConfig | None = None,
        ttl: float = DEFAULT_TTL,
        bucket: str = DEFAULT_BUCKET,
        on_lost: Callable[[str], None] | None = None,
        replicas: int = 1,
        snapshot_every: int = 250_000,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.data_dir = data_dir
        self.servers = servers
        self.log_name = log_name
        self.config = config
        self.replicas = replicas
        self.snapshot_every = snapshot_every
        self.clock = clock
        self.snapshots = SnapshotStore(data_dir / "snapshots")
        self.reader = JetStreamJournal.open(servers, log_name, replicas=replicas)
        try:
            # own snapshot + the log so far; never writes (not the writer)
            self.machine: Any
            self.machine, _, self.recovery = recover(
                data_dir, default=config, journal=self.reader, complete=False
            )
            self.leadership = Leadership(
                servers, lease_name(log_name), holder, ttl=ttl, bucket=bucket, on_lost=on_lost
            )
        except BaseException:
            self.reader.close()
            raise
        self._since_snapshot = self.recovery.commands_replayed
        self.service: JournaledService[JetStreamJournal] | None = None

    def follow(self) -> int:
        """Apply the commands committed since the last call; returns how many."""
        execute = self.machine.execute
        decode = command_decoder.decode
        applied = 0
        for _kind, _seq, payload in self.reader.records(self.machine.last_seq, kind=COMMAND):
            execute(decode(payload))
            applied += 1
        self._since_snapshot += applied
        if self._since_snapshot >= self.snapshot_every:
            self.snapshots.write(self.machine.last_seq, self.machine.snapshot())
            self.snapshots.prune(keep=2)
            self._since_snapshot = 0
        return applied

    def try_take_over(self) -> JournaledService[JetStreamJournal] | None:
        """If the lease is free: take it, fence the log, replay its tail and return
        the leading service (None while someone else leads)."""
        if self.service is not None:
            return self.service
        if not self.leadership.try_acquire():
            return None
        try:
            service = open_leader(
                self.data_dir,
                self.servers,
                self.log_name,
                self.leadership,
                machine=self.machine,
                config=self.config,
                replicas=self.replicas,
                snapshot_every=self.snapshot_every,
                clock=self.clock,
            )
        except BaseException:
            self.leadership.release()
            raise
        self.reader.close()
        self.service = service
        return service

    def run(
        self,
        *,
        poll_interval: float = 0.05,
        stop: threading.Event | None = None,
        timeout: float | None = None,
    ) -> JournaledService[JetStreamJournal] | None:
        """Follow until the lease is ours, then return the leading service (None if
        ``stop`` was set or ``timeout`` s passed first)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.follow()
            service = self.try_take_over()
            if service is not None:
                return service
            if stop is not None and stop.is_set():
                return None
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(poll_interval)

    @property
    def state_hash(self) -> str:
        return str(self.machine.state_hash())

    def close(self) -> None:
        """Close the service (if leading) or the reader, and the lease (released)."""
        try:
            if self.service is not None:
                self.service.close()
            else:
                self.reader.close()
        finally:
            self.leadership.close()
