"""A realistic input for the projection: engine commands run through the real
``MatchingEngine``, plus hand-made ledger transactions of the account service."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from crossbook.domain.commands import AmendOrder, CancelAll, CancelOrder, Command, PlaceOrder
from crossbook.domain.enums import OrderType, SelfTradePrevention, Side, TimeInForce
from crossbook.domain.ledger import (
    Deposit,
    Posting,
    TransactionPosted,
    available,
    external,
    held,
)
from crossbook.domain.markets import DEFAULT_MARKETS
from crossbook.engine.matching import MatchingEngine
from crossbook.exchange.core import ExchangeCore

ENGINE_LOG = "engine"
ACCOUNTS_LOG = "accounts"
TS0 = 1_767_225_600_000_000_000
BTC = 100_000_000  # 1 BTC in satoshi
ETH = 10**18  # 1 ETH in wei
P50000 = 5_000_000  # 50,000.00 at price scale 2

Item = tuple[int, list[object]]


def _place(seq: int, owner: int, side: Side, **kw: object) -> PlaceOrder:
    return PlaceOrder(
        seq=seq,
        ts=TS0 + seq,
        market=str(kw.pop("market", "BTCUSDT")),
        owner=owner,
        side=side,
        stp=SelfTradePrevention.NONE,
        **kw,  # type: ignore[arg-type]
    )


def engine_commands() -> list[Command]:
    """Order ids are the seqs (no explicit ids except the duplicate at seq 13)."""
    # fmt: off
    return [
        _place(1, 1, Side.SELL, price=P50000, quantity=BTC, client_order_id="s1"),
        _place(2, 2, Side.SELL, price=5_010_000, quantity=BTC // 2),
        _place(3, 3, Side.BUY, price=P50000, quantity=4 * BTC // 10),  # fills 0.4 of #1
        _place(4, 4, Side.BUY, type=OrderType.MARKET, quantity=8 * BTC // 10,
               time_in_force=TimeInForce.IOC),  # 0.6 of #1, 0.2 of #2
        CancelOrder(seq=5, ts=TS0 + 5, market="BTCUSDT", owner=2, order_id=2),
        _place(6, 5, Side.BUY, price=4_900_000, quantity=BTC // 10,
               time_in_force=TimeInForce.IOC),  # nothing to take: expires
        _place(7, 6, Side.BUY, price=4_900_000, quantity=BTC // 10 + 1),  # off step: rejected
        _place(8, 7, Side.BUY, price=4_950_000, quantity=2 * BTC // 10, client_order_id="b8"),
        AmendOrder(seq=9, ts=TS0 + 9, market="BTCUSDT", owner=7, order_id=8,
                   quantity=BTC // 10),
        _place(10, 8, Side.SELL, type=OrderType.STOP_LIMIT, price=4_950_000,
               stop_price=P50000, quantity=5 * BTC // 100),
        _place(11, 9, Side.SELL, price=P50000, quantity=BTC // 10),
        _place(12, 10, Side.BUY, price=P50000, quantity=BTC // 10),  # trade at 50,000
        # -> the stop #10 triggers and sells 0.05 to #8
        _place(13, 7, Side.BUY, price=4_000_000, quantity=BTC // 10, order_id=8),  # dup id
        CancelAll(seq=14, ts=TS0 + 14, market="BTCUSDT", owner=7),
        _place(15, 11, Side.SELL, market="ETHUSDT", price=300_000, quantity=1000 * ETH),
        _place(16, 12, Side.BUY, market="ETHUSDT", price=300_000, quantity=1500 * ETH),
        _place(17, 13, Side.SELL, market="ETHUSDT", type=OrderType.STOP_LIMIT, price=295_000,
               stop_price=299_000, quantity=ETH),
        _place(18, 14, Side.SELL, market="ETHUSDT", price=299_000, quantity=600 * ETH),
        _place(19, 15, Side.BUY, market="ETHUSDT", price=299_000, quantity=100 * ETH),
        # -> trade at 2,990.00: the stop #17 triggers and rests as a limit sell at 2,950.00
    ]
    # fmt: on


def engine_items() -> list[Item]:
    engine = MatchingEngine(DEFAULT_MARKETS)
    return [(c.seq, list(engine.execute(c))) for c in engine_commands()]


def tx(seq: int, tx_id: int, kind: str, ref: str, *postings: tuple[str, str, int]) -> Item:
    return (
        seq,
        [
            TransactionPosted(
                seq, TS0 + seq, tx_id, kind, ref, tuple(Posting(a, s, n) for a, s, n in postings)
            )
        ],
    )


def accounts_items() -> list[Item]:
    """Deposits, a hold, a settlement with a fee, and an empty item (a rejected command)."""
    big = 10**24  # 1,000,000 ETH in wei: beyond 2**64
    # fmt: off
    return [
        tx(1, 1, "deposit", "deposit:d1",
           (external("ethereum"), "ETH", -big), (available(11), "ETH", big)),
        tx(2, 2, "deposit", "deposit:d2",
           (external("tron"), "USDT", -5 * 10**12), (available(12), "USDT", 5 * 10**12)),
        tx(3, 3, "hold", "order:ETHUSDT:15",
           (available(11), "ETH", -1000 * ETH), (held(11), "ETH", 1000 * ETH)),
        tx(4, 4, "hold", "order:ETHUSDT:16",
           (available(12), "USDT", -45 * 10**11), (held(12), "USDT", 45 * 10**11)),
        (5, []),
        tx(6, 5, "trade", "trade:ETHUSDT:1",
           (held(11), "ETH", -1000 * ETH), (available(12), "ETH", 1000 * ETH),
           (held(12), "USDT", -3 * 10**12), (available(11), "USDT", 2_997 * 10**9),
           ("fees", "USDT", 3 * 10**9)),
    ]
    # fmt: on


def shifted(commands: Iterable[Command], offset: int) -> list[Command]:
    """The commands with ``seq`` (and ``ts``) moved up by ``offset`` but the same order ids
    (implicit ids become explicit), so that other inputs can go first."""
    out: list[Command] = []
    for c in commands:
        seq = c.seq + offset
        if type(c) is PlaceOrder and c.order_id == 0:
            out.append(msgspec.structs.replace(c, seq=seq, ts=c.ts + offset, order_id=c.seq))
        else:
            out.append(msgspec.structs.replace(c, seq=seq, ts=c.ts + offset))
    return out


def exchange_run(
    commands: Iterable[Command], users: Iterable[int]
) -> tuple[ExchangeCore, list[Item]]:
    """Fund ``users`` (BTC, ETH, USDT), then run ``commands`` through the real exchange
    pipeline (accounts -> engine -> accounts); one item per input, as one log."""
    core = ExchangeCore()
    items: list[Item] = []
    seq = 0
    for user in users:
        for asset, amount in (("BTC", 10_000 * BTC), ("ETH", 10**24), ("USDT", 10**15)):
            seq += 1
            deposit = Deposit(seq=seq, ts=TS0 + seq, user=user, asset=asset, amount=amount,
                              network="testnet", deposit_id=f"{user}-{asset}")  # fmt: skip
            items.append((seq, core.execute(deposit)))
    for c in shifted(commands, seq):
        items.append((c.seq, core.execute(c)))
    return core, items
