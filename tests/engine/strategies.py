"""Hypothesis strategies: random command streams over small markets.

Streams are drawn as lists of raw "specs" (plain tuples of small numbers) and then built
into commands deterministically, so that shrinking a stream is just shrinking a list.
References to earlier orders (cancel/amend by id or client id) are indexes resolved at
build time: mostly into the orders open at that point (the reference engine runs along
only to know them), sometimes into all orders ever placed or an unknown id.

Markets: PLAIN (everything 1), NOTIONAL (min notional 500), SCALED (tick 5, step 5,
non-integral notionals) and BIG (ETH/USDT-like scales, huge integers), plus the unknown
market "NOPE". Prices stay within 4 ticks of a middle so that orders cross often.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from crossbook.domain.commands import AmendOrder, CancelAll, CancelOrder, Command, PlaceOrder
from crossbook.domain.enums import OrderType, SelfTradePrevention, Side, TimeInForce, Trigger
from crossbook.domain.markets import Market
from crossbook.engine.reference import ReferenceEngine

# Scales 0: prices and quantities are plain small integers.
PLAIN = Market(
    symbol="PLAIN",
    base="AAA",
    quote="QQQ",
    base_scale=0,
    quote_scale=0,
    price_scale=0,
    tick_size=1,
    step_size=1,
    min_quantity=1,
    max_quantity=1000,
    min_notional=0,
)
# Same, with a minimum notional of 500 quote units (about 5 base units at price 100).
NOTIONAL = Market(
    symbol="NOTIONAL",
    base="AAA",
    quote="QQQ",
    base_scale=0,
    quote_scale=0,
    price_scale=0,
    tick_size=1,
    step_size=1,
    min_quantity=1,
    max_quantity=1000,
    min_notional=500,
)
# Non-trivial scales, tick and step: notionals are not integral in quote minor units.
# price 1000 == 100.0 quote per base unit; quantity 100 == 1 base unit.
SCALED = Market(
    symbol="SCALED",
    base="BBB",
    quote="QQQ",
    base_scale=2,
    quote_scale=2,
    price_scale=1,
    tick_size=5,
    step_size=5,
    min_quantity=10,
    max_quantity=5000,
    min_notional=1500,
)
# Realistic, large scales (like ETH/USDT): big integers, tick 0.01, step 0.0001 ETH.
BIG = Market(
    symbol="BIG",
    base="ETH",
    quote="USDT",
    base_scale=18,
    quote_scale=6,
    price_scale=2,
    tick_size=1,
    step_size=10**14,
    min_quantity=10**14,
    max_quantity=10**23,
    min_notional=5 * 10**6,
)
MARKETS: tuple[Market, ...] = (PLAIN, NOTIONAL, SCALED, BIG)
UNKNOWN = "NOPE"
OWNERS = (1, 2, 3, 4)
CLIENT_IDS = ("", "", "", "a", "b", "c")


@dataclass(frozen=True)
class _Scale:
    """How to draw readable numbers for one market."""

    mid: int  # middle of the price band (in ticks)
    qty_unit: int  # step
    quote_unit: int  # usual quote budget unit


_SCALES = {
    "PLAIN": _Scale(mid=100, qty_unit=1, quote_unit=100),
    "NOTIONAL": _Scale(mid=100, qty_unit=1, quote_unit=100),
    "SCALED": _Scale(mid=200, qty_unit=5, quote_unit=700),
    # 3000.00 USDT per ETH; 0.0037 ETH steps of about 11.10 USDT
    "BIG": _Scale(mid=300_000, qty_unit=37 * 10**14, quote_unit=11_123_457),
}

# Raw specs: flat tuples of small integers; their meaning is decided in `build`.
# (market selector, seq selector, command kind, then eleven fields shared by the kinds)
_spec = st.tuples(
    st.integers(0, 99),  # market selector
    st.integers(0, 99),  # seq: normal, or replay an old seq
    st.integers(0, 99),  # command kind
    st.integers(0, 99),  # place: order kind | cancel/amend: how to reference
    st.integers(0, len(OWNERS) - 1),  # owner
    st.booleans(),  # place: side
    st.integers(-4, 4),  # price offset (ticks)
    st.integers(1, 12),  # quantity (steps)
    st.integers(0, 99),  # place: stp | cancel/amend: use the order's owner or not
    st.integers(0, len(CLIENT_IDS) - 1),  # client order id
    st.integers(0, 99),  # place: invalid input selector | amend: what changes
    st.integers(-4, 4),  # place: stop offset / display size
    st.integers(0, 99),  # place: explicit order id selector
    st.integers(0, 10_000),  # reference to an earlier order
)


@dataclass
class _Placed:
    order_id: int
    owner: int
    client_order_id: str
    market: str


def _build_place(
    spec: Sequence[int],
    seq: int,
    ts: int,
    market: str,
    placed: list[_Placed],
    owners: int = len(OWNERS),
) -> PlaceOrder:
    kind, owner_i, sell, poff, qsteps, stp_i, cid_i, bad, soff, oid_sel, ref = spec
    sc = _SCALES.get(market, _SCALES["PLAIN"])
    tick = {m.symbol: m.tick_size for m in MARKETS}.get(market, 1)
    owner = OWNERS[owner_i % owners]
    side = Side.SELL if sell else Side.BUY
    price = (sc.mid + poff) * tick
    quantity = qsteps * sc.qty_unit
    if stp_i < 40:
        stp = SelfTradePrevention.EXPIRE_MAKER
    elif stp_i < 60:
        stp = SelfTradePrevention.NONE
    elif stp_i < 80:
        stp = SelfTradePrevention.EXPIRE_TAKER
    else:
        stp = SelfTradePrevention.EXPIRE_BOTH
    fields: dict[str, Any] = {
        "seq": seq,
        "ts": ts,
        "market": market,
        "owner": owner,
        "side": side,
        "stp": stp,
        "client_order_id": CLIENT_IDS[cid_i],
    }
    if kind < 30:  # GTC limit
        fields.update(type=OrderType.LIMIT, price=price, quantity=quantity)
    elif kind < 38:  # IOC limit
        fields.update(
            type=OrderType.LIMIT, price=price, quantity=quantity, time_in_force=TimeInForce.IOC
        )
    elif kind < 45:  # FOK limit
        fields.update(
            type=OrderType.LIMIT, price=price, quantity=quantity, time_in_force=TimeInForce.FOK
        )
    elif kind < 52:  # post-only
        fields.update(type=OrderType.LIMIT, price=price, quantity=quantity, post_only=True)
    elif kind < 60:  # iceberg
        display = max(1, min(qsteps - 1, abs(soff))) * sc.qty_unit
        fields.update(
            type=OrderType.LIMIT,
            price=price,
            quantity=quantity + 3 * sc.qty_unit,
            display_quantity=display,
        )
    elif kind < 65:  # market by quantity
        tif = TimeInForce.FOK if kind % 3 == 0 else TimeInForce.IOC
        fields.update(type=OrderType.MARKET, quantity=quantity, time_in_force=tif)
    elif kind < 74:  # market by quote amount; every third one also capped by a quantity
        fields.update(
            type=OrderType.MARKET,
            quote_quantity=qsteps * sc.quote_unit + abs(poff) * 7,
            time_in_force=TimeInForce.IOC,
        )
        if kind % 3 == 0:
            fields.update(quantity=quantity)
    elif kind < 83:  # stop limit
        trigger = (Trigger.AUTO, Trigger.AUTO, Trigger.AT_OR_ABOVE, Trigger.AT_OR_BELOW)[kind % 4]
        tif = (TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK)[soff % 4]
        fields.update(
            type=OrderType.STOP_LIMIT,
            price=price,
            quantity=quantity,
            stop_price=(sc.mid + soff) * tick,
            trigger=trigger,
            time_in_force=tif,
        )
    elif kind < 91:  # stop market
        trigger = (Trigger.AUTO, Trigger.AUTO, Trigger.AT_OR_ABOVE, Trigger.AT_OR_BELOW)[kind % 4]
        if kind % 2:
            fields.update(quote_quantity=qsteps * sc.quote_unit, time_in_force=TimeInForce.IOC)
        else:
            fields.update(
                quantity=quantity,
                time_in_force=TimeInForce.FOK if poff % 3 == 0 else TimeInForce.IOC,
            )
        fields.update(
            type=OrderType.STOP_MARKET, stop_price=(sc.mid + soff) * tick, trigger=trigger
        )
    else:  # an iceberg with post-only, or a stop-limit iceberg
        display = sc.qty_unit * 2
        if kind % 2:
            fields.update(
                type=OrderType.LIMIT,
                price=price,
                quantity=quantity + display,
                display_quantity=display,
                post_only=True,
            )
        else:
            fields.update(
                type=OrderType.STOP_LIMIT,
                price=price,
                quantity=quantity + display,
                display_quantity=display,
                stop_price=(sc.mid + soff) * tick,
            )
    # Occasional invalid inputs, one at a time.
    if bad < 12:
        tweak: dict[str, Any] = [
            {"price": price + 1},  # off tick (when tick > 1)
            {"price": 0},
            {"price": -tick},
            {"quantity": 0},
            {"quantity": -quantity},
            {"quantity": quantity + 1},  # off step (when step > 1)
            {"quantity": 100_000},
            {"quote_quantity": 50},
            {"time_in_force": TimeInForce.FOK},
            {"display_quantity": quantity * 2},
            {"stop_price": price},
            {"post_only": True, "time_in_force": TimeInForce.IOC},
        ][bad]
        fields.update(tweak)
    elif bad < 14:
        fields["trigger"] = Trigger.AT_OR_BELOW
    # Explicit order ids: mostly none; sometimes one that may be open (duplicate), or a
    # small constant that a later seq may collide with.
    if oid_sel < 6 and placed:
        fields["order_id"] = placed[ref % len(placed)].order_id
    elif oid_sel < 9:
        fields["order_id"] = 1 + ref % 40
    return PlaceOrder(**fields)


def _target(
    placed: list[_Placed], market: str, ref: int, engine: ReferenceEngine
) -> _Placed | None:
    if ref % 5:  # mostly an order that is open right now
        open_now = [
            _Placed(o.order_id, o.owner, o.client_order_id, market)
            for o in engine.open_orders(market)
        ]
        if open_now:
            return open_now[ref % len(open_now)]
    mine = [p for p in placed if p.market == market] or placed
    if not mine:
        return None
    # Bias towards recent orders: they are more likely to still be open.
    recent = mine[-8:]
    return recent[ref % len(recent)] if ref % 4 else mine[ref % len(mine)]


def build(
    specs: Sequence[Sequence[int]], primary_index: int = 0, owners: int = len(OWNERS)
) -> list[Command]:
    """Turn raw specs into a command stream (seq increasing, except deliberate replays).

    Most commands go to the primary market; some to the others or to an unknown one.
    Owners are drawn from the first ``owners`` of :data:`OWNERS` (fewer owners: more
    self-trade prevention).
    The reference engine runs alongside, only to aim cancels and amends at open orders.
    """
    engine = ReferenceEngine(MARKETS)
    commands: list[Command] = []
    placed: list[_Placed] = []
    seq = 0
    ts = 1_700_000_000_000_000_000
    primary = MARKETS[primary_index % len(MARKETS)].symbol
    for market_sel, seq_sel, cmd_kind, *body in specs:
        if market_sel < 3:
            market = UNKNOWN
        elif market_sel < 15:
            market = MARKETS[market_sel % len(MARKETS)].symbol
        else:
            market = primary
        if seq_sel < 3 and seq > 1:
            cmd_seq = 1 + seq_sel * 7 % seq  # an old seq: must be ignored
        else:
            seq += 1 + seq_sel % 2
            ts += 1_000 * (seq_sel + 1)
            cmd_seq = seq
        cmd: Command
        kind = "place" if cmd_kind < 60 else "cancel" if cmd_kind < 78 else "amend"
        if cmd_kind >= 95:
            kind = "cancel_all"
        if kind == "place":
            cmd = _build_place(body, cmd_seq, ts, market, placed, owners)
            placed.append(_Placed(cmd.order_id or cmd.seq, cmd.owner, cmd.client_order_id, market))
        elif kind in ("cancel", "amend"):
            how, owner_i, _, poff, qsteps, own_sel, cid_i, what, _, _, ref = body
            target = _target(placed, market, ref, engine)
            owner = OWNERS[owner_i % owners]
            order_id, client_id = 0, ""
            if target is not None and own_sel < 85:
                owner = target.owner
            if target is None or how < 8:
                order_id = 999_999  # unknown
            elif how < 20:
                client_id = (
                    CLIENT_IDS[cid_i] if target.client_order_id == "" else (target.client_order_id)
                )
            elif how < 23:
                pass  # neither id nor client id
            else:
                order_id = target.order_id
                if how < 30:
                    client_id = CLIENT_IDS[cid_i]  # ignored when order_id is given
            if kind == "cancel":
                cmd = CancelOrder(
                    seq=cmd_seq,
                    ts=ts,
                    market=market,
                    owner=owner,
                    order_id=order_id,
                    client_order_id=client_id,
                )
            else:
                sc = _SCALES.get(market, _SCALES["PLAIN"])
                tick = {m.symbol: m.tick_size for m in MARKETS}.get(market, 1)
                price = (sc.mid + poff) * tick
                quantity = qsteps * sc.qty_unit
                if what < 35:
                    new_price, new_qty = price, 0
                elif what < 70:
                    new_price, new_qty = 0, quantity
                elif what < 85:
                    new_price, new_qty = price, quantity
                elif what < 88:
                    new_price, new_qty = 0, 0
                elif what < 91:
                    new_price, new_qty = -tick, 0
                elif what < 94:
                    new_price, new_qty = price + 1, 0
                elif what < 97:
                    new_qty, new_price = -quantity, 0
                else:
                    new_qty, new_price = 100_000 + (what % 2), 0
                cmd = AmendOrder(
                    seq=cmd_seq,
                    ts=ts,
                    market=market,
                    owner=owner,
                    order_id=order_id,
                    client_order_id=client_id,
                    price=new_price,
                    quantity=new_qty,
                )
        else:
            cmd = CancelAll(seq=cmd_seq, ts=ts, market=market, owner=OWNERS[body[1] % owners])
        commands.append(cmd)
        engine.execute(cmd)
    return commands


@st.composite
def command_streams(draw: st.DrawFn, min_size: int = 1, max_size: int = 60) -> list[Command]:
    """Random command streams over :data:`MARKETS` (plus an unknown market).

    The length is geometric with a mean around 40 (capped at ``max_size``), so that
    long streams, where books build up and stops fire, are common. Each element is its
    own span of choices, so the shrinker can delete commands one by one.
    """
    primary = draw(st.integers(0, len(MARKETS) - 1))
    owners = draw(st.integers(2, len(OWNERS)))
    specs: list[Sequence[int]] = []
    while len(specs) < max_size:
        if len(specs) >= min_size and draw(st.integers(0, 39)) == 0:
            break
        specs.append(draw(_spec))
    return build(specs, primary, owners)
