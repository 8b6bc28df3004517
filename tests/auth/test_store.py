"""AuthStore on SQLite and on the private PostgreSQL: users, passwords, API keys,
ownership, revocation and the cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from crossbook.auth import (
    ApiKey,
    AuthStore,
    DecryptionError,
    DuplicateEmailError,
    InvalidEmailError,
    Permission,
    SchemaMissingError,
    UnknownUserError,
    WeakPasswordError,
    generate_master_key,
    is_api_key_format,
)
from crossbook.auth.crypto import MASTER_KEY_FILE
from crossbook.auth.schema import api_keys, users
from crossbook.ledger import migrate

PASSWORD = "hunter2-but-longer"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(db_url: str, fast_hasher: PasswordHasher, clock: Clock) -> Iterator[AuthStore]:
    migrate(db_url)
    s = AuthStore(
        db_url,
        master_key=generate_master_key(),
        password_hasher=fast_hasher,
        clock=clock,
        wall_ms=lambda: 1_700_000_000_000,
    )
    try:
        yield s
    finally:
        s.close()


def test_create_and_authenticate(store: AuthStore) -> None:
    uid = store.create_user("  Alice@Example.COM ", PASSWORD)
    assert isinstance(uid, int) and uid > 0
    u = store.user(uid)
    assert u is not None
    assert (u.email, u.created_ms, u.disabled) == ("alice@example.com", 1_700_000_000_000, False)
    assert store.user_by_email("ALICE@example.com") == u
    assert store.user_by_email("bob@example.com") is None
    assert store.user_by_email("not an email") is None
    assert store.user(uid + 1000) is None
    assert store.authenticate("alice@EXAMPLE.com", PASSWORD) == uid
    assert store.authenticate("alice@example.com", PASSWORD + "x") is None
    assert store.authenticate("nobody@example.com", PASSWORD) is None
    assert store.authenticate("garbage", PASSWORD) is None
    assert PASSWORD not in repr(u) and "argon2" not in repr(u)


def test_user_errors(store: AuthStore) -> None:
    store.create_user("alice@example.com", PASSWORD)
    with pytest.raises(DuplicateEmailError):
        store.create_user("ALICE@example.com", "another-password")
    for bad in ("", "alice", "a@b", "a b@example.com", "x@" + "y" * 250 + ".com", "a@@b.com"):
        with pytest.raises(InvalidEmailError):
            store.create_user(bad, PASSWORD)
    for weak in ("short", "x" * 257):
        with pytest.raises(WeakPasswordError) as exc:
            store.create_user("bob@example.com", weak)
        assert weak not in str(exc.value)
    assert store.user_by_email("bob@example.com") is None


def test_ids_increase(store: AuthStore) -> None:
    ids = [store.create_user(f"u{i}@example.com", PASSWORD) for i in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_password_hash_stored_not_password(store: AuthStore) -> None:
    uid = store.create_user("alice@example.com", PASSWORD)
    with store.engine.connect() as conn:
        stored = conn.execute(select(users.c.password_hash).where(users.c.id == uid)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_rehash_on_login(db_url: str, fast_hasher: PasswordHasher) -> None:
    migrate(db_url)
    key = generate_master_key()
    with AuthStore(db_url, master_key=key, password_hasher=fast_hasher) as weak:
        uid = weak.create_user("alice@example.com", PASSWORD)
    stronger = PasswordHasher(time_cost=2, memory_cost=128, parallelism=1)
    with AuthStore(db_url, master_key=key, password_hasher=stronger) as strong:
        assert strong.authenticate("alice@example.com", PASSWORD) == uid
        with strong.engine.connect() as conn:
            h = conn.execute(select(users.c.password_hash)).scalar_one()
        assert "m=128,t=2,p=1" in h
        assert strong.authenticate("alice@example.com", PASSWORD) == uid


def test_disabled_user(store: AuthStore) -> None:
    uid = store.create_user("alice@example.com", PASSWORD)
    key, _ = store.create_api_key(uid)
    assert store.api_key(key) is not None
    assert store.set_user_disabled(uid, True)
    assert store.authenticate("alice@example.com", PASSWORD) is None
    assert store.api_key(key) is None  # cached record dropped at once
    with pytest.raises(UnknownUserError):
        store.create_api_key(uid)
    assert store.set_user_disabled(uid, False)
    assert store.api_key(key) is not None
    assert not store.set_user_disabled(uid + 99, True)


def test_api_key_life_cycle(store: AuthStore) -> None:
    uid = store.create_user("alice@example.com", PASSWORD)
    created = store.create_api_key(uid, trade=True, label="bot")
    key, secret = created
    assert is_api_key_format(key) and len(key) == 64
    assert len(secret) == 64 and secret.isalnum()
    assert secret not in repr(created) and secret not in str(created)
    record = store.api_key(key)
    assert isinstance(record, ApiKey)
    assert (record.user_id, record.secret, record.label) == (uid, secret, "bot")
    assert record.allows(Permission.READ) and record.allows(Permission.TRADE)
    assert not record.allows(Permission.WITHDRAW)
    assert secret not in repr(record) and secret not in str(record)
    [info] = store.list_api_keys(uid)
    assert (info.api_key, info.can_trade, info.can_withdraw, info.revoked) == (
        key,
        True,
        False,
        False,
    )
    assert secret not in repr(info) and not hasattr(info, "secret")
    assert store.revoke_api_key(uid, key)
    assert not store.revoke_api_key(uid, key)  # already revoked
    assert store.api_key(key) is None
    assert store.list_api_keys(uid)[0].revoked


def test_secret_stored_encrypted(store: AuthStore) -> None:
    uid = store.create_user("alice@example.com", PASSWORD)
    _, secret = store.create_api_key(uid)
    with store.engine.connect() as conn:
        blob = conn.execute(select(api_keys.c.secret_encrypted)).scalar_one()
    assert secret.encode() not in bytes(blob)


def test_keys_are_private_to_their_owner(store: AuthStore) -> None:
    alice = store.create_user("alice@example.com", PASSWORD)
    bob = store.create_user("bob@example.com", PASSWORD)
    a_key, _ = store.create_api_key(alice)
    b_key, _ = store.create_api_key(bob, withdraw=True)
    assert [k.api_key for k in store.list_api_keys(alice)] == [a_key]
    assert [k.api_key for k in store.list_api_keys(bob)] == [b_key]
    assert not store.revoke_api_key(bob, a_key)  # not bob's
    assert store.api_key(a_key) is not None
    assert not store.revoke_api_key(alice, "x" * 64)
    assert not store.revoke_api_key(alice, "bad format")
    assert store.list_api_keys(alice + bob + 100) == []
    with pytest.raises(UnknownUserError):
        store.create_api_key(alice + bob + 100)


def test_api_key_lookup_rejects_garbage(store: AuthStore) -> None:
    assert store.api_key("") is None
    assert store.api_key("a" * 63) is None
    assert store.api_key("a" * 64) is None
    assert store.api_key("a" * 63 + "!") is None
    assert store.api_key(None) is None  # type: ignore[arg-type]


def test_create_api_key_validates_arguments(store: AuthStore) -> None:
    uid = store.create_user("alice@example.com", PASSWORD)
    with pytest.raises(TypeError):
        store.create_api_key(uid, trade=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        store.create_api_key(uid, label="x" * 65)
    with pytest.raises(ValueError):
        store.create_api_key(uid, label="bad\nlabel")
    with pytest.raises(TypeError):
        store.user(True)


def test_cache_and_revocation_by_another_process(
    db_url: str, fast_hasher: PasswordHasher, clock: Clock
) -> None:
    migrate(db_url)
    key = generate_master_key()
    a = AuthStore(db_url, master_key=key, password_hasher=fast_hasher, clock=clock, cache_ttl=2.0)
    b = AuthStore(db_url, master_key=key, password_hasher=fast_hasher, clock=clock, cache_ttl=2.0)
    try:
        uid = a.create_user("alice@example.com", PASSWORD)
        k, _ = a.create_api_key(uid)
        assert a.api_key(k) is not None and b.api_key(k) is not None  # both cache it
        assert a.revoke_api_key(uid, k)
        assert a.api_key(k) is None  # at once in the revoking process
        assert b.api_key(k) is not None  # the other one: until its cache entry expires
        clock.now += 2.0
        assert b.api_key(k) is None
    finally:
        a.close()
        b.close()


def test_cache_disabled_sees_revocation_at_once(db_url: str, fast_hasher: PasswordHasher) -> None:
    migrate(db_url)
    key = generate_master_key()
    a = AuthStore(db_url, master_key=key, password_hasher=fast_hasher, cache_ttl=0)
    b = AuthStore(db_url, master_key=key, password_hasher=fast_hasher, cache_ttl=0)
    try:
        uid = a.create_user("alice@example.com", PASSWORD)
        k, _ = a.create_api_key(uid)
        assert b.api_key(k) is not None
        a.revoke_api_key(uid, k)
        assert b.api_key(k) is None
    finally:
        a.close()
        b.close()


def test_cache_is_bounded(db_url: str, fast_hasher: PasswordHasher) -> None:
    migrate(db_url)
    with AuthStore(
        db_url, master_key=generate_master_key(), password_hasher=fast_hasher, cache_size=2
    ) as s:
        uid = s.create_user("alice@example.com", PASSWORD)
        keys = [s.create_api_key(uid)[0] for _ in range(4)]
        for k in keys:
            assert s.api_key(k) is not None
        assert len(s._cache) == 2


def test_wrong_master_key_or_moved_secret_fails_loudly(
    db_url: str, fast_hasher: PasswordHasher
) -> None:
    migrate(db_url)
    with AuthStore(db_url, master_key=generate_master_key(), password_hasher=fast_hasher) as s:
        uid = s.create_user("alice@example.com", PASSWORD)
        k1, s1 = s.create_api_key(uid)
        k2, _ = s.create_api_key(uid)
        with s.engine.begin() as conn:  # copy key 1's ciphertext onto key 2
            blob = conn.execute(
                select(api_keys.c.secret_encrypted).where(api_keys.c.api_key == k1)
            ).scalar_one()
            conn.execute(
                update(api_keys).where(api_keys.c.api_key == k2).values(secret_encrypted=blob)
            )
        with pytest.raises(DecryptionError) as exc:
            s.api_key(k2)
        assert s1 not in str(exc.value)
    other_key = generate_master_key()
    with (
        AuthStore(db_url, master_key=other_key, password_hasher=fast_hasher) as s,
        pytest.raises(DecryptionError),
    ):
        s.api_key(k1)


def test_requires_migrated_schema(db_url: str) -> None:
    with pytest.raises(SchemaMissingError, match="migrate"):
        AuthStore(db_url, master_key=generate_master_key())
    with AuthStore(db_url, master_key=generate_master_key(), auto_migrate=True) as s:
        assert s.list_api_keys(1) == []


def test_master_key_file_beside_sqlite_db(
    tmp_path: Path, fast_hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CROSSBOOK_MASTER_KEY", raising=False)
    url = f"sqlite:///{tmp_path / 'data' / 'ledger.db'}"
    with AuthStore(url, auto_migrate=True, password_hasher=fast_hasher) as s:
        uid = s.create_user("alice@example.com", PASSWORD)
        k, secret = s.create_api_key(uid)
        assert repr(s).startswith("AuthStore(")
    assert (tmp_path / "data" / MASTER_KEY_FILE).exists()
    with AuthStore(url, password_hasher=fast_hasher) as s:  # same key file, same secret
        record = s.api_key(k)
        assert record is not None and record.secret == secret


def test_database_errors_hide_parameters(store: AuthStore) -> None:
    uid = store.create_user("alice@example.com", PASSWORD)
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError) as exc, store.engine.begin() as conn:
        conn.execute(
            users.insert().values(
                id=uid,
                email="x@example.com",
                password_hash="$argon2id$SENSITIVE",
                created_ms=0,
                disabled=False,
            )
        )
    assert "SENSITIVE" not in str(exc.value)
