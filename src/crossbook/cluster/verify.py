"""Checking a deployment's logs on JetStream (``crossbook verify --nats-url``).

Everything is re-derived from the logs alone, from the beginning:

- each ``engine-SYMBOL`` log replays into a fresh engine whose events equal the
  recorded ones byte for byte; its positions are 1, 2, ... (no gap, no duplicate), and
  per accounts shard ``K`` the commands it ran are exactly those of ``orders-SYMBOL[-K]``
  up to the last one it ran;
- each ``accounts-K`` replays into a fresh machine of shard ``K`` with the same check,
  and its forwards are exactly what ``orders-SYMBOL[-K]`` holds;
- the ledger invariants of the replayed state: every transaction balances, each
  shard's ledger sums to zero per asset, no user balance is negative; and, for markets
  settled everywhere (every forward ran and every shard received every engine record),
  holds equal what the engine's open orders can still spend and ``clearing:SYMBOL``
  sums to zero across shards (a trade's other half may otherwise still be in flight);
- the gateways' boot snapshot (:mod:`crossbook.cluster.boot`), if there is one, equals
  the view and market data of a replay of ``accounts-0`` up to its seq (with several
  shards: of each shard's log and each engine's log up to its seq or position there).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from nats.aio.client import Client as NATS

from crossbook.accounts.checks import sharded_ledger_errors, transaction_errors
from crossbook.bus.jetstream import JetStreamLog
from crossbook.cluster.boot import load_boot_snapshot, load_sharded_boot_snapshot
from crossbook.cluster.sharded_runtime import in_engine_order
from crossbook.cluster.sharded_view import ShardedView
from crossbook.cluster.topology import accounts_log, engine_log, orders_log
from crossbook.cluster.view import ExchangeView
from crossbook.domain.codec import command_decoder, command_encoder
from crossbook.domain.sharding import source_of
from crossbook.engine.sources import MultiSourceEngine
from crossbook.exchange.core import ExchangeConfig
from crossbook.exchange.split import AccountsMachine
from crossbook.journal.framing import COMMAND, EVENTS
from crossbook.marketdata import MarketData


async def _records(nc: NATS, name: str) -> list[tuple[int, int, bytes]]:
    log = await JetStreamLog.open(nc, name)
    try:
        return [r async for r in log.records()]
    finally:
        await log.close()


def _replay(
    name: str, records: list[tuple[int, int, bytes]], apply: Any, errors: list[str]
) -> list[int]:
    """Replay COMMAND records through ``apply`` and compare EVENTS; the command seqs."""
    seqs: list[int] = []
    last_events: bytes | None = None
    for kind, seq, payload in records:
        if kind == COMMAND:
            if seqs and seq <= seqs[-1]:
                errors.append(f"{name}: command seq {seq} after {seqs[-1]} (duplicate or reorder)")
            seqs.append(seq)
            last_events = command_encoder.encode(apply(command_decoder.decode(payload)))
        elif kind == EVENTS:
            if not seqs or seq != seqs[-1]:
                errors.append(f"{name}: events record {seq} without its command")
            elif payload != last_events:
                errors.append(f"{name}: seq {seq}: recorded events differ from the replay's")
    return seqs


async def verify_deployment(nc: NATS, config: ExchangeConfig) -> list[str]:
    """Everything that is wrong (empty: all checks hold). See the module doc."""
    return (await replay_deployment(nc, config))[0]


async def replay_deployment(
    nc: NATS, config: ExchangeConfig
) -> tuple[list[str], list[AccountsMachine]]:
    """What :func:`verify_deployment` finds, and each shard's accounts as replayed."""
    shards = config.accounts_shards
    errors: list[str] = []
    engines: dict[str, MultiSourceEngine] = {}
    complete: dict[str, bool] = {}  # per market: every forward of every shard ran
    orders: dict[tuple[str, int], list[int]] = {}
    engine_records: dict[str, list[tuple[int, int, bytes]]] = {}
    for market in config.markets:
        symbol = market.symbol
        engine = engines[symbol] = MultiSourceEngine([market], shards)
        ran: list[list[int]] = [[] for _ in range(shards)]

        def run(command: Any, engine: MultiSourceEngine = engine, ran: Any = ran) -> list[Any]:
            events = engine.run(command)
            if events is None:
                errors.append(f"{command.market}: the engine log holds command {command.seq} twice")
                return []
            ran[source_of(command.seq, shards)[0]].append(command.seq)
            return events

        name = engine_log(symbol)
        engine_records[symbol] = await _records(nc, name)
        positions = _replay(name, engine_records[symbol], run, errors)
        if positions != list(range(1, len(positions) + 1)):
            errors.append(f"{name}: positions are not 1..{len(positions)} (a gap or a repeat)")
        complete[symbol] = True
        for k in range(shards):
            forwarded = [seq for kind, seq, _ in await _records(nc, orders_log(symbol, k))
                         if kind == COMMAND]  # fmt: skip
            orders[(symbol, k)] = forwarded
            if ran[k] != forwarded[: len(ran[k])]:
                errors.append(
                    f"{symbol}: the engine ran other commands than {orders_log(symbol, k)} holds"
                )
            complete[symbol] &= len(ran[k]) == len(forwarded)

    machines: list[AccountsMachine] = []
    shard_records: list[list[tuple[int, int, bytes]]] = []
    for k in range(shards):
        machine = AccountsMachine(config, k)
        machines.append(machine)
        shard_records.append(await _records(nc, accounts_log(k)))
        errors += _shard_errors(config, machine, orders, shard_records[k])
    if shards == 1:
        errors += await _boot_snapshot_errors(nc, config, 0, shard_records[0])
    else:
        errors += await _sharded_boot_snapshot_errors(nc, config, shard_records, engine_records)
    settled = [
        s for s, done in complete.items()
        if done and all(m.engine_seqs[s] == engines[s].position for m in machines)
    ]  # fmt: skip
    books = [engines[s].engine.books[s] for s in settled]
    unsettled = [s for s in engines if s not in settled]
    accounts = [m.accounts for m in machines]
    errors += sharded_ledger_errors(accounts, books, unsettled=unsettled)
    return errors, machines


