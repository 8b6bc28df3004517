"""The account service as its own machine, for the production layout (pure, deterministic).

In the embedded layout :class:`~crossbook.exchange.core.ExchangeCore` runs accounts and
engines behind one ``execute``. In production each market's engine is its own service
with its own log, so the account service's machine is the accounts alone:

- An order command is checked and its funds held here; if it may go on, it is
  *forwarded*: :meth:`AccountsMachine.route` returns it with its market, and the
  service appends it to that market's engine input log. Its ``seq`` (the accounts seq)
  stays the command's seq, so the engine's order ids are the ones the holds use, and
  an engine skips any command at or below its ``last_seq`` (redelivery).
- What the engine derived from it comes back as an :class:`EngineEventsReceived` input
  (sequenced in the accounts log like any other input) and settles fills and releases
  holds exactly as ``ExchangeCore`` does. Per market the machine remembers the last
  engine command it received events for, so a redelivered one changes nothing.

With ``config.accounts_shards`` = K > 1, the machine is one shard's (``shard``): it
refuses commands about other shards' users, forwards with global seqs, and settles
its users' sides of the fills it receives (see :mod:`crossbook.accounts.core`). Each
market's engine then merges the shards' forwards
(:class:`~crossbook.engine.sources.MultiSourceEngine`), and ``source_seq`` is the
engine's position, which every shard receives in the same order.

Between a forward and its events, funds stay held: nothing can be spent twice.
Delivering each command's events right after the command gives exactly
``ExchangeCore``'s outputs (tested), and the interleaving of inputs in the accounts log
fixes every outcome, so a replay re-derives it byte for byte.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from crossbook.accounts.core import AccountCommand, Accounts, EngineCommand
from crossbook.domain.routing import EngineEventsReceived
from crossbook.engine.matching import MatchingEngine
from crossbook.exchange.core import ExchangeConfig

SNAPSHOT_VERSION = 1


class AccountsSnapshot(msgspec.Struct, frozen=True):
    version: int
    config: ExchangeConfig
    accounts: dict[str, Any]
    engine_seqs: list[tuple[str, int]]
    shard: int = 0


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AccountsSnapshot)

Routed = tuple[list[Any], EngineCommand | None]


class AccountsMachine:
    """Accounts of an exchange whose engines run elsewhere (see the module doc)."""

    def __init__(self, config: ExchangeConfig | None = None, shard: int = 0) -> None:
        self.config = config or ExchangeConfig()
        self.shard = shard
        self.accounts = Accounts(
            self.config.assets,
            self.config.markets,
            self.config.fees,
            shard=shard,
            shards=self.config.accounts_shards,
        )
        self.engine_seqs: dict[str, int] = {m.symbol: 0 for m in self.config.markets}
        # answers commands for markets that do not exist, as an engine would
        self._nowhere = MatchingEngine([])

    @property
    def last_seq(self) -> int:
        return self.accounts.last_seq

    def route(self, command: EngineCommand | AccountCommand | EngineEventsReceived) -> Routed:
        """Apply one input: its events, and the command to forward to its market's
        engine (None if nothing goes on). A redelivered ``seq`` does nothing."""
        accounts = self.accounts
        if type(command) is EngineEventsReceived:
            if command.seq <= accounts.last_seq:
                return [], None
            accounts.last_seq = command.seq
            market = command.market
            last = self.engine_seqs.get(market)
            if last is None or command.source_seq <= last:
                return [], None  # not a market of ours, or events already received
            self.engine_seqs[market] = command.source_seq
            return accounts.apply_engine_events(command.events), None
        outcome = accounts.execute(command)  # type: ignore[arg-type]
        forward = outcome.forward
        if forward is not None and forward.market not in self.engine_seqs:
            # no engine runs this market: refuse here what it would have refused
            self._nowhere.last_seq = forward.seq - 1
            refused = accounts.apply_engine_events(self._nowhere.execute(forward))
            return outcome.events + refused, None
        return outcome.events, forward

    def execute(self, command: EngineCommand | AccountCommand | EngineEventsReceived) -> list[Any]:
        """The :class:`~crossbook.service.Machine` interface: ``route`` without the
        forward (a replay re-derives forwards with ``route``)."""
        return self.route(command)[0]

    def snapshot(self) -> bytes:
        return _encoder.encode(
            AccountsSnapshot(
                SNAPSHOT_VERSION,
                self.config,
                self.accounts.to_snapshot(),
                sorted(self.engine_seqs.items()),
                self.shard,
            )
        )

    @classmethod
    def restore(cls, data: bytes) -> AccountsMachine:
        snap = _decoder.decode(data)
        if snap.version != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported accounts snapshot version {snap.version}")
        machine = cls(snap.config, snap.shard)
        machine.accounts.load_snapshot(snap.accounts)
        machine.engine_seqs.update(dict(snap.engine_seqs))
        return machine

    def state_hash(self) -> str:
        """BLAKE2b-256 of the canonical snapshot, hex."""
        return hashlib.blake2b(self.snapshot(), digest_size=32).hexdigest()
