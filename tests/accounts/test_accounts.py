"""Worked examples of holds, settlement, fees and rounding in the embedded exchange."""

from __future__ import annotations

from typing import Any

from crossbook.accounts.checks import ledger_errors, transaction_errors
from crossbook.accounts.core import FeeRate, FeeSchedule
from crossbook.domain.commands import AmendOrder, CancelOrder, PlaceOrder
from crossbook.domain.enums import OrderType, RejectReason, Side, TimeInForce
from crossbook.domain.events import AmendRejected, OrderFilled, OrderRejected
from crossbook.domain.ledger import (
    AdjustBalance,
    CancelWithdrawal,
    CommandRejected,
    Deposit,
    RequestWithdrawal,
    SetFeeTier,
    SettleWithdrawal,
    TransactionPosted,
)
from crossbook.domain.markets import Asset, make_market
from crossbook.exchange.core import ExchangeConfig, ExchangeCore

BTC = Asset(code="BTC", scale=8)
USD = Asset(code="USD", scale=2)
# price in cents per BTC; quantity in satoshi; notional = p * q * 100 / 10**10
BTCUSD = make_market(
    "BTCUSD", BTC, USD, tick="0.01", step="0.00000001", min_quantity="0.00000001",
    max_quantity="1000", price_scale=2,
)  # fmt: skip
FEES = FeeSchedule(
    tiers={"": FeeRate(maker_ppm=1000, taker_ppm=2000), "zero": FeeRate(maker_ppm=0, taker_ppm=0)}
)


class Exchange:
    """A tiny driver: sequences commands and checks the invariants after each."""

    def __init__(self) -> None:
        self.core = ExchangeCore(ExchangeConfig(assets=[BTC, USD], markets=[BTCUSD], fees=FEES))
        self.seq = 0

    def __call__(self, cls: type, **kwargs: Any) -> list[Any]:
        self.seq += 1
        if cls in (PlaceOrder, CancelOrder, AmendOrder):
            kwargs.setdefault("market", "BTCUSD")
        events = self.core.execute(cls(seq=self.seq, ts=self.seq, **kwargs))
        errors = transaction_errors(events) + ledger_errors(self.core)
        assert not errors, errors
        return events

    def deposit(self, user: int, asset: str, amount: int) -> None:
        self(Deposit, user=user, asset=asset, amount=amount, network="test",
             deposit_id=f"{user}-{asset}-{self.seq}")  # fmt: skip

    def balance(self, user: int, asset: str) -> tuple[int, int]:
        a = self.core.accounts
        return a.available(user, asset), a.held(user, asset)


def tx(events: list[Any], type_: str) -> list[TransactionPosted]:
    return [e for e in events if type(e) is TransactionPosted and e.type == type_]


def test_limit_buy_holds_quote_rounded_up() -> None:
    x = Exchange()
    x.deposit(1, "USD", 100_00)
    # 0.00000333 BTC at 10,000.01 USD = 0.0333000333 USD -> hold 0.04 USD
    x(PlaceOrder, owner=1, side=Side.BUY, price=1_000_001, quantity=333)
    assert x.balance(1, "USD") == (100_00 - 4, 4)


def test_insufficient_balance_is_rejected_and_changes_nothing() -> None:
    x = Exchange()
    x.deposit(1, "USD", 10_00)
    before = x.core.state_hash()
    events = x(PlaceOrder, owner=1, side=Side.BUY, price=1_000_000, quantity=10**8)
    assert [type(e) for e in events] == [OrderRejected]
    assert events[0].reason is RejectReason.INSUFFICIENT_BALANCE
    assert x.core.engine.depth("BTCUSD") == ([], [])
    # only last_seq moved
    assert x.balance(1, "USD") == (10_00, 0)
    assert before != x.core.state_hash()


def test_fill_settles_both_sides_with_fees_in_the_received_asset() -> None:
    x = Exchange()
    x.deposit(1, "BTC", 10**8)
    x.deposit(2, "USD", 1_000_000_00)
    x(PlaceOrder, owner=1, side=Side.SELL, price=50_000_00, quantity=10**8)  # maker
    events = x(PlaceOrder, owner=2, side=Side.BUY, price=50_000_00, quantity=10**8)  # taker
    (trade,) = tx(events, "trade")
    assert {(p.account, p.asset, p.amount) for p in trade.postings} == {
        ("user:2:held", "USD", -50_000_00),
        ("user:1:available", "USD", 50_000_00 - 50_00),  # maker fee 0.1%
        ("fees", "USD", 50_00),
        ("user:1:held", "BTC", -(10**8)),
        ("user:2:available", "BTC", 10**8 - 200_000),  # taker fee 0.2%
        ("fees", "BTC", 200_000),
    }
    assert x.balance(1, "USD") == (49_950_00, 0)
    assert x.balance(2, "BTC") == (10**8 - 200_000, 0)
    assert x.balance(2, "USD") == (950_000_00, 0)


