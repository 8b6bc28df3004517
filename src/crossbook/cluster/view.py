"""The exchange's state re-derived from an accounts log (pure, deterministic).

A gateway follows the ``accounts-K`` log and applies every input here: the accounts
machine re-derives balances and holds, and every order command it forwards runs at
once in a local engine holding every market. Forwards reach each market's engine in
the order of the accounts log, so the local books go through exactly the states of
the engines' (their events are the engines' own, which arrive later in the log as
:class:`~crossbook.domain.routing.EngineEventsReceived`). Reads (balances, open
orders, depth) come from here; nothing here is ever written back.

A view's snapshot is the accounts machine's and the local engine's snapshots at one
seq of the log: restoring it and applying the log after that seq gives the same view
as applying the whole log (gateways start from the market data service's newest one).
"""

from __future__ import annotations

from typing import Any

import msgspec

from crossbook.engine.matching import MatchingEngine
from crossbook.exchange.core import ExchangeConfig
from crossbook.exchange.split import AccountsMachine

VIEW_SNAPSHOT_VERSION = 1


class ViewSnapshot(msgspec.Struct, frozen=True):
    version: int
    accounts: bytes
    engine: bytes


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(ViewSnapshot)


class ExchangeView:
    """``accounts``, ``engine`` and ``config`` as ``ExchangeCore`` has them."""

    def __init__(self, config: ExchangeConfig) -> None:
        self.config = config
        self.machine = AccountsMachine(config)
        self.accounts = self.machine.accounts
        self.engine = MatchingEngine(config.markets)

    @property
    def last_seq(self) -> int:
        return self.machine.last_seq

    def apply(self, command: Any) -> list[Any]:
        """One input of the log; its events (equal to those the log recorded)."""
        events, forward = self.machine.route(command)
        if forward is not None:
            self.engine.execute(forward)
        return events

    def snapshot(self) -> bytes:
        return _encoder.encode(
            ViewSnapshot(VIEW_SNAPSHOT_VERSION, self.machine.snapshot(), self.engine.snapshot())
        )

    @classmethod
    def restore(cls, data: bytes) -> ExchangeView:
        snap = _decoder.decode(data)
        if snap.version != VIEW_SNAPSHOT_VERSION:
            raise ValueError(f"unsupported view snapshot version {snap.version}")
        machine = AccountsMachine.restore(snap.accounts)
        view = cls(machine.config)
        view.machine, view.accounts = machine, machine.accounts
        view.engine = MatchingEngine.restore(snap.engine)
        return view
