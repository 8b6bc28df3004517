"""Double-entry ledger records and the account service's own commands and events.

Ledger account names (the asset is a separate field of each posting):

- ``user:<id>:available`` and ``user:<id>:held`` — what the exchange owes a user;
- ``fees`` — fee income;
- ``rounding`` — what buyers paid above sellers' receipts when a notional is not a
  whole number of minor units (see accounts; never negative in total);
- ``external:<network>`` — money that entered (negative) or left through a network;
- ``adjustments`` — the counterpart of manual corrections;
- ``clearing:<market>`` — with sharded accounts, the counterpart of each half of a
  trade between users of two shards (see :mod:`crossbook.accounts.core`); the two
  halves of a trade post opposite amounts to it, so it sums to zero across shards
  once both halves are settled.

Invariant: the postings of every transaction sum to exactly zero per asset, so the sum
over all ledger accounts is zero per asset at every step.
"""

from __future__ import annotations

import msgspec


def available(user: int) -> str:
    return f"user:{user}:available"


def held(user: int) -> str:
    return f"user:{user}:held"


FEES = "fees"
ROUNDING = "rounding"
ADJUSTMENTS = "adjustments"


def external(network: str) -> str:
    return f"external:{network}"


def clearing(market: str) -> str:
    return f"clearing:{market}"


class Posting(msgspec.Struct, frozen=True, array_like=True, gc=False):
    account: str
    asset: str
    amount: int


class TransactionPosted(
    msgspec.Struct, tag="tx", tag_field="kind", frozen=True, array_like=True, gc=False
):
    """One balanced ledger transaction. ``tx_id`` is a counter of the account
    service (deterministic; with ``K`` shards ``counter * K + shard``, unique across
    them); ``ref`` names what caused it (``order:<market>:<id>``,
    ``trade:<market>:<id>``, ``deposit:<id>``, ``withdrawal:<id>``, ``adjustment:<seq>``)."""

    seq: int
    ts: int
    tx_id: int
    type: str
    ref: str
    postings: tuple[Posting, ...]


# ----------------------------------------------------------------- commands


class Deposit(
    msgspec.Struct,
    frozen=True,
    tag="deposit",
    tag_field="kind",
    array_like=True,
    gc=False,
    kw_only=True,
):
    """Credit a confirmed deposit. ``deposit_id`` is unique (idempotency key)."""

    seq: int
    ts: int
    user: int
    asset: str
    amount: int
    network: str
    deposit_id: str


class RequestWithdrawal(
    msgspec.Struct,
    frozen=True,
    tag="withdraw",
    tag_field="kind",
    array_like=True,
    gc=False,
    kw_only=True,
):
    """Hold ``amount + fee`` of a user's available balance for a withdrawal."""

    seq: int
    ts: int
    user: int
    asset: str
    amount: int
    fee: int
    network: str
    address: str
    withdrawal_id: str


class SettleWithdrawal(
    msgspec.Struct,
    frozen=True,
    tag="withdraw_settle",
    tag_field="kind",
    array_like=True,
    gc=False,
    kw_only=True,
):
    """The withdrawal was sent: its hold leaves to the network (and the fee to fees)."""

    seq: int
    ts: int
    withdrawal_id: str
    txid: str = ""


class CancelWithdrawal(
    msgspec.Struct,
    frozen=True,
    tag="withdraw_cancel",
    tag_field="kind",
    array_like=True,
    gc=False,
    kw_only=True,
):
    """The withdrawal will not be sent: release its hold."""

    seq: int
    ts: int
    withdrawal_id: str


class AdjustBalance(
    msgspec.Struct,
    frozen=True,
    tag="adjust",
    tag_field="kind",
    array_like=True,
    gc=False,
    kw_only=True,
):
    """A manual correction of a user's available balance (signed), against ``adjustments``."""

    seq: int
    ts: int
    user: int
    asset: str
    amount: int
    reason: str


class SetFeeTier(
    msgspec.Struct,
    frozen=True,
    tag="fee_tier",
    tag_field="kind",
    array_like=True,
    gc=False,
    kw_only=True,
):
    """Put a user in a fee tier ("" = the default tier)."""

    seq: int
    ts: int
    user: int
    tier: str


# ------------------------------------------------------------------- events


class CommandRejected(
    msgspec.Struct, frozen=True, tag="acct_rejected", tag_field="kind", array_like=True, gc=False
):
    """An account command was refused; nothing changed. ``ref`` names its subject."""

    seq: int
    ts: int
    ref: str
    reason: str
