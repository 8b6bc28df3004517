"""The exchange's state re-derived from every accounts shard's log and every engine's
log (pure, deterministic): what a gateway reads when the accounts are sharded.

With one shard, :class:`~crossbook.cluster.view.ExchangeView` re-runs the forwards of
the one accounts log to get the books. With several, no log holds the order in which
the shards' forwards reached an engine, so the books come from each ``engine-SYMBOL``
log (its COMMAND records, re-run in a
:class:`~crossbook.engine.sources.MultiSourceEngine`), and balances and holds from the
log of the user's shard. Each part is exactly the state of its log's writer at the
position applied; the parts may be at different positions of their logs.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping
from typing import Any

import msgspec

from crossbook.domain.sharding import shard_of
from crossbook.engine.book import OrderBook
from crossbook.engine.sources import MultiSourceEngine
from crossbook.exchange.core import ExchangeConfig
from crossbook.exchange.split import AccountsMachine

VIEW_SNAPSHOT_VERSION = 1


class ShardedViewSnapshot(msgspec.Struct, frozen=True):
    version: int
    machines: list[bytes]
    engines: dict[str, bytes]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(ShardedViewSnapshot)


class ShardedAccounts:
    """Balances and holds of every user, each read from the user's shard."""

    def __init__(self, machines: list[AccountsMachine]) -> None:
        self.machines = machines

    def of(self, user: int) -> Any:
        """The :class:`~crossbook.accounts.core.Accounts` of ``user``'s shard."""
        return self.machines[shard_of(user, len(self.machines))].accounts

    def available(self, user: int, asset: str) -> int:
        return int(self.of(user).available(user, asset))

    def held(self, user: int, asset: str) -> int:
        return int(self.of(user).held(user, asset))

    @property
    def withdrawals(self) -> Mapping[str, Any]:
        """Pending withdrawals of all shards, by id."""
        return ChainMap(*(m.accounts.withdrawals for m in self.machines))


class EngineBooks:
    """The books of every market, as the engines' logs have them."""

    def __init__(self, engines: dict[str, MultiSourceEngine]) -> None:
        self.engines = engines

    @property
    def books(self) -> dict[str, OrderBook]:
        return {s: e.engine.books[s] for s, e in self.engines.items()}


class ShardedView:
    """``accounts``, ``engine`` (its ``books``) and ``config`` as a gateway reads them."""

    def __init__(self, config: ExchangeConfig) -> None:
        self.config = config
        shards = config.accounts_shards
        self.machines = [AccountsMachine(config, k) for k in range(shards)]
        self.engines = {m.symbol: MultiSourceEngine([m], shards) for m in config.markets}
        self.accounts = ShardedAccounts(self.machines)
        self.engine = EngineBooks(self.engines)

    def shard_of_command(self, command: Any) -> int:
        """The shard a command goes to: its user's; a withdrawal settled or cancelled by
        id goes where it is held (shard 0 if nowhere: it is refused there)."""
        user = getattr(command, "owner", None)
        if user is None:
            user = getattr(command, "user", None)
        if user is not None:
            return shard_of(int(user), len(self.machines))
        withdrawal = getattr(command, "withdrawal_id", None)
        for k, machine in enumerate(self.machines):
            if withdrawal in machine.accounts.withdrawals:
                return k
        return 0

    def apply_shard(self, shard: int, command: Any) -> list[Any]:
        """One input of ``accounts-<shard>``; its events."""
        return self.machines[shard].execute(command)

    def apply_engine(self, market: str, command: Any) -> list[Any]:
        """One command of ``engine-<market>``; its events."""
        return self.engines[market].execute(command)

    def snapshot(self) -> bytes:
        """Every machine's and engine's snapshot (restoring it and applying each log
        after its position gives the same view as applying every log whole)."""
        return _encoder.encode(
            ShardedViewSnapshot(
                VIEW_SNAPSHOT_VERSION,
                [m.snapshot() for m in self.machines],
                {s: e.snapshot() for s, e in self.engines.items()},
            )
        )

    @classmethod
    def restore(cls, data: bytes) -> ShardedView:
        snap = _decoder.decode(data)
        if snap.version != VIEW_SNAPSHOT_VERSION:
            raise ValueError(f"unsupported sharded view snapshot version {snap.version}")
        machines = [AccountsMachine.restore(m) for m in snap.machines]
        view = cls(machines[0].config)
        if [m.shard for m in machines] != list(range(view.config.accounts_shards)) or set(
            snap.engines
        ) != set(view.engines):
            raise ValueError("the snapshot is of other shards or markets")
        view.machines[:] = machines
        view.engines.update({s: MultiSourceEngine.restore(e) for s, e in snap.engines.items()})
        return view

    def engines_reached(self, shard: int) -> bool:
        """Whether every engine view is at least where ``shard`` has engine records up
        to (so what that shard's replies reported is in the books too)."""
        seqs = self.machines[shard].engine_seqs
        return all(e.position >= seqs[s] for s, e in self.engines.items())
