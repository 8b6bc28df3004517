"""Users and API keys in SQL (SQLAlchemy Core over SQLite or PostgreSQL).

The database must be migrated to a revision that has the auth tables (``0002`` or later)
before use: call :func:`crossbook.ledger.migrate` (the auth tables share the ledger's
migration chain) or pass ``auto_migrate=True``; otherwise the constructor raises
:class:`~crossbook.auth.errors.SchemaMissingError`.

Invariants:

- Passwords are stored only as argon2id hashes; a hash made with older parameters is
  upgraded on the next successful :meth:`AuthStore.authenticate`. Authentication of an
  unknown or disabled account spends the same hashing time as a real check.
- An API secret is stored only encrypted (:class:`~crossbook.auth.crypto.SecretBox`, bound
  to its key id) and returned in clear once, by :meth:`AuthStore.create_api_key`;
  afterwards only :meth:`AuthStore.api_key` (for request verification) decrypts it.
- Every operation on a key that names a user acts only on that user's keys: a user can
  neither list, revoke nor learn anything of another user's keys.
- :meth:`AuthStore.api_key` returns only keys that are not revoked and whose owner is not
  disabled. Decrypted records are cached in this process for ``cache_ttl`` seconds at
  most: a revocation or disabling through this store takes effect at once; one made by
  another process (another gateway) within ``cache_ttl`` (``0`` disables the cache).
- The engine hides bound parameters in its error messages, so no hash, ciphertext or
  email leaks through a database exception.
"""

from __future__ import annotations

import re
import secrets
import string
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from argon2 import PasswordHasher
from sqlalchemy import Engine, and_, inspect, select, update
from sqlalchemy.engine import URL, Row
from sqlalchemy.exc import IntegrityError

from crossbook.auth.crypto import SecretBox, load_master_key
from crossbook.auth.errors import (
    DuplicateEmailError,
    InvalidEmailError,
    SchemaMissingError,
    UnknownUserError,
)
from crossbook.auth.models import ApiKey, ApiKeyInfo, NewApiKey, User, is_api_key_format
from crossbook.auth.passwords import (
    DEFAULT_HASHER,
    burn_verification_time,
    hash_password,
    needs_rehash,
    normalize_password,
    verify_password,
)
from crossbook.auth.schema import API_KEY_LENGTH, EMAIL_MAX_LENGTH, LABEL_MAX_LENGTH
from crossbook.auth.schema import api_keys as t_keys
from crossbook.auth.schema import users as t_users
from crossbook.ledger.db import make_engine, migrate, normalize_url

API_KEY_ALPHABET: Final = string.ascii_letters + string.digits + "-_"
"""API keys: 64 characters of the URL-safe base64 alphabet (384 random bits)."""
SECRET_ALPHABET: Final = string.ascii_letters + string.digits
"""API secrets: 64 alphanumeric characters (about 381 random bits), like Binance's."""
SECRET_LENGTH: Final = 64

_EMAIL_RE: Final = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)

DEFAULT_CACHE_TTL: Final = 2.0
DEFAULT_CACHE_SIZE: Final = 10_000


