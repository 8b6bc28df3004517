"""Cheaper projection writes: no foreign key on postings, no index on order status.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

- Drop the foreign key ``ledger_postings.tx_id -> ledger_transactions.tx_id``. The
  projection writer is the only writer of both tables and inserts a transaction's
  postings in the same database transaction as its ``ledger_transactions`` row, from the
  same ``TransactionPosted`` event, so the reference holds by construction. Checking it
  cost about a quarter of the writer's time on PostgreSQL (a trigger query per posting)
  and a primary-key probe per posting on SQLite.
- Drop ``ix_orders_status``. Nearly every change of an order changes its status, so the
  index took an entry per change, and it kept PostgreSQL from updating rows in place
  (HOT); the history queries find a user's orders through ``ix_orders_owner_market``.
- PostgreSQL: ``orders`` gets ``fillfactor = 70``: room on each page for the new version
  of a row, so that updates stay on the page and touch no index (HOT). Existing pages
  get that room as they are rewritten.

Existing rows are kept as they are (on SQLite ``ledger_postings`` is rebuilt without the
constraint, its index included).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_postings") as batch:
        batch.drop_constraint("fk_ledger_postings_tx_id", type_="foreignkey")
    op.drop_index("ix_orders_status", table_name="orders")
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE orders SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE orders RESET (fillfactor)")
    op.create_index("ix_orders_status", "orders", ["status"])
    with op.batch_alter_table("ledger_postings") as batch:
        batch.create_foreign_key(
            "fk_ledger_postings_tx_id", "ledger_transactions", ["tx_id"], ["tx_id"]
        )
