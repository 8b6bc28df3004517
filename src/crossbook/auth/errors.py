"""Errors of the auth package.

:class:`ApiError` is what the gateway turns into Binance's error body
``{"code": -NNNN, "msg": "..."}`` with status :attr:`ApiError.http_status`.

Invariant: no message, ``str`` or ``repr`` of an error raised here contains a secret, a
password, a hash, a signature or any other value taken from a request; messages name
parameters only from a fixed set (``timestamp``, ``recvWindow``, ``signature``, ...).
"""

from __future__ import annotations

from typing import Final

# Binance's exact messages (errors.md of the spot API), by code.
MSG_API_KEY_FORMAT: Final = "API-key format invalid."
MSG_INVALID_API_KEY: Final = "Invalid API-key, IP, or permissions for action."
MSG_OUTSIDE_RECV_WINDOW: Final = "Timestamp for this request is outside of the recvWindow."
MSG_AHEAD_OF_SERVER: Final = "Timestamp for this request was 1000ms ahead of the server's time."
MSG_BAD_SIGNATURE: Final = "Signature for this request is not valid."
MSG_ILLEGAL_CHARS: Final = "Illegal characters found in a parameter."
MSG_DUPLICATE_PARAM: Final = "Duplicate values for a parameter detected."
MSG_TOO_MANY_PARAMS: Final = "Too many parameters sent for this endpoint."
MSG_BAD_RECV_WINDOW: Final = "recvWindow must be less than 60000."


class ApiError(Exception):
    """A request rejected with Binance's ``code`` and ``msg``; ``http_status`` is 400
    except for API-key problems (-2014, -2015: 401)."""

    __slots__ = ("code", "http_status", "msg")

    def __init__(self, code: int, msg: str, http_status: int = 400) -> None:
        super().__init__(code, msg)
        self.code = code
        self.msg = msg
        self.http_status = http_status

    def body(self) -> dict[str, int | str]:
        """The JSON body Binance sends: ``{"code": ..., "msg": ...}``."""
        return {"code": self.code, "msg": self.msg}

    def __str__(self) -> str:
        return f"{self.code}: {self.msg}"

    def __repr__(self) -> str:
        return f"ApiError(code={self.code}, msg={self.msg!r}, http_status={self.http_status})"


def api_key_format_invalid() -> ApiError:
    """-2014 (HTTP 401): the API key is missing or not of our format."""
    return ApiError(-2014, MSG_API_KEY_FORMAT, 401)


def invalid_api_key() -> ApiError:
    """-2015 (HTTP 401): unknown or revoked key, disabled user, or missing permission."""
    return ApiError(-2015, MSG_INVALID_API_KEY, 401)


def bad_signature() -> ApiError:
    """-1022: the signature is absent from its place, malformed, or does not match."""
    return ApiError(-1022, MSG_BAD_SIGNATURE)


def outside_recv_window() -> ApiError:
    """-1021: ``now - timestamp > recvWindow``."""
    return ApiError(-1021, MSG_OUTSIDE_RECV_WINDOW)


def ahead_of_server() -> ApiError:
    """-1021: ``timestamp > now + 1000``."""
    return ApiError(-1021, MSG_AHEAD_OF_SERVER)


def mandatory_param(name: str) -> ApiError:
    """-1102: a mandatory parameter is missing or empty (``name`` is ours, not the client's)."""
    return ApiError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def illegal_param(name: str | None = None, legal: str | None = None) -> ApiError:
    """-1100: a parameter has characters outside its legal range (or the request is not
    parseable: ``name=None``)."""
    if name is None:
        return ApiError(-1100, MSG_ILLEGAL_CHARS)
    return ApiError(
        -1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'."
    )


def duplicate_param() -> ApiError:
    """-1101: a parameter name occurs more than once."""
    return ApiError(-1101, MSG_DUPLICATE_PARAM)


def too_many_params() -> ApiError:
    """-1101: more parameters than any endpoint takes."""
    return ApiError(-1101, MSG_TOO_MANY_PARAMS)


def bad_recv_window() -> ApiError:
    """-1131: ``recvWindow`` is 0 or above 60000."""
    return ApiError(-1131, MSG_BAD_RECV_WINDOW)


class AuthStoreError(Exception):
    """Base of the account errors raised by :class:`crossbook.auth.store.AuthStore`."""


class InvalidEmailError(AuthStoreError, ValueError):
    """The email address is not acceptable (the message does not repeat it)."""


class WeakPasswordError(AuthStoreError, ValueError):
    """The password breaks the policy (8..256 characters); never carries the password."""


class DuplicateEmailError(AuthStoreError, ValueError):
    """A user with this email (case-insensitively) already exists."""


class UnknownUserError(AuthStoreError, LookupError):
    """No such user (or the user is disabled, where that matters)."""


class SchemaMissingError(AuthStoreError, RuntimeError):
    """The database has not been migrated to a revision with the auth tables."""
