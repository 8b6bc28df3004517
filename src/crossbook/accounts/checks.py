"""Ledger invariants of the embedded exchange (pure). Each check returns a list of
what is wrong (empty when all hold); the tests run them after every step and
``crossbook verify`` runs them on a data dir."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from crossbook.domain.enums import Side
from crossbook.domain.ledger import TransactionPosted
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
    acc = core.accounts
    errors: list[str] = []
    per_asset: dict[str, int] = defaultdict(int)
    for (account, asset), amount in acc.balances.items():
        per_asset[asset] += amount
        if account.startswith("user:") and amount < 0:
            errors.append(f"negative balance {account} {asset} = {amount}")
        if account in ("fees", "rounding") and amount < 0:
            errors.append(f"negative {account} {asset} = {amount}")
    errors += [f"ledger of {a} sums to {s}" for a, s in per_asset.items() if s]

    # held balances equal the holds of open orders and pending withdrawals
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

    # every open order in an engine has exactly the hold it can still spend
    open_keys = set()
    for symbol, book in core.engine.books.items():
        market = book.market
        for o in book.open_orders():
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
