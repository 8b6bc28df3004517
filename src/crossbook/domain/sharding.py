"""Accounts shards: which shard owns a user, and ids unique across shards (pure).

With ``shards`` accounts shards, user ``u`` belongs to shard ``u % shards``; every
command about a user goes to its shard, which stamps it with that shard's own seq
``s``. What a shard forwards to an engine carries the *global seq* ``s * shards +
shard``: unique across shards, increasing per shard, and the order id of a new order.
With one shard the global seq is the accounts seq, so nothing changes.
"""

from __future__ import annotations


def check_shard(shard: int, shards: int) -> None:
    """``ValueError`` unless ``0 <= shard < shards``."""
    if shards < 1:
        raise ValueError(f"the number of accounts shards must be at least 1, got {shards}")
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is not one of 0..{shards - 1}")


def shard_of(user: int, shards: int) -> int:
    """The shard that owns ``user``'s balances and orders."""
    return user % shards


def global_seq(seq: int, shard: int, shards: int) -> int:
    """The seq that shard ``shard``'s input ``seq`` carries beyond the shard."""
    return seq * shards + shard


def source_of(seq: int, shards: int) -> tuple[int, int]:
    """(shard, that shard's seq) of a global seq: the inverse of :func:`global_seq`."""
    return seq % shards, seq // shards
