"""SQL schema of the ledger projection (SQLAlchemy Core).

Invariants:

- Money and sizes (prices, quantities, amounts) are exact integers of any size up to
  78 digits (:class:`Amount`): ``NUMERIC(78,0)`` on PostgreSQL, canonical decimal
  strings (``"-123"``) on SQLite, so they never become REAL. Sums over them happen in
  Python (or in ``NUMERIC`` on PostgreSQL), never in floating point.
- Every row is derived from one (log, seq) input; ``projection_progress`` holds the last
  applied seq per log, committed in the same transaction as the rows it covers.
- ``balances`` equals the sum of ``ledger_postings`` per (account, asset).

The Alembic migrations in ``crossbook/ledger/migrations`` create exactly this schema
(a test compares them).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Dialect,
    Index,
    MetaData,
    Numeric,
    String,
    Table,
    text,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

AMOUNT_DIGITS = 78
"""Largest magnitude stored: ``10**78 - 1`` (more than 2**256)."""
_AMOUNT_LIMIT = 10**AMOUNT_DIGITS


def check_amount(value: Any) -> int:
    """``value`` if it is an ``int`` of at most 78 digits; else ``TypeError``/``ValueError``
    (a float, bool or Decimal is never silently converted)."""
    if type(value) is not int:
        raise TypeError(f"amounts must be int, got {type(value).__name__}: {value!r}")
    if not -_AMOUNT_LIMIT < value < _AMOUNT_LIMIT:
        raise ValueError(f"amount exceeds {AMOUNT_DIGITS} digits: {value}")
    return value


def amount_binder(dialect_name: str) -> Callable[[Any], Any]:
    """The DB-API parameter for an amount (or ``None``) on a dialect: the checked ``int``,
    or on SQLite its canonical decimal string."""
    if dialect_name == "sqlite":
        return lambda v: None if v is None else str(check_amount(v))
    return lambda v: None if v is None else check_amount(v)


class Amount(TypeDecorator[int]):
    """An exact integer of up to 78 digits: ``NUMERIC(78,0)`` on PostgreSQL, a canonical
    decimal string on SQLite (text affinity: never REAL). Binds only ``int``; loads
    ``int``."""

    impl = Numeric(AMOUNT_DIGITS, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(AMOUNT_DIGITS + 2))
        return dialect.type_descriptor(Numeric(AMOUNT_DIGITS, 0, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        checked = check_amount(value)
        return str(checked) if dialect.name == "sqlite" else checked

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)


NAMING_CONVENTION = {
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
}
metadata = MetaData(naming_convention=NAMING_CONVENTION)

ledger_transactions = Table(
    "ledger_transactions",
    metadata,
    Column("tx_id", BigInteger, primary_key=True, autoincrement=False),
    Column("log", String, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("type", String, nullable=False),
    Column("ref", String, nullable=False),
    # no unique constraint on (log, tx_id) (dropped by migration 0004): the primary key
    # already makes tx_id unique, and nothing looks rows up by log
    # trade settlements by ref (fees of given trades); only trade rows (migration 0005)
    Index(
        "ix_ledger_transactions_trade_ref",
        "ref",
        postgresql_where=text("type = 'trade'"),
        sqlite_where=text("type = 'trade'"),
    ),
)
"""One row per ``TransactionPosted``; ``seq`` is the input seq of ``log`` that posted it."""

ledger_postings = Table(
    "ledger_postings",
    metadata,
    # no foreign key to ledger_transactions (dropped by migration 0003): the writer
    # inserts a transaction's postings with its row, from the same event
    Column("tx_id", BigInteger, primary_key=True, autoincrement=False),
    Column("n", BigInteger, primary_key=True, autoincrement=False),
    Column("account", String, nullable=False),
    Column("asset", String, nullable=False),
    Column("amount", Amount, nullable=False),
    # by account only (migration 0004; it was (account, asset)): the history queries
    # select an owner's accounts and at most filter them by asset, and a one-column key
    # is cheaper to maintain on every posting
    Index("ix_ledger_postings_account", "account"),
)
"""The postings of a transaction, ``n`` = 0, 1, ... in the order posted."""

balances = Table(
    "balances",
    metadata,
    Column("account", String, primary_key=True),
    Column("asset", String, primary_key=True),
    Column("amount", Amount, nullable=False),
)
"""Running sum of the postings per (account, asset); a row exists once posted to."""

orders = Table(
    "orders",
    metadata,
    Column("market", String, primary_key=True),
    Column("order_id", BigInteger, primary_key=True, autoincrement=False),
    Column("owner", BigInteger, nullable=False),
    Column("client_order_id", String, nullable=False),
    # NULL for rows created by OrderRejected (the event does not carry them):
    Column("side", String),
    Column("type", String),
    Column("time_in_force", String),
    Column("price", Amount),
    Column("quantity", Amount),
    Column("quote_quantity", Amount),
    Column("stop_price", Amount),
    Column("display_quantity", Amount),
    Column("post_only", Boolean),
    Column("status", String, nullable=False),
    Column("reason", String),
    Column("filled", Amount, nullable=False),
    Column("filled_quote_scaled", Amount, nullable=False),
    Column("leaves", Amount, nullable=False),
    Column("created_seq", BigInteger, nullable=False),
    Column("updated_seq", BigInteger, nullable=False),
    Column("created_ts", BigInteger, nullable=False),
    Column("updated_ts", BigInteger, nullable=False),
    Index("ix_orders_owner_market", "owner", "market"),
    # no index on status (dropped by migration 0003): nearly every change of an order
    # changes it, and it kept PostgreSQL from updating rows in place (HOT, for which
    # pages also keep room for a new version of their rows: fillfactor 70)
    postgresql_with={"fillfactor": "70"},
)
"""The latest state of each order (see :mod:`crossbook.ledger.writer` for the status
mapping). ``filled`` is in base minor units; ``filled_quote_scaled`` is
``sum(price * quantity)`` over the order's fills (exact; the quote amount in quote minor
units is ``filled_quote_scaled * 10**quote_scale / 10**(price_scale + base_scale)``);
``leaves`` is what is still open in the order's sizing unit, 0 once the order is closed.
"""

trades = Table(
    "trades",
    metadata,
    Column("market", String, primary_key=True),
    Column("trade_id", BigInteger, primary_key=True, autoincrement=False),
    Column("price", Amount, nullable=False),
    Column("quantity", Amount, nullable=False),
    Column("taker_side", String, nullable=False),
    Column("taker_order_id", BigInteger, nullable=False),
    Column("taker_owner", BigInteger, nullable=False),
    Column("maker_order_id", BigInteger, nullable=False),
    Column("maker_owner", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Index("ix_trades_taker_owner", "taker_owner"),
    Index("ix_trades_maker_owner", "maker_owner"),
)
"""One row per ``OrderFilled``, at the maker's price."""

projection_progress = Table(
    "projection_progress",
    metadata,
    Column("log", String, primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
)
"""The highest input seq of each log whose effects are in the tables above."""


class OrderStatus(StrEnum):
    """Values of ``orders.status`` (mapping from events: :mod:`crossbook.ledger.writer`)."""

    NEW = "new"
    TRIGGERED = "triggered"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REJECTED = "rejected"


OPEN_STATUSES: tuple[str, ...] = (
    OrderStatus.NEW,
    OrderStatus.TRIGGERED,
    OrderStatus.PARTIALLY_FILLED,
)
"""An order is open (resting or an untriggered stop) iff its status is one of these."""
