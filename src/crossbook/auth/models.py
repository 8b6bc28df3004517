"""Records returned by :class:`crossbook.auth.store.AuthStore` (immutable).

Invariant: no ``repr``/``str`` of these shows a secret or a password hash; the one
record that holds a secret (:class:`ApiKey`, :class:`NewApiKey`) hides it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, NamedTuple

API_KEY_RE: Final = re.compile(r"[A-Za-z0-9_-]{64}", re.ASCII)
"""Our API keys: 64 characters of the URL-safe base64 alphabet."""


def is_api_key_format(key: object) -> bool:
    """Whether ``key`` has the format of our API keys (64 URL-safe base64 characters)."""
    return isinstance(key, str) and API_KEY_RE.fullmatch(key) is not None


class Permission(StrEnum):
    """What an API key may do (Binance: USER_DATA / TRADE / withdrawals)."""

    READ = "read"
    TRADE = "trade"
    WITHDRAW = "withdraw"


@dataclass(frozen=True, slots=True)
class User:
    """A user account (without its password hash)."""

    id: int
    email: str
    created_ms: int
    disabled: bool


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """An API key as its owner may list it: everything but the secret."""

    api_key: str
    user_id: int
    can_read: bool
    can_trade: bool
    can_withdraw: bool
    label: str
    created_ms: int
    revoked: bool


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A usable (not revoked, owner not disabled) API key with its decrypted secret.

    ``secret`` is left out of ``repr``/``str``; pass it only to
    :mod:`crossbook.auth.signing`."""

    api_key: str
    user_id: int
    can_read: bool
    can_trade: bool
    can_withdraw: bool
    label: str
    created_ms: int
    secret: str = field(repr=False, compare=False)

    def allows(self, permission: Permission) -> bool:
        """Whether this key has ``permission``."""
        if permission is Permission.READ:
            return self.can_read
        if permission is Permission.TRADE:
            return self.can_trade
        return self.can_withdraw


class NewApiKey(NamedTuple):
    """``(api_key, secret)`` of a key just created: the only time the secret is shown.
    Unpacks like a tuple; its ``repr`` hides the secret."""

    api_key: str
    secret: str

    def __repr__(self) -> str:
        return f"NewApiKey(api_key={self.api_key!r}, secret=<hidden>)"

    def __str__(self) -> str:
        return self.__repr__()
