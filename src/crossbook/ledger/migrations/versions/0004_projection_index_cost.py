"""Fewer index entries per projected row: no unique (log, tx_id), postings by account only.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

- Drop the unique constraint ``uq_ledger_transactions_log_tx_id``. The primary key
  already makes ``tx_id`` unique (so every ``(log, tx_id)`` is), and no query looks
  transactions up by ``log``; its index cost every transaction a second index entry,
  on a text key.
- Replace ``ix_ledger_postings_account_asset`` by ``ix_ledger_postings_account`` on
  ``account`` alone. The history queries select an owner's accounts (and at most filter
  them by asset), which the one-column index serves; its entries are smaller and
  cheaper to insert, one per posting.

The primary key of ``ledger_postings`` stays: it is how a transaction's postings are
found (deposit and withdrawal history, trade fees), at any number of transactions per
query. Existing rows are kept as they are (on SQLite ``ledger_transactions`` is rebuilt
without the constraint).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_transactions") as batch:
        batch.drop_constraint("uq_ledger_transactions_log_tx_id", type_="unique")
    op.drop_index("ix_ledger_postings_account_asset", table_name="ledger_postings")
    op.create_index("ix_ledger_postings_account", "ledger_postings", ["account"])


def downgrade() -> None:
    op.drop_index("ix_ledger_postings_account", table_name="ledger_postings")
    op.create_index("ix_ledger_postings_account_asset", "ledger_postings", ["account", "asset"])
    with op.batch_alter_table("ledger_transactions") as batch:
        batch.create_unique_constraint("uq_ledger_transactions_log_tx_id", ["log", "tx_id"])