def test_price_improvement_returns_to_the_buyer() -> None:
    x = Exchange()
    x.deposit(1, "BTC", 10**8)
    x.deposit(2, "USD", 1_000_000_00)
    x(SetFeeTier, user=2, tier="zero")
    x(PlaceOrder, owner=1, side=Side.SELL, price=40_000_00, quantity=10**7)
    x(PlaceOrder, owner=2, side=Side.BUY, price=50_000_00, quantity=2 * 10**7)
    # 0.1 BTC filled at 40,000 (4,000 USD); 0.1 BTC rests at 50,000 (5,000 USD held)
    assert x.balance(2, "USD") == (1_000_000_00 - 4_000_00 - 5_000_00, 5_000_00)
    x(CancelOrder, owner=2, order_id=x.seq)
    assert x.balance(2, "USD") == (1_000_000_00 - 4_000_00, 0)


def test_rounding_never_pays_out_what_was_not_received() -> None:
    x = Exchange()
    x.deposit(1, "BTC", 10**8)
    x.deposit(2, "USD", 1_000_00)
    x(SetFeeTier, user=1, tier="zero")
    x(SetFeeTier, user=2, tier="zero")
    x(PlaceOrder, owner=1, side=Side.SELL, price=33_333_33, quantity=10**8)
    for _ in range(7):  # 7 fills of 3 satoshi: 0.00099999... USD each
        x(PlaceOrder, owner=2, side=Side.BUY, price=33_333_33, quantity=3,
          time_in_force=TimeInForce.IOC)  # fmt: skip
    paid = 1_000_00 - sum(x.balance(2, "USD"))
    received = x.balance(1, "USD")[0]
    # exact value 7 * 3 * 33,333.33 / 10**8 USD = 0.006999999... USD
    assert paid == 7 and received == 0  # each IOC buyer pays its own ceiling; seller floors
    assert x.core.accounts.balances[("rounding", "USD")] == paid - received


def test_amend_up_needs_and_holds_more_funds() -> None:
    x = Exchange()
    x.deposit(1, "USD", 1_000_00)
    x(PlaceOrder, owner=1, side=Side.BUY, price=100_00, quantity=5 * 10**8)  # 500 USD
    oid = x.seq
    events = x(AmendOrder, owner=1, order_id=oid, quantity=20 * 10**8)  # would be 2,000 USD
    assert [type(e) for e in events] == [AmendRejected]
    assert events[0].reason is RejectReason.INSUFFICIENT_BALANCE
    x(AmendOrder, owner=1, order_id=oid, quantity=8 * 10**8)
    assert x.balance(1, "USD") == (200_00, 800_00)
    x(AmendOrder, owner=1, order_id=oid, price=50_00)
    assert x.balance(1, "USD") == (600_00, 400_00)


def test_market_buy_spends_at_most_its_quote_amount() -> None:
    x = Exchange()
    x.deposit(1, "BTC", 10**8)
    x.deposit(2, "USD", 1_000_00)
    x(PlaceOrder, owner=1, side=Side.SELL, price=300_00, quantity=10**8)
    events = x(PlaceOrder, owner=2, side=Side.BUY, type=OrderType.MARKET,
               quote_quantity=100_00, time_in_force=TimeInForce.IOC)  # fmt: skip
    fills = [e for e in events if type(e) is OrderFilled]
    assert sum(f.quantity for f in fills) == 33_333_333
    assert x.balance(2, "USD") == (900_00, 0)  # 99.999999 USD rounds up to 100.00


def test_market_buy_by_base_quantity_spends_what_it_needs() -> None:
    x = Exchange()
    x.deposit(1, "BTC", 10**8)
    x.deposit(2, "USD", 1_000_00)
    x(SetFeeTier, user=2, tier="zero")
    x(PlaceOrder, owner=1, side=Side.SELL, price=300_00, quantity=10**8)
    events = x(PlaceOrder, owner=2, side=Side.BUY, type=OrderType.MARKET, quantity=10**7,
               time_in_force=TimeInForce.IOC)  # fmt: skip
    fills = [e for e in events if type(e) is OrderFilled]
    assert sum(f.quantity for f in fills) == 10**7
    assert x.balance(2, "USD") == (970_00, 0)  # 0.1 BTC at 300 USD; the rest released
    assert x.balance(2, "BTC") == (10**7, 0)


