"""Binance-compatible request signing (HMAC-SHA256 API keys), REST and WebSocket API.

REST (``verify_signed_request``), as Binance and ccxt do it:

- ``totalParams`` is the raw query string concatenated, with no separator, with the raw
  body; ``signature`` is lowercase hex HMAC-SHA256 of it under the API secret, sent as
  the **last** parameter of the query string (GET/DELETE: ccxt puts everything there)
  or of the body (POST/PUT). The signed payload is exactly the bytes received before
  ``&signature=`` (the signature's own segment removed): nothing is parsed and
  re-encoded before the check, which uses :func:`hmac.compare_digest`. Hex case is
  ignored (Binance: HMAC signatures are not case-sensitive).
- Invariant: every byte of the query and the body except the signature parameter is
  covered by the HMAC. A signature followed by further parameters, or one in the query
  while the body is not empty, is refused (-1022) rather than leaving bytes unsigned.
  Every parameter must be ``name=value`` with exactly one unencoded ``=`` and a
  non-empty name, so bytes cannot be moved across the query/body boundary (the
  concatenation has no separator) to change what was signed into other parameters.
- After the signature, parameters are decoded (``parse_qsl``, strict, UTF-8 strict);
  a name may occur once. ``timestamp`` (ms, required) and ``recvWindow`` (default 5000,
  1..60000) must satisfy ``timestamp <= now + 1000`` and ``now - timestamp <=
  recvWindow``, else -1021.

WebSocket API (``verify_ws_api_params``): the payload is the request's params except
``signature``, sorted by name, joined unencoded as ``k=v&k=v`` (booleans ``true`` /
``false``, numbers in decimal), as ccxt's ``sign_params``; then the same time rules.

Order of checks for a request: API key format (-2014), key known and usable (-2015),
signature present and unique (-1102 / -1101), signature valid (-1022), parameters
well-formed (-1100 / -1101), timestamp (-1102 / -1100 / -1131 / -1021), permission (-2015).
Nothing about the request's parameters is revealed before its signature is checked.

No secret, signature or parameter value ever appears in an error message.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final
from urllib.parse import parse_qsl

from crossbook.auth.errors import (
    ApiError,
    ahead_of_server,
    api_key_format_invalid,
    bad_recv_window,
    bad_signature,
    duplicate_param,
    illegal_param,
    invalid_api_key,
    mandatory_param,
    outside_recv_window,
    too_many_params,
)
from crossbook.auth.models import ApiKey, Permission, is_api_key_format

__all__ = [
    "FUTURE_TOLERANCE_MS",
    "MAX_PARAMS",
    "RECV_WINDOW_DEFAULT",
    "RECV_WINDOW_MAX",
    "ApiError",
    "ApiKeyLookup",
    "SignedParams",
    "authenticate_request",
    "authenticate_ws_api_params",
    "check_api_key_format",
    "sign",
    "verify_signed_request",
    "verify_ws_api_params",
    "ws_api_payload",
]

RECV_WINDOW_DEFAULT: Final = 5000
RECV_WINDOW_MAX: Final = 60000
FUTURE_TOLERANCE_MS: Final = 1000
MAX_PARAMS: Final = 200
"""More parameters than this in one request: -1101 (no endpoint takes that many)."""

_SIGNATURE: Final = "signature"
_SIG_NAME: Final = b"signature"
_HEX64: Final = re.compile(rb"[0-9a-fA-F]{64}")
_DIGITS: Final = re.compile(r"[0-9]{1,20}", re.ASCII)
_DIGITS_LEGAL: Final = "^[0-9]{1,20}$"

ApiKeyLookup = Callable[[str], ApiKey | None]
"""How requests find their key: :meth:`crossbook.auth.store.AuthStore.api_key`."""


@dataclass(frozen=True, slots=True)
class SignedParams:
    """The parameters of a verified request: ``params`` holds every parameter but
    ``signature`` (query first, then body, each in received order), decoded;
    ``timestamp`` and ``recv_window`` are the checked values (ms)."""

    params: Mapping[str, str]
    timestamp: int
    recv_window: int


def sign(secret: str | bytes, payload: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of ``payload`` under ``secret`` (UTF-8 if ``str``)."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def _check_signature(secret: str, payload: bytes, given: bytes) -> None:
    if _HEX64.fullmatch(given) is None:
        raise bad_signature()
    expected = sign(secret, payload).encode("ascii")
    if not hmac.compare_digest(expected, given.lower()):
        raise bad_signature()


def _name(segment: bytes) -> bytes:
    return segment.split(b"=", 1)[0]


def _split_signature(query: bytes, body: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """``(payload, signature, query_rest, body_rest)``: the signed bytes, the signature
    value, and the query and body without the signature parameter."""
    q = query.split(b"&") if query else []
    b = body.split(b"&") if body else []
    if len(q) + len(b) > MAX_PARAMS + 1:
        raise too_many_params()
    q_at = [i for i, seg in enumerate(q) if _name(seg) == _SIG_NAME]
    b_at = [i for i, seg in enumerate(b) if _name(seg) == _SIG_NAME]
    if len(q_at) + len(b_at) == 0:
        raise mandatory_param(_SIGNATURE)
    if len(q_at) + len(b_at) > 1:
        raise duplicate_param()
    if b_at:
        part, at, rest_q = b, b_at[0], query
    else:
        part, at, rest_q = q, q_at[0], b""
        if body:  # the body would follow the signature, unsigned
            raise bad_signature()
    if at != len(part) - 1:  # parameters after the signature would be unsigned
        raise bad_signature()
    segment = part[at]
    if b"=" not in segment or segment.endswith(b"="):
        raise mandatory_param(_SIGNATURE)
    rest = b"&".join(part[:at])
    if b_at:
        return query + rest, segment[len(_SIG_NAME) + 1 :], rest_q, rest
    return rest, segment[len(_SIG_NAME) + 1 :], rest, b""


def _parse(raw: bytes, into: dict[str, str]) -> None:
    if not raw:
        return
    for segment in raw.split(b"&"):
        # exactly one unencoded "=" and a non-empty name (see the module docstring)
        if segment.count(b"=") != 1 or segment.startswith(b"="):
            raise illegal_param()
    if b"%" not in raw and b"+" not in raw:
        # nothing is encoded: the pairs are the segments as they are (what parse_qsl
        # would return, without its cost on every signed request)
        if raw.count(b"&") + 1 > MAX_PARAMS:
            raise illegal_param()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise illegal_param() from None
        pairs = [part.partition("=")[::2] for part in text.split("&")]
    else:
        pairs = _parse_encoded(raw)
    for key, text_value in pairs:
        if not key:
            raise illegal_param()
        if key in into or key == _SIGNATURE:
            raise duplicate_param()
        into[key] = text_value


def _parse_encoded(raw: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(
            raw.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_PARAMS,
        )
    except ValueError:  # also UnicodeDecodeError; the message is not passed on
        raise illegal_param() from None


def _int_param(name: str, value: object) -> int:
    if value is None or value == "":
        raise mandatory_param(name)
    if type(value) is int:
        if value < 0:
            raise illegal_param(name, _DIGITS_LEGAL)
        return value
    if not isinstance(value, str) or _DIGITS.fullmatch(value) is None:
        raise illegal_param(name, _DIGITS_LEGAL)
    return int(value)


def _check_time(timestamp: object, recv_window: object, now_ms: int) -> tuple[int, int]:
    ts = _int_param("timestamp", timestamp)
    if recv_window is None:
        window = RECV_WINDOW_DEFAULT
    else:
        window = _int_param("recvWindow", recv_window)
        if not 0 < window <= RECV_WINDOW_MAX:
            raise bad_recv_window()
    if ts > now_ms + FUTURE_TOLERANCE_MS:
        raise ahead_of_server()
    if now_ms - ts > window:
        raise outside_recv_window()
    return ts, window


def verify_signed_request(*, secret: str, query: bytes, body: bytes, now_ms: int) -> SignedParams:
    """Check a signed REST request given its raw query string (after ``?``, without
    it) and raw body as received; return its decoded parameters or raise
    :class:`ApiError` (see the module docstring for the rules and codes)."""
    payload, given, rest_query, rest_body = _split_signature(bytes(query), bytes(body))
    _check_signature(secret, payload, given)
    params: dict[str, str] = {}
    _parse(rest_query, params)
    _parse(rest_body, params)
    ts, window = _check_time(params.get("timestamp"), params.get("recvWindow"), now_ms)
    return SignedParams(MappingProxyType(params), ts, window)


def _ws_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise illegal_param()


def ws_api_payload(params: Mapping[str, object]) -> bytes:
    """The bytes a WebSocket API request signs: ``params`` except ``signature``, sorted
    by name, ``name=value`` joined by ``&``, unencoded (UTF-8)."""
    if not all(isinstance(k, str) and k for k in params):
        raise illegal_param()
    if len(params) > MAX_PARAMS + 1:
        raise too_many_params()
    return "&".join(
        f"{k}={_ws_value(params[k])}" for k in sorted(params) if k != _SIGNATURE
    ).encode("utf-8")


def verify_ws_api_params(secret: str, params: Mapping[str, object], *, now_ms: int) -> None:
    """Check a signed WebSocket API request's ``params`` (e.g. of
    ``userDataStream.subscribe.signature``) or raise :class:`ApiError`."""
    given = params.get(_SIGNATURE)
    if not isinstance(given, str) or not given:
        raise mandatory_param(_SIGNATURE)
    if not given.isascii():
        raise bad_signature()
    _check_signature(secret, ws_api_payload(params), given.encode("ascii"))
    _check_time(params.get("timestamp"), params.get("recvWindow"), now_ms)


def check_api_key_format(key: str | None) -> str:
    """``key`` if it has our API key format, else -2014 (HTTP 401)."""
    if not is_api_key_format(key):
        raise api_key_format_invalid()
    assert isinstance(key, str)
    return key


def _usable(lookup: ApiKeyLookup, key: str | None) -> ApiKey:
    record = lookup(check_api_key_format(key))
    if record is None:
        raise invalid_api_key()
    return record


def authenticate_request(
    lookup: ApiKeyLookup,
    *,
    api_key: str | None,
    query: bytes,
    body: bytes,
    now_ms: int,
    permission: Permission | None = None,
) -> tuple[ApiKey, SignedParams]:
    """The whole check of a signed REST request: ``api_key`` is the ``X-MBX-APIKEY``
    header (``None`` if absent), ``lookup`` finds usable keys. Returns the key and the
    verified parameters, or raises :class:`ApiError` (-2014, -2015, then as
    :func:`verify_signed_request`; a missing ``permission`` is -2015, checked last)."""
    record = _usable(lookup, api_key)
    signed = verify_signed_request(secret=record.secret, query=query, body=body, now_ms=now_ms)
    if permission is not None and not record.allows(permission):
        raise invalid_api_key()
    return record, signed


def authenticate_ws_api_params(
    lookup: ApiKeyLookup,
    params: Mapping[str, object],
    *,
    now_ms: int,
    permission: Permission | None = None,
) -> ApiKey:
    """The whole check of a signed WebSocket API request whose ``params`` carry
    ``apiKey``, ``timestamp``, optional ``recvWindow`` and ``signature``."""
    key = params.get("apiKey")
    if key is None or key == "":
        raise mandatory_param("apiKey")
    record = _usable(lookup, key if isinstance(key, str) else None)
    verify_ws_api_params(record.secret, params, now_ms=now_ms)
    if permission is not None and not record.allows(permission):
        raise invalid_api_key()
    return record
