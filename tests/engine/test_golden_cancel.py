"""Golden scenarios: CancelOrder (by id / client id), CancelAll, client order id reuse."""

from __future__ import annotations

import pytest

from crossbook.domain.commands import CancelAll, CancelOrder
from crossbook.domain.enums import Side

from .golden.harness import (
    Harness,
    buy,
    cancel,
    cancel_all,
    check_book,
    check_events,
    scenario,
    sell,
    stop_market,
    unchanged,
)


def test_cancel_by_order_id() -> None:
    h = Harness()
    h.setup(sell(1, 100, 5), sell(2, 100, 3))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        5       5
                  #2     o2    100        3       3
        """,
        command=cancel(1, 1),
        events="""
            cancelled #1 o1 leaves=5 user
            level sell 100 3
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #2     o2    100        3       3
        """,
    )


def test_cancel_by_client_order_id() -> None:
    h = Harness()
    h.setup(buy(2, 99, 4, client_order_id="mine"), buy(1, 99, 5, client_order_id="mine"))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
                  #1     o2     99        4       4
                  #2     o1     99        5       5
            ASKS  id  owner  price  visible  leaves
        """,
        command=cancel(1, cid="mine"),
        events="""
            cancelled #2 o1 leaves=5 user cid=mine
            level buy 99 4
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #1     o2     99        4       4
            ASKS  id  owner  price  visible  leaves
        """,
    )


def test_cancel_partially_filled_order_reports_what_is_left() -> None:
    h = Harness()
    h.setup(sell(1, 100, 10), buy(2, 100, 3))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
                  #1     o1    100        7       7
        """,
        command=cancel(1, 1),
        events="""
            cancelled #1 o1 leaves=7 user
            level sell 100 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
        """,
    )


def test_cancel_quote_sized_stop_reports_quote_leaves() -> None:
    """Leaves of a market order sized by quote amount are in quote units (events.py).
    (Its open_orders() view is checked in test_golden_stops.)"""
    h = Harness()
    h.setup(sell(1, 100, 1), stop_market(2, Side.BUY, stop=100, quote=500))
    check_events(h.run(cancel(2, 2)), "cancelled #2 o2 leaves=500 user")
    check_book(
        h,
        """
        BIDS  id  owner  price  visible  leaves
        ASKS  id  owner  price  visible  leaves
              #1     o1    100        1       1
    """,
    )


def test_cancel_all_reports_quote_leaves_of_quote_sized_stop() -> None:
    h = Harness()
    h.setup(stop_market(2, Side.SELL, stop=90, quote=700), sell(2, 100, 1))
    check_events(
        h.run(cancel_all(2)),
        """
        cancelled #1 o2 leaves=700 cancel_all
        cancelled #2 o2 leaves=1 cancel_all
        level sell 100 0
    """,
    )


def test_cancel_all_cancels_resting_and_stops_by_order_id() -> None:
    h = Harness()
    h.setup(
        buy(1, 99, 5),
        sell(2, 105, 5),
        sell(1, 101, 3),
        stop_market(1, Side.BUY, stop=120, qty=2),
        buy(1, 98, 2, client_order_id="x"),
        buy(1, 100, 50, market="XYZ"),
        buy(2, 99, 1),
    )
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
                  #1     o1     99        5       5
                  #7     o2     99        1       1
                  #5     o1     98        2       2
            ASKS  id  owner  price  visible  leaves
                  #3     o1    101        3       3
                  #2     o2    105        5       5
            STOPS id  owner  side  type         stop  price  leaves
                  #4     o1   buy  stop_market   120      0       2
        """,
        command=cancel_all(1),
        events="""
            cancelled #1 o1 leaves=5 cancel_all
            cancelled #3 o1 leaves=3 cancel_all
            cancelled #4 o1 leaves=2 cancel_all
            cancelled #5 o1 leaves=2 cancel_all cid=x
            level buy 98 0
            level buy 99 1
            level sell 101 0
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #7     o2     99        1       1
            ASKS  id  owner  price  visible  leaves
                  #2     o2    105        5       5
        """,
    )
    check_book(
        h,
        """
        BIDS  id  owner  price  visible  leaves
              #6     o1    100       50      50
        ASKS  id  owner  price  visible  leaves
    """,
        "XYZ",
    )


