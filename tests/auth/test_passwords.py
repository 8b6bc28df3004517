"""argon2id hashing, verification, the length policy and rehash detection."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from crossbook.auth.errors import WeakPasswordError
from crossbook.auth.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    burn_verification_time,
    hash_password,
    needs_rehash,
    verify_password,
)

CHEAP = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)


def test_default_hash_is_argon2id_and_verifies() -> None:
    h = hash_password("correct horse battery")
    assert h.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert "correct horse" not in h
    assert verify_password(h, "correct horse battery")
    assert not verify_password(h, "correct horse batterY")
    assert not needs_rehash(h)
    assert hash_password("correct horse battery") != h  # salted


def test_policy_bounds() -> None:
    for ok in ("x" * MIN_PASSWORD_LENGTH, "y" * MAX_PASSWORD_LENGTH):
        assert verify_password(hash_password(ok, hasher=CHEAP), ok, hasher=CHEAP)
    for bad in ("x" * (MIN_PASSWORD_LENGTH - 1), "y" * (MAX_PASSWORD_LENGTH + 1), ""):
        with pytest.raises(WeakPasswordError) as exc:
            hash_password(bad, hasher=CHEAP)
        assert bad not in str(exc.value) or bad == ""
    with pytest.raises(WeakPasswordError):
        hash_password(b"bytes-password", hasher=CHEAP)  # type: ignore[arg-type]


def test_secret_never_in_error() -> None:
    with pytest.raises(WeakPasswordError) as exc:
        hash_password("s3cr3t!", hasher=CHEAP)
    assert "s3cr3t" not in str(exc.value) and "s3cr3t" not in repr(exc.value)


def test_unicode_normalization() -> None:
    composed, decomposed = "p\u00e4ssw\u00f6rd-1", "pa\u0308sswo\u0308rd-1"
    h = hash_password(composed, hasher=CHEAP)
    assert verify_password(h, decomposed, hasher=CHEAP)


def test_verify_never_raises() -> None:
    h = hash_password("password-1", hasher=CHEAP)
    assert not verify_password("not a hash", "password-1", hasher=CHEAP)
    assert not verify_password(h, "short", hasher=CHEAP)
    assert not verify_password(h, None, hasher=CHEAP)  # type: ignore[arg-type]
    assert not verify_password(h[:-4] + "AAAA", "password-1", hasher=CHEAP)


def test_needs_rehash_when_parameters_change() -> None:
    old = hash_password("password-1", hasher=CHEAP)
    assert not needs_rehash(old, hasher=CHEAP)
    assert needs_rehash(old)  # the defaults are stronger
    assert verify_password(old, "password-1")  # parameters come from the hash
    argon2i = PasswordHasher(
        time_cost=1, memory_cost=64, parallelism=1, type=__import__("argon2").Type.I
    )
    assert needs_rehash(argon2i.hash("password-1"), hasher=CHEAP)
    assert needs_rehash("garbage", hasher=CHEAP)


def test_burn_verification_time_runs() -> None:
    burn_verification_time("whatever-123", hasher=CHEAP)
    burn_verification_time(None, hasher=CHEAP)  # type: ignore[arg-type]