def test_market_buy_by_base_quantity_is_limited_by_the_balance() -> None:
    x = Exchange()
    x.deposit(1, "BTC", 10**8)
    x.deposit(2, "USD", 150_00)
    x(SetFeeTier, user=2, tier="zero")
    x(PlaceOrder, owner=1, side=Side.SELL, price=300_00, quantity=10**8)
    x(PlaceOrder, owner=2, side=Side.BUY, type=OrderType.MARKET, quantity=10**8,
      time_in_force=TimeInForce.IOC)  # fmt: skip
    assert x.balance(2, "BTC") == (5 * 10**7, 0)
    assert x.balance(2, "USD") == (0, 0)


def test_market_sell_for_a_quote_amount() -> None:
    x = Exchange()
    x.deposit(1, "BTC", 10**8)
    x.deposit(2, "USD", 1_000_00)
    x(SetFeeTier, user=1, tier="zero")
    x(PlaceOrder, owner=2, side=Side.BUY, price=200_00, quantity=10**8 // 2)
    x(PlaceOrder, owner=1, side=Side.SELL, type=OrderType.MARKET, quote_quantity=50_00,
      time_in_force=TimeInForce.IOC)  # fmt: skip
    assert x.balance(1, "USD") == (50_00, 0)
    assert x.balance(1, "BTC") == (10**8 - 25_000_000, 0)


def test_stop_market_buy_by_base_quantity_is_refused() -> None:
    x = Exchange()
    x.deposit(2, "USD", 1_000_00)
    events = x(PlaceOrder, owner=2, side=Side.BUY, type=OrderType.STOP_MARKET, quantity=10,
               stop_price=100_00, time_in_force=TimeInForce.IOC)  # fmt: skip
    assert events[0].reason is RejectReason.QUOTE_QUANTITY_REQUIRED


def test_withdrawal_holds_then_settles_or_releases() -> None:
    x = Exchange()
    x.deposit(1, "BTC", 10**8)
    x(RequestWithdrawal, user=1, asset="BTC", amount=5 * 10**7, fee=1000, network="bitcoin",
      address="bc1q...", withdrawal_id="w1")  # fmt: skip
    assert x.balance(1, "BTC") == (10**8 - 5 * 10**7 - 1000, 5 * 10**7 + 1000)
    x(SettleWithdrawal, withdrawal_id="w1", txid="abc")
    assert x.balance(1, "BTC") == (10**8 - 5 * 10**7 - 1000, 0)
    assert x.core.accounts.balances[("external:bitcoin", "BTC")] == 5 * 10**7
    x(RequestWithdrawal, user=1, asset="BTC", amount=10**7, fee=0, network="bitcoin",
      address="bc1q...", withdrawal_id="w2")  # fmt: skip
    x(CancelWithdrawal, withdrawal_id="w2")
    assert x.balance(1, "BTC") == (10**8 - 5 * 10**7 - 1000, 0)


def test_bad_account_commands_are_refused_with_a_reason() -> None:
    x = Exchange()
    x.deposit(1, "BTC", 100)
    cases = [
        (Deposit, {"user": 1, "asset": "BTC", "amount": 5, "network": "n", "deposit_id": "1-BTC-0"}, "duplicate_deposit"),
        (Deposit, {"user": 1, "asset": "XXX", "amount": 5, "network": "n", "deposit_id": "x"}, "unknown_asset"),
        (Deposit, {"user": 1, "asset": "BTC", "amount": 0, "network": "n", "deposit_id": "y"}, "invalid_amount"),
        (RequestWithdrawal, {"user": 1, "asset": "BTC", "amount": 101, "fee": 0, "network": "n", "address": "a", "withdrawal_id": "w"}, "insufficient_balance"),
        (RequestWithdrawal, {"user": 1, "asset": "BTC", "amount": -1, "fee": 0, "network": "n", "address": "a", "withdrawal_id": "w"}, "invalid_amount"),
        (SettleWithdrawal, {"withdrawal_id": "nope"}, "unknown_withdrawal"),
        (AdjustBalance, {"user": 1, "asset": "BTC", "amount": -101, "reason": "r"}, "insufficient_balance"),
        (SetFeeTier, {"user": 1, "tier": "platinum"}, "unknown_fee_tier"),
    ]  # fmt: skip
    for cls, kwargs, reason in cases:
        before = x.core.accounts.to_snapshot()
        events = x(cls, **kwargs)
        assert [(type(e), e.reason) for e in events] == [(CommandRejected, reason)], cls
        after = x.core.accounts.to_snapshot()
        assert {**before, "last_seq": 0} == {**after, "last_seq": 0}
