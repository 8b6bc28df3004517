"""Authentication: users with argon2id passwords, HMAC API keys with secrets encrypted at
rest, and Binance-compatible request signatures.

- :mod:`~crossbook.auth.passwords`: password policy (8..256 characters), hashing, rehash.
- :mod:`~crossbook.auth.crypto`: the master key and AES-256-GCM encryption of secrets.
- :mod:`~crossbook.auth.schema`: the ``users`` and ``api_keys`` tables (ledger migration 0002).
- :mod:`~crossbook.auth.store`: :class:`AuthStore`, users and keys in SQL.
- :mod:`~crossbook.auth.signing`: REST and WebSocket API signature checks, Binance errors.

Secrets (passwords, API secrets, the master key) never appear in logs, reprs or errors.
"""

from __future__ import annotations

from crossbook.auth.crypto import (
    DecryptionError,
    MasterKeyError,
    SecretBox,
    generate_master_key,
    load_master_key,
)
from crossbook.auth.errors import (
    ApiError,
    AuthStoreError,
    DuplicateEmailError,
    InvalidEmailError,
    SchemaMissingError,
    UnknownUserError,
    WeakPasswordError,
)
from crossbook.auth.models import (
    ApiKey,
    ApiKeyInfo,
    NewApiKey,
    Permission,
    User,
    is_api_key_format,
)
from crossbook.auth.passwords import hash_password, needs_rehash, verify_password
from crossbook.auth.signing import (
    SignedParams,
    authenticate_request,
    authenticate_ws_api_params,
    check_api_key_format,
    sign,
    verify_signed_request,
    verify_ws_api_params,
)
from crossbook.auth.store import AuthStore

__all__ = [
    "ApiError",
    "ApiKey",
    "ApiKeyInfo",
    "AuthStore",
    "AuthStoreError",
    "DecryptionError",
    "DuplicateEmailError",
    "InvalidEmailError",
    "MasterKeyError",
    "NewApiKey",
    "Permission",
    "SchemaMissingError",
    "SecretBox",
    "SignedParams",
    "UnknownUserError",
    "User",
    "WeakPasswordError",
    "authenticate_request",
    "authenticate_ws_api_params",
    "check_api_key_format",
    "generate_master_key",
    "hash_password",
    "is_api_key_format",
    "load_master_key",
    "needs_rehash",
    "sign",
    "verify_password",
    "verify_signed_request",
    "verify_ws_api_params",
]
