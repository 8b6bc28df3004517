"""Deterministic deposit addresses (BIP44 Ethereum, BIP84 Bitcoin) and the seed at rest."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from bip_utils import Bip39SeedGenerator

from crossbook.wallet.addresses import (
    SEED_FILE,
    HDWallet,
    UnsupportedNetwork,
    WalletError,
    decrypt_seed,
    default_network,
    encrypt_seed,
    load_seed,
    normalize_network,
    open_wallet,
    validate_address,
)

MNEMONIC = " ".join(["abandon"] * 11 + ["about"])
ENV = {"CROSSBOOK_MASTER_KEY": "A" * 43 + "="}  # 32 zero bytes, base64


@pytest.fixture(scope="module")
def vector_wallet() -> HDWallet:
    return HDWallet(Bip39SeedGenerator(MNEMONIC).Generate())


def test_bip84_and_bip44_vectors(vector_wallet: HDWallet) -> None:
    # BIP84's test vector: m/84'/0'/0'/0/0
    assert vector_wallet.address("BTC", 0) == "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"
    assert vector_wallet.address("BTC", 1) == "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g"
    # m/44'/60'/0'/0/0 of the same mnemonic (MetaMask, ethers, …), EIP-55 checksummed
    assert vector_wallet.address("ETH", 0) == "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"
    assert vector_wallet.address("erc20", 0) == vector_wallet.address("ETH", 0)


def test_users_get_different_stable_addresses(tmp_path: Path) -> None:
    wallet = open_wallet(tmp_path, environ=ENV)
    for network in ("BTC", "ETH"):
        addresses = [wallet.address(network, user) for user in range(20)]
        assert len(set(addresses)) == 20
        assert all(validate_address(network, a) for a in addresses)
    again = open_wallet(tmp_path, environ=ENV)  # the same seed from the file
    assert [again.address("ETH", u) for u in range(20)] == [
        wallet.address("ETH", u) for u in range(20)
    ]
    assert wallet.address("BTC", 7).startswith("bc1q")
    assert wallet.address("ETH", 7).startswith("0x") and len(wallet.address("ETH", 7)) == 42
    with pytest.raises(ValueError):
        wallet.address("ETH", 2**31)
    with pytest.raises(ValueError):
        wallet.address("ETH", -1)
    with pytest.raises(UnsupportedNetwork):
        wallet.address("TRX", 1)
    assert "seed" in repr(wallet) and "hidden" in repr(wallet)


def test_seed_is_encrypted_at_rest_and_created_once(tmp_path: Path) -> None:
    seed = load_seed(tmp_path, environ=ENV)
    assert len(seed) == 32
    path = tmp_path / SEED_FILE
    blob = path.read_bytes()
    assert seed not in blob
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_seed(tmp_path, environ=ENV) == seed  # not replaced on later uses
    other = {"CROSSBOOK_MASTER_KEY": "B" * 43 + "="}
    with pytest.raises(WalletError):
        load_seed(tmp_path, environ=other)  # another master key does not decrypt it
    tampered = bytearray(blob)
    tampered[-1] ^= 1
    path.write_bytes(bytes(tampered))
    with pytest.raises(WalletError):
        load_seed(tmp_path, environ=ENV)


def test_seed_under_the_master_key_file(tmp_path: Path) -> None:
    seed = load_seed(tmp_path, environ={})  # master.key created in the data dir
    assert (tmp_path / "master.key").exists()
    assert load_seed(tmp_path, environ={}) == seed
    key = (tmp_path / "master.key").read_bytes()
    assert decrypt_seed(encrypt_seed(seed, key), key) == seed


def test_networks() -> None:
    assert default_network("BTC") == "BTC"
    assert default_network("ETH") == default_network("USDT") == "ETH"
    assert normalize_network("erc20") == "ETH"
    with pytest.raises(UnsupportedNetwork):
        normalize_network("BSC")


@pytest.mark.parametrize(
    ("network", "address", "ok"),
    [
        ("BTC", "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu", True),
        ("BTC", "BC1QCR8TE4KR609GCAWUTMRZA0J4XV80JY8Z306FYU", True),
        ("BTC", "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyv", False),  # checksum
        ("BTC", "bc1QCR8TE4KR609GCAWUTMRZA0J4XV80JY8Z306FYU", False),  # mixed case
        ("BTC", "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297", True),
        ("BTC", "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx", False),  # testnet
        ("BTC", "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", True),
        ("BTC", "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", True),
        ("BTC", "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3", False),
        ("BTC", "0x9858EfFD232B4033E47d90003D41EC34EcaEda94", False),
        ("BTC", "", False),
        ("ETH", "0x9858EfFD232B4033E47d90003D41EC34EcaEda94", True),
        ("ETH", "0x9858effd232b4033e47d90003d41ec34ecaeda94", True),  # no checksum given
        ("ETH", "0x9858EfFD232B4033E47d90003D41EC34EcaEda95", False),  # bad checksum
        ("ETH", "0x9858eFFD232B4033E47d90003D41EC34EcaEda94", False),
        ("ETH", "0x9858effd232b4033e47d90003d41ec34ecaeda9", False),  # 39 digits
        ("ETH", "9858effd232b4033e47d90003d41ec34ecaeda9400", False),
        ("ETH", "0xzz58effd232b4033e47d90003d41ec34ecaeda94", False),
        ("ETH", "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu", False),
        ("ERC20", "0x9858EfFD232B4033E47d90003D41EC34EcaEda94", True),
    ],
)
def test_validate_address(network: str, address: str, ok: bool) -> None:
    assert validate_address(network, address) is ok
