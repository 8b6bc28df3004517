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

from sqlalchemy import Engine, Select, func, select
from sqlalchemy.engine import URL

from crossbook.ledger.db import make_engine
from crossbook.ledger.schema import (
    OPEN_STATUSES,
    balances,
    ledger_postings,
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
