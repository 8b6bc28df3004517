"""Trade settlements found by their ref: a partial index on ``ref`` of ``trade`` rows.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

The fees of a list of trades (``queries.trade_fees``: commissions in trade history) are
the ``fees`` postings of the transactions with ref ``trade:MARKET:ID``. Nothing indexed
``ref``, so each such query read every transaction. The index covers only the rows of
type ``trade`` (about a fifth of them: holds and releases are the most), which is what
that query asks for, so the projection pays for one small index entry per trade.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TRADES = "type = 'trade'"


def upgrade() -> None:
    op.create_index(
        "ix_ledger_transactions_trade_ref", "ledger_transactions", ["ref"],
        postgresql_where=sa.text(_TRADES), sqlite_where=sa.text(_TRADES),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_ledger_transactions_trade_ref", table_name="ledger_transactions")
