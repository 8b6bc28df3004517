"""AES-256-GCM encryption of API secrets and the master key's loading."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from crossbook.auth.crypto import (
    MASTER_KEY_ENV,
    MASTER_KEY_FILE,
    DecryptionError,
    MasterKeyError,
    SecretBox,
    generate_master_key,
    load_master_key,
)

SECRET = "Zq8Yk2mWb7x1P0aLrT4uVn9sHc3dJf6gEi5oKw0yBzAqCx7RtSe2MvNl8UpDh1Gj"
KEY_ID = "k" * 64


def test_round_trip_and_fresh_nonces() -> None:
    box = SecretBox(generate_master_key())
    a, b = box.encrypt(SECRET, key_id=KEY_ID), box.encrypt(SECRET, key_id=KEY_ID)
    assert a != b  # random nonce
    assert SECRET.encode() not in a
    assert len(a) == 1 + 12 + len(SECRET) + 16 and a[0] == 1
    assert box.decrypt(a, key_id=KEY_ID) == SECRET == box.decrypt(b, key_id=KEY_ID)


def test_wrong_master_key_fails() -> None:
    blob = SecretBox(generate_master_key()).encrypt(SECRET, key_id=KEY_ID)
    with pytest.raises(DecryptionError) as exc:
        SecretBox(generate_master_key()).decrypt(blob, key_id=KEY_ID)
    assert SECRET not in str(exc.value)


def test_wrong_key_id_fails() -> None:
    box = SecretBox(generate_master_key())
    blob = box.encrypt(SECRET, key_id=KEY_ID)
    with pytest.raises(DecryptionError):
        box.decrypt(blob, key_id="j" * 64)


@pytest.mark.parametrize("position", [0, 1, 12, 13, 40, -1])
def test_tampered_blob_fails(position: int) -> None:
    box = SecretBox(generate_master_key())
    blob = bytearray(box.encrypt(SECRET, key_id=KEY_ID))
    blob[position] ^= 0x01
    with pytest.raises(DecryptionError):
        box.decrypt(bytes(blob), key_id=KEY_ID)


def test_truncated_blob_fails() -> None:
    box = SecretBox(generate_master_key())
    blob = box.encrypt(SECRET, key_id=KEY_ID)
    for cut in (0, 5, 28, len(blob) - 1):
        with pytest.raises(DecryptionError):
            box.decrypt(blob[:cut], key_id=KEY_ID)


def test_box_repr_hides_key() -> None:
    key = generate_master_key()
    box = SecretBox(key)
    for text in (repr(box), str(box)):
        assert key.hex() not in text and base64.b64encode(key).decode() not in text
    with pytest.raises(MasterKeyError):
        SecretBox(b"short")


def test_key_file_created_private_and_stable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = load_master_key(data, environ={})
    path = data / MASTER_KEY_FILE
    assert len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_master_key(data, environ={}) == key
    assert [p.name for p in data.iterdir()] == [MASTER_KEY_FILE]  # no temp files left


def test_key_file_refused_if_readable_by_others(tmp_path: Path) -> None:
    load_master_key(tmp_path, environ={})
    os.chmod(tmp_path / MASTER_KEY_FILE, 0o644)
    with pytest.raises(MasterKeyError, match="chmod 600"):
        load_master_key(tmp_path, environ={})


def test_key_file_of_wrong_size_refused(tmp_path: Path) -> None:
    path = tmp_path / MASTER_KEY_FILE
    path.write_bytes(b"x" * 31)
    path.chmod(0o600)
    with pytest.raises(MasterKeyError, match="32 bytes"):
        load_master_key(tmp_path, environ={})


def test_env_key_wins(tmp_path: Path) -> None:
    key = generate_master_key()
    for encoded in (base64.b64encode(key).decode(), base64.urlsafe_b64encode(key).decode()):
        assert load_master_key(tmp_path, environ={MASTER_KEY_ENV: encoded}) == key
    assert not (tmp_path / MASTER_KEY_FILE).exists()
    assert load_master_key(None, environ={MASTER_KEY_ENV: base64.b64encode(key).decode()}) == key


def test_bad_env_key_refused_without_echo() -> None:
    for bad in ("not base64!!", base64.b64encode(b"x" * 31).decode()):
        with pytest.raises(MasterKeyError) as exc:
            load_master_key(None, environ={MASTER_KEY_ENV: bad})
        assert bad not in str(exc.value)
    with pytest.raises(MasterKeyError):
        load_master_key(None, environ={})


def test_os_environ_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = generate_master_key()
    monkeypatch.setenv(MASTER_KEY_ENV, base64.b64encode(key).decode())
    assert load_master_key(tmp_path) == key
    monkeypatch.delenv(MASTER_KEY_ENV)
    assert load_master_key(tmp_path) != key
