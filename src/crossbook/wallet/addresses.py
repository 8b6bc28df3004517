"""Deterministic deposit addresses per (user, network) from the exchange's HD seed.

Invariants:

- The exchange has one 32-byte HD seed, kept in ``<data_dir>/wallet-seed.enc`` encrypted
  at rest (AES-256-GCM under HKDF-SHA256(master key, info ``crossbook/wallet-seed/v1``);
  the master key is :func:`crossbook.auth.crypto.load_master_key`'s). It is created on
  first use (mode 0600; concurrent first uses agree on one seed) and never written in
  clear nor shown by any ``repr``.
- A user's address on a network is a pure function of the seed, the network and the user
  id: the same on every call and every restart, different for different users.
  Ethereum (ETH, and ERC-20 tokens on it): BIP44 ``m/44'/60'/0'/0/<user>``, an EIP-55
  checksummed ``0x`` address. Bitcoin (BTC): BIP84 ``m/84'/0'/0'/0/<user>``, a native
  segwit ``bc1q`` address.
- :func:`validate_address` checks a withdrawal destination's format per network (it does
  not say that anybody controls it).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from bip_utils import (  # type: ignore[import-untyped]
    Base58ChecksumError,
    Base58Decoder,
    Bech32ChecksumError,
    Bip44,
    Bip44Changes,
    Bip44Coins,
    Bip84,
    Bip84Coins,
    EthAddrDecoder,
    SegwitBech32Decoder,
)
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crossbook.auth.crypto import load_master_key

SEED_FILE: Final = "wallet-seed.enc"
SEED_BYTES: Final = 32
MAX_INDEX: Final = 2**31 - 1
"""Largest non-hardened BIP32 child index: the largest user id that gets an address."""

ETH: Final = "ETH"
BTC: Final = "BTC"
NETWORKS: Final = (BTC, ETH)
NETWORK_ALIASES: Final = {"ERC20": ETH, "ETHEREUM": ETH, "BITCOIN": BTC, "SEGWITBTC": BTC}

_VERSION: Final = b"\x01"
_NONCE_BYTES: Final = 12
_HKDF_INFO: Final = b"crossbook/wallet-seed/v1"
_AD: Final = _VERSION + b"crossbook/wallet-seed/v1\x00"


class WalletError(RuntimeError):
    """The wallet seed is missing, damaged or does not decrypt (never shows the seed)."""


class UnsupportedNetwork(ValueError):
    """A network this wallet has no addresses on."""


# ------------------------------------------------------------------ networks


def normalize_network(network: str) -> str:
    """``network`` as one of :data:`NETWORKS` (case-insensitive, aliases such as ERC20
    accepted); :class:`UnsupportedNetwork` otherwise."""
    name = network.strip().upper()
    name = NETWORK_ALIASES.get(name, name)
    if name not in NETWORKS:
        raise UnsupportedNetwork(f"unsupported network: {network!r}")
    return name


def networks_of(asset: str) -> tuple[str, ...]:
    """The networks an asset moves on, the default first: BTC on Bitcoin, every other
    asset (ETH, USDT and other ERC-20 tokens) on Ethereum."""
    return (BTC,) if asset.upper() == BTC else (ETH,)


def default_network(asset: str) -> str:
    return networks_of(asset)[0]


# --------------------------------------------------------------- validation


def _valid_eth(address: str) -> bool:
    if len(address) != 42 or not address.startswith("0x"):
        return False
    body = address[2:]
    if any(c not in "0123456789abcdefABCDEF" for c in body):
        return False
    # all one case carries no checksum (accepted, as most wallets do); mixed case must
    # be the EIP-55 checksum
    if body == body.lower() or body == body.upper():
        return True
    try:
        EthAddrDecoder.DecodeAddr(address)
    except ValueError:
        return False
    return True


def _valid_btc(address: str) -> bool:
    if address.lower().startswith("bc1"):
        if address != address.lower() and address != address.upper():
            return False
        try:  # segwit: v0 in bech32 (20 or 32 byte program), v1+ in bech32m (BIP350)
            _version, program = SegwitBech32Decoder.Decode("bc", address.lower())
        except (Bech32ChecksumError, ValueError):
            return False
        return 2 <= len(program) <= 40
    if address[:1] in ("1", "3"):  # legacy P2PKH / P2SH (Base58Check)
        try:
            raw = Base58Decoder.CheckDecode(address)
        except (Base58ChecksumError, ValueError, TypeError):
            return False
        return len(raw) == 21 and raw[0] in (0x00, 0x05)
    return False


def validate_address(network: str, address: str) -> bool:
    """Whether ``address`` is a well-formed mainnet destination on ``network``:
    ETH: ``0x`` + 40 hex digits (EIP-55 checksum when mixed case); BTC: a segwit
    ``bc1`` address (bech32 v0 or bech32m v1+) or a legacy Base58Check 1…/3… one."""
    name = normalize_network(network)
    if not isinstance(address, str) or not address.isascii() or not address.isprintable():
        return False
    return _valid_eth(address) if name == ETH else _valid_btc(address)


# ---------------------------------------------------------------- derivation


class HDWallet:
    """Deposit addresses derived from one seed. Holds the seed only inside bip-utils'
    derivation contexts; its ``repr`` shows nothing of it."""

    __slots__ = ("_btc", "_cache", "_eth")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes | bytearray) or not 16 <= len(seed) <= 64:
            raise WalletError("an HD seed is 16 to 64 bytes")
        raw = bytes(seed)
        self._eth = (
            Bip44.FromSeed(raw, Bip44Coins.ETHEREUM).Purpose().Coin().Account(0)
            .Change(Bip44Changes.CHAIN_EXT)
        )  # fmt: skip
        self._btc = (
            Bip84.FromSeed(raw, Bip84Coins.BITCOIN).Purpose().Coin().Account(0)
            .Change(Bip44Changes.CHAIN_EXT)
        )  # fmt: skip
        self._cache: dict[tuple[str, int], str] = {}

    def address(self, network: str, user: int) -> str:
        """The deposit address of ``user`` on ``network`` (ETH: BIP44 m/44'/60'/0'/0/user,
        BTC: BIP84 m/84'/0'/0'/0/user)."""
        name = normalize_network(network)
        if type(user) is not int or not 0 <= user <= MAX_INDEX:
            raise ValueError(f"user id out of the derivable range: {user!r}")
        key = (name, user)
        found = self._cache.get(key)
        if found is None:
            ctx = self._eth if name == ETH else self._btc
            found = str(ctx.AddressIndex(user).PublicKey().ToAddress())
            self._cache[key] = found
        return found

    def __repr__(self) -> str:
        return "HDWallet(<seed hidden>)"


# ----------------------------------------------------------- seed at rest


def _aead(master_key: bytes) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        bytes(master_key)
    )
    return AESGCM(derived)


