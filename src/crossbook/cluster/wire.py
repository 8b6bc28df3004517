"""What gateways and the accounts service send each other (JSON, msgspec)."""

from __future__ import annotations

from typing import Any

import msgspec

from crossbook.domain.codec import OutputEvent
from crossbook.domain.commands import Command
from crossbook.domain.ledger import (
    AdjustBalance,
    CancelWithdrawal,
    Deposit,
    RequestWithdrawal,
    SetFeeTier,
    SettleWithdrawal,
)

RequestCommand = (
    Command | Deposit | RequestWithdrawal | SettleWithdrawal | CancelWithdrawal | AdjustBalance
    | SetFeeTier
)  # fmt: skip
"""What may be submitted: everything but the engines' events, which only the
accounts service itself puts in its log."""

_request_decoder: msgspec.json.Decoder[list[Any]] = msgspec.json.Decoder(list[RequestCommand])
_request_encoder = msgspec.json.Encoder()


class SubmitReply(msgspec.Struct, omit_defaults=True):
    """Per command of a request, in order: the seq and ts it was given and its events (the
    accounts' own, then its engine's events with the settlements they caused), or
    ``error`` for a request that could not be read (nothing of it was applied)."""

    seqs: list[int] = msgspec.field(default_factory=list)
    ts: list[int] = msgspec.field(default_factory=list)
    results: list[list[OutputEvent] | None] = msgspec.field(default_factory=list)
    last_seq: int = 0
    """The accounts log holds everything up to here, this request's results included:
    a reader of the log that has reached it sees their effects (read your writes)."""
    error: str = ""


class _RawReply(msgspec.Struct):
    """:class:`SubmitReply` as the accounts service writes it: each result is the
    JSON its log holds already (no second encoding)."""

    seqs: list[int]
    ts: list[int]
    results: list[msgspec.Raw]
    last_seq: int


_reply_decoder = msgspec.json.Decoder(SubmitReply)
_reply_encoder = msgspec.json.Encoder()


def encode_reply(seqs: list[int], ts: list[int], results: list[bytes], last_seq: int) -> bytes:
    """A :class:`SubmitReply` from each command's events, already encoded."""
    raw = [msgspec.Raw(r) for r in results]
    return _reply_encoder.encode(_RawReply(seqs, ts, raw, last_seq))


def encode_error(error: str) -> bytes:
    return _reply_encoder.encode(SubmitReply(error=error))


def join_events(first: bytes, second: bytes) -> bytes:
    """Two encoded event lists as one (``[a, b] + [c]`` -> ``[a, b, c]``)."""
    if first == b"[]":
        return second
    if second == b"[]":
        return first
    return first[:-1] + b"," + second[1:]


def encode_request(commands: list[Any]) -> bytes:
    """Commands for the accounts; their ``seq`` and ``ts`` are stamped there."""
    return _request_encoder.encode(commands)


def decode_request(data: bytes) -> list[Any]:
    return _request_decoder.decode(data)


def decode_reply(data: bytes) -> SubmitReply:
    return _reply_decoder.decode(data)
