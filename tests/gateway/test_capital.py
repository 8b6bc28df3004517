"""Deposits and withdrawals through the Binance-compatible capital API
(``/sapi/v1/capital``), with unmodified ccxt against a real server."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import ccxt
import httpx
import pytest

from crossbook.wallet.addresses import validate_address
from tests.gateway.conftest import Server, start_server, stop_server
from tests.gateway.deployments import every_deployment  # noqa: F401 (all three)
from tests.gateway.test_ccxt import client

BTC_DEST = "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"
ETH_DEST = "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"


@pytest.fixture(scope="module")
def capital_server(tmp_path_factory: pytest.TempPathFactory, deployment: str) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("capital") / "data"
    srv = start_server(data_dir, deployment=deployment)
    try:
        yield srv
    finally:
        assert stop_server(srv) == 0, srv.log.read_text()[-3000:]


@pytest.fixture(scope="module")
def alice(capital_server: Server) -> Any:
    ex = client(ccxt.binance, capital_server, capital_server.users[0])
    ex.load_markets()
    return ex


@pytest.fixture(scope="module")
def bob(capital_server: Server) -> Any:
    ex = client(ccxt.binance, capital_server, capital_server.users[1])
    ex.load_markets()
    return ex


def signed(server: Server, creds: dict[str, Any], method: str, path: str, **params: Any) -> Any:
    params["timestamp"] = int(time.time() * 1000)
    query = urlencode(params)
    signature = hmac.new(creds["secret"].encode(), query.encode(), hashlib.sha256).hexdigest()
    return httpx.request(method, f"{server.url}{path}?{query}&signature={signature}",
                         headers={"X-MBX-APIKEY": creds["apiKey"]})  # fmt: skip


def new_key(server: Server, user: dict[str, Any], **grants: bool) -> dict[str, Any]:
    r = httpx.post(f"{server.url}/v1/session",
                   json={"email": user["email"], "password": user["password"]})  # fmt: skip
    assert r.status_code == 200, r.text
    r = httpx.post(f"{server.url}/v1/api-keys", json={"label": "capital", **grants},
                   headers={"Authorization": f"Bearer {r.json()['token']}"})  # fmt: skip
    assert r.status_code == 200, r.text
    return {"apiKey": r.json()["api_key"], "secret": r.json()["secret"]}


def test_deposit_addresses(alice: Any, bob: Any) -> None:
    btc = alice.fetch_deposit_address("BTC")
    assert btc["address"].startswith("bc1q") and validate_address("BTC", btc["address"])
    assert btc["currency"] == "BTC" and btc["tag"] is None
    eth = alice.fetch_deposit_address("ETH")
    assert eth["address"].startswith("0x") and validate_address("ETH", eth["address"])
    assert eth["address"] != eth["address"].lower()  # EIP-55 checksummed
    # ERC-20 tokens share the user's Ethereum address; stable across calls
    assert alice.fetch_deposit_address("USDT")["address"] == eth["address"]
    assert alice.fetch_deposit_address("ETH")["address"] == eth["address"]
    # another user, other addresses
    assert bob.fetch_deposit_address("BTC")["address"] != btc["address"]
    assert bob.fetch_deposit_address("ETH")["address"] != eth["address"]


def test_deposit_address_bad_inputs(capital_server: Server) -> None:
    user = capital_server.users[0]
    path = "/sapi/v1/capital/deposit/address"
    r = signed(capital_server, user, "GET", path, coin="BTC", network="BTC")
    assert r.status_code == 200 and r.json()["coin"] == "BTC" and r.json()["tag"] == ""
    r = signed(capital_server, user, "GET", path, coin="USDT", network="ERC20")
    assert r.status_code == 200 and r.json()["address"].startswith("0x")
    for params, code in (({"coin": "DOGE"}, -1130), ({"coin": "BTC", "network": "ETH"}, -1130),
                         ({"coin": "ETH", "network": "TRX"}, -1130), ({}, -1102)):  # fmt: skip
        r = signed(capital_server, user, "GET", path, **params)
        assert r.status_code == 400 and r.json()["code"] == code, (params, r.text)
    r = httpx.get(f"{capital_server.url}{path}?coin=BTC")  # unsigned
    assert r.status_code == 401


def test_fetch_deposits_shows_the_demo_deposits(alice: Any, capital_server: Server) -> None:
    deposits = alice.fetch_deposits()
    uid = capital_server.users[0]["userId"]
    assert {(d["currency"], d["amount"]) for d in deposits} == {
        ("BTC", 10),
        ("ETH", 100),
        ("USDT", 1_000_000),
    }
    for d in deposits:
        assert d["type"] == "deposit" and d["status"] == "ok"
        assert d["id"] == d["txid"] == f"demo-{uid}-{d['currency']}"
        assert d["timestamp"] > 0
        assert d["info"]["confirmTimes"] == "1/1" and d["info"]["network"] == "demo"
    only_btc = alice.fetch_deposits("BTC")
    assert [d["currency"] for d in only_btc] == ["BTC"]
    assert alice.fetch_deposits("BTC", since=int(time.time() * 1000) + 60_000) == []


def test_withdraw_holds_funds_and_is_listed_pending(alice: Any, bob: Any) -> None:
    before = alice.fetch_balance()
    result = alice.withdraw("BTC", 0.5, BTC_DEST, {"network": "BTC"})
    assert result["id"]
    after = alice.fetch_balance()
    assert after["BTC"]["free"] == pytest.approx(before["BTC"]["free"] - 0.5)
    assert after["BTC"]["used"] == pytest.approx(before["BTC"]["used"] + 0.5)
    alice.withdraw("USDT", 1000, ETH_DEST)  # default network: Ethereum (ERC-20)
    withdrawals = alice.fetch_withdrawals()
    by_id = {w["id"]: w for w in withdrawals}
    w = by_id[result["id"]]
    assert w["type"] == "withdrawal" and w["status"] == "pending"
    assert w["currency"] == "BTC" and w["amount"] == 0.5 and w["address"] == BTC_DEST
    assert w["fee"]["cost"] == 0 and w["timestamp"] > 0
    assert w["info"]["status"] == 4 and w["info"]["network"] == "BTC"
    usdt = [x for x in withdrawals if x["currency"] == "USDT"]
    assert len(usdt) == 1 and usdt[0]["address"] == ETH_DEST
    assert usdt[0]["info"]["network"] == "ETH"
    assert [x["id"] for x in alice.fetch_withdrawals("BTC")] == [result["id"]]
    # the other user sees none of it
    assert bob.fetch_withdrawals() == []


def test_withdraw_order_id_and_history_format(capital_server: Server) -> None:
    user = capital_server.users[1]
    r = signed(capital_server, user, "POST", "/sapi/v1/capital/withdraw/apply", coin="ETH",
               network="ETH", address=ETH_DEST, amount="1.25", withdrawOrderId="mine-1")  # fmt: skip
    assert r.status_code == 200, r.text
    wid = r.json()["id"]
    r = signed(capital_server, user, "POST", "/sapi/v1/capital/withdraw/apply", coin="ETH",
               network="ETH", address=ETH_DEST, amount="1", withdrawOrderId="mine-1")  # fmt: skip
    assert r.status_code == 400 and r.json()["code"] == -4000  # the id is taken
    r = signed(capital_server, user, "GET", "/sapi/v1/capital/withdraw/history",
               withdrawOrderId="mine-1")  # fmt: skip
    (item,) = r.json()
    assert item["id"] == wid and item["withdrawOrderId"] == "mine-1"
    assert (
        item["amount"] == "1.250000000000000000"
        and item["transactionFee"] == "0.000000000000000000"
    )
    assert item["status"] == 4 and item["coin"] == "ETH" and item["address"] == ETH_DEST
    assert time.strptime(item["applyTime"], "%Y-%m-%d %H:%M:%S")
    r = signed(capital_server, user, "GET", "/sapi/v1/capital/withdraw/history", status=6)
    assert r.json() == []
    # another user may use the same withdrawOrderId: ids are per user
    other = capital_server.users[0]
    r = signed(capital_server, other, "POST", "/sapi/v1/capital/withdraw/apply", coin="ETH",
               address=ETH_DEST, amount="0.1", withdrawOrderId="mine-1")  # fmt: skip
    assert r.status_code == 200 and r.json()["id"] != wid


def test_withdraw_refusals(alice: Any, capital_server: Server) -> None:
    with pytest.raises(ccxt.InsufficientFunds):
        alice.withdraw("BTC", 1000, BTC_DEST)
    with pytest.raises(ccxt.ExchangeError) as bad:
        alice.withdraw("BTC", 0.1, "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyv")
    assert "-4033" in str(bad.value)
    with pytest.raises(ccxt.ExchangeError):
        alice.withdraw("ETH", 0.1, "0x9858EfFD232B4033E47d90003D41EC34EcaEda95")  # checksum
    with pytest.raises(ccxt.ExchangeError):
        alice.withdraw("ETH", 0.1, BTC_DEST)  # a Bitcoin address on Ethereum
    user = capital_server.users[0]
    path = "/sapi/v1/capital/withdraw/apply"
    for params, code in (
        ({"coin": "DOGE", "address": ETH_DEST, "amount": "1"}, -1130),
        ({"coin": "BTC", "network": "ETH", "address": ETH_DEST, "amount": "1"}, -1130),
        ({"coin": "BTC", "amount": "1"}, -1102),
        ({"coin": "BTC", "address": BTC_DEST}, -1102),
        ({"coin": "BTC", "address": BTC_DEST, "amount": "0"}, -1130),
        ({"coin": "BTC", "address": BTC_DEST, "amount": "-1"}, -1100),
        ({"coin": "BTC", "address": BTC_DEST, "amount": "0.000000001"}, -1111),
        ({"coin": "BTC", "address": BTC_DEST, "amount": "1", "addressTag": "7"}, -4008),
    ):
        r = signed(capital_server, user, "POST", path, **params)
        assert r.status_code == 400 and r.json()["code"] == code, (params, r.text)
    r = signed(capital_server, user, "GET", "/api/v3/account")
    btc = next(b for b in r.json()["balances"] if b["asset"] == "BTC")
    assert btc["locked"] == "0.50000000"  # only the accepted withdrawal is held


def test_read_only_key_cannot_withdraw(capital_server: Server) -> None:
    user = capital_server.users[0]
    reader = new_key(capital_server, user, read=True, trade=True, withdraw=False)
    r = signed(capital_server, reader, "POST", "/sapi/v1/capital/withdraw/apply", coin="BTC",
               address=BTC_DEST, amount="0.1")  # fmt: skip
    assert r.status_code == 401 and r.json()["code"] == -2015
    ex = client(ccxt.binance, capital_server, {**user, **reader})
    ex.load_markets()
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        ex.withdraw("BTC", 0.1, BTC_DEST)
    # reading is allowed: the same history as the owner's other keys
    assert ex.fetch_deposit_address("BTC")["address"].startswith("bc1q")
    assert len(ex.fetch_withdrawals()) >= 2


def test_one_user_never_sees_anothers_transfers(capital_server: Server) -> None:
    alice, bob = capital_server.users[0], capital_server.users[1]
    seen: dict[int, dict[str, Any]] = {}
    for user in (alice, bob):
        r = signed(capital_server, user, "GET", "/sapi/v1/capital/deposit/hisrec")
        deposits = {d["id"] for d in r.json()}
        assert deposits == {f"demo-{user['userId']}-{a}" for a in ("BTC", "ETH", "USDT")}
        r = signed(capital_server, user, "GET", "/sapi/v1/capital/withdraw/history")
        withdrawals = {w["id"] for w in r.json()}
        addresses = {
            coin: signed(
                capital_server, user, "GET", "/sapi/v1/capital/deposit/address", coin=coin
            ).json()["address"]
            for coin in ("BTC", "ETH")
        }
        seen[user["userId"]] = {"d": deposits, "w": withdrawals, "a": addresses}
    a, b = seen[alice["userId"]], seen[bob["userId"]]
    assert not a["d"] & b["d"] and not a["w"] & b["w"]
    assert a["w"] and b["w"]
    assert not set(a["a"].values()) & set(b["a"].values())
    # another user's withdrawOrderId does not find anything
    r = signed(capital_server, alice, "GET", "/sapi/v1/capital/withdraw/history",
               withdrawOrderId="mine-1")  # fmt: skip
    assert [w["id"] for w in r.json()] == [f"u{alice['userId']}-mine-1"]


def test_addresses_survive_a_restart(tmp_path_factory: pytest.TempPathFactory) -> None:
    data_dir = tmp_path_factory.mktemp("capital-restart") / "data"
    srv = start_server(data_dir)
    try:
        user = srv.users[0]
        first = signed(srv, user, "GET", "/sapi/v1/capital/deposit/address", coin="ETH").json()
        assert (data_dir / "wallet-seed.enc").exists()
    finally:
        assert stop_server(srv) == 0
    srv = start_server(data_dir)
    try:
        again = signed(srv, user, "GET", "/sapi/v1/capital/deposit/address", coin="ETH").json()
    finally:
        assert stop_server(srv) == 0
    assert again == first


@pytest.mark.filterwarnings("ignore:Using .httpx. with .starlette.testclient")
def test_settled_and_cancelled_withdrawals_in_history(tmp_path: Any) -> None:
    """In process (settlement has no API yet): the history follows a withdrawal from
    pending (4) to completed (6) or cancelled (1), with amount, fee and network from the
    ledger and the address from this process's notes."""
    from starlette.testclient import TestClient

    from crossbook.domain.ledger import CancelWithdrawal, Deposit, SettleWithdrawal
    from crossbook.gateway.app import create_app

    app = create_app(tmp_path / "data", fsync=False)
    with TestClient(app) as tc:
        gw = app.state.crossbook.gateway
        uid = gw.auth.create_user("carol@example.com", "carol-password")
        key, secret = gw.auth.create_api_key(uid, read=True, withdraw=True)
        other = gw.auth.create_user("dave@example.com", "dave-password")
        other_key, other_secret = gw.auth.create_api_key(other, read=True, withdraw=True)
        assert tc.portal is not None
        submit = gw.runtime.submit
        tc.portal.call(submit, Deposit(seq=0, ts=0, user=uid, asset="BTC", amount=300_000_000,
                                       network="BTC", deposit_id="chain-tx-1"))  # fmt: skip

        def call(method: str, path: str, creds: tuple[str, str] = (key, secret),
                 **params: Any) -> Any:  # fmt: skip
            params["timestamp"] = int(time.time() * 1000)
            query = urlencode(params)
            sig = hmac.new(creds[1].encode(), query.encode(), hashlib.sha256).hexdigest()
            r = tc.request(method, f"{path}?{query}&signature={sig}",
                           headers={"X-MBX-APIKEY": creds[0]})  # fmt: skip
            assert r.status_code == 200, r.text
            return r.json()

        address = call("GET", "/sapi/v1/capital/deposit/address", coin="BTC")["address"]
        (deposit,) = call("GET", "/sapi/v1/capital/deposit/hisrec")
        assert deposit["id"] == deposit["txId"] == "chain-tx-1"
        assert deposit["network"] == "BTC" and deposit["address"] == address
        assert deposit["amount"] == "3.00000000" and deposit["status"] == 1
        apply = "/sapi/v1/capital/withdraw/apply"
        sent = call("POST", apply, coin="BTC", address=BTC_DEST, amount="1")["id"]
        kept = call("POST", apply, coin="BTC", address=BTC_DEST, amount="0.5")["id"]
        tc.portal.call(submit, SettleWithdrawal(seq=0, ts=0, withdrawal_id=sent, txid="ab"))
        tc.portal.call(submit, CancelWithdrawal(seq=0, ts=0, withdrawal_id=kept))
        history = {w["id"]: w for w in call("GET", "/sapi/v1/capital/withdraw/history")}
        assert history[sent]["status"] == 6 and history[sent]["amount"] == "1.00000000"
        assert history[sent]["network"] == "BTC" and history[sent]["address"] == BTC_DEST
        assert "completeTime" in history[sent]
        assert history[kept]["status"] == 1 and history[kept]["amount"] == "0.50000000"
        assert history[kept]["address"] == BTC_DEST
        assert [w["id"] for w in call("GET", "/sapi/v1/capital/withdraw/history", status=6)] == [
            sent
        ]
        account = call("GET", "/api/v3/account")
        btc = next(b for b in account["balances"] if b["asset"] == "BTC")
        assert btc == {"asset": "BTC", "free": "2.00000000", "locked": "0.00000000"}
        # the other user sees none of it
        mine = (other_key, other_secret)
        assert call("GET", "/sapi/v1/capital/withdraw/history", mine) == []
        assert call("GET", "/sapi/v1/capital/deposit/hisrec", mine) == []
        theirs = call("GET", "/sapi/v1/capital/deposit/address", mine, coin="BTC")["address"]
        assert theirs != address
