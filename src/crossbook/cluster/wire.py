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


_reply_decoder = msgspec.json.Decoder(SubmitReply)


def encode_request(commands: list[Any]) -> bytes:
    """Commands for the accounts; their ``seq`` and ``ts`` are stamped there."""
    return _request_encoder.encode(commands)


def decode_request(data: bytes) -> list[Any]:
    return _request_decoder.decode(data)


def decode_reply(data: bytes) -> SubmitReply:
    return _reply_decoder.decode(data)
