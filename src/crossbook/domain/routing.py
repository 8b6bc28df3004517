"""Inputs that carry one service's outputs into another service's input log.

In the production layout the accounts service and each market's engine run apart:
accounts forwards order commands to the market's engine log, and the engine's events
come back into the accounts log as :class:`EngineEventsReceived`, one per engine
command, stamped by the accounts sequencer like any other input.
"""

from __future__ import annotations

import msgspec

from crossbook.domain.events import Event


class EngineEventsReceived(
    msgspec.Struct,
    frozen=True,
    tag="engine_events",
    tag_field="kind",
    array_like=True,
    gc=False,
    kw_only=True,
):
    """The events market ``market``'s engine derived from its command ``source_seq``
    (the accounts seq the command was forwarded with). ``events`` may be empty."""

    seq: int
    ts: int
    market: str
    source_seq: int
    events: list[Event]