def encrypt_seed(seed: bytes, master_key: bytes) -> bytes:
    """``version || nonce || AES-GCM(seed)`` under the master key's wallet-seed key."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return _VERSION + nonce + _aead(master_key).encrypt(nonce, bytes(seed), _AD)


def decrypt_seed(blob: bytes, master_key: bytes) -> bytes:
    data = bytes(blob)
    if len(data) < 1 + _NONCE_BYTES + 16 or data[:1] != _VERSION:
        raise WalletError("wallet seed file: bad format or version")
    nonce, sealed = data[1 : 1 + _NONCE_BYTES], data[1 + _NONCE_BYTES :]
    try:
        seed = _aead(master_key).decrypt(nonce, sealed, _AD)
    except InvalidTag:
        raise WalletError(
            "wallet seed did not decrypt (wrong master key or tampered file)"
        ) from None
    if len(seed) != SEED_BYTES:
        raise WalletError("wallet seed has the wrong length")
    return seed


def _write_new(path: Path, blob: bytes) -> None:
    """Write to a private temporary file, then link into place: concurrent first uses
    agree on one seed, and nobody reads a partly written file."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, blob)
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):  # another process won the race
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def load_seed(data_dir: str | Path, *, environ: Mapping[str, str] | None = None) -> bytes:
    """The exchange's 32-byte HD seed from ``data_dir/wallet-seed.enc``, created (from the
    OS's CSPRNG, encrypted under the master key) when it does not exist yet."""
    directory = Path(data_dir)
    master = load_master_key(directory, environ=environ)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / SEED_FILE
    if not path.exists():
        _write_new(path, encrypt_seed(secrets.token_bytes(SEED_BYTES), master))
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise WalletError(f"{path} is not a regular file")
    return decrypt_seed(path.read_bytes(), master)


def open_wallet(data_dir: str | Path, *, environ: Mapping[str, str] | None = None) -> HDWallet:
    """The exchange's HD wallet (the seed in ``data_dir``, created on first use)."""
    return HDWallet(load_seed(data_dir, environ=environ))
