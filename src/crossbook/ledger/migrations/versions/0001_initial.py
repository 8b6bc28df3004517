"""Initial ledger projection schema.

Revision ID: 0001
Revises:
Create Date: 2026-05-09

Amount columns are frozen here as ``NUMERIC(78,0)`` on PostgreSQL and ``VARCHAR(80)``
(canonical decimal strings) on SQLite, the storage of ``crossbook.ledger.schema.Amount``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


AMOUNT = sa.Numeric(78, 0).with_variant(sa.String(80), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ledger_transactions",
        sa.Column("tx_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("log", sa.String(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("ref", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("tx_id", name="pk_ledger_transactions"),
        sa.UniqueConstraint("log", "tx_id", name="uq_ledger_transactions_log_tx_id"),
    )
    op.create_table(
        "ledger_postings",
        sa.Column("tx_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("n", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("account", sa.String(), nullable=False),
        sa.Column("asset", sa.String(), nullable=False),
        sa.Column("amount", AMOUNT, nullable=False),
        sa.ForeignKeyConstraint(
            ["tx_id"], ["ledger_transactions.tx_id"], name="fk_ledger_postings_tx_id"
        ),
        sa.PrimaryKeyConstraint("tx_id", "n", name="pk_ledger_postings"),
    )
    op.create_index("ix_ledger_postings_account_asset", "ledger_postings", ["account", "asset"])
    op.create_table(
        "balances",
        sa.Column("account", sa.String(), nullable=False),
        sa.Column("asset", sa.String(), nullable=False),
        sa.Column("amount", AMOUNT, nullable=False),
        sa.PrimaryKeyConstraint("account", "asset", name="pk_balances"),
    )
    op.create_table(
        "orders",
        sa.Column("market", sa.String(), nullable=False),
        sa.Column("order_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("owner", sa.BigInteger(), nullable=False),
        sa.Column("client_order_id", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=True),
        sa.Column("type", sa.String(), nullable=True),
        sa.Column("time_in_force", sa.String(), nullable=True),
        sa.Column("price", AMOUNT, nullable=True),
        sa.Column("quantity", AMOUNT, nullable=True),
        sa.Column("quote_quantity", AMOUNT, nullable=True),
        sa.Column("stop_price", AMOUNT, nullable=True),
        sa.Column("display_quantity", AMOUNT, nullable=True),
        sa.Column("post_only", sa.Boolean(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("filled", AMOUNT, nullable=False),
        sa.Column("filled_quote_scaled", AMOUNT, nullable=False),
        sa.Column("leaves", AMOUNT, nullable=False),
        sa.Column("created_seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_ts", sa.BigInteger(), nullable=False),
        sa.Column("updated_ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("market", "order_id", name="pk_orders"),
    )
    op.create_index("ix_orders_owner_market", "orders", ["owner", "market"])
    op.create_index("ix_orders_status", "orders", ["status"])
    op.create_table(
        "trades",
        sa.Column("market", sa.String(), nullable=False),
        sa.Column("trade_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("price", AMOUNT, nullable=False),
        sa.Column("quantity", AMOUNT, nullable=False),
        sa.Column("taker_side", sa.String(), nullable=False),
        sa.Column("taker_order_id", sa.BigInteger(), nullable=False),
        sa.Column("taker_owner", sa.BigInteger(), nullable=False),
        sa.Column("maker_order_id", sa.BigInteger(), nullable=False),
        sa.Column("maker_owner", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("market", "trade_id", name="pk_trades"),
    )
    op.create_index("ix_trades_taker_owner", "trades", ["taker_owner"])
    op.create_index("ix_trades_maker_owner", "trades", ["maker_owner"])
    op.create_table(
        "projection_progress",
        sa.Column("log", sa.String(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("log", name="pk_projection_progress"),
    )


def downgrade() -> None:
    op.drop_table("projection_progress")
    op.drop_index("ix_trades_maker_owner", table_name="trades")
    op.drop_index("ix_trades_taker_owner", table_name="trades")
    op.drop_table("trades")
    op.drop_index("ix_orders_status", table_name="orders")
    op.drop_index("ix_orders_owner_market", table_name="orders")
    op.drop_table("orders")
    op.drop_table("balances")
    op.drop_index("ix_ledger_postings_account_asset", table_name="ledger_postings")
    op.drop_table("ledger_postings")
    op.drop_table("ledger_transactions")