def test_cancel_all_without_open_orders_emits_nothing() -> None:
    h = Harness()
    h.setup(sell(2, 100, 5))
    unchanged(h, command=cancel_all(1), events="(none)")


def test_cancel_all_unknown_market() -> None:
    h = Harness()
    h.setup(sell(1, 100, 5))
    unchanged(
        h, command=cancel_all(1, market="NOPE"), events="cancel_rejected #0 o1 unknown_market"
    )


def rejection_book() -> Harness:
    h = Harness()
    h.setup(
        sell(3, 110, 1),
        buy(4, 110, 1),  # fills #1: closed
        sell(1, 100, 5, client_order_id="a"),
        buy(2, 90, 5, client_order_id="b"),
        sell(1, 120, 5),
    )
    h.run(cancel(1, 5))  # #5 cancelled: closed
    check_book(
        h,
        """
        BIDS  id  owner  price  visible  leaves
              #4     o2     90        5       5
        ASKS  id  owner  price  visible  leaves
              #3     o1    100        5       5
    """,
    )
    return h


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (cancel(1, 3, market="NOPE"), "cancel_rejected #3 o1 unknown_market"),
        (cancel(1, cid="a", market="NOPE"), "cancel_rejected #0 o1 unknown_market cid=a"),
        (cancel(1, 42), "cancel_rejected #42 o1 unknown_order"),
        (cancel(2, 3), "cancel_rejected #3 o2 unknown_order"),  # someone else's
        (cancel(1, 3, market="XYZ"), "cancel_rejected #3 o1 unknown_order"),  # other market
        (cancel(3, 1), "cancel_rejected #1 o3 unknown_order"),  # filled
        (cancel(1, 5), "cancel_rejected #5 o1 unknown_order"),  # already cancelled
        (cancel(1, cid="zz"), "cancel_rejected #0 o1 unknown_order cid=zz"),
        (cancel(1, cid="b"), "cancel_rejected #0 o1 unknown_order cid=b"),  # o2's cid
        (cancel(1), "cancel_rejected #0 o1 unknown_order"),  # neither id nor cid
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_cancel_rejections_change_nothing(command: CancelOrder | CancelAll, expected: str) -> None:
    h = rejection_book()
    unchanged(h, command=command, events=expected)


def test_order_id_wins_over_client_order_id() -> None:
    """With a non-zero order_id the client order id is not used for the lookup."""
    h = Harness()
    h.setup(sell(1, 100, 5, client_order_id="a"), sell(1, 101, 5, client_order_id="b"))
    check_events(
        h.run(cancel(1, 2, cid="a")),
        """
        cancelled #2 o1 leaves=5 user cid=b
        level sell 101 0
    """,
    )


def test_client_order_id_can_be_reused_once_closed() -> None:
    h = Harness()
    h.setup(buy(1, 99, 5, client_order_id="x"))
    unchanged(
        h,
        command=buy(1, 98, 1, client_order_id="x"),
        events="rejected #2 o1 duplicate_client_order_id cid=x",
    )
    h.run(cancel(1, cid="x"))
    scenario(
        h,
        before="""
            BIDS  id  owner  price  visible  leaves
            ASKS  id  owner  price  visible  leaves
        """,
        command=buy(1, 98, 1, client_order_id="x"),
        events="""
            accepted #4 o1 buy limit gtc px=98 qty=1 cid=x
            level buy 98 1
        """,
        after="""
            BIDS  id  owner  price  visible  leaves
                  #4     o1     98        1       1
            ASKS  id  owner  price  visible  leaves
        """,
    )


def test_client_order_id_is_per_owner_and_market() -> None:
    h = Harness()
    h.setup(buy(1, 99, 5, client_order_id="x"))
    out = h.run(buy(2, 99, 5, client_order_id="x"))
    assert type(out[0]).__name__ == "OrderAccepted"
    out = h.run(buy(1, 100, 20, client_order_id="x", market="XYZ"))
    assert type(out[0]).__name__ == "OrderAccepted"


def test_client_order_id_freed_by_a_fill() -> None:
    h = Harness()
    h.setup(buy(1, 99, 5, client_order_id="x"), sell(2, 99, 5))
    out = h.run(buy(1, 98, 1, client_order_id="x"))
    assert type(out[0]).__name__ == "OrderAccepted"
