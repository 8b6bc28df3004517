"""Read helpers over the ledger projection (used by ``crossbook verify`` and history).

Every helper takes an :class:`~sqlalchemy.Engine` or a database URL. Amounts come back as
exact ``int``; sums are taken in Python (SQLite stores amounts as strings) or in
``NUMERIC`` (PostgreSQL), never in floating point.

What a healthy projection satisfies: :func:`asset_totals` is all zeros,
:func:`unbalanced_transactions` and :func:`balance_drift` are empty.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Select, func, select
from sqlalchemy.engine import URL

from crossbook.ledger.db import make_engine
from crossbook.ledger.schema import (
    OPEN_STATUSES,
    balances,
    ledger_postings,
    ledger_transactions,
    orders,
    projection_progress,
    trades,
)

Source = Engine | str | URL
"""An engine, or a URL to open (and close) for the call."""


@dataclass(frozen=True)
class OrderRow:
    """One row of ``orders`` (``None`` fields: a rejected order's unknown attributes)."""

    market: str
    order_id: int
    owner: int
    client_order_id: str
    side: str | None
    type: str | None
    time_in_force: str | None
    price: int | None
    quantity: int | None
    quote_quantity: int | None
    stop_price: int | None
    display_quantity: int | None
    post_only: bool | None
    status: str
    reason: str | None
    filled: int
    filled_quote_scaled: int
    leaves: int
    created_seq: int
    updated_seq: int
    created_ts: int
    updated_ts: int


@dataclass(frozen=True)
class TradeRow:
    """One row of ``trades``."""

    market: str
    trade_id: int
    price: int
    quantity: int
    taker_side: str
    taker_order_id: int
    taker_owner: int
    maker_order_id: int
    maker_owner: int
    seq: int
    ts: int


@contextmanager
def _engine(source: Source) -> Iterator[Engine]:
    if isinstance(source, Engine):
        yield source
        return
    engine = make_engine(source)
    try:
        yield engine
    finally:
        engine.dispose()


def all_balances(source: Source) -> dict[tuple[str, str], int]:
    """All balances: ``{(account, asset): amount}``."""
    with _engine(source) as engine, engine.connect() as conn:
        rows = conn.execute(select(balances.c.account, balances.c.asset, balances.c.amount))
        return {(account, asset): amount for account, asset, amount in rows}


def asset_totals(source: Source) -> dict[str, int]:
    """The sum of the balances of all accounts per asset (0 for every asset when the
    ledger is consistent)."""
    totals: dict[str, int] = {}
    for (_, asset), amount in all_balances(source).items():
        totals[asset] = totals.get(asset, 0) + amount
    return totals


def unbalanced_transactions(source: Source) -> dict[int, dict[str, int]]:
    """Transactions whose postings do not sum to zero per asset:
    ``{tx_id: {asset: non-zero sum}}`` (empty when every transaction balances)."""
    out: dict[int, dict[str, int]] = {}
    with _engine(source) as engine, engine.connect() as conn:
        p = ledger_postings.c
        if engine.dialect.name == "postgresql":
            total = func.sum(p.amount).label("total")
            query = (
                select(p.tx_id, p.asset, total)
                .group_by(p.tx_id, p.asset)
                .having(func.sum(p.amount) != 0)
                .order_by(p.tx_id, p.asset)
            )
            for tx_id, asset, amount in conn.execute(query):
                out.setdefault(tx_id, {})[asset] = int(amount)
            return out
        sums: dict[tuple[int, str], int] = {}
        result = conn.execution_options(yield_per=10_000).execute(
            select(p.tx_id, p.asset, p.amount)
        )
        for tx_id, asset, amount in result:
            key = (tx_id, asset)
            sums[key] = sums.get(key, 0) + amount
        for (tx_id, asset), amount in sorted(sums.items()):
            if amount != 0:
                out.setdefault(tx_id, {})[asset] = amount
        return out


def posting_totals(source: Source) -> dict[tuple[str, str], int]:
    """The sum of all postings per ``(account, asset)`` (what ``balances`` must equal)."""
    totals: dict[tuple[str, str], int] = {}
    with _engine(source) as engine, engine.connect() as conn:
        p = ledger_postings.c
        result = conn.execution_options(yield_per=10_000).execute(
            select(p.account, p.asset, p.amount)
        )
        for account, asset, amount in result:
            key = (account, asset)
            totals[key] = totals.get(key, 0) + amount
    return totals


def balance_drift(source: Source) -> dict[tuple[str, str], tuple[int, int]]:
    """Keys where ``balances`` differs from the sum of postings:
    ``{(account, asset): (balance, sum of postings)}`` (empty when consistent)."""
    stored = all_balances(source)
    posted = posting_totals(source)
    return {
        key: (stored.get(key, 0), posted.get(key, 0))
        for key in sorted(stored.keys() | posted.keys())
        if stored.get(key, 0) != posted.get(key, 0)
    }


def progress(source: Source) -> dict[str, int]:
    """The last applied input seq per log: ``{log: last_seq}``."""
    with _engine(source) as engine, engine.connect() as conn:
        rows = conn.execute(select(projection_progress.c.log, projection_progress.c.last_seq))
        return {log: int(seq) for log, seq in rows}


def _orders(query: Select[tuple[object, ...]], source: Source) -> list[OrderRow]:
    with _engine(source) as engine, engine.connect() as conn:
        return [OrderRow(**row._mapping) for row in conn.execute(query)]


def open_orders(
    source: Source, *, market: str | None = None, owner: int | None = None
) -> list[OrderRow]:
    """Orders still open (status new, triggered or partially_filled), optionally of one
    market and/or owner, by (market, order_id)."""
    query = select(orders).where(orders.c.status.in_(OPEN_STATUSES))
    if market is not None:
        query = query.where(orders.c.market == market)
    if owner is not None:
        query = query.where(orders.c.owner == owner)
    return _orders(query.order_by(orders.c.market, orders.c.order_id), source)


def get_order(source: Source, market: str, order_id: int) -> OrderRow | None:
    """The row of one order, or ``None``."""
    query = select(orders).where(orders.c.market == market, orders.c.order_id == order_id)
    found = _orders(query, source)
    return found[0] if found else None


def list_trades(source: Source, *, market: str | None = None) -> list[TradeRow]:
    """Trades, by (market, trade_id), optionally of one market."""
    query = select(trades)
    if market is not None:
        query = query.where(trades.c.market == market)
    with _engine(source) as engine, engine.connect() as conn:
        rows = conn.execute(query.order_by(trades.c.market, trades.c.trade_id))
        return [TradeRow(**row._mapping) for row in rows]


def orders_of(
    source: Source,
    owner: int,
    *,
    market: str | None = None,
    from_id: int | None = None,
    start_ts: int | None = None,
    end_ts: int | None = None,
    limit: int = 500,
) -> list[OrderRow]:
    """One owner's orders (any status), oldest first, at most ``limit``."""
    query = select(orders).where(orders.c.owner == owner)
    if market is not None:
        query = query.where(orders.c.market == market)
    if from_id is not None:
        query = query.where(orders.c.order_id >= from_id)
    if start_ts is not None:
        query = query.where(orders.c.created_ts >= start_ts)
    if end_ts is not None:
        query = query.where(orders.c.created_ts <= end_ts)
    if from_id is None and start_ts is None:
        newest = _orders(query.order_by(orders.c.order_id.desc()).limit(limit), source)
        return newest[::-1]
    return _orders(query.order_by(orders.c.order_id).limit(limit), source)


def order_by_client_id(
    source: Source, market: str, owner: int, client_order_id: str
) -> OrderRow | None:
    """The newest order of ``owner`` in ``market`` with that client order id."""
    query = (
        select(orders)
        .where(
            orders.c.market == market,
            orders.c.owner == owner,
            orders.c.client_order_id == client_order_id,
        )
        .order_by(orders.c.order_id.desc())
        .limit(1)
    )
    found = _orders(query, source)
    return found[0] if found else None


def trades_of(
    source: Source,
    owner: int,
    *,
    market: str | None = None,
    order_id: int | None = None,
    from_id: int | None = None,
    start_ts: int | None = None,
    end_ts: int | None = None,
    limit: int = 500,
) -> list[TradeRow]:
    """Trades in which ``owner`` was maker or taker, oldest first, at most ``limit``."""
    query = select(trades).where((trades.c.taker_owner == owner) | (trades.c.maker_owner == owner))
    if market is not None:
        query = query.where(trades.c.market == market)
    if order_id is not None:
        query = query.where(
            (trades.c.taker_order_id == order_id) | (trades.c.maker_order_id == order_id)
        )
    if from_id is not None:
        query = query.where(trades.c.trade_id >= from_id)
    if start_ts is not None:
        query = query.where(trades.c.ts >= start_ts)
    if end_ts is not None:
        query = query.where(trades.c.ts <= end_ts)
    ordered_newest = from_id is None and start_ts is None
    query = query.order_by(trades.c.trade_id.desc() if ordered_newest else trades.c.trade_id).limit(
        limit
    )
    with _engine(source) as engine, engine.connect() as conn:
        rows = [TradeRow(**row._mapping) for row in conn.execute(query)]
    return rows[::-1] if ordered_newest else rows


def trade_settlements_query(refs: list[str]) -> Select[Any]:
    """``(tx_id, ref)`` of the trade settlements with these refs, through the partial
    index on trade refs (never by reading every transaction)."""
    tx = ledger_transactions.c
    return select(tx.tx_id, tx.ref).where(tx.type == "trade", tx.ref.in_(refs))


def trade_fees(source: Source, market: str, trade_ids: list[int]) -> dict[int, dict[str, int]]:
    """Fees charged on the given trades: ``{trade_id: {asset: amount}}`` (the buyer's fee
    is in the base asset, the seller's in the quote asset)."""
    if not trade_ids:
        return {}
    refs = {f"trade:{market}:{t}": t for t in trade_ids}
    p = ledger_postings.c
    out: dict[int, dict[str, int]] = {}
    with _engine(source) as engine, engine.connect() as conn:
        trade_of = {
            tx_id: refs[ref] for tx_id, ref in conn.execute(trade_settlements_query(list(refs)))
        }
        if not trade_of:
            return {}
        fees = select(p.tx_id, p.asset, p.amount).where(
            p.tx_id.in_(list(trade_of)), p.account == "fees"
        )  # by the postings' primary key
        for tx_id, asset, amount in conn.execute(fees):
            per = out.setdefault(trade_of[tx_id], {})
            per[asset] = per.get(asset, 0) + amount
    return out


@dataclass(frozen=True)
class PostingRow:
    tx_id: int
    type: str
    ref: str
    ts: int
    account: str
    asset: str
    amount: int


def postings_of(source: Source, user: int, *, limit: int = 100) -> list[PostingRow]:
    """A user's ledger postings (available and held accounts), newest first."""
    p, tx = ledger_postings.c, ledger_transactions.c
    accounts = [f"user:{user}:available", f"user:{user}:held"]
    query = (
        select(p.tx_id, tx.type, tx.ref, tx.ts, p.account, p.asset, p.amount)
        .select_from(ledger_postings.join(ledger_transactions, p.tx_id == tx.tx_id))
        .where(p.account.in_(accounts))
        .order_by(p.tx_id.desc(), p.n)
        .limit(limit)
    )
    with _engine(source) as engine, engine.connect() as conn:
        return [PostingRow(*row) for row in conn.execute(query)]


@dataclass(frozen=True)
class TransferRow:
    """One ledger transaction of a deposit or withdrawal with all its postings
    (``(account, asset, amount)``, in posting order)."""

    tx_id: int
    type: str
    ref: str
    ts: int
    postings: tuple[tuple[str, str, int], ...]


def transfers_of(
    source: Source,
    user: int,
    types: tuple[str, ...],
    *,
    asset: str | None = None,
    refs: list[str] | None = None,
    start_ts: int | None = None,
    end_ts: int | None = None,
    limit: int = 1000,
) -> list[TransferRow]:
    """The newest ``limit`` transactions of the given ``types`` (e.g. ``deposit``,
    ``withdrawal_hold``) that post to one of ``user``'s accounts, newest first;
    optionally only those in ``asset``, or with one of ``refs``."""
    p, tx = ledger_postings.c, ledger_transactions.c
    accounts = [f"user:{user}:available", f"user:{user}:held"]
    own_query = select(p.tx_id).where(p.account.in_(accounts))
    if asset is not None:
        own_query = own_query.where(p.asset == asset)
    own = own_query.distinct().scalar_subquery()
    query = select(tx.tx_id, tx.type, tx.ref, tx.ts).where(
        tx.tx_id.in_(own), tx.type.in_(list(types))
    )
    if refs is not None:
        if not refs:
            return []
        query = query.where(tx.ref.in_(refs))
    if start_ts is not None:
        query = query.where(tx.ts >= start_ts)
    if end_ts is not None:
        query = query.where(tx.ts <= end_ts)
    query = query.order_by(tx.tx_id.desc()).limit(limit)
    with _engine(source) as engine, engine.connect() as conn:
        heads = list(conn.execute(query))
        if not heads:
            return []
        postings: dict[int, list[tuple[str, str, int]]] = {}
        rows = conn.execute(
            select(p.tx_id, p.account, p.asset, p.amount)
            .where(p.tx_id.in_([h.tx_id for h in heads]))
            .order_by(p.tx_id, p.n)
        )
        for tx_id, account, code, amount in rows:
            postings.setdefault(tx_id, []).append((account, code, amount))
    return [
        TransferRow(h.tx_id, h.type, h.ref, h.ts, tuple(postings.get(h.tx_id, ()))) for h in heads
    ]
