"""Service snapshots shared through the JetStream object store.

A service's snapshots are written to its data dir (:class:`SnapshotStore`); each new one
is then also put into the object store ``crossbook-snapshots`` under its log's name, so
that an instance started on another machine (an empty data dir) restores from it
instead of replaying its whole log.

Invariants:

* Only snapshots that were published locally are shared, so a shared snapshot never
  covers what its log (and, for the accounts, the orders logs) does not hold durably.
* A shared snapshot is used only if it is newer than the local one and its seq is
  within the log (a snapshot beyond the log's end belongs to another history) and it
  is intact (:func:`decode_snapshot` checks its CRC).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging

from nats.js.api import ObjectInfo, ObjectMeta, ObjectStoreConfig
from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, DigestMismatchError, NotFoundError

from crossbook.journal.snapshots import SnapshotStore, decode_snapshot, encode_snapshot

__all__ = [
    "SNAPSHOT_BUCKET",
    "SnapshotSharer",
    "fetch_quietly",
    "fetch_shared_snapshot",
    "share_snapshot",
]

SNAPSHOT_BUCKET = "crossbook-snapshots"
log = logging.getLogger(__name__)


async def share_snapshot(
    js: JetStreamContext, store: SnapshotStore, name: str, *, replicas: int = 1
) -> int | None:
    """Put the newest valid local snapshot into the object store as ``name``; its seq."""
    latest = store.latest()
    if latest is None:
        return None
    seq, data = latest
    try:
        bucket = await js.object_store(SNAPSHOT_BUCKET)
    except BucketNotFoundError:
        bucket = await js.create_object_store(
            SNAPSHOT_BUCKET, config=ObjectStoreConfig(replicas=replicas)
        )
    meta = ObjectMeta(name=name, description=f"seq {seq}")  # read before fetching
    await bucket.put(name, encode_snapshot(seq, data), meta=meta)
    return seq


def _announced_seq(info: ObjectInfo) -> int | None:
    description = info.description or ""
    number = description.removeprefix("seq ")
    return int(number) if description.startswith("seq ") and number.isdigit() else None


async def fetch_shared_snapshot(
    js: JetStreamContext, store: SnapshotStore, name: str, *, log_end: int
) -> int | None:
    """Copy the shared snapshot ``name`` into ``store`` if it is usable and newer than the
    local one; the seq it added, else ``None``."""
    local = store.latest()
    received = io.BytesIO()
    try:
        bucket = await js.object_store(SNAPSHOT_BUCKET)
        announced = _announced_seq(await bucket.get_info(name))
        if announced is not None and (
            announced > log_end or (local is not None and local[0] >= announced)
        ):
            return None  # not usable or not newer: no need to fetch it
        await bucket.get(name, writeinto=received)
    except (NotFoundError, DigestMismatchError):
        return None
    try:
        seq, data = decode_snapshot(received.getvalue())
    except ValueError as exc:
        log.warning("shared snapshot %s unusable: %s", name, exc)
        return None
    if seq > log_end:
        log.warning("shared snapshot %s at seq %d is beyond the log's end %d", name, seq, log_end)
        return None
    if local is not None and local[0] >= seq:
        return None
    store.write(seq, data)
    return seq


class SnapshotSharer:
    """Shares a service's new snapshots in the background, one upload at a time (a
    newer snapshot published meanwhile is shared right after)."""

    def __init__(self, js: JetStreamContext, store: SnapshotStore, name: str, *, replicas: int = 1):
        self.js, self.store, self.name, self.replicas = js, store, name, replicas
        self.shared_seq = 0
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._taken = 0

    def offer_if_new(self, taken: int) -> None:
        """Offer once more snapshots were taken (``taken``: how many so far) than when last
        offered this way."""
        if taken != self._taken:
            self._taken = taken
            self.offer()

    def offer(self) -> None:
        """A new local snapshot may exist: share it (soon)."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.create_task(self._share(), name=f"share-{self.name}")

    async def _share(self) -> None:
        while True:
            self._again = False
            try:
                seq = await share_snapshot(self.js, self.store, self.name, replicas=self.replicas)
                if seq is not None:
                    self.shared_seq = seq
            except Exception as exc:  # sharing is for other machines' restarts only
                log.warning("sharing snapshot %s failed: %r", self.name, exc)
            if not self._again:
                return

    async def close(self, timeout: float = 10.0) -> None:
        """Share the newest snapshot (waiting at most ``timeout``), then stop."""
        self.offer()
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), timeout)


async def fetch_quietly(sharer: SnapshotSharer, *, log_end: int, timeout: float = 30.0) -> None:
    """:func:`fetch_shared_snapshot` for ``sharer``'s store and name; trouble with the
    object store only means recovering from the local snapshot (or the whole log)."""
    try:
        seq = await asyncio.wait_for(
            fetch_shared_snapshot(sharer.js, sharer.store, sharer.name, log_end=log_end), timeout
        )
    except Exception as exc:
        log.warning("fetching the shared snapshot %s failed: %r", sharer.name, exc)
        return
    if seq is not None:
        log.info("restoring from the shared snapshot %s at seq %d", sharer.name, seq)
