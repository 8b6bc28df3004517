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

With several accounts shards a gateway follows every shard's log and every engine's
log (:mod:`crossbook.cluster.sharded_runtime`); its boot snapshot
(:class:`ShardedBootSnapshot`) holds the view at one seq of each shard's log and one
position of each engine's log, with the market data at those positions. It is used
only if every one of them is within its log.
"""

from __future__ import annotations

import io
from typing import TypeVar

import msgspec
from nats.js.api import ObjectStoreConfig
from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, DigestMismatchError, NotFoundError

from crossbook.cluster.topology import accounts_log

__all__ = [
    "BOOT_BUCKET",
    "BootSnapshot",
    "ShardedBootSnapshot",
    "load_boot_snapshot",
    "load_sharded_boot_snapshot",
    "save_boot_snapshot",
    "save_sharded_boot_snapshot",
]

T = TypeVar("T")

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


class ShardedBootSnapshot(msgspec.Struct, frozen=True):
    """The view (:meth:`ShardedView.snapshot`) after applying each accounts shard's log
    up to ``seqs[shard]`` and each engine's log up to ``positions[market]``, and the
    market data of the engine logs up to those positions."""

    version: int
    seqs: list[int]
    positions: dict[str, int]
    markets: list[str]
    view: bytes
    marketdata: bytes


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(BootSnapshot)
_sharded_decoder = msgspec.msgpack.Decoder(ShardedBootSnapshot)


def _name(shard: int) -> str:
    return f"view-{accounts_log(shard)}"


def _sharded_name(shards: int) -> str:
    return f"view-{shards}-shards"


async def _put(js: JetStreamContext, name: str, data: bytes, replicas: int) -> None:
    try:
        store = await js.object_store(BOOT_BUCKET)
    except BucketNotFoundError:
        store = await js.create_object_store(
            BOOT_BUCKET, config=ObjectStoreConfig(replicas=replicas)
        )
    await store.put(name, data)


async def _get(js: JetStreamContext, name: str, decoder: msgspec.msgpack.Decoder[T]) -> T | None:
    """The object ``name`` decoded, or ``None`` if there is none (or it cannot be
    decoded: the caller then replays the logs)."""
    received = io.BytesIO()  # chunks appended in place (not bytes += bytes)
    try:
        store = await js.object_store(BOOT_BUCKET)
        await store.get(name, writeinto=received)
    except (NotFoundError, DigestMismatchError):  # no bucket, no object, or a damaged one
        return None
    data = received.getvalue()
    if not data:
        return None
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


async def save_boot_snapshot(
    js: JetStreamContext, snap: BootSnapshot, *, replicas: int = 1
) -> None:
    """Store ``snap`` as the newest boot snapshot of its shard (creating the bucket)."""
    await _put(js, _name(snap.shard), _encoder.encode(snap), replicas)


async def load_boot_snapshot(js: JetStreamContext, shard: int) -> BootSnapshot | None:
    """The newest boot snapshot of ``shard``, or ``None``."""
    snap = await _get(js, _name(shard), _decoder)
    return snap if snap and snap.version == BOOT_VERSION and snap.shard == shard else None


async def save_sharded_boot_snapshot(
    js: JetStreamContext, snap: ShardedBootSnapshot, *, replicas: int = 1
) -> None:
    """Store ``snap`` as the newest boot snapshot of its deployment's shards."""
    await _put(js, _sharded_name(len(snap.seqs)), _encoder.encode(snap), replicas)


async def load_sharded_boot_snapshot(
    js: JetStreamContext, shards: int
) -> ShardedBootSnapshot | None:
    """The newest boot snapshot of a deployment of ``shards`` shards, or ``None``."""
    snap = await _get(js, _sharded_name(shards), _sharded_decoder)
    ok = snap and snap.version == BOOT_VERSION and len(snap.seqs) == shards
    return snap if ok else None
