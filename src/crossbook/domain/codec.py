"""Wire encoding of commands and events (JSON arrays, tagged; integers of any size)."""

from __future__ import annotations

import msgspec

from crossbook.domain.commands import Command
from crossbook.domain.events import Event

command_encoder = msgspec.json.Encoder()
command_decoder: msgspec.json.Decoder[Command] = msgspec.json.Decoder(Command)
events_decoder: msgspec.json.Decoder[list[Event]] = msgspec.json.Decoder(list[Event])


def encode(value: object) -> bytes:
    return command_encoder.encode(value)


def decode_command(data: bytes) -> Command:
    return command_decoder.decode(data)


def decode_events(data: bytes) -> list[Event]:
    return events_decoder.decode(data)
