"""SQL schema of users and API keys (SQLAlchemy Core), created by the ledger's migration
``0002`` (``crossbook/ledger/migrations/versions/0002_auth.py``).

The tables live on the ledger's :data:`crossbook.ledger.schema.metadata` (one database,
one migration chain, one naming convention), so ``metadata`` below *is* that object:
importing this module registers ``users`` and ``api_keys`` on it. The ledger's Alembic
``env.py`` imports this module, so its ``target_metadata`` (and any ``metadata`` used
after a migration ran) covers them.

Invariants:

- ``users.id`` is never reused (``AUTOINCREMENT`` on SQLite, a sequence on PostgreSQL):
  ledger rows keyed by a user id can never be inherited by a later account.
- ``users.email`` is stored trimmed and lower-case, unique.
- ``users.password_hash`` is an argon2id PHC string; never the password.
- ``api_keys.secret_encrypted`` is a :class:`crossbook.auth.crypto.SecretBox` blob bound
  to its ``api_key``; the plaintext secret is stored nowhere.
- A key row is never deleted: revocation sets ``revoked`` (ids stay unique forever).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
)

from crossbook.ledger.schema import metadata

USER_ID = BigInteger().with_variant(Integer(), "sqlite")
"""BIGINT on PostgreSQL; INTEGER on SQLite, where only that spelling aliases the rowid
(and so autoincrements)."""

EMAIL_MAX_LENGTH = 254
API_KEY_LENGTH = 64
LABEL_MAX_LENGTH = 64

users = Table(
    "users",
    metadata,
    Column("id", USER_ID, primary_key=True, autoincrement=True),
    Column("email", String(EMAIL_MAX_LENGTH), nullable=False, unique=True),
    Column("password_hash", String, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("disabled", Boolean, nullable=False),
    sqlite_autoincrement=True,
)
"""Accounts that log in with email and password."""

api_keys = Table(
    "api_keys",
    metadata,
    Column("api_key", String(API_KEY_LENGTH), primary_key=True),
    Column(
        "user_id",
        USER_ID,
        ForeignKey("users.id", name="fk_api_keys_user_id"),
        nullable=False,
    ),
    Column("secret_encrypted", LargeBinary, nullable=False),
    Column("can_read", Boolean, nullable=False),
    Column("can_trade", Boolean, nullable=False),
    Column("can_withdraw", Boolean, nullable=False),
    Column("label", String(LABEL_MAX_LENGTH), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("revoked", Boolean, nullable=False),
    Index("ix_api_keys_user_id", "user_id"),
)
"""HMAC API keys (Binance-style key + secret) and their permissions."""

__all__ = [
    "API_KEY_LENGTH",
    "EMAIL_MAX_LENGTH",
    "LABEL_MAX_LENGTH",
    "api_keys",
    "metadata",
    "users",
]
