"""A market's engine fed by several accounts shards (pure, deterministic).

Each shard forwards its commands with global seqs (:mod:`crossbook.domain.sharding`)
that increase per shard; the shards' streams interleave in the order they arrive,
and that order, recorded in the engine's own log, is what a replay repeats.

Invariants:

- A command at or below the last one run from its shard is a redelivery: skipped, so
  each forwarded command runs at most once, and those of one shard in their order.
- ``position`` counts the commands run (the seq of the engine log's records); it only
  grows, whatever the interleaving of the shards.
- Order ids are the commands' global seqs, so they never collide across shards.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import msgspec

from crossbook.domain.commands import Command
from crossbook.domain.events import Event
from crossbook.domain.markets import Market
from crossbook.domain.sharding import source_of
from crossbook.engine.matching import MatchingEngine

SNAPSHOT_VERSION = 1


class MultiSourceSnapshot(msgspec.Struct, frozen=True):
    version: int
    position: int
    applied: list[int]
    engine: msgspec.Raw


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(MultiSourceSnapshot)


class MultiSourceEngine:
    """A :class:`MatchingEngine` whose input merges ``shards`` forwarded streams."""

    def __init__(self, markets: Iterable[Market], shards: int = 1) -> None:
        if shards < 1:
            raise ValueError(f"the number of accounts shards must be at least 1, got {shards}")
        self.engine = MatchingEngine(markets)
        self.shards = shards
        self.applied = [0] * shards  # per shard, the global seq it forwarded last that ran
        self.position = 0

    @property
    def last_seq(self) -> int:
        """The position: the :class:`~crossbook.service.Machine` view of this engine."""
        return self.position

    def run(self, command: Command) -> list[Event] | None:
        """Run one forwarded command: its events, or ``None`` for a redelivery."""
        seq = command.seq
        shard, _ = source_of(seq, self.shards)
        if seq <= self.applied[shard]:
            return None
        self.applied[shard] = seq
        self.position += 1
        engine = self.engine
        engine.last_seq = seq - 1  # the engine's own check is per stream; ours is per shard
        return engine.execute(command)

    def execute(self, command: Command) -> list[Event]:
        """:meth:`run` as a :class:`~crossbook.service.Machine` does it (``[]`` for a
        redelivery)."""
        return self.run(command) or []

    def snapshot(self) -> bytes:
        """Canonical encoding of the whole state: equal states give equal bytes."""
        return _encoder.encode(
            MultiSourceSnapshot(
                SNAPSHOT_VERSION, self.position, list(self.applied),
                msgspec.Raw(self.engine.snapshot()),
            )
        )  # fmt: skip

    @classmethod
    def restore(cls, data: bytes) -> MultiSourceEngine:
        snap = _decoder.decode(data)
        if snap.version != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported multi-source engine snapshot version {snap.version}")
        inner = MatchingEngine.restore(bytes(snap.engine))
        engine = cls(inner.markets, len(snap.applied))
        engine.engine = inner
        engine.applied = list(snap.applied)
        engine.position = snap.position
        return engine

    def state_hash(self) -> str:
        """BLAKE2b-256 of the canonical snapshot, hex."""
        return hashlib.blake2b(self.snapshot(), digest_size=32).hexdigest()
