"""Alembic migrations of the ledger projection (run them with ``crossbook.ledger.migrate``)."""
