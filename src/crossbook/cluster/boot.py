"""Boot snapshots for gateways, in a JetStream object store.

Without one, a gateway starting up replays the whole accounts log (every order ever
placed runs again through its local engine), which grows without bound. The market
data service writes, every so often, a *boot snapshot*: the exchange view and the
market data at one seq of the log. A gateway restores the newest one and replays only
the log after it, reaching the same state as a full replay.

Invariants:

* A boot snapshot is derived from the log alone, at ``seq`` <= the log's last seq when
  it was written. One whose ``seq`` is beyond the log's end (the log was recreated) or
  whose markets differ from the deployment's is not used: the gateway replays instead.
* Objects are replaced whole (one name per accounts shard); a reader sees the old one
  or the new one, never a mix (the object store's own guarantee).
"""

from __future__ import annotations

import io

import msgspec
from nats.js.api import ObjectStoreConfig
from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, DigestMismatchError, NotFoundError

from crossbook.cluster.topology import accounts_log

__all__ = ["BOOT_BUCKET", "BootSnapshot", "load_boot_snapshot", "save_boot_snapshot"]

BOOT_BUCKET = "crossbook-boot"
BOOT_VERSION = 1


class BootSnapshot(msgspec.Struct, frozen=True):
    """The view (:meth:`ExchangeView.snapshot`) and market data (``MarketData.snapshot``)
    after applying the accounts log of ``shard`` up to ``seq``."""

    version: int
    shard: int
    seq: int
    markets: list[str]
    view: bytes
    marketdata: bytes


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(BootSnapshot)


def _name(shard: int) -> str:
    return f"view-{accounts_log(shard)}"


async def save_boot_snapshot(
    js: JetStreamContext, snap: BootSnapshot, *, replicas: int = 1
) -> None:
    """Store ``snap`` as the newest boot snapshot of its shard (creating the bucket)."""
    try:
        store = await js.object_store(BOOT_BUCKET)
    except BucketNotFoundError:
        store = await js.create_object_store(
            BOOT_BUCKET, config=ObjectStoreConfig(replicas=replicas)
        )
    await store.put(_name(snap.shard), _encoder.encode(snap))


async def load_boot_snapshot(js: JetStreamContext, shard: int) -> BootSnapshot | None:
    """The newest boot snapshot of ``shard``, or ``None`` if there is none (or it cannot
    be decoded: the caller then replays the log)."""
    received = io.BytesIO()  # chunks appended in place (not bytes += bytes)
    try:
        store = await js.object_store(BOOT_BUCKET)
        await store.get(_name(shard), writeinto=received)
    except (NotFoundError, DigestMismatchError):  # no bucket, no object, or a damaged one
        return None
    data = received.getvalue()
    if not data:
        return None
    try:
        snap = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return snap if snap.version == BOOT_VERSION and snap.shard == shard else None
