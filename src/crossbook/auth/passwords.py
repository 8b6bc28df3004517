"""Password policy and argon2id hashing (argon2-cffi's :class:`PasswordHasher`).

Invariants:

- A password is a ``str`` of 8..256 characters after Unicode NFKC normalization (NIST
  SP 800-63B: length rules only, normalized before hashing); the same normalization is
  applied when verifying, so a password typed in either composed or decomposed form
  matches.
- Hashes are PHC strings ``$argon2id$v=19$m=...,t=...,p=...$salt$hash`` (argon2-cffi's
  defaults: RFC 9106's low-memory profile, 64 MiB, t=3, p=4); parameters are read back
  from the hash, so old hashes keep verifying after the defaults change and
  :func:`needs_rehash` says when to upgrade them.
- Nothing here logs, stores or puts a password into an exception.
"""

from __future__ import annotations

import unicodedata
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from crossbook.auth.errors import WeakPasswordError

MIN_PASSWORD_LENGTH: Final = 8
MAX_PASSWORD_LENGTH: Final = 256

DEFAULT_HASHER: Final = PasswordHasher()
"""argon2id with argon2-cffi's recommended parameters."""


def normalize_password(password: str) -> str:
    """``password`` in NFKC form if it satisfies the policy, else :class:`WeakPasswordError`."""
    if not isinstance(password, str):
        raise WeakPasswordError("password must be a string")
    normalized = unicodedata.normalize("NFKC", password)
    if len(normalized) < MIN_PASSWORD_LENGTH:
        raise WeakPasswordError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(normalized) > MAX_PASSWORD_LENGTH:
        raise WeakPasswordError(f"password must have at most {MAX_PASSWORD_LENGTH} characters")
    return normalized


def hash_password(password: str, *, hasher: PasswordHasher = DEFAULT_HASHER) -> str:
    """The argon2id PHC hash of ``password`` (checked against the policy first)."""
    return hasher.hash(normalize_password(password))


def verify_password(
    password_hash: str, password: str, *, hasher: PasswordHasher = DEFAULT_HASHER
) -> bool:
    """Whether ``password`` matches ``password_hash``. ``False`` (never an exception) for a
    wrong, out-of-policy or non-string password and for a malformed hash."""
    if not isinstance(password, str) or not isinstance(password_hash, str):
        return False
    normalized = unicodedata.normalize("NFKC", password)
    if not MIN_PASSWORD_LENGTH <= len(normalized) <= MAX_PASSWORD_LENGTH:
        return False
    try:
        return hasher.verify(password_hash, normalized)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str, *, hasher: PasswordHasher = DEFAULT_HASHER) -> bool:
    """Whether ``password_hash`` was made with other parameters (or another argon2 type)
    than ``hasher``'s; rehash after the next successful verification."""
    try:
        return hasher.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True


_DUMMY_HASHES: dict[tuple[int, int, int, int, int, str], str] = {}


def burn_verification_time(password: str, *, hasher: PasswordHasher = DEFAULT_HASHER) -> None:
    """Spend about the time of one :func:`verify_password` with ``hasher`` and learn
    nothing: used when the account does not exist, so response times do not reveal
    which emails are registered."""
    key = (
        hasher.time_cost,
        hasher.memory_cost,
        hasher.parallelism,
        hasher.hash_len,
        hasher.salt_len,
        hasher.type.name,
    )
    dummy = _DUMMY_HASHES.get(key)
    if dummy is None:
        dummy = _DUMMY_HASHES.setdefault(key, hasher.hash("crossbook-dummy-password"))
    verify_password(dummy, password if isinstance(password, str) else "", hasher=hasher)
