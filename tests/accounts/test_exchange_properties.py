"""Randomized runs of the embedded exchange (accounts -> engine -> accounts): after
every step the ledger balances, nothing is negative, holds match what open orders can
spend, and each asset's total equals what came in minus what went out. Snapshot +
replay from any cut point gives the same state hash."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossbook.accounts.checks import ledger_errors, transaction_errors
from crossbook.accounts.core import FeeRate, FeeSchedule
from crossbook.domain.commands import AmendOrder, CancelAll, CancelOrder, PlaceOrder
from crossbook.domain.enums import OrderType, SelfTradePrevention, Side, TimeInForce
from crossbook.domain.ledger import (
    AdjustBalance,
    CancelWithdrawal,
    Deposit,
    RequestWithdrawal,
    SetFeeTier,
    SettleWithdrawal,
    TransactionPosted,
)
from crossbook.domain.markets import Asset, make_market
from crossbook.exchange.core import ExchangeConfig, ExchangeCore

BASE = Asset(code="BAS", scale=3)
ALT = Asset(code="ALT", scale=4)
QUOTE = Asset(code="QUO", scale=2)
M1 = make_market(
    "BASQUO", BASE, QUOTE, tick="0.01", step="0.001", min_quantity="0.001",
    max_quantity="1000", min_notional="0.01", price_scale=2,
)  # fmt: skip
M2 = make_market(
    "ALTQUO", ALT, QUOTE, tick="0.05", step="0.0010", min_quantity="0.0010",
    max_quantity="500", price_scale=2,
)  # fmt: skip
FEES = FeeSchedule(
    tiers={"": FeeRate(maker_ppm=1000, taker_ppm=2500), "vip": FeeRate(maker_ppm=0, taker_ppm=700)},
    markets={"ALTQUO": {"": FeeRate(maker_ppm=333, taker_ppm=4999)}},
)
CONFIG = ExchangeConfig(assets=[BASE, ALT, QUOTE], markets=[M1, M2], fees=FEES)
USERS = [1, 2, 3]
MARKETS = {"BASQUO": M1, "ALTQUO": M2}

prices = {"BASQUO": st.integers(95, 105), "ALTQUO": st.integers(18, 22).map(lambda x: x * 5)}


@st.composite
def place(draw: st.DrawFn) -> dict[str, Any]:
    symbol = draw(st.sampled_from(sorted(MARKETS)))
    m = MARKETS[symbol]
    side = draw(st.sampled_from([Side.BUY, Side.SELL]))
    kind = draw(st.sampled_from(["limit", "limit", "limit", "ioc", "fok", "post", "market",
                                 "stop_limit", "stop_market", "iceberg"]))  # fmt: skip
    qty = draw(st.integers(1, 400)) * m.step_size
    price = draw(prices[symbol])
    args: dict[str, Any] = {
        "market": symbol, "owner": draw(st.sampled_from(USERS)), "side": side,
        "stp": draw(st.sampled_from(list(SelfTradePrevention))),
        "client_order_id": draw(st.sampled_from(["", "", "a", "b"])),
    }  # fmt: skip
    if kind in ("limit", "ioc", "fok", "post", "iceberg"):
        args.update(price=price, quantity=qty)
        args["time_in_force"] = {"ioc": TimeInForce.IOC, "fok": TimeInForce.FOK}.get(
            kind, TimeInForce.GTC
        )
        args["post_only"] = kind == "post"
        if kind == "iceberg":
            args["quantity"] = qty * 3
            args["display_quantity"] = qty
    elif kind == "market":
        args.update(type=OrderType.MARKET, time_in_force=TimeInForce.IOC)
        if draw(st.booleans()):
            args["quote_quantity"] = draw(st.integers(1, 5000))
        else:
            args["quantity"] = qty
    elif kind == "stop_limit":
        args.update(type=OrderType.STOP_LIMIT, price=price, quantity=qty, stop_price=price)
    else:
        args.update(type=OrderType.STOP_MARKET, stop_price=price, time_in_force=TimeInForce.IOC)
        if side is Side.BUY:
            args["quote_quantity"] = draw(st.integers(1, 5000))
        else:
            args["quantity"] = qty
    return {"cls": PlaceOrder, **args}


@st.composite
def step(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["place"] * 8 + ["cancel", "cancel", "amend", "cancel_all",
                                "deposit", "deposit", "withdraw", "settle", "cancel_w",
                                "adjust", "tier"]))  # fmt: skip
    user = draw(st.sampled_from(USERS))
    symbol = draw(st.sampled_from(sorted(MARKETS)))
    if kind == "place":
        return draw(place())
    if kind == "cancel":
        return {
            "cls": CancelOrder,
            "market": symbol,
            "owner": user,
            "pick": draw(st.integers(0, 99)),
        }
    if kind == "amend":
        return {"cls": AmendOrder, "market": symbol, "owner": user, "pick": draw(st.integers(0, 99)),
                "price": draw(st.sampled_from([0, 0, *range(96, 105)])) * (5 if symbol == "ALTQUO" else 1),
                "quantity": draw(st.sampled_from([0, 1, 5, 20, 60])) * MARKETS[symbol].step_size}  # fmt: skip
    if kind == "cancel_all":
        return {"cls": CancelAll, "market": symbol, "owner": user}
    asset = draw(st.sampled_from(["BAS", "ALT", "QUO"]))
    if kind == "deposit":
        return {"cls": Deposit, "user": user, "asset": asset, "amount": draw(st.integers(1, 200_000)),
                "network": "testnet", "deposit_id": f"d{draw(st.integers(0, 30))}"}  # fmt: skip
    if kind == "withdraw":
        return {"cls": RequestWithdrawal, "user": user, "asset": asset,
                "amount": draw(st.integers(1, 50_000)), "fee": draw(st.integers(0, 50)),
                "network": "testnet", "address": "addr", "withdrawal_id": f"w{draw(st.integers(0, 10))}"}  # fmt: skip
    if kind in ("settle", "cancel_w"):
        cls = SettleWithdrawal if kind == "settle" else CancelWithdrawal
        return {"cls": cls, "withdrawal_id": f"w{draw(st.integers(0, 10))}"}
    if kind == "adjust":
        return {"cls": AdjustBalance, "user": user, "asset": asset,
                "amount": draw(st.integers(-5000, 5000)), "reason": "test"}  # fmt: skip
    return {"cls": SetFeeTier, "user": user, "tier": draw(st.sampled_from(["", "vip", "nope"]))}


def build(core: ExchangeCore, spec: dict[str, Any], seq: int) -> Any:
    spec = dict(spec)
    cls = spec.pop("cls")
    pick = spec.pop("pick", None)
    if pick is not None:
        book = core.engine.books[spec["market"]]
        mine = sorted(oid for oid, o in book.orders.items() if o.owner == spec["owner"])
        spec["order_id"] = mine[pick % len(mine)] if mine and pick < 90 else 10**6 + pick
    return cls(seq=seq, ts=1_000 + seq, **spec)


class Totals:
    """Deposits in, withdrawals out, adjustments: what each asset's total must be."""

    def __init__(self) -> None:
        self.expected: dict[str, int] = defaultdict(int)

    def apply(self, events: list[Any]) -> None:
        for e in events:
            if type(e) is TransactionPosted and e.type in ("deposit", "withdrawal", "adjustment"):
                for p in e.postings:
                    if p.account.startswith("external:") or p.account == "adjustments":
                        self.expected[p.asset] -= p.amount


