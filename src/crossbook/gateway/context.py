"""What every API route needs: the runtime, the markets, auth, history and limits."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crossbook.domain.markets import Asset, Market
from crossbook.gateway.projector import LedgerWriterProcess
from crossbook.gateway.runtime import ExchangeRuntime


@dataclass
class Gateway:
    runtime: ExchangeRuntime
    projector: LedgerWriterProcess
    auth: Any  # crossbook.auth.store.AuthStore
    marketdata: Any  # crossbook.marketdata.MarketData
    clock_ms: Callable[[], int] = field(default=lambda: time.time_ns() // 1_000_000)
    last_seq_by_user: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        config = self.runtime.core.config
        self.markets: dict[str, Market] = {m.symbol: m for m in config.markets}
        self.assets: dict[str, Asset] = {a.code: a for a in config.assets}

    def remember(self, user: int, seq: int) -> None:
        """The newest command of ``user``: history reads wait for it (read your writes)."""
        if seq > self.last_seq_by_user.get(user, 0):
            self.last_seq_by_user[user] = seq

    async def history_ready(self, user: int) -> None:
        """Wait until SQL holds everything acknowledged so far (by anyone: a fill of
        this user's order may come from another user's command). Raises
        :class:`HistoryUnavailable` if the ledger writer is too far behind or down."""
        try:
            await self.projector.wait_for(self.runtime.published_seq)
        except (TimeoutError, RuntimeError) as exc:
            raise HistoryUnavailable(str(exc)) from exc


class HistoryUnavailable(Exception):
    """History (SQL) is behind the exchange for longer than a request may wait."""