def _shard_errors(
    config: ExchangeConfig,
    machine: AccountsMachine,
    orders: dict[tuple[str, int], list[int]],
    records: list[tuple[int, int, bytes]],
) -> list[str]:
    """Replay one shard's log into ``machine``; what is wrong with the log."""
    errors: list[str] = []
    shard = machine.shard
    forwarded: dict[str, list[int]] = defaultdict(list)
    all_events: list[Any] = []

    def apply(command: Any) -> list[Any]:
        events, forward = machine.route(command)
        if forward is not None:
            forwarded[forward.market].append(forward.seq)
        all_events.extend(events)
        return events

    _replay(accounts_log(shard), records, apply, errors)
    errors += transaction_errors(all_events)
    for market in config.markets:
        symbol = market.symbol
        seqs = orders[(symbol, shard)]
        if forwarded[symbol] != seqs:
            errors.append(
                f"{symbol}: accounts-{shard} forwarded {len(forwarded[symbol])} commands, "
                f"{orders_log(symbol, shard)} holds {len(seqs)} (or others)"
            )
    return errors


async def _boot_snapshot_errors(
    nc: NATS, config: ExchangeConfig, shard: int, records: list[tuple[int, int, bytes]]
) -> list[str]:
    snap = await load_boot_snapshot(nc.jetstream(), shard)
    if snap is None:
        return []
    view, md = ExchangeView(config), MarketData(config.markets)
    for kind, seq, payload in records:
        if kind == COMMAND and seq <= snap.seq:
            md.apply(view.apply(command_decoder.decode(payload)))
    if view.last_seq != snap.seq:
        return [f"boot snapshot at seq {snap.seq}: the accounts log ends at {view.last_seq}"]
    errors = []
    if view.snapshot() != snap.view:
        errors.append(f"boot snapshot at seq {snap.seq}: its view differs from the replay's")
    if md.snapshot() != snap.marketdata:
        errors.append(f"boot snapshot at seq {snap.seq}: its market data differs from the replay's")
    return errors


async def _sharded_boot_snapshot_errors(
    nc: NATS,
    config: ExchangeConfig,
    shard_records: list[list[tuple[int, int, bytes]]],
    engine_records: dict[str, list[tuple[int, int, bytes]]],
) -> list[str]:
    snap = await load_sharded_boot_snapshot(nc.jetstream(), config.accounts_shards)
    if snap is None:
        return []
    view, md = ShardedView(config), MarketData(config.markets)
    decode = command_decoder.decode
    for k, records in enumerate(shard_records):
        for kind, seq, payload in records:
            if kind == COMMAND and seq <= snap.seqs[k]:
                view.apply_shard(k, decode(payload))
    for market, records in engine_records.items():
        for kind, position, payload in records:
            if kind == COMMAND and position <= snap.positions.get(market, 0):
                md.apply(in_engine_order(position, view.apply_engine(market, decode(payload))))
    reached = [m.last_seq for m in view.machines]
    positions = {s: e.position for s, e in view.engines.items()}
    if reached != snap.seqs or positions != snap.positions:
        return [f"boot snapshot at seqs {snap.seqs}, positions {snap.positions}: "
                f"the logs end at {reached}, {positions}"]  # fmt: skip
    errors = []
    if view.snapshot() != snap.view:
        errors.append(f"boot snapshot at seqs {snap.seqs}: its view differs from the replay's")
    if md.snapshot() != snap.marketdata:
        errors.append(
            f"boot snapshot at seqs {snap.seqs}: its market data differs from the replay's"
        )
    return errors
