"""Binance-compatible signatures: documented vectors, ccxt's placements, tampering,
timestamps and recvWindow, error codes, and that no secret leaks into errors."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

import pytest

from crossbook.auth import (
    ApiError,
    ApiKey,
    Permission,
    SignedParams,
    authenticate_request,
    authenticate_ws_api_params,
    check_api_key_format,
    sign,
    verify_signed_request,
    verify_ws_api_params,
)
from crossbook.auth.signing import MAX_PARAMS, ws_api_payload

# Binance's documented example (spot API docs, "SIGNED endpoint examples for POST /api/v3/order")
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_PARAMS = (
    b"symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    b"&recvWindow=5000&timestamp=1499827319559"
)
DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
DOC_NOW = 1499827319559

SECRET = "s3cretS3cretS3cretS3cretS3cretS3cretS3cretS3cretS3cretS3cret0123"
NOW = 1_700_000_000_000
KEY = "K" * 64


def hmac_hex(secret: str, payload: bytes) -> str:
    """Independent reference implementation."""
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def signed(payload: bytes, secret: str = SECRET) -> bytes:
    sep = b"&" if payload else b""
    return payload + sep + b"signature=" + hmac_hex(secret, payload).encode()


def code_of(exc: pytest.ExceptionInfo[ApiError]) -> int:
    return exc.value.code


def test_sign_matches_binance_documented_example() -> None:
    assert sign(DOC_SECRET, DOC_PARAMS) == DOC_SIGNATURE
    assert hmac_hex(DOC_SECRET, DOC_PARAMS) == DOC_SIGNATURE
    assert sign(DOC_SECRET.encode(), DOC_PARAMS) == DOC_SIGNATURE


def test_documented_example_as_query_and_as_body() -> None:
    raw = DOC_PARAMS + b"&signature=" + DOC_SIGNATURE.encode()
    for query, body in ((raw, b""), (b"", raw)):
        p = verify_signed_request(secret=DOC_SECRET, query=query, body=body, now_ms=DOC_NOW)
        assert p.timestamp == 1499827319559 and p.recv_window == 5000
        assert p.params["symbol"] == "LTCBTC" and p.params["price"] == "0.1"
        assert "signature" not in p.params


def test_documented_mixed_example() -> None:
    # Binance's example 3: part in the query, part in the body; totalParams is the plain
    # concatenation (no "&" between them).
    query = b"symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
    body = b"quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    sig = hmac_hex(DOC_SECRET, query + body)
    assert sig == "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"
    p = verify_signed_request(
        secret=DOC_SECRET, query=query, body=body + b"&signature=" + sig.encode(), now_ms=DOC_NOW
    )
    assert list(p.params) == [
        "symbol",
        "side",
        "type",
        "timeInForce",
        "quantity",
        "price",
        "recvWindow",
        "timestamp",
    ]


def test_ccxt_style_requests() -> None:
    # ccxt: urlencode(params + timestamp [+ recvWindow]) then "&signature=" last; GET and
    # DELETE send it as the query string, POST and PUT as the form body.
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.5",
              "price": "50000", "timeInForce": "GTC", "newClientOrderId": "x-R4BD3S82 é/ü",
              "timestamp": NOW - 10, "recvWindow": 10000}  # fmt: skip
    q = urlencode(params).encode()
    raw = signed(q)
    get = verify_signed_request(secret=SECRET, query=raw, body=b"", now_ms=NOW)
    post = verify_signed_request(secret=SECRET, query=b"", body=raw, now_ms=NOW)
    assert get == post
    assert get.params["newClientOrderId"] == "x-R4BD3S82 é/ü"
    assert (get.timestamp, get.recv_window) == (NOW - 10, 10000)


def test_raw_bytes_are_what_is_signed() -> None:
    # Two encodings of the same parameters: each verifies only with its own bytes.
    a, b = b"symbol=BTC%2FUSDT&timestamp=1", b"symbol=BTC/USDT&timestamp=1"
    now = 1
    for payload in (a, b):
        p = verify_signed_request(secret=SECRET, query=signed(payload), body=b"", now_ms=now)
        assert p.params["symbol"] == "BTC/USDT"
    swapped = b + b"&signature=" + hmac_hex(SECRET, a).encode()
    with pytest.raises(ApiError) as exc:
        verify_signed_request(secret=SECRET, query=swapped, body=b"", now_ms=now)
    assert code_of(exc) == -1022


def test_uppercase_signature_accepted() -> None:
    payload = f"timestamp={NOW}".encode()
    raw = payload + b"&signature=" + hmac_hex(SECRET, payload).upper().encode()
    assert verify_signed_request(secret=SECRET, query=raw, body=b"", now_ms=NOW).timestamp == NOW


@pytest.mark.parametrize("index", range(len(f"symbol=BTCUSDT&timestamp={NOW}")))
def test_any_tampered_byte_fails(index: int) -> None:
    payload = bytearray(f"symbol=BTCUSDT&timestamp={NOW}".encode())
    sig = hmac_hex(SECRET, bytes(payload))
    payload[index] ^= 0x01
    raw = bytes(payload) + b"&signature=" + sig.encode()
    with pytest.raises(ApiError) as exc:
        verify_signed_request(secret=SECRET, query=raw, body=b"", now_ms=NOW)
    assert code_of(exc) == -1022
    assert exc.value.msg == "Signature for this request is not valid."
    assert exc.value.http_status == 400


def test_tampered_signature_and_wrong_secret_fail() -> None:
    raw = bytearray(signed(f"timestamp={NOW}".encode()))
    raw[-1] = ord("0") if raw[-1] != ord("0") else ord("1")
    for query, secret in ((bytes(raw), SECRET), (signed(f"timestamp={NOW}".encode()), "other")):
        with pytest.raises(ApiError) as exc:
            verify_signed_request(secret=secret, query=query, body=b"", now_ms=NOW)
        assert code_of(exc) == -1022


@pytest.mark.parametrize("signature", [b"", b"abc", b"z" * 64, b"0" * 63, b"0" * 65, b"%30" * 64])
def test_malformed_signature(signature: bytes) -> None:
    raw = f"timestamp={NOW}&signature=".encode() + signature
    with pytest.raises(ApiError) as exc:
        verify_signed_request(secret=SECRET, query=raw, body=b"", now_ms=NOW)
    assert code_of(exc) in (-1022, -1102)


def test_missing_signature() -> None:
    for query, body in ((f"timestamp={NOW}".encode(), b""), (b"", b""), (b"a=1", b"b=2")):
        with pytest.raises(ApiError) as exc:
            verify_signed_request(secret=SECRET, query=query, body=body, now_ms=NOW)
        assert code_of(exc) == -1102
        assert "'signature'" in exc.value.msg


def test_signature_not_last_is_refused() -> None:
    payload = f"symbol=BTCUSDT&timestamp={NOW}".encode()
    sig = hmac_hex(SECRET, payload).encode()
    cases = [
        # parameters after the signature would not be covered by the HMAC
        (payload + b"&signature=" + sig + b"&side=SELL", b""),
        (b"signature=" + sig + b"&" + payload, b""),
        (b"", payload + b"&signature=" + sig + b"&quantity=100"),
        # signature in the query while the body carries parameters
        (payload + b"&signature=" + sig, b"quantity=100"),
    ]
    for query, body in cases:
        with pytest.raises(ApiError) as exc:
            verify_signed_request(secret=SECRET, query=query, body=body, now_ms=NOW)
        assert code_of(exc) == -1022


def test_signature_alone_in_body_covers_query() -> None:
    query = f"symbol=BTCUSDT&timestamp={NOW}".encode()
    body = b"signature=" + hmac_hex(SECRET, query).encode()
    p = verify_signed_request(secret=SECRET, query=query, body=body, now_ms=NOW)
    assert p.params["symbol"] == "BTCUSDT"


def test_duplicate_signature_and_params() -> None:
    payload = f"timestamp={NOW}".encode()
    sig = hmac_hex(SECRET, payload).encode()
    with pytest.raises(ApiError) as exc:
        verify_signed_request(
            secret=SECRET,
            query=payload + b"&signature=" + sig,
            body=b"signature=" + sig,
            now_ms=NOW,
        )
    assert code_of(exc) == -1101
    for dup in (f"symbol=A&symbol=B&timestamp={NOW}", f"timestamp={NOW}&%73ignature=00"):
        with pytest.raises(ApiError) as exc:
            verify_signed_request(secret=SECRET, query=signed(dup.encode()), body=b"", now_ms=NOW)
        assert code_of(exc) == -1101
    # the same name in the query and in the body is a duplicate too
    query = f"symbol=A&timestamp={NOW}".encode()
    with pytest.raises(ApiError) as exc:
        verify_signed_request(
            secret=SECRET,
            query=query,
            body=b"symbol=B&signature=" + hmac_hex(SECRET, query + b"symbol=B").encode(),
            now_ms=NOW,
        )
    assert code_of(exc) == -1101


@pytest.mark.parametrize(
    "payload",
    [
        f"timestamp={NOW}&",  # empty field
        f"timestamp={NOW}&&a=1",
        f"a&timestamp={NOW}",  # no "="
        f"a=1=2&timestamp={NOW}",  # unencoded "=" in a value
        f"=1&timestamp={NOW}",  # empty name
        f"a=%ZZ%FF&timestamp={NOW}",  # %FF is not UTF-8
    ],
)
def test_malformed_params_are_rejected_after_signature(payload: str) -> None:
    with pytest.raises(ApiError) as exc:
        verify_signed_request(secret=SECRET, query=signed(payload.encode()), body=b"", now_ms=NOW)
    assert code_of(exc) == -1100


def test_non_utf8_raw_bytes() -> None:
    payload = f"a=\xff&timestamp={NOW}".encode("latin-1")
    with pytest.raises(ApiError) as exc:
        verify_signed_request(secret=SECRET, query=b"", body=signed(payload), now_ms=NOW)
    assert code_of(exc) == -1100


def test_query_body_boundary_cannot_be_moved() -> None:
    # "a=1" + "b=2" is the same totalParams as the single parameter "a=1b=2"; the
    # latter is refused, so a captured request cannot be re-split into other params.
    query, body = b"a=1", f"b=2&timestamp={NOW}".encode()
    sig = hmac_hex(SECRET, query + body).encode()
    assert verify_signed_request(
        secret=SECRET, query=query, body=body + b"&signature=" + sig, now_ms=NOW
    )
    with pytest.raises(ApiError) as exc:
        verify_signed_request(
            secret=SECRET, query=b"", body=query + body + b"&signature=" + sig, now_ms=NOW
        )
    assert code_of(exc) == -1100


def test_too_many_params() -> None:
    payload = "&".join(f"p{i}=1" for i in range(MAX_PARAMS + 1)) + f"&timestamp={NOW}"
    with pytest.raises(ApiError) as exc:
        verify_signed_request(secret=SECRET, query=signed(payload.encode()), body=b"", now_ms=NOW)
    assert code_of(exc) == -1101


def check(payload: str, now: int = NOW) -> SignedParams:
    return verify_signed_request(
        secret=SECRET, query=signed(payload.encode()), body=b"", now_ms=now
    )


def test_timestamp_window() -> None:
    assert check(f"timestamp={NOW - 5000}").recv_window == 5000  # default window, edge
    assert check(f"timestamp={NOW + 1000}").timestamp == NOW + 1000  # 1000 ms ahead: ok
    with pytest.raises(ApiError) as exc:
        check(f"timestamp={NOW - 5001}")  # stale
    assert (exc.value.code, exc.value.msg) == (
        -1021,
        "Timestamp for this request is outside of the recvWindow.",
    )
    with pytest.raises(ApiError) as exc:
        check(f"timestamp={NOW + 1001}")  # from the future
    assert exc.value.code == -1021
    assert check(f"recvWindow=60000&timestamp={NOW - 60000}").recv_window == 60000
    with pytest.raises(ApiError) as exc:
        check(f"recvWindow=60000&timestamp={NOW - 60001}")
    assert exc.value.code == -1021
    assert check(f"recvWindow=1&timestamp={NOW - 1}").recv_window == 1


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ("symbol=BTCUSDT", -1102),
        ("timestamp=", -1102),
        ("timestamp=abc", -1100),
        ("timestamp=-5", -1100),
        ("timestamp=1_700", -1100),
        ("timestamp=1.5", -1100),
        (f"timestamp={'9' * 21}", -1100),
        (f"recvWindow=0&timestamp={NOW}", -1131),
        (f"recvWindow=60001&timestamp={NOW}", -1131),
        (f"recvWindow=-1&timestamp={NOW}", -1100),
        (f"recvWindow=5000.5&timestamp={NOW}", -1100),
        (f"recvWindow=&timestamp={NOW}", -1102),
    ],
)
def test_bad_timestamp_and_recv_window(payload: str, code: int) -> None:
    with pytest.raises(ApiError) as exc:
        check(payload)
    assert exc.value.code == code and exc.value.http_status == 400


def test_error_body_and_statuses() -> None:
    e = ApiError(-1022, "Signature for this request is not valid.")
    assert e.body() == {"code": -1022, "msg": "Signature for this request is not valid."}
    with pytest.raises(ApiError) as exc:
        check_api_key_format("short")
    assert (exc.value.code, exc.value.msg, exc.value.http_status) == (
        -2014,
        "API-key format invalid.",
        401,
    )
    with pytest.raises(ApiError):
        check_api_key_format(None)
    assert check_api_key_format(KEY) == KEY


def make_record(**perms: bool) -> ApiKey:
    return ApiKey(
        api_key=KEY,
        user_id=7,
        can_read=perms.get("read", True),
        can_trade=perms.get("trade", False),
        can_withdraw=perms.get("withdraw", False),
        label="",
        created_ms=0,
        secret=SECRET,
    )


def test_authenticate_request() -> None:
    record = make_record(trade=True)
    lookup = {KEY: record}.get
    raw = signed(f"symbol=BTCUSDT&timestamp={NOW}".encode())
    got, p = authenticate_request(
        lookup, api_key=KEY, query=b"", body=raw, now_ms=NOW, permission=Permission.TRADE
    )
    assert got is record and p.params["symbol"] == "BTCUSDT"
    cases: list[tuple[str | None, bytes, Permission | None, int, int]] = [
        (None, raw, None, -2014, 401),
        ("bad", raw, None, -2014, 401),
        ("J" * 64, raw, None, -2015, 401),  # unknown key
        (KEY, raw + b"0", None, -1022, 400),
        (KEY, raw, Permission.WITHDRAW, -2015, 401),
    ]
    for key, body, perm, code, status in cases:
        with pytest.raises(ApiError) as exc:
            authenticate_request(
                lookup, api_key=key, query=b"", body=body, now_ms=NOW, permission=perm
            )
        assert (exc.value.code, exc.value.http_status) == (code, status)
        assert exc.value.msg in (
            "API-key format invalid.",
            "Invalid API-key, IP, or permissions for action.",
            "Signature for this request is not valid.",
        )


def test_permission_checked_after_signature() -> None:
    lookup = {KEY: make_record()}.get
    with pytest.raises(ApiError) as exc:  # bad signature and no permission: -1022 first
        authenticate_request(
            lookup,
            api_key=KEY,
            query=b"timestamp=1&signature=" + b"0" * 64,
            body=b"",
            now_ms=NOW,
            permission=Permission.TRADE,
        )
    assert exc.value.code == -1022


# -- WebSocket API ---------------------------------------------------------------------


def ws_params(secret: str = SECRET, **extra: object) -> dict[str, object]:
    params: dict[str, object] = {"apiKey": KEY, "timestamp": NOW, **extra}
    fmt = {True: "true", False: "false"}
    payload = "&".join(  # independent of ws_api_payload
        f"{k}={fmt[v] if isinstance(v, bool) else v}" for k, v in sorted(params.items())
    )
    params["signature"] = hmac_hex(secret, payload.encode())
    return params


def test_ws_payload_is_sorted_and_unencoded() -> None:
    params = {"timestamp": 5, "apiKey": "k", "recvWindow": 100, "symbol": "BTC/USDT é", "flag": True,
              "signature": "x"}  # fmt: skip
    assert (
        ws_api_payload(params)
        == "apiKey=k&flag=true&recvWindow=100&symbol=BTC/USDT é&timestamp=5".encode()
    )


def test_ws_user_data_stream_subscribe_signature() -> None:
    params = ws_params(recvWindow=10000)
    verify_ws_api_params(SECRET, params, now_ms=NOW)
    lookup = {KEY: make_record()}.get
    assert (
        authenticate_ws_api_params(lookup, params, now_ms=NOW, permission=Permission.READ).user_id
        == 7
    )


def test_ws_matches_ccxt_sign_params() -> None:
    ccxt_binance = pytest.importorskip("ccxt.pro").binance
    exchange = ccxt_binance({"apiKey": KEY, "secret": SECRET})
    exchange.nonce = lambda: NOW
    params = exchange.sign_params({})
    verify_ws_api_params(SECRET, params, now_ms=NOW)
    params["timestamp"] = NOW + 1
    with pytest.raises(ApiError):
        verify_ws_api_params(SECRET, params, now_ms=NOW)


def test_ccxt_rest_sign_verifies() -> None:
    ccxt = pytest.importorskip("ccxt")
    exchange = ccxt.binance({"apiKey": KEY, "secret": SECRET})
    exchange.nonce = lambda: NOW
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1", "price": "2",
              "timeInForce": "GTC", "newClientOrderId": "x-abc_123"}  # fmt: skip
    for method in ("GET", "DELETE", "POST", "PUT"):
        req = exchange.sign("order", ["private"], method, dict(params))
        url, body = req["url"], (req["body"] or "").encode()
        query = url.split("?", 1)[1].encode() if "?" in url else b""
        assert req["headers"]["X-MBX-APIKEY"] == KEY
        p = verify_signed_request(secret=SECRET, query=query, body=body, now_ms=NOW)
        assert p.params["newClientOrderId"] == "x-abc_123" and p.timestamp == NOW


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda p: p.pop("signature"), -1102),
        (lambda p: p.__setitem__("signature", "0" * 64), -1022),
        (lambda p: p.__setitem__("signature", "é" * 64), -1022),
        (lambda p: p.__setitem__("apiKey", "L" * 64), -1022),
        (lambda p: p.__setitem__("extra", "1"), -1022),
        (lambda p: p.__setitem__("nested", {"a": 1}), -1100),
    ],
)
def test_ws_rejections(mutate: object, code: int) -> None:
    params = ws_params()
    mutate(params)  # type: ignore[operator]
    with pytest.raises(ApiError) as exc:
        verify_ws_api_params(SECRET, params, now_ms=NOW)
    assert exc.value.code == code


def test_ws_time_rules() -> None:
    verify_ws_api_params(SECRET, ws_params(timestamp=NOW - 5000), now_ms=NOW)
    for params, code in (
        (ws_params(timestamp=NOW - 5001), -1021),
        (ws_params(timestamp=NOW + 1001), -1021),
        (ws_params(recvWindow=60001), -1131),
        (ws_params(recvWindow=0), -1131),
        (ws_params(timestamp=True), -1100),
        (ws_params(timestamp="abc"), -1100),
    ):
        with pytest.raises(ApiError) as exc:
            verify_ws_api_params(SECRET, params, now_ms=NOW)
        assert exc.value.code == code
    params = ws_params()
    del params["timestamp"]
    params["signature"] = hmac_hex(SECRET, ws_api_payload(params))
    with pytest.raises(ApiError) as exc:
        verify_ws_api_params(SECRET, params, now_ms=NOW)
    assert exc.value.code == -1102


def test_ws_authenticate_key_errors() -> None:
    lookup = {KEY: make_record()}.get
    for params, code in (
        ({k: v for k, v in ws_params().items() if k != "apiKey"}, -1102),
        ({**ws_params(), "apiKey": "short"}, -2014),
        ({**ws_params(), "apiKey": 5}, -2014),
        ({**ws_params(), "apiKey": "J" * 64}, -2015),
    ):
        with pytest.raises(ApiError) as exc:
            authenticate_ws_api_params(lookup, params, now_ms=NOW)
        assert exc.value.code == code
    with pytest.raises(ApiError) as exc:
        authenticate_ws_api_params(lookup, ws_params(), now_ms=NOW, permission=Permission.TRADE)
    assert exc.value.code == -2015


# -- no secret anywhere ----------------------------------------------------------------


def test_no_secret_in_any_error_or_repr() -> None:
    payload = f"timestamp={NOW}".encode()
    good_sig = hmac_hex(SECRET, payload)
    texts: list[str] = []
    attempts: list[tuple[bytes, bytes]] = [
        (payload + b"&signature=" + b"0" * 64, b""),
        (payload, b""),
        (f"timestamp={NOW - 10**6}".encode(), b""),
        (b"recvWindow=0&timestamp=1", b""),
        (b"timestamp=oops", b""),
    ]
    for query, body in attempts:
        try:
            verify_signed_request(
                secret=SECRET,
                query=signed(query) if b"signature" not in query else query,
                body=body,
                now_ms=NOW,
            )
        except ApiError as exc:
            texts += [str(exc), repr(exc), exc.msg, str(exc.args)]
    record = make_record()
    texts += [repr(record), str(record)]
    for params in (ws_params(), ws_params(secret="wrong")):
        try:
            verify_ws_api_params(SECRET, {**params, "timestamp": 1}, now_ms=NOW)
        except ApiError as exc:
            texts += [str(exc), repr(exc)]
    assert len(texts) > 10
    for text in texts:
        assert SECRET not in text and good_sig not in text and "oops" not in text