def assets_total(core: ExchangeCore) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for (account, asset), amount in core.accounts.balances.items():
        if account.startswith("user:") or account in ("fees", "rounding"):
            totals[asset] += amount
    return {a: v for a, v in totals.items() if v}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step(), min_size=20, max_size=150), st.integers(0, 149))
def test_ledger_invariants_hold_after_every_step(specs: list[dict[str, Any]], cut: int) -> None:
    core = ExchangeCore(CONFIG)
    totals = Totals()
    # fund everyone so that orders mostly pass the balance check
    seq = 0
    for user in USERS:
        for asset, amount in (("BAS", 50_000), ("ALT", 500_000), ("QUO", 5_000_000)):
            seq += 1
            events = core.execute(
                Deposit(seq=seq, ts=seq, user=user, asset=asset, amount=amount,
                        network="testnet", deposit_id=f"seed-{user}-{asset}")
            )  # fmt: skip
            totals.apply(events)
    commands = []
    snapshot = None
    for i, spec in enumerate(specs):
        seq += 1
        command = build(core, spec, seq)
        commands.append(command)
        events = core.execute(command)
        totals.apply(events)
        errors = transaction_errors(events) + ledger_errors(core)
        assert not errors, f"after {command!r}:\n" + "\n".join(errors)
        want = {a: v for a, v in totals.expected.items() if v}
        assert assets_total(core) == want
        if i == cut % len(specs):
            snapshot = (core.snapshot(), len(commands))
    assert snapshot is not None
    restored = ExchangeCore.restore(snapshot[0])
    for command in commands[snapshot[1] :]:
        restored.execute(command)
    assert restored.state_hash() == core.state_hash()