def normalize_email(email: str) -> str:
    """``email`` trimmed and lower-cased, if it is an acceptable address (ASCII,
    ``local@domain.tld``, at most 254 characters); else :class:`InvalidEmailError`."""
    if not isinstance(email, str):
        raise InvalidEmailError("email must be a string")
    normalized = email.strip().lower()
    if len(normalized) > EMAIL_MAX_LENGTH or _EMAIL_RE.fullmatch(normalized) is None:
        raise InvalidEmailError("invalid email address")
    return normalized


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _random_string(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _sqlite_dir(url: str | URL) -> Path | None:
    u = normalize_url(url)
    db = u.database
    if u.get_backend_name() == "sqlite" and db and db != ":memory:" and not db.startswith("file:"):
        return Path(db).resolve().parent
    return None


class AuthStore:
    """Users (email + argon2id password) and their API keys, in the database at ``url``.

    ``master_key`` (32 bytes) encrypts API secrets; by default it comes from
    :func:`crossbook.auth.crypto.load_master_key` with ``data_dir``, which defaults to
    the directory of a SQLite database file (a PostgreSQL URL needs ``data_dir`` or
    ``$CROSSBOOK_MASTER_KEY``). ``password_hasher`` replaces the argon2id defaults
    (tests use cheap parameters). Thread-safe.
    """

    def __init__(
        self,
        url: str | URL,
        *,
        master_key: bytes | None = None,
        data_dir: str | Path | None = None,
        auto_migrate: bool = False,
        password_hasher: PasswordHasher = DEFAULT_HASHER,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        cache_size: int = DEFAULT_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = _wall_ms,
    ) -> None:
        if master_key is None:
            master_key = load_master_key(data_dir if data_dir is not None else _sqlite_dir(url))
        self._box = SecretBox(master_key)
        if auto_migrate:
            migrate(url)
        self.engine: Engine = make_engine(url, hide_parameters=True)
        try:
            names = set(inspect(self.engine).get_table_names())
        except BaseException:
            self.engine.dispose()
            raise
        if not {t_users.name, t_keys.name} <= names:
            self.engine.dispose()
            raise SchemaMissingError(
                "the auth tables are missing: run crossbook.ledger.migrate(url) first"
                " or pass auto_migrate=True"
            )
        self._hasher = password_hasher
        self._cache_ttl = cache_ttl
        self._cache_size = cache_size
        self._clock = clock
        self._wall_ms = wall_ms
        self._cache: OrderedDict[str, tuple[float, ApiKey]] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        url = self.engine.url.render_as_string(hide_password=True)
        return f"AuthStore({url!r})"

    def close(self) -> None:
        """Drop the cache (and the secrets in it) and close the engine's connections."""
        with self._lock:
            self._cache.clear()
        self.engine.dispose()

    def __enter__(self) -> AuthStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- users ---------------------------------------------------------------------

    def create_user(self, email: str, password: str) -> int:
        """Register a user; returns the new id. :class:`InvalidEmailError`,
        :class:`WeakPasswordError` (8..256 characters) or :class:`DuplicateEmailError`
        (emails are compared case-insensitively)."""
        address = normalize_email(email)
        normalize_password(password)  # policy errors before the (slow) hashing
        if self.user_by_email(address) is not None:
            raise DuplicateEmailError("a user with this email already exists")
        password_hash = hash_password(password, hasher=self._hasher)
        try:
            with self.engine.begin() as conn:
                result = conn.execute(
                    t_users.insert().values(
                        email=address,
                        password_hash=password_hash,
                        created_ms=self._wall_ms(),
                        disabled=False,
                    )
                )
                key = result.inserted_primary_key
        except IntegrityError:  # a concurrent registration of the same email
            raise DuplicateEmailError("a user with this email already exists") from None
        assert key is not None
        return int(key[0])

    def authenticate(self, email: str, password: str) -> int | None:
        """The id of the enabled user with this email and password, else ``None``
        (unknown email, wrong password, disabled user: indistinguishable, also in time).
        Upgrades the stored hash when it was made with other parameters."""
        try:
            address = normalize_email(email)
        except InvalidEmailError:
            burn_verification_time(password, hasher=self._hasher)
            return None
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t_users.c.id, t_users.c.password_hash, t_users.c.disabled).where(
                    t_users.c.email == address
                )
            ).first()
        if row is None:
            burn_verification_time(password, hasher=self._hasher)
            return None
        user_id, stored, disabled = int(row.id), str(row.password_hash), bool(row.disabled)
        if not verify_password(stored, password, hasher=self._hasher) or disabled:
            return None
        if needs_rehash(stored, hasher=self._hasher):
            fresh = hash_password(password, hasher=self._hasher)
            with self.engine.begin() as conn:  # only if nobody changed it meanwhile
                conn.execute(
                    update(t_users)
                    .where(and_(t_users.c.id == user_id, t_users.c.password_hash == stored))
                    .values(password_hash=fresh)
                )
        return user_id

    def user(self, user_id: int) -> User | None:
        """The user with this id, or ``None``."""
        return self._one_user(t_users.c.id == _check_id(user_id))

    def user_by_email(self, email: str) -> User | None:
        """The user with this email (any case), or ``None`` (also for an invalid address)."""
        try:
            address = normalize_email(email)
        except InvalidEmailError:
            return None
        return self._one_user(t_users.c.email == address)

    def set_user_disabled(self, user_id: int, disabled: bool) -> bool:
        """Disable (or re-enable) a user: a disabled user neither logs in nor uses API
        keys (cached ones are dropped at once). ``False`` if there is no such user."""
        if not isinstance(disabled, bool):
            raise TypeError("disabled must be a bool")
        with self.engine.begin() as conn:
            count = conn.execute(
                update(t_users).where(t_users.c.id == _check_id(user_id)).values(disabled=disabled)
            ).rowcount
        self._forget(lambda rec: rec.user_id == user_id)
        return count == 1

    def _one_user(self, condition: Any) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    t_users.c.id, t_users.c.email, t_users.c.created_ms, t_users.c.disabled
                ).where(condition)
            ).first()
        if row is None:
            return None
        return User(int(row.id), str(row.email), int(row.created_ms), bool(row.disabled))

    # -- API keys ------------------------------------------------------------------

    def create_api_key(
        self,
        user_id: int,
        *,
        read: bool = True,
        trade: bool = False,
        withdraw: bool = False,
        label: str = "",
    ) -> NewApiKey:
        """Create an API key for an enabled user; returns ``(api_key, secret)``. This is
        the only time the secret is revealed: store it now. :class:`UnknownUserError`
        if the user does not exist or is disabled."""
        for flag in (read, trade, withdraw):
            if not isinstance(flag, bool):
                raise TypeError("permissions must be bool")
        if not isinstance(label, str) or len(label) > LABEL_MAX_LENGTH:
            raise ValueError(f"label must be a string of at most {LABEL_MAX_LENGTH} characters")
        if not label.isprintable():
            raise ValueError("label must be printable")
        owner = self.user(user_id)
        if owner is None or owner.disabled:
            raise UnknownUserError("no such enabled user")
        key = _random_string(API_KEY_ALPHABET, API_KEY_LENGTH)
        secret = _random_string(SECRET_ALPHABET, SECRET_LENGTH)
        with self.engine.begin() as conn:
            conn.execute(
                t_keys.insert().values(
                    api_key=key,
                    user_id=owner.id,
                    secret_encrypted=self._box.encrypt(secret, key_id=key),
                    can_read=read,
                    can_trade=trade,
                    can_withdraw=withdraw,
                    label=label,
                    created_ms=self._wall_ms(),
                    revoked=False,
                )
            )
        return NewApiKey(key, secret)

    def api_key(self, key: str) -> ApiKey | None:
        """The usable key ``key`` with its decrypted secret; ``None`` if the format is
        wrong, the key is unknown or revoked, or its owner is disabled. Raises
        :class:`~crossbook.auth.crypto.DecryptionError` if the stored secret does not
        decrypt (wrong master key or tampered row): that is an operator's problem, not
        a client's."""
        if not is_api_key_format(key):
            return None
        now = self._clock()
        if self._cache_ttl > 0:
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None:
                    if now - hit[0] < self._cache_ttl:
                        self._cache.move_to_end(key)
                        return hit[1]
                    del self._cache[key]
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t_keys)
                .join(t_users, t_users.c.id == t_keys.c.user_id)
                .where(
                    t_keys.c.api_key == key,
                    t_keys.c.revoked.is_(False),
                    t_users.c.disabled.is_(False),
                )
            ).first()
        if row is None:
            return None
        record = ApiKey(
            api_key=str(row.api_key),
            user_id=int(row.user_id),
            can_read=bool(row.can_read),
            can_trade=bool(row.can_trade),
            can_withdraw=bool(row.can_withdraw),
            label=str(row.label),
            created_ms=int(row.created_ms),
            secret=self._box.decrypt(bytes(row.secret_encrypted), key_id=str(row.api_key)),
        )
        if self._cache_ttl > 0:
            with self._lock:
                self._cache[key] = (now, record)
                self._cache.move_to_end(key)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return record

    def list_api_keys(self, user_id: int) -> list[ApiKeyInfo]:
        """The keys of ``user_id`` (revoked ones too, flagged), oldest first; no secrets."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    t_keys.c.api_key,
                    t_keys.c.user_id,
                    t_keys.c.can_read,
                    t_keys.c.can_trade,
                    t_keys.c.can_withdraw,
                    t_keys.c.label,
                    t_keys.c.created_ms,
                    t_keys.c.revoked,
                )
                .where(t_keys.c.user_id == _check_id(user_id))
                .order_by(t_keys.c.created_ms, t_keys.c.api_key)
            ).all()
        return [_info(r) for r in rows]

    def revoke_api_key(self, user_id: int, key: str) -> bool:
        """Revoke ``key`` if it belongs to ``user_id`` and is not revoked yet. ``False``
        otherwise: another user's key and an unknown key look the same."""
        if not is_api_key_format(key):
            return False
        with self.engine.begin() as conn:
            count = conn.execute(
                update(t_keys)
                .where(
                    t_keys.c.api_key == key,
                    t_keys.c.user_id == _check_id(user_id),
                    t_keys.c.revoked.is_(False),
                )
                .values(revoked=True)
            ).rowcount
        self._forget(lambda rec: rec.api_key == key)  # also if another process revoked it
        return count == 1

    def _forget(self, match: Callable[[ApiKey], bool]) -> None:
        with self._lock:
            for k in [k for k, (_, rec) in self._cache.items() if match(rec)]:
                del self._cache[k]


def _check_id(user_id: int) -> int:
    if type(user_id) is not int:
        raise TypeError("user ids are int")
    return user_id


def _info(r: Row[Any, Any, Any, Any, Any, Any, Any, Any]) -> ApiKeyInfo:
    return ApiKeyInfo(
        api_key=str(r.api_key),
        user_id=int(r.user_id),
        can_read=bool(r.can_read),
        can_trade=bool(r.can_trade),
        can_withdraw=bool(r.can_withdraw),
        label=str(r.label),
        created_ms=int(r.created_ms),
        revoked=bool(r.revoked),
    )
