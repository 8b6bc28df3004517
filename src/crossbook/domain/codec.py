"""Wire encoding of inputs and outputs (JSON arrays, tagged; integers of any size)."""

from __future__ import annotations

from typing import Any

import msgspec

from crossbook.domain.commands import Command
from crossbook.domain.events import Event
from crossbook.domain.ledger import (
    AdjustBalance,
    CancelWithdrawal,
    CommandRejected,
    Deposit,
    RequestWithdrawal,
    SetFeeTier,
    SettleWithdrawal,
    TransactionPosted,
)
from crossbook.domain.routing import EngineEventsReceived

InputCommand = (
    Command | Deposit | RequestWithdrawal | SettleWithdrawal | CancelWithdrawal | AdjustBalance
    | SetFeeTier | EngineEventsReceived
)  # fmt: skip
OutputEvent = Event | TransactionPosted | CommandRejected

command_encoder = msgspec.json.Encoder()
command_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(InputCommand)
events_decoder: msgspec.json.Decoder[list[Any]] = msgspec.json.Decoder(list[OutputEvent])


def encode(value: object) -> bytes:
    return command_encoder.encode(value)


def decode_command(data: bytes) -> Any:
    return command_decoder.decode(data)


def decode_events(data: bytes) -> list[Any]:
    return events_decoder.decode(data)
