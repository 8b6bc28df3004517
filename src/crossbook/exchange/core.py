"""One input stream through accounts -> engine -> accounts (pure, deterministic).

For each input: the account service applies it (holding funds for an order, or
refusing it); a forwarded order command runs in its market's engine; the engine's
events come back to the account service, which settles fills and releases holds.
The output of one input is: the account service's events, then each engine event
followed by the transactions it caused.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from crossbook.accounts.core import AccountCommand, Accounts, EngineCommand, FeeSchedule
from crossbook.domain.markets import DEFAULT_ASSETS, DEFAULT_MARKETS, Asset, Market
from crossbook.engine.matching import MatchingEngine

SNAPSHOT_VERSION = 1


class ExchangeConfig(msgspec.Struct, frozen=True, kw_only=True):
    assets: list[Asset] = msgspec.field(default_factory=lambda: list(DEFAULT_ASSETS))
    markets: list[Market] = msgspec.field(default_factory=lambda: list(DEFAULT_MARKETS))
    fees: FeeSchedule = msgspec.field(default_factory=FeeSchedule)
    # users are spread over this many accounts shards (production layout only)
    accounts_shards: int = 1

    def __post_init__(self) -> None:
        if self.accounts_shards < 1:
            raise ValueError("accounts_shards must be at least 1")


class ExchangeSnapshot(msgspec.Struct, frozen=True):
    version: int
    config: ExchangeConfig
    engine: msgspec.Raw
    accounts: dict[str, Any]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ExchangeSnapshot)


class ExchangeCore:
    """Accounts and engines of an exchange behind one ``execute``."""

    def __init__(self, config: ExchangeConfig | None = None) -> None:
        self.config = config or ExchangeConfig()
        if self.config.accounts_shards != 1:
            raise ValueError("the embedded exchange runs one accounts shard")
        self.accounts = Accounts(self.config.assets, self.config.markets, self.config.fees)
        self.engine = MatchingEngine(self.config.markets)

    @property
    def last_seq(self) -> int:
        return self.accounts.last_seq

    def execute(self, command: EngineCommand | AccountCommand) -> list[Any]:
        outcome = self.accounts.execute(command)
        if outcome.forward is None:
            return outcome.events
        engine_events = self.engine.execute(outcome.forward)
        return outcome.events + self.accounts.apply_engine_events(engine_events)

    def snapshot(self) -> bytes:
        return _encoder.encode(
            ExchangeSnapshot(
                SNAPSHOT_VERSION,
                self.config,
                msgspec.Raw(self.engine.snapshot()),
                self.accounts.to_snapshot(),
            )
        )

    @classmethod
    def restore(cls, data: bytes) -> ExchangeCore:
        snap = _decoder.decode(data)
        if snap.version != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported exchange snapshot version {snap.version}")
        core = cls(snap.config)
        core.engine = MatchingEngine.restore(bytes(snap.engine))
        core.accounts.load_snapshot(snap.accounts)
        return core

    def state_hash(self) -> str:
        """BLAKE2b-256 of the canonical snapshot (engine and accounts), hex."""
        return hashlib.blake2b(self.snapshot(), digest_size=32).hexdigest()
