"""Encryption of API secrets at rest: AES-256-GCM under a key derived from the master key.

Invariants:

- The master key is 32 bytes: ``$CROSSBOOK_MASTER_KEY`` (base64, standard or URL-safe
  alphabet) if set, else ``<data_dir>/master.key`` (32 raw bytes), created on first use
  with mode 0600 and refused if group or others may read it. It never leaves memory
  except in that file, and no ``repr``/``str``/error shows it.
- The AES key is HKDF-SHA256(master key, info=``crossbook/api-secrets/v1``): other uses
  of the master key derive other keys.
- A blob is ``version (1 byte, 0x01) || nonce (12 random bytes) || ciphertext || tag (16)``
  with associated data ``version || "crossbook/api-secret/v1" || 0x00 || key_id``; so a
  blob decrypts only under the same master key *and* for the same API key id (a secret
  copied onto another key row does not decrypt).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MASTER_KEY_ENV: Final = "CROSSBOOK_MASTER_KEY"
MASTER_KEY_FILE: Final = "master.key"
MASTER_KEY_BYTES: Final = 32

_VERSION: Final = b"\x01"
_NONCE_BYTES: Final = 12
_TAG_BYTES: Final = 16
_HKDF_INFO: Final = b"crossbook/api-secrets/v1"
_AD_CONTEXT: Final = b"crossbook/api-secret/v1\x00"


class MasterKeyError(RuntimeError):
    """The master key is missing, malformed or unsafely stored (never shows the key)."""


class DecryptionError(Exception):
    """A blob did not decrypt: wrong master key, wrong key id, or tampered data."""


def generate_master_key() -> bytes:
    """32 bytes from the OS's CSPRNG."""
    return secrets.token_bytes(MASTER_KEY_BYTES)


def _decode_env_key(value: str) -> bytes:
    text = value.strip()
    padded = text + "=" * (-len(text) % 4)
    for altchars in (None, b"-_"):
        try:
            key = base64.b64decode(padded, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(key) == MASTER_KEY_BYTES:
            return key
    raise MasterKeyError(f"{MASTER_KEY_ENV} must be the base64 encoding of exactly 32 bytes")


def _read_key_file(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise MasterKeyError(f"{path} is not a regular file")
        if st.st_mode & 0o077:
            raise MasterKeyError(
                f"{path} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):o});"
                " run: chmod 600"
            )
        data = os.read(fd, MASTER_KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) != MASTER_KEY_BYTES:
        raise MasterKeyError(f"{path} must hold exactly {MASTER_KEY_BYTES} bytes")
    return data


def _create_key_file(path: Path) -> None:
    """Write a new key to a private temporary file, then link it into place: concurrent
    first uses agree on one key and nobody ever reads a partly written file."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            os.write(fd, generate_master_key())
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):  # another process won the race
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # make the new directory entry durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def load_master_key(
    data_dir: str | Path | None, *, environ: Mapping[str, str] | None = None
) -> bytes:
    """The 32-byte master key: from ``$CROSSBOOK_MASTER_KEY`` if set (``environ``
    defaults to ``os.environ``), else from ``data_dir/master.key``, which is created
    (mode 0600, the directory too if needed) when it does not exist yet."""
    env = os.environ if environ is None else environ
    value = env.get(MASTER_KEY_ENV)
    if value:
        return _decode_env_key(value)
    if data_dir is None:
        raise MasterKeyError(f"no master key: set {MASTER_KEY_ENV} or give a data directory")
    directory = Path(data_dir)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / MASTER_KEY_FILE
    if not path.exists():
        _create_key_file(path)
    return _read_key_file(path)


def _associated_data(key_id: str) -> bytes:
    if not isinstance(key_id, str) or not key_id:
        raise ValueError("key_id must be a non-empty string")
    return _VERSION + _AD_CONTEXT + key_id.encode("utf-8")


class SecretBox:
    """Encrypts and decrypts API secrets bound to their API key id (see the module
    docstring for the format). Holds only the derived AES key; its ``repr`` shows
    nothing of it."""

    __slots__ = ("_aead",)

    def __init__(self, master_key: bytes) -> None:
        if not isinstance(master_key, bytes | bytearray) or len(master_key) != MASTER_KEY_BYTES:
            raise MasterKeyError(f"the master key must be {MASTER_KEY_BYTES} bytes")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
            bytes(master_key)
        )
        self._aead = AESGCM(derived)

    def encrypt(self, plaintext: str, *, key_id: str) -> bytes:
        """A fresh blob (random nonce) of ``plaintext`` bound to ``key_id``."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), _associated_data(key_id))
        return _VERSION + nonce + sealed

    def decrypt(self, blob: bytes, *, key_id: str) -> str:
        """The plaintext of ``blob`` if it was made by :meth:`encrypt` under this master
        key for ``key_id``; else :class:`DecryptionError`."""
        data = bytes(blob)
        if len(data) < 1 + _NONCE_BYTES + _TAG_BYTES or data[:1] != _VERSION:
            raise DecryptionError("not an encrypted API secret (bad format or version)")
        nonce, sealed = data[1 : 1 + _NONCE_BYTES], data[1 + _NONCE_BYTES :]
        try:
            plain = self._aead.decrypt(nonce, sealed, _associated_data(key_id))
        except InvalidTag:
            raise DecryptionError(
                "API secret did not decrypt (wrong master key, wrong key id or tampered)"
            ) from None
        return plain.decode("utf-8")

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"
