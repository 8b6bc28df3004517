"""Wire codec: every command and event type round-trips, integers of any size."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossbook.domain import codec
from crossbook.domain.commands import AmendOrder, CancelAll, CancelOrder, PlaceOrder
from crossbook.domain.enums import (
    CancelReason,
    ExpireReason,
    OrderType,
    RejectReason,
    SelfTradePrevention,
    Side,
    TimeInForce,
    Trigger,
)
from crossbook.domain.events import (
    AmendRejected,
    BookLevelChanged,
    CancelRejected,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
)

WEI = 10**18
BIG = 123_456 * WEI + 789  # 123456.000000000000000789 ETH in wei, > 2**64
HUGE = 2**256 - 1
TS = 1_700_000_000_123_456_789

COMMANDS = [
    PlaceOrder(
        seq=1, ts=TS, market="BTCUSDT", owner=7, side=Side.BUY, price=6_500_000, quantity=50_000
    ),
    PlaceOrder(
        seq=2,
        ts=TS,
        market="ETHUSDT",
        owner=8,
        side=Side.SELL,
        type=OrderType.STOP_LIMIT,
        price=310_000,
        quantity=BIG,
        time_in_force=TimeInForce.GTC,
        stop_price=320_000,
        trigger=Trigger.AT_OR_ABOVE,
        display_quantity=WEI,
        stp=SelfTradePrevention.NONE,
        client_order_id="tp-1",
        order_id=2**63 + 5,
    ),
    PlaceOrder(
        seq=3,
        ts=TS,
        market="ETHUSDT",
        owner=9,
        side=Side.BUY,
        type=OrderType.MARKET,
        quote_quantity=HUGE,
        time_in_force=TimeInForce.IOC,
    ),
    PlaceOrder(
        seq=4,
        ts=TS,
        market="ETHUSDT",
        owner=9,
        side=Side.SELL,
        type=OrderType.STOP_MARKET,
        quantity=HUGE,
        stop_price=1,
        time_in_force=TimeInForce.FOK,
        trigger=Trigger.AT_OR_BELOW,
        stp=SelfTradePrevention.EXPIRE_BOTH,
    ),
    PlaceOrder(
        seq=5,
        ts=TS,
        market="BTCUSDT",
        owner=1,
        side=Side.BUY,
        price=1,
        quantity=1,
        post_only=True,
        stp=SelfTradePrevention.EXPIRE_TAKER,
        client_order_id='é✓ "x"',
    ),
    # negative values are representable (the engine rejects them, the codec must not lose them)
    PlaceOrder(seq=6, ts=TS, market="X", owner=-1, side=Side.BUY, price=-5, quantity=-WEI),
    CancelOrder(seq=7, ts=TS, market="ETHUSDT", owner=8, order_id=2**64 + 1),
    CancelOrder(seq=8, ts=TS, market="ETHUSDT", owner=8, client_order_id="tp-1"),
    CancelAll(seq=9, ts=TS, market="ETHUSDT", owner=8),
    AmendOrder(seq=10, ts=TS, market="ETHUSDT", owner=8, order_id=3, price=300_000, quantity=BIG),
    AmendOrder(seq=11, ts=TS, market="ETHUSDT", owner=8, client_order_id="c", quantity=HUGE),
    PlaceOrder(
        seq=2**64 + 12, ts=2**70, market="ETHUSDT", owner=2**65, side=Side.BUY, price=1, quantity=1
    ),
]

EVENTS = [
    OrderAccepted(
        12,
        TS,
        "ETHUSDT",
        2**64 + 3,
        8,
        "c1",
        Side.BUY,
        OrderType.LIMIT,
        TimeInForce.GTC,
        310_000,
        BIG,
        0,
        0,
        WEI,
        True,
        Trigger.AUTO,
    ),
    OrderAccepted(
        13,
        TS,
        "ETHUSDT",
        14,
        8,
        "",
        Side.SELL,
        OrderType.STOP_MARKET,
        TimeInForce.IOC,
        0,
        0,
        HUGE,
        300_000,
        0,
        False,
        Trigger.AT_OR_BELOW,
    ),
    OrderRejected(14, TS, "NOPE", 14, 8, "c2", RejectReason.UNKNOWN_MARKET),
    OrderFilled(15, TS, "ETHUSDT", 2**64, 310_000, BIG, Side.SELL, 15, 8, HUGE, 12, 9, BIG - 1),
    OrderCancelled(16, TS, "ETHUSDT", 12, 8, "c1", BIG, CancelReason.USER),
    OrderCancelled(16, TS, "ETHUSDT", 13, 8, "", 1, CancelReason.CANCEL_ALL),
    OrderCancelled(16, TS, "ETHUSDT", 13, 8, "", 1, CancelReason.AMEND),
    OrderExpired(17, TS, "ETHUSDT", 17, 8, "", HUGE, ExpireReason.MARKET),
    OrderAmended(18, TS, "ETHUSDT", 12, 8, "c1", 300_000, 2 * BIG, BIG, False),
    OrderTriggered(19, TS, "ETHUSDT", 13, 8, "", 300_000, 299_999),
    CancelRejected(20, TS, "ETHUSDT", 0, 8, "zz", RejectReason.UNKNOWN_ORDER),
    AmendRejected(21, TS, "ETHUSDT", 2**64, 8, "", RejectReason.AMEND_QUANTITY_TOO_LOW),
    BookLevelChanged(22, TS, "ETHUSDT", Side.BUY, 310_000, HUGE),
    BookLevelChanged(22, TS, "ETHUSDT", Side.SELL, 310_000, 0),
]
# every reason of every enum appears somewhere below
EVENTS += [OrderRejected(30, TS, "M", 1, 1, "", r) for r in RejectReason]
EVENTS += [OrderExpired(31, TS, "M", 1, 1, "", 5, r) for r in ExpireReason]
EVENTS += [OrderCancelled(32, TS, "M", 1, 1, "", 5, r) for r in CancelReason]


def test_all_types_covered() -> None:
    assert {type(c) for c in COMMANDS} == {PlaceOrder, CancelOrder, CancelAll, AmendOrder}
    assert {type(e) for e in EVENTS} == {
        OrderAccepted,
        OrderRejected,
        OrderFilled,
        OrderCancelled,
        OrderExpired,
        OrderAmended,
        OrderTriggered,
        CancelRejected,
        AmendRejected,
        BookLevelChanged,
    }
    placed = [c for c in COMMANDS if isinstance(c, PlaceOrder)]
    assert {c.type for c in placed} == set(OrderType)
    assert {c.time_in_force for c in placed} == set(TimeInForce)
    assert {c.trigger for c in placed} == set(Trigger)
    assert {c.stp for c in placed} == set(SelfTradePrevention)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: f"{type(c).__name__}-{c.seq}")
def test_command_round_trip(command: object) -> None:
    data = codec.encode(command)
    back = codec.decode_command(data)
    assert back == command
    assert type(back) is type(command)
    assert codec.encode(back) == data


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: f"{type(e).__name__}-{e.seq}")
def test_single_event_round_trip(event: object) -> None:
    data = codec.encode([event])
    back = codec.decode_events(data)
    assert back == [event]
    assert type(back[0]) is type(event)
    assert codec.encode(back) == data


def test_event_list_round_trip() -> None:
    data = codec.encode(EVENTS)
    back = codec.decode_events(data)
    assert back == EVENTS
    assert [type(e) for e in back] == [type(e) for e in EVENTS]
    assert codec.encode(back) == data


def test_empty_event_list() -> None:
    assert codec.decode_events(codec.encode([])) == []


def test_big_integers_stay_exact_on_the_wire() -> None:
    cmd = PlaceOrder(seq=1, ts=TS, market="ETHUSDT", owner=1, side=Side.BUY, price=1, quantity=HUGE)
    data = codec.encode(cmd)
    assert str(HUGE).encode() in data  # written as an exact JSON integer, not a float
    back = codec.decode_command(data)
    assert isinstance(back, PlaceOrder)
    assert back.quantity == HUGE
    assert type(back.quantity) is int


def test_enums_decode_as_enums() -> None:
    back = codec.decode_command(codec.encode(COMMANDS[1]))
    assert isinstance(back, PlaceOrder)
    assert back.side is Side.SELL
    assert back.type is OrderType.STOP_LIMIT
    assert back.trigger is Trigger.AT_OR_ABOVE
    assert back.stp is SelfTradePrevention.NONE


def test_wire_shape_is_tagged_array() -> None:
    data = codec.encode(CancelAll(seq=9, ts=10, market="ETHUSDT", owner=8))
    assert msgspec.json.decode(data) == ["cancel_all", 9, 10, "ETHUSDT", 8]
    data = codec.encode([BookLevelChanged(1, 2, "M", Side.BUY, 3, 4)])
    assert msgspec.json.decode(data) == [["level", 1, 2, "M", "buy", 3, 4]]


def test_encoding_is_deterministic() -> None:
    assert codec.encode(COMMANDS) == codec.encode(list(COMMANDS))
    assert codec.encode(EVENTS) == codec.encode([*EVENTS])


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{}",
        b"[]",
        b'["nope", 1, 2, "M", 3]',
        b'["cancel_all", 1, 2, "M"]',  # missing owner
        b'["cancel_all", "1", 2, "M", 3]',  # seq as string
        b'["cancel_all", 1.5, 2, "M", 3]',  # seq as float
        b'["place", 1, 2, "M", 3, "sideways"]',  # bad enum
    ],
)
def test_decode_command_rejects_bad_input(data: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        codec.decode_command(data)


def test_decode_events_rejects_a_command() -> None:
    with pytest.raises(msgspec.DecodeError):
        codec.decode_events(codec.encode([COMMANDS[8]]))


def test_commands_are_immutable() -> None:
    with pytest.raises(AttributeError):
        COMMANDS[0].seq = 5  # type: ignore[misc]


big_ints = st.integers(min_value=-(2**300), max_value=2**300)
nat = st.integers(min_value=0, max_value=2**200)
texts = st.text(max_size=20)


@st.composite
def place_orders(draw: st.DrawFn) -> PlaceOrder:
    return PlaceOrder(
        seq=draw(nat),
        ts=draw(nat),
        market=draw(texts),
        owner=draw(big_ints),
        side=draw(st.sampled_from(Side)),
        type=draw(st.sampled_from(OrderType)),
        price=draw(big_ints),
        quantity=draw(big_ints),
        quote_quantity=draw(big_ints),
        time_in_force=draw(st.sampled_from(TimeInForce)),
        post_only=draw(st.booleans()),
        stop_price=draw(big_ints),
        trigger=draw(st.sampled_from(Trigger)),
        display_quantity=draw(big_ints),
        stp=draw(st.sampled_from(SelfTradePrevention)),
        client_order_id=draw(texts),
        order_id=draw(nat),
    )


commands = st.one_of(
    place_orders(),
    st.builds(
        CancelOrder,
        seq=nat,
        ts=nat,
        market=texts,
        owner=big_ints,
        order_id=nat,
        client_order_id=texts,
    ),
    st.builds(CancelAll, seq=nat, ts=nat, market=texts, owner=big_ints),
    st.builds(
        AmendOrder,
        seq=nat,
        ts=nat,
        market=texts,
        owner=big_ints,
        order_id=nat,
        client_order_id=texts,
        price=big_ints,
        quantity=big_ints,
    ),
)


@given(commands)
def test_any_command_round_trips(command: object) -> None:
    assert codec.decode_command(codec.encode(command)) == command


events = st.one_of(
    st.builds(
        OrderFilled,
        nat,
        nat,
        texts,
        nat,
        big_ints,
        big_ints,
        st.sampled_from(Side),
        nat,
        big_ints,
        big_ints,
        nat,
        big_ints,
        big_ints,
    ),
    st.builds(
        OrderAmended,
        nat,
        nat,
        texts,
        nat,
        big_ints,
        texts,
        big_ints,
        big_ints,
        big_ints,
        st.booleans(),
    ),
    st.builds(
        OrderExpired, nat, nat, texts, nat, big_ints, texts, big_ints, st.sampled_from(ExpireReason)
    ),
    st.builds(BookLevelChanged, nat, nat, texts, st.sampled_from(Side), big_ints, big_ints),
)


@given(st.lists(events, max_size=8))
def test_any_event_list_round_trips(evs: list[object]) -> None:
    assert codec.decode_events(codec.encode(evs)) == evs
