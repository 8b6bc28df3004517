"""Ledger invariants of the embedded exchange (pure). Each check returns a list of
what is wrong (empty when all hold); the tests run them after every step and
``crossbook verify`` runs them on a data dir."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from crossbook.accounts.core import Accounts
from crossbook.domain.enums import Side
from crossbook.domain.ledger import TransactionPosted
from crossbook.engine.book import OrderBook
from crossbook.exchange.core import ExchangeCore


def transaction_errors(events: list[Any]) -> list[str]:
    """Every transaction's postings sum to zero per asset."""
    errors = []
    for e in events:
        if type(e) is TransactionPosted:
            sums: dict[str, int] = defaultdict(int)
            for p in e.postings:
                sums[p.asset] += p.amount
            bad = {a: s for a, s in sums.items() if s}
            if bad:
                errors.append(f"tx {e.tx_id} ({e.type} {e.ref}) does not balance: {bad}")
    return errors


def ledger_errors(core: ExchangeCore) -> list[str]:
    """The global invariants of the account service against the engine's books."""
    return balance_errors(core.accounts.balances) + hold_errors(
        core.accounts, core.engine.books.values()
    )


def sharded_ledger_errors(
    shards: Sequence[Accounts], books: Iterable[OrderBook], *, unsettled: Collection[str] = ()
) -> list[str]:
    """The invariants of sharded accounts (one :class:`Accounts` per shard): each
    shard's ledger sums to zero per asset, no user balance or fees below zero, and its
    holds match its users' open orders in ``books``; across shards ``rounding`` is not
    below zero and every ``clearing:<market>`` sums to zero. For the markets in
    ``unsettled`` (a forward or an engine record not yet everywhere) holds and clearing
    are not checked, nor is rounding across shards: a half may still be in flight."""
    several = len(shards) > 1
    errors: list[str] = []
    merged: dict[tuple[str, str], int] = defaultdict(int)
    books = list(books)
    for acc in shards:
        prefix = f"accounts-{acc.shard}: " if several else ""
        for error in balance_errors(acc.balances):
            # one shard's half of a trade may round below what the other half makes up
            if not (several and error.startswith("negative rounding")):
                errors.append(prefix + error)
        for error in hold_errors(acc, books):
            if not any(f"('{s}'," in error for s in unsettled):
                errors.append(prefix + error)
        for key, amount in acc.balances.items():
            merged[key] += amount
    if several:
        for (account, asset), amount in sorted(merged.items()):
            market = account.removeprefix("clearing:")
            if amount and market != account and market not in unsettled:
                errors.append(f"{account} {asset} sums to {amount} across shards")
            if account == "rounding" and amount < 0 and not unsettled:
                errors.append(f"negative rounding {asset} = {amount} across shards")
    return errors


def _sum_errors(balances: Mapping[tuple[str, str], int]) -> list[str]:
    per_asset: dict[str, int] = defaultdict(int)
    for (_, asset), amount in balances.items():
        per_asset[asset] += amount
    return [f"ledger of {a} sums to {s}" for a, s in per_asset.items() if s]


def balance_errors(balances: Mapping[tuple[str, str], int]) -> list[str]:
    """The ledger sums to zero per asset; no user balance, fees or rounding below zero."""
    errors: list[str] = []
    for (account, asset), amount in balances.items():
        if account.startswith("user:") and amount < 0:
            errors.append(f"negative balance {account} {asset} = {amount}")
        if account in ("fees", "rounding") and amount < 0:
            errors.append(f"negative {account} {asset} = {amount}")
    return errors + _sum_errors(balances)


def hold_errors(acc: Accounts, books: Iterable[OrderBook]) -> list[str]:
    """Held balances equal the holds of open orders and pending withdrawals, and every
    open order of ``acc``'s users has exactly the hold it can still spend."""
    errors: list[str] = []
    holds: dict[tuple[int, str], int] = defaultdict(int)
    for order in acc.orders.values():
        holds[(order.owner, order.asset)] += order.held
    for w in acc.withdrawals.values():
        holds[(w.user, w.asset)] += w.amount + w.fee
    for (account, asset), amount in acc.balances.items():
        if account.endswith(":held"):
            user = int(account.split(":")[1])
            if holds.get((user, asset), 0) != amount:
                errors.append(
                    f"{account} {asset} = {amount} but holds sum to {holds.get((user, asset), 0)}"
                )
    for (user, asset), amount in holds.items():
        if acc.balances.get((f"user:{user}:held", asset), 0) != amount:
            errors.append(f"holds of user {user} in {asset} = {amount} but held is not")

    open_keys = set()
    for book in books:
        market = book.market
        symbol = market.symbol
        for o in book.open_orders():
            if o.owner % acc.shards != acc.shard:
                continue  # another shard's
            key = (symbol, o.order_id)
            open_keys.add(key)
            h = acc.orders.get(key)
            if h is None:
                errors.append(f"open order {key} has no hold")
                continue
            if o.side is Side.SELL:
                need = o.leaves
            elif h.quote_sized:
                continue
            else:
                d = market.notional_divisor
                paid = h.paid_scaled
                unit = 10**market.quote_scale
                need = -(-(paid + o.price * o.leaves * unit) // d) - -(-paid // d)
            if h.held != need:
                errors.append(f"order {key} holds {h.held}, can spend {need}")
    for key in acc.orders:
        if key not in open_keys:
            errors.append(f"hold for {key} but the order is not open")
    return errors
