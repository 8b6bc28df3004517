"""The exchange's state re-derived from an accounts log (pure, deterministic).

A gateway follows the ``accounts-K`` log and applies every input here: the accounts
machine re-derives balances and holds, and every order command it forwards runs at
once in a local engine holding every market. Forwards reach each market's engine in
the order of the accounts log, so the local books go through exactly the states of
the engines' (their events are the engines' own, which arrive later in the log as
:class:`~crossbook.domain.routing.EngineEventsReceived`). Reads (balances, open
orders, depth) come from here; nothing here is ever written back.
"""

from __future__ import annotations

from typing import Any

from crossbook.engine.matching import MatchingEngine
from crossbook.exchange.core import ExchangeConfig
from crossbook.exchange.split import AccountsMachine


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
