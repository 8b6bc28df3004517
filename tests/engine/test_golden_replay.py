"""Golden scenarios: redelivered commands (seq <= last_seq) are ignored."""

from __future__ import annotations

from crossbook.domain.commands import CancelAll, CancelOrder, PlaceOrder
from crossbook.domain.enums import Side

from .golden.harness import Harness, check_book, check_events, ts_of


def cmd_place(seq: int, owner: int, side: Side, price: int, qty: int, **kw: object) -> PlaceOrder:
    kw.setdefault("market", "ABC")
    return PlaceOrder(
        seq=seq, ts=ts_of(seq), owner=owner, side=side, price=price, quantity=qty, **kw
    )  # type: ignore[arg-type]


def test_replayed_seq_is_ignored() -> None:
    h = Harness()
    e = h.engine
    first = cmd_place(1, 1, Side.SELL, 100, 5)
    check_events(
        e.execute(first),
        """
        accepted #1 o1 sell limit gtc px=100 qty=5
        level sell 100 5
    """,
    )
    assert e.last_seq == 1
    state = h.state()
    assert e.execute(first) == []  # exact redelivery
    assert e.execute(cmd_place(1, 2, Side.BUY, 100, 5)) == []  # same seq, other content
    assert e.execute(CancelOrder(seq=1, ts=0, market="ABC", owner=1, order_id=1)) == []
    assert e.execute(cmd_place(0, 2, Side.BUY, 100, 5)) == []
    assert e.last_seq == 1
    assert h.state() == state

    # a gap is fine; afterwards anything at or below the new last_seq is ignored
    check_events(
        e.execute(cmd_place(5, 2, Side.BUY, 100, 2)),
        """
        accepted #5 o2 buy limit gtc px=100 qty=2
        fill t1 2@100 taker #5 o2 buy left=0 maker #1 o1 left=3
        level sell 100 3
    """,
    )
    assert e.last_seq == 5
    state = h.state()
    for seq in (2, 3, 4, 5):
        assert e.execute(cmd_place(seq, 2, Side.BUY, 100, 1)) == []
        assert e.execute(CancelAll(seq=seq, ts=0, market="ABC", owner=1)) == []
    assert e.last_seq == 5
    assert h.state() == state
    check_book(
        h,
        """
        BIDS  id  owner  price  visible  leaves
        ASKS  id  owner  price  visible  leaves
              #1     o1    100        3       3
    """,
    )


def test_rejected_command_still_advances_last_seq() -> None:
    h = Harness()
    e = h.engine
    check_events(
        e.execute(cmd_place(10, 1, Side.SELL, 100, 5, market="NOPE")),
        "rejected #10 o1 unknown_market",
    )
    assert e.last_seq == 10
    assert e.execute(cmd_place(10, 1, Side.SELL, 100, 5)) == []
    assert e.execute(cmd_place(9, 1, Side.SELL, 100, 5)) == []
    check_events(
        e.execute(CancelOrder(seq=11, ts=ts_of(11), market="ABC", owner=1, order_id=3)),
        "cancel_rejected #3 o1 unknown_order",
    )
    assert e.last_seq == 11
    check_events(e.execute(CancelAll(seq=12, ts=ts_of(12), market="ABC", owner=1)), "(none)")
    assert e.last_seq == 12
    assert e.execute(cmd_place(12, 1, Side.SELL, 100, 5)) == []
    check_book(
        h,
        """
        BIDS  id  owner  price  visible  leaves
        ASKS  id  owner  price  visible  leaves
    """,
    )


def test_fresh_engine_starts_at_seq_zero() -> None:
    h = Harness()
    assert h.engine.last_seq == 0
    assert h.engine.execute(cmd_place(0, 1, Side.SELL, 100, 5)) == []
    assert h.engine.open_orders("ABC") == []
