"""Checking a deployment's logs on JetStream (``crossbook verify --nats-url``).

Everything is re-derived from the logs alone, from the beginning:

- each ``engine-SYMBOL`` log replays into a fresh engine whose events equal the
  recorded ones byte for byte; its command seqs strictly increase (no gap is possible
  to see there, no duplicate is allowed) and are exactly those of ``orders-SYMBOL``
  up to the last one the engine ran;
- ``accounts-K`` replays into a fresh accounts machine with the same check, and its
  forwards are exactly what ``orders-SYMBOL`` holds;
- the ledger invariants of the replayed state: every transaction balances, every asset
  sums to zero, no user balance is negative; and, for markets whose every forwarded
  command is settled, holds equal what the engine's open orders can still spend;
- the gateways' boot snapshot (:mod:`crossbook.cluster.boot`), if there is one, equals
  the view and market data of a replay of ``accounts-K`` up to its seq.
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from nats.aio.client import Client as NATS

from crossbook.accounts.checks import ledger_errors, transaction_errors
from crossbook.bus.jetstream import JetStreamLog
from crossbook.cluster.boot import load_boot_snapshot
from crossbook.cluster.topology import accounts_log, engine_log, orders_log
from crossbook.cluster.view import ExchangeView
from crossbook.domain.codec import command_decoder, command_encoder
from crossbook.engine.matching import MatchingEngine
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


async def verify_deployment(nc: NATS, config: ExchangeConfig, *, shard: int = 0) -> list[str]:
    """Everything that is wrong (empty: all checks hold). See the module doc."""
    return (await replay_deployment(nc, config, shard=shard))[0]


async def replay_deployment(
    nc: NATS, config: ExchangeConfig, *, shard: int = 0
) -> tuple[list[str], AccountsMachine]:
    """What :func:`verify_deployment` finds, and the accounts as replayed."""
    errors: list[str] = []
    engines: dict[str, MatchingEngine] = {}
    engine_seqs: dict[str, list[int]] = {}
    orders: dict[str, list[int]] = {}
    for market in config.markets:
        symbol = market.symbol
        engine = engines[symbol] = MatchingEngine([market])
        engine_seqs[symbol] = _replay(
            engine_log(symbol), await _records(nc, engine_log(symbol)), engine.execute, errors
        )
        orders[symbol] = [seq for kind, seq, _ in await _records(nc, orders_log(symbol))
                          if kind == COMMAND]  # fmt: skip
        ran = engine_seqs[symbol]
        if ran != orders[symbol][: len(ran)]:
            errors.append(f"{symbol}: the engine ran other commands than orders-{symbol} holds")

    machine = AccountsMachine(config)
    forwarded: dict[str, list[int]] = defaultdict(list)
    all_events: list[Any] = []

    def apply(command: Any) -> list[Any]:
        events, forward = machine.route(command)
        if forward is not None:
            forwarded[forward.market].append(forward.seq)
        all_events.extend(events)
        return events

    records = await _records(nc, accounts_log(shard))
    _replay(accounts_log(shard), records, apply, errors)
    errors += await _boot_snapshot_errors(nc, config, shard, records)
    errors += transaction_errors(all_events)
    settled_markets = []
    for symbol, seqs in orders.items():
        if forwarded[symbol] != seqs:
            errors.append(
                f"{symbol}: accounts forwarded {len(forwarded[symbol])} commands, "
                f"orders-{symbol} holds {len(seqs)} (or others)"
            )
        if machine.engine_seqs.get(symbol, 0) == (seqs[-1] if seqs else 0):
            settled_markets.append(symbol)
    books = {s: engines[s].books[s] for s in settled_markets}
    view = SimpleNamespace(accounts=machine.accounts, engine=SimpleNamespace(books=books))
    for error in ledger_errors(view):  # type: ignore[arg-type]
        # a hold of a market still in flight is checked once it has settled
        if any(f"('{s}'," in error for s in config_symbols(config) if s not in books):
            continue
        errors.append(error)
    return errors, machine


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


def config_symbols(config: ExchangeConfig) -> list[str]:
    return [m.symbol for m in config.markets]
