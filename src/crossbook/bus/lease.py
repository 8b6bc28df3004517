"""Leader leases on the JetStream KV store (a bucket whose entries expire after a TTL).

* ``acquire(name, holder)`` creates the key: it fails with :class:`LeaseHeld` while
  another holder's entry exists (``create`` is "only if absent").
* ``renew(lease)`` is a compare-and-set on the revision the holder last wrote
  (``update(last=revision)``): it fails with :class:`LeaseLost` if anyone wrote the key
  since (the lease expired and someone else took it), so a deposed holder learns it.
* ``release(lease)`` deletes the key, also only at the holder's revision.
* Expiry: the bucket's ``max_age`` is the TTL; an entry not renewed within it
  disappears and the next ``acquire`` succeeds.

A lease is advisory in time (a paused process may believe it still leads): the
leader's writes are fenced anyway by ``Nats-Expected-Last-Sequence`` in
:class:`~crossbook.bus.jetstream.JetStreamLog`. ``Lease.epoch`` (the revision that
created the lease) is unique per tenure: pass it as the log's ``writer_id``.
"""

from __future__ import annotations

import dataclasses
import time

from nats.aio.client import Client as NATS
from nats.js import api
from nats.js.errors import (
    APIError,
    BucketNotFoundError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
)
from nats.js.kv import KeyValue

_WRONG_LAST = (10071, 10164)  # wrong last (subject) sequence

__all__ = ["Lease", "LeaseError", "LeaseHeld", "LeaseLost", "LeaseStore"]


class LeaseError(Exception):
    """A lease operation failed."""


class LeaseHeld(LeaseError):
    """Someone else holds the lease."""

    def __init__(self, name: str, holder: str | None) -> None:
        super().__init__(f"lease {name!r} is held by {holder!r}")
        self.name = name
        self.holder = holder


class LeaseLost(LeaseError):
    """The lease is no longer ours (expired and taken, or released)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Lease:
    """A held lease: ``revision`` is the KV revision the holder last wrote, ``epoch``
    the revision that created it; ``deadline`` (``time.monotonic()``) is when it
    lapses unless renewed, as seen by the holder."""

    name: str
    holder: str
    revision: int
    epoch: int
    deadline: float

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


class LeaseStore:
    """Leases in the KV bucket ``bucket`` with time-to-live ``ttl`` seconds."""

    def __init__(self, kv: KeyValue, bucket: str, ttl: float) -> None:
        """Internal: use ``LeaseStore.open``."""
        self._kv = kv
        self.bucket = bucket
        self.ttl = ttl

    @classmethod
    async def open(
        cls, nc: NATS, *, bucket: str = "cb_leases", ttl: float = 5.0, replicas: int = 1
    ) -> LeaseStore:
        """Bind to the bucket, creating it (file storage, history 1) if needed."""
        js = nc.jetstream()
        try:
            kv = await js.key_value(bucket)
        except BucketNotFoundError:
            kv = await js.create_key_value(
                api.KeyValueConfig(
                    bucket=bucket,
                    history=1,
                    ttl=ttl,
                    replicas=replicas,
                    storage=api.StorageType.FILE,
                )
            )
        return cls(kv, bucket, ttl)

    def _lease(self, name: str, holder: str, revision: int, epoch: int, t0: float) -> Lease:
        return Lease(name, holder, revision, epoch, t0 + self.ttl)

    async def acquire(self, name: str, holder: str) -> Lease:
        """Take the lease ``name`` for ``holder``; :class:`LeaseHeld` if it is held."""
        for _ in range(3):
            t0 = time.monotonic()
            try:
                revision = await self._kv.create(name, holder.encode())
            except KeyWrongLastSequenceError:
                raise LeaseHeld(name, await self.holder(name)) from None
            except KeyNotFoundError:
                # the previous holder's entry expired between the client's two steps of
                # ``create``: the lease just became free, so try again
                continue
            return self._lease(name, holder, revision, revision, t0)
        raise LeaseHeld(name, await self.holder(name))

    async def renew(self, lease: Lease) -> Lease:
        """Extend the lease by ``ttl`` (compare-and-set on ``lease.revision``);
        :class:`LeaseLost` if anyone wrote the key since."""
        t0 = time.monotonic()
        try:
            revision = await self._kv.update(lease.name, lease.holder.encode(), last=lease.revision)
        except KeyWrongLastSequenceError:
            raise LeaseLost(
                f"lease {lease.name!r} of {lease.holder!r} (revision {lease.revision}) "
                f"was lost; now held by {await self.holder(lease.name)!r}"
            ) from None
        return self._lease(lease.name, lease.holder, revision, lease.epoch, t0)

    async def release(self, lease: Lease) -> None:
        """Give the lease up (only at our revision); :class:`LeaseLost` if it was not
        ours any more."""
        try:
            await self._kv.delete(lease.name, last=lease.revision)
        except APIError as exc:
            if exc.err_code not in _WRONG_LAST:
                raise
            raise LeaseLost(f"lease {lease.name!r} was not held by {lease.holder!r}") from None

    async def holder(self, name: str) -> str | None:
        """Who holds ``name`` now (None if nobody)."""
        try:
            entry = await self._kv.get(name)
        except KeyNotFoundError:
            return None
        return (entry.value or b"").decode() or None
