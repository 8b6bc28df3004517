"""The projection writer: applies the outputs of ordered input logs to SQL, exactly once.

``ProjectionWriter.write(log, batch)`` takes ``(seq, events)`` items: the input ``seq`` of
``log`` and the events that input produced, in order (engine events of
:mod:`crossbook.domain.events`, ``TransactionPosted`` of :mod:`crossbook.domain.ledger`;
other events are ignored). Invariants:

- **Exactly-once effects under at-least-once delivery.** A batch is one database
  transaction that also moves ``projection_progress.last_seq`` of ``log``; items with
  ``seq <= last_seq`` (redeliveries, overlaps, duplicates inside the batch) are skipped.
  Primary keys (``tx_id``, ``(market, trade_id)``) back this up: a transaction or trade
  arriving again under a *new* seq raises ``IntegrityError`` and the batch rolls back.
- ``balances`` always equals the sum of ``ledger_postings`` per (account, asset): the
  batch's postings are summed per key in Python (exact ints) and upserted with
  ``INSERT ... ON CONFLICT DO UPDATE SET amount = amount + excluded.amount``.
- ``orders`` rows follow the events in order as if applied one by one; a batch writes each
  touched order once (its final state).

Order status mapping (``orders.status``):

================  =========================================================================
event             effect on the order row
================  =========================================================================
OrderAccepted     row created (or replaced, if the id is reused after the order closed):
                  ``new``; ``leaves`` = quantity (quote_quantity for quote-sized market
                  orders); stop orders stay ``new`` until triggered
OrderTriggered    ``triggered`` (the stop fired; it now works as a limit/market order)
OrderFilled       taker and maker: ``filled += quantity``, ``filled_quote_scaled +=
                  price * quantity``, ``leaves`` from the event; ``filled`` if leaves is 0,
                  else ``partially_filled``
OrderAmended      price, quantity and leaves from the event; status unchanged
OrderCancelled    ``cancelled``, ``leaves`` = 0, ``reason`` = cancel reason
OrderExpired      ``expired`` (IOC, FOK, market leftovers, self-trade prevention),
                  ``leaves`` = 0, ``reason`` = expire reason
OrderRejected     a ``rejected`` row with the reject reason, only if no row has that
                  (market, order_id) (a duplicate-id rejection leaves the live order alone)
================  =========================================================================

Open orders are those with status ``new``, ``triggered`` or ``partially_filled``. Events
about an order that has no row (accepted before the projection started) are ignored.

Accounts shards (:mod:`crossbook.domain.sharding`): with ``shards`` = K > 1, each
shard's log ``accounts-k`` has its own writer (``shard=k, shards=K``), all into one
database. A shard's log holds only the events of its own users, except ``OrderFilled``,
which a fill between two shards puts in both shards' logs. So the writer of shard ``k``
inserts the trade row only if the taker is its user (``taker_owner % K == k``: the row
once, whatever writer runs first), and updates only the order rows of its own users
(the taker's, the maker's or both): the other side's row is its own shard's writer's.
Everything else is written as with one log: transaction ids are unique across shards,
and the two ``trade`` halves of a fill (same ref) post to ``clearing:<market>``, whose
balance sums both (zero once both are written). ``trade_fees`` sums both halves. With
one shard nothing changes (the same code path, no per-event check).

Hot path: rows are built as driver-ready tuples (amounts bound as ``Amount`` stores them:
decimal text on SQLite, checked ints on PostgreSQL) and written with the DB-API cursor of
the SQLAlchemy connection, inside its transaction (driver errors are re-raised as
SQLAlchemy's, e.g. ``IntegrityError``). Orders are written in two parts: rows created by
the batch are plain inserts (if one meets a stored row, i.e. an order id was reused after
its order closed, they are redone as upserts under a savepoint), and stored rows the
batch changed get an ``UPDATE`` of only the columns events change, after a read of only
the columns events need (one index probe per id).

- SQLite: multi-row ``INSERT ... VALUES`` statements (a one-row statement costs about as
  much as its row), ``executemany`` for upserts and updates, amounts that fit 64 bits
  bound as ints (the TEXT affinity of the column stores their decimal string), a 64 MiB
  page cache and a checkpoint every 8192 WAL pages on the writer's connections.
- PostgreSQL: ``COPY`` for the insert-only tables and the created orders, one ``unnest``
  upsert for balances, ``COPY`` into a temp table plus one ``UPDATE ... FROM`` for the
  changed orders. The server ingests a ``COPY`` while its rows arrive, in its own process:
  the postings (most of its work) are sent in chunks as they are built, and the rest of
  the batch (order rows, balances, the other payloads) is made ready while the server is
  still on them.

Where the time goes (``bench/projection_bench.py``, batch 5000, about 7.3 rows per
command: 1.4 transactions with 3 postings each, 1.1 order rows, 0.3 trades): on SQLite
mostly the statements themselves (about 1 us a row even without indexes) and the index
on postings by account; on PostgreSQL the server's work per row (parsing, heap, indexes
and WAL), of which the postings' index by account is the largest part.
"""

from __future__ import annotations

import functools
import gc
import io
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from itertools import chain
from typing import Any

from sqlalchemy import Engine, event, select
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError

from crossbook.domain.enums import (
    CancelReason,
    ExpireReason,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)
from crossbook.domain.events import (
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
)
from crossbook.domain.ledger import TransactionPosted
from crossbook.domain.sharding import check_shard
from crossbook.ledger.db import BEGIN_IMMEDIATE, make_engine, migrate
from crossbook.ledger.schema import (
    AMOUNT_DIGITS,
    Amount,
    OrderStatus,
    balances,
    check_amount,
    ledger_postings,
    ledger_transactions,
    orders,
    projection_progress,
    trades,
)

Item = tuple[int, Sequence[object]]
"""``(input seq, events produced by that input)``."""

_Key = tuple[str, int]
_Row = list[Any]
"""An ``orders`` row being built: values in table column order (amounts as ``int``)."""
_Tuple = tuple[Any, ...]

_LIMIT = 10**AMOUNT_DIGITS
_SQLITE_PRAGMAS = (
    # the default 2 MiB page cache thrashes on the indexes of a large batch:
    "PRAGMA cache_size=-65536",
    # checkpoint (and fsync) every 8192 WAL pages (32 MiB) rather than every 1000:
    "PRAGMA wal_autocheckpoint=8192",
)
"""Set on the writer's own SQLite connections (with those of ``make_engine``)."""


_I64 = 2**63


def _text_amount(v: Any) -> Any:
    """An amount as SQLite stores it (``Amount``): its canonical decimal string. An
    ``int`` that fits SQLite's 64-bit integers is bound as is: the column's TEXT affinity
    stores it as exactly that string (converted in C, cheaper than ``str``)."""
    if type(v) is int and -_I64 < v < _I64:
        return v
    return None if v is None else str(check_amount(v))


def _int_amount(v: Any) -> Any:
    """An amount as PostgreSQL gets it (``Amount``): the checked ``int``."""
    if type(v) is int and -_LIMIT < v < _LIMIT:
        return v
    return None if v is None else check_amount(v)


def _names(table: Any) -> list[str]:
    return [c.name for c in table.columns]


_ORDER_COLUMNS = _names(orders)
_O = {name: i for i, name in enumerate(_ORDER_COLUMNS)}
_O_PRICE, _O_QUANTITY = _O["price"], _O["quantity"]
_O_STATUS, _O_REASON = _O["status"], _O["reason"]
_O_FILLED, _O_FILLED_QUOTE, _O_LEAVES = _O["filled"], _O["filled_quote_scaled"], _O["leaves"]
_O_UPDATED_SEQ, _O_UPDATED_TS = _O["updated_seq"], _O["updated_ts"]
# :meth:`_Batch.order_rows` and :func:`_stored_order` spell these positions out:
assert tuple(i for i, c in enumerate(orders.columns) if isinstance(c.type, Amount)) == (
    7, 8, 9, 10, 11, 15, 16, 17,
)  # fmt: skip
assert (_O_PRICE, _O_QUANTITY, _O_STATUS, _O_REASON, _O_FILLED, _O_FILLED_QUOTE, _O_LEAVES,
        _O_UPDATED_SEQ, _O_UPDATED_TS) == (7, 8, 13, 14, 15, 16, 17, 19, 21)  # fmt: skip
_ORDER_KEY = ("market", "order_id")
assert _ORDER_COLUMNS[:2] == list(_ORDER_KEY)
_UPDATE_COLUMNS = ("status", "reason", "price", "quantity", "filled", "filled_quote_scaled",
                   "leaves", "updated_seq", "updated_ts")  # fmt: skip
"""The columns an event can change on a stored order (the others are set when created)."""

_VALUE: dict[Enum, str] = {
    m: m.value
    for enum in (Side, OrderType, TimeInForce, RejectReason, CancelReason, ExpireReason)
    for m in enum
}
"""Enum member -> its stored value (a dict hit is cheaper than ``.value``)."""

_NEW = OrderStatus.NEW.value
_TRIGGERED = OrderStatus.TRIGGERED.value
_PARTIALLY_FILLED = OrderStatus.PARTIALLY_FILLED.value
_FILLED = OrderStatus.FILLED.value
_REJECTED = OrderStatus.REJECTED.value


@dataclass(frozen=True)
class WriteStats:
    """What one :meth:`ProjectionWriter.write` did."""

    applied: int
    """Items applied (seq above the log's progress)."""
    skipped: int
    """Items ignored as already applied."""
    events: int
    """Events in the applied items (projected or not)."""
    rows: int
    """Rows inserted or upserted (progress row included)."""
    last_seq: int
    """The log's progress after the write."""


class _Batch:
    """Rows derived from the applied items of one batch, as driver-ready tuples in table
    column order (amounts already bound by ``amount``, as ``Amount`` would bind them)."""

    def __init__(self, log: str, amount: Callable[[Any], Any]) -> None:
        self.log = log
        self.amount = amount
        self.text = amount is _text_amount
        self.events = 0
        self.tx_rows: list[_Tuple] = []
        self.transactions: list[TransactionPosted] = []
        self.delta: dict[tuple[str, str], int] = {}
        """The change of each balance, summed as the postings are built."""
        self.posting_count = 0
        """Postings built so far."""
        self.trade_rows: list[_Tuple] = []
        self.order_events: list[tuple[int, Any]] = []

    def add(self, seq: int, events: Sequence[object]) -> None:
        self.events += len(events)
        for e in events:
            t = type(e)
            if t is TransactionPosted:
                tx: TransactionPosted = e  # type: ignore[assignment]
                self.tx_rows.append((tx.tx_id, self.log, seq, tx.ts, tx.type, tx.ref))
                self.transactions.append(tx)
            elif t is OrderFilled:
                self._filled(seq, e)  # type: ignore[arg-type]
            elif t in _ORDER_HANDLERS:
                self.order_events.append((seq, e))

    def _filled(self, seq: int, f: OrderFilled) -> None:
        """A fill: its trade row, and its change to both orders' rows."""
        self.order_events.append((seq, f))
        self._trade(seq, f)

    def posting_rows(self) -> list[_Tuple]:
        """The rows of all the postings. The postings are built once: by this or by
        :meth:`posting_chunks`, before :meth:`balance_rows`."""
        return self._build_postings(self.transactions)

    def posting_chunks(self, transactions: int) -> Iterator[list[_Tuple]]:
        """The rows of the postings in chunks, those of ``transactions`` transactions at
        a time, each built when asked for: the PostgreSQL writer sends a chunk while it
        builds the next, and keeps none."""
        txs = self.transactions
        for i in range(0, len(txs), transactions):
            yield self._build_postings(txs[i : i + transactions])

    def _build_postings(self, transactions: list[TransactionPosted]) -> list[_Tuple]:
        """The rows of the postings of ``transactions``, added to :attr:`delta`."""
        rows: list[_Tuple] = []
        delta = self.delta
        # bound as is when in range (see _text_amount, _int_amount), else by ``amount``
        # (str on SQLite; raises if not an int of at most 78 digits):
        small = _I64 if self.text else _LIMIT
        amount = self.amount
        append = rows.append
        get = delta.get
        for e in transactions:
            tx_id = e.tx_id
            for n, p in enumerate(e.postings):
                v = p.amount
                if type(v) is int and -small < v < small:
                    append((tx_id, n, p.account, p.asset, v))
                else:
                    append((tx_id, n, p.account, p.asset, amount(check_amount(v))))
                key = (p.account, p.asset)
                delta[key] = get(key, 0) + v
        self.posting_count += len(rows)
        return rows

    def _trade(self, seq: int, e: OrderFilled) -> None:
        amount = self.amount
        self.trade_rows.append(
            (e.market, e.trade_id, amount(e.price), amount(e.quantity), _VALUE[e.taker_side],
             e.taker_order_id, e.taker_owner, e.maker_order_id, e.maker_owner, seq, e.ts)
        )  # fmt: skip

    def balance_rows(self) -> list[_Tuple]:
        """The change of each balance (:attr:`delta`, once the postings are built)."""
        amount, delta = self.amount, self.delta
        # sorted: a fixed lock order across writers
        return [(a, s, amount(delta[(a, s)])) for a, s in sorted(delta)]

    def order_rows(self, states: dict[_Key, _Row]) -> tuple[list[_Tuple], list[_Tuple]]:
        """Apply the order events in order to ``states`` (the stored rows they need, see
        :meth:`keys_to_load`); return the final state of every changed row, in key order,
        amounts bound, split in two:

        - ``created``: rows made by this batch (``OrderAccepted``, or ``OrderRejected``
          of an id with no stored row), whole rows in table column order; a stored row
          with the same key can only be an earlier order whose id was reused (replace it);
        - ``updated``: stored rows changed by this batch, as the values of
          :data:`_UPDATE_COLUMNS` then the key (the other columns never change).
        """
        loaded = dict(states)
        dirty: dict[_Key, _Row] = {}
        handlers = _ORDER_HANDLERS
        for seq, e in self.order_events:
            handlers[type(e)](states, dirty, seq, e)
        bind = self.amount
        created: list[_Tuple] = []
        updated: list[_Tuple] = []
        for k in sorted(dirty):
            r = dirty[k]
            if loaded.get(k) is r:
                updated.append((
                    r[13], r[14], bind(r[7]), bind(r[8]), bind(r[15]), bind(r[16]),
                    bind(r[17]), r[19], r[21], r[0], r[1],
                ))  # fmt: skip
            else:
                created.append((
                    r[0], r[1], r[2], r[3], r[4], r[5], r[6], bind(r[7]), bind(r[8]),
                    bind(r[9]), bind(r[10]), bind(r[11]), r[12], r[13], r[14], bind(r[15]),
                    bind(r[16]), bind(r[17]), r[18], r[19], r[20], r[21],
                ))  # fmt: skip
        return created, updated

    def keys_to_load(self) -> dict[str, list[int]]:
        """Orders whose first event in the batch needs their stored row (all but
        ``OrderAccepted``, which creates it)."""
        seen: set[_Key] = set()
        need: dict[str, list[int]] = defaultdict(list)
        for _, e in self.order_events:
            if type(e) is OrderFilled:
                keys: tuple[_Key, ...] = (
                    (e.market, e.taker_order_id),
                    (e.market, e.maker_order_id),
                )
            else:
                keys = ((e.market, e.order_id),)
            for key in keys:
                if key not in seen:
                    seen.add(key)
                    if type(e) is not OrderAccepted:
                        need[key[0]].append(key[1])
        return need


class _ShardBatch(_Batch):
    """A :class:`_Batch` of one accounts shard's log (see the module docstring): an
    ``OrderFilled`` makes the trade row only if the taker is this shard's user, and
    changes only the order rows of this shard's users (as :class:`_SideFill`)."""

    def __init__(self, log: str, amount: Callable[[Any], Any], shard: int, shards: int) -> None:
        super().__init__(log, amount)
        self.shard = shard
        self.shards = shards

    def _filled(self, seq: int, f: OrderFilled) -> None:
        shard, shards = self.shard, self.shards
        if f.taker_owner % shards == shard:
            self._trade(seq, f)
            self.order_events.append(
                (seq, _SideFill(f.market, f.taker_order_id, f.price, f.quantity,
                                f.taker_leaves, f.ts))
            )  # fmt: skip
        if f.maker_owner % shards == shard:
            self.order_events.append(
                (seq, _SideFill(f.market, f.maker_order_id, f.price, f.quantity,
                                f.maker_leaves, f.ts))
            )  # fmt: skip


# ------------------------------------------------------------------ order events
# Each handler: (states, dirty, seq, event) -> None; mutates the touched row in place.


def _touch(dirty: dict[_Key, _Row], key: _Key, row: _Row, seq: int, ts: int) -> None:
    row[_O_UPDATED_SEQ] = seq
    row[_O_UPDATED_TS] = ts
    dirty[key] = row


def _on_accepted(states: dict[_Key, _Row], dirty: dict[_Key, _Row], seq: int, e: Any) -> None:
    a: OrderAccepted = e
    key = (a.market, a.order_id)
    # in the column order of ``orders``:
    row = [
        a.market, a.order_id, a.owner, a.client_order_id, _VALUE[a.side], _VALUE[a.type],
        _VALUE[a.time_in_force], a.price, a.quantity, a.quote_quantity, a.stop_price,
        a.display_quantity, a.post_only, _NEW, None, 0, 0,
        a.quantity if a.quantity > 0 else a.quote_quantity, seq, seq, a.ts, a.ts,
    ]  # fmt: skip
    states[key] = row
    dirty[key] = row


def _on_rejected(states: dict[_Key, _Row], dirty: dict[_Key, _Row], seq: int, e: Any) -> None:
    r: OrderRejected = e
    key = (r.market, r.order_id)
    if key in states:
        return
    row = [
        r.market, r.order_id, r.owner, r.client_order_id, None, None, None, None, None, None,
        None, None, None, _REJECTED, _VALUE[r.reason], 0, 0, 0, seq, seq, r.ts, r.ts,
    ]  # fmt: skip
    states[key] = row
    dirty[key] = row


def _on_filled(states: dict[_Key, _Row], dirty: dict[_Key, _Row], seq: int, e: Any) -> None:
    f: OrderFilled = e
    notional = f.price * f.quantity
    sides = ((f.taker_order_id, f.taker_leaves), (f.maker_order_id, f.maker_leaves))
    for order_id, leaves in sides:
        key = (f.market, order_id)
        row = states.get(key)
        if row is None:
            continue
        row[_O_FILLED] += f.quantity
        row[_O_FILLED_QUOTE] += notional
        row[_O_LEAVES] = leaves
        row[_O_STATUS] = _FILLED if leaves == 0 else _PARTIALLY_FILLED
        row[_O_UPDATED_SEQ] = seq
        row[_O_UPDATED_TS] = f.ts
        dirty[key] = row


@dataclass(frozen=True, slots=True)
class _SideFill:
    """One side of an ``OrderFilled``: what it does to that order's row (the sharded
    writer's, see :class:`_ShardBatch`)."""

    market: str
    order_id: int
    price: int
    quantity: int
    leaves: int
    ts: int


def _on_side_filled(states: dict[_Key, _Row], dirty: dict[_Key, _Row], seq: int, e: Any) -> None:
    f: _SideFill = e
    key = (f.market, f.order_id)
    row = states.get(key)
    if row is None:
        return
    row[_O_FILLED] += f.quantity
    row[_O_FILLED_QUOTE] += f.price * f.quantity
    row[_O_LEAVES] = f.leaves
    row[_O_STATUS] = _FILLED if f.leaves == 0 else _PARTIALLY_FILLED
    _touch(dirty, key, row, seq, f.ts)


def _closer(status: OrderStatus) -> Callable[[dict[_Key, _Row], dict[_Key, _Row], int, Any], None]:
    value = status.value

    def close(states: dict[_Key, _Row], dirty: dict[_Key, _Row], seq: int, e: Any) -> None:
        c: OrderCancelled | OrderExpired = e
        key = (c.market, c.order_id)
        row = states.get(key)
        if row is None:
            return
        row[_O_STATUS] = value
        row[_O_REASON] = _VALUE[c.reason]
        row[_O_LEAVES] = 0
        _touch(dirty, key, row, seq, c.ts)

    return close


def _on_amended(states: dict[_Key, _Row], dirty: dict[_Key, _Row], seq: int, e: Any) -> None:
    a: OrderAmended = e
    key = (a.market, a.order_id)
    row = states.get(key)
    if row is None:
        return
    row[_O_PRICE] = a.price
    row[_O_QUANTITY] = a.quantity
    row[_O_LEAVES] = a.leaves
    _touch(dirty, key, row, seq, a.ts)


def _on_triggered(states: dict[_Key, _Row], dirty: dict[_Key, _Row], seq: int, e: Any) -> None:
    t: OrderTriggered = e
    key = (t.market, t.order_id)
    row = states.get(key)
    if row is None:
        return
    if row[_O_STATUS] == _NEW:
        row[_O_STATUS] = _TRIGGERED
    _touch(dirty, key, row, seq, t.ts)


_ORDER_HANDLERS: dict[type, Callable[[dict[_Key, _Row], dict[_Key, _Row], int, Any], None]] = {
    OrderAccepted: _on_accepted,
    OrderRejected: _on_rejected,
    OrderFilled: _on_filled,
    OrderCancelled: _closer(OrderStatus.CANCELLED),
    OrderExpired: _closer(OrderStatus.EXPIRED),
    OrderAmended: _on_amended,
    OrderTriggered: _on_triggered,
    _SideFill: _on_side_filled,  # (made only by _ShardBatch)
}


_LOADED_COLUMNS = ("market", "order_id", "status", "reason", "price", "quantity", "filled",
                   "filled_quote_scaled", "leaves")  # fmt: skip
"""What the events can read or change of a stored order (see :data:`_UPDATE_COLUMNS`)."""


def _stored_order(values: Sequence[Any]) -> _Row:
    """A stored order read back as :data:`_LOADED_COLUMNS` (driver values, amounts as
    numbers or decimal strings): a mutable row in table column order with int amounts,
    ``None`` in the columns not read (a stored row is only ever written back as an
    update of :data:`_UPDATE_COLUMNS`)."""
    market, order_id, status, reason, price, quantity, filled, filled_quote, leaves = values
    return [
        market, order_id, None, None, None, None, None,
        None if price is None else int(price), None if quantity is None else int(quantity),
        None, None, None, None, status, reason, int(filled), int(filled_quote), int(leaves),
        None, None, None, None,
    ]  # fmt: skip


# ------------------------------------------------------------------ backends


def _columns(table: Any) -> str:
    return ", ".join(_names(table))


class _Sink:
    """Writes a batch with the driver's own cursor (no per-row SQLAlchemy processing),
    inside the SQLAlchemy connection's transaction."""

    amount: Callable[[Any], Any]

    def __init__(self, engine: Engine) -> None:
        self.dialect = engine.dialect

    @contextmanager
    def cursor(self, conn: Connection) -> Iterator[Any]:
        """The DB-API cursor; driver errors come out as SQLAlchemy's (``IntegrityError``,
        ...), as from ``Connection.execute``."""
        dbapi = self.dialect.loaded_dbapi
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            yield cur
        except dbapi.Error as exc:
            raise DBAPIError.instance(None, None, exc, dbapi.Error, dialect=self.dialect) from exc
        finally:
            cur.close()

    def progress(self, conn: Connection, log: str, *, lock: bool) -> int:
        raise NotImplementedError

    def load_orders(self, cur: Any, need: dict[str, list[int]]) -> dict[_Key, _Row]:
        raise NotImplementedError

    def flush(self, conn: Connection, b: _Batch, last_seq: int) -> int:
        raise NotImplementedError


class _SqliteSink(_Sink):
    amount = staticmethod(_text_amount)

    _TX = (
        f"INSERT INTO ledger_transactions ({_columns(ledger_transactions)}) "
        "VALUES (?, ?, ?, ?, ?, ?)"
    )
    _POSTINGS = f"INSERT INTO ledger_postings ({_columns(ledger_postings)}) VALUES (?, ?, ?, ?, ?)"
    _TRADES = f"INSERT INTO trades ({_columns(trades)}) VALUES ({', '.join('?' * len(trades.c))})"
    _BALANCES = (
        "INSERT INTO balances (account, asset, amount) VALUES (?, ?, ?) "
        "ON CONFLICT (account, asset) DO UPDATE SET "
        "amount = crossbook_add(balances.amount, excluded.amount)"
    )
    _ORDERS_NEW = (
        f"INSERT INTO orders ({_columns(orders)}) VALUES ({', '.join('?' * len(orders.c))})"
    )
    _ORDERS = (
        _ORDERS_NEW
        + " ON CONFLICT (market, order_id) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in _ORDER_COLUMNS if c not in _ORDER_KEY)
    )
    _ORDERS_UPDATE = (
        "UPDATE orders SET "
        + ", ".join(f"{c} = ?" for c in _UPDATE_COLUMNS)
        + " WHERE market = ? AND order_id = ?"
    )
    _LOAD = (
        f"SELECT {', '.join(_LOADED_COLUMNS)} FROM orders WHERE market = ? "
        "AND order_id IN (SELECT value FROM json_each(?))"
    )
    _PROGRESS = (
        "INSERT INTO projection_progress (log, last_seq) VALUES (?, ?) "
        "ON CONFLICT (log) DO UPDATE SET last_seq = excluded.last_seq"
    )

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        event.listen(engine, "connect", _sqlite_pragmas)

    def progress(self, conn: Connection, log: str, *, lock: bool) -> int:
        with self.cursor(conn) as cur:
            cur.execute("SELECT last_seq FROM projection_progress WHERE log = ?", (log,))
            row = cur.fetchone()
        return 0 if row is None else int(row[0])

    def load_orders(self, cur: Any, need: dict[str, list[int]]) -> dict[_Key, _Row]:
        states: dict[_Key, _Row] = {}
        for market, ids in need.items():
            cur.execute(self._LOAD, (market, json.dumps(ids)))
            for values in cur.fetchall():
                states[(values[0], values[1])] = _stored_order(values)
        return states

    def flush(self, conn: Connection, b: _Batch, last_seq: int) -> int:
        rows = 1
        with self.cursor(conn) as cur:
            if b.tx_rows:
                _insert_values(cur, self._TX, b.tx_rows)
                _insert_values(cur, self._POSTINGS, b.posting_rows())
                bal = b.balance_rows()
                cur.executemany(self._BALANCES, bal)
                rows += len(b.tx_rows) + b.posting_count + len(bal)
            if b.trade_rows:
                _insert_values(cur, self._TRADES, b.trade_rows)
                rows += len(b.trade_rows)
            if b.order_events:
                created, updated = b.order_rows(self.load_orders(cur, b.keys_to_load()))
                if created:
                    self._insert_orders(cur, created)
                if updated:
                    cur.executemany(self._ORDERS_UPDATE, updated)
                rows += len(created) + len(updated)
            cur.execute(self._PROGRESS, (b.log, last_seq))
        return rows

    def _insert_orders(self, cur: Any, created: list[_Tuple]) -> None:
        """Plain inserts; if one meets a stored row (an order id reused after the order
        closed, the only way a created row can), redo them all as upserts."""
        cur.execute("SAVEPOINT crossbook_orders")
        try:
            _insert_values(cur, self._ORDERS_NEW, created)
        except self.dialect.loaded_dbapi.IntegrityError:
            cur.execute("ROLLBACK TO crossbook_orders")
            cur.executemany(self._ORDERS, created)
        cur.execute("RELEASE crossbook_orders")


_MAX_PARAMS = 999
"""Bound parameters per statement (SQLite's historical minimum limit)."""


@functools.cache
def _multi_row(sql: str, rows: int) -> str:
    """``INSERT ... VALUES (?, ...)`` made to insert ``rows`` rows at once."""
    head, _, values = sql.rpartition(" VALUES ")
    return f"{head} VALUES {', '.join([values] * rows)}"


def _insert_values(cur: Any, sql: str, rows: list[_Tuple]) -> None:
    """``executemany(sql, rows)`` for a plain ``INSERT ... VALUES (?, ...)``, as statements
    of many rows each (SQLite spends much of a one-row statement on the statement itself:
    this is about a quarter faster)."""
    if not rows:
        return
    width = len(rows[0])
    per = max(1, _MAX_PARAMS // width)
    whole = len(rows) - len(rows) % per
    if whole:
        flat = list(chain.from_iterable(rows[:whole] if whole < len(rows) else rows))
        step = per * width
        cur.executemany(
            _multi_row(sql, per), [flat[i : i + step] for i in range(0, len(flat), step)]
        )
    if whole < len(rows):
        cur.execute(_multi_row(sql, len(rows) - whole), list(chain.from_iterable(rows[whole:])))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    for pragma in _SQLITE_PRAGMAS:
        dbapi_connection.execute(pragma)


def _unnest(table: Any, types: dict[str, str]) -> str:
    """``SELECT * FROM unnest(%s::type[], ...)`` over the columns of ``table``."""
    return "SELECT * FROM unnest(" + ", ".join(f"%s::{types[c]}[]" for c in _names(table)) + ")"


_PG_TYPES = {
    "account": "text",
    "asset": "text",
    "amount": "numeric",
}


_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
"""What a field of COPY's text format must escape."""


def _plain_text(rows: list[_Tuple], columns: tuple[int, ...]) -> bool:
    """Whether the ``columns`` of ``rows`` are all ``str`` with nothing to escape in
    COPY's text format (the other columns being ints), so that the rows can be written
    as ``"\\t".join(map(str, row))``."""
    strings = {r[i] for r in rows for i in columns}
    if not all(type(v) is str for v in strings):
        return False
    return _COPY_SPECIAL.search("".join(strings)) is None


_Lines = Callable[[list[_Tuple]], str]
"""Rows (whose strings need no escaping) -> their COPY text-format payload."""


def _tx_lines(rows: list[_Tuple]) -> str:
    return "".join([f"{i}\t{log}\t{seq}\t{ts}\t{kind}\t{ref}\n"
                    for i, log, seq, ts, kind, ref in rows])  # fmt: skip


def _posting_lines(rows: list[_Tuple]) -> str:
    return "".join([f"{i}\t{n}\t{account}\t{asset}\t{amount}\n"
                    for i, n, account, asset, amount in rows])  # fmt: skip


def _trade_lines(rows: list[_Tuple]) -> str:
    return "".join([f"{m}\t{i}\t{p}\t{q}\t{side}\t{to}\t{tw}\t{mo}\t{mw}\t{seq}\t{ts}\n"
                    for m, i, p, q, side, to, tw, mo, mw, seq, ts in rows])  # fmt: skip


_TEXT_COLUMNS: dict[_Lines, tuple[int, ...]] = {
    _tx_lines: (1, 4, 5),
    _posting_lines: (2, 3),
    _trade_lines: (0, 4),
}
"""The string columns of the rows each formatter takes (the others are ints)."""


def _copy_text(rows: list[_Tuple], lines: _Lines) -> str | None:
    """The COPY payload of ``rows`` built with f-strings (several times faster than
    ``write_row``), or ``None`` if a string needs escaping (see :func:`_plain_text`)."""
    return lines(rows) if _plain_text(rows, _TEXT_COLUMNS[lines]) else None


def _write_rows(copy: Any, rows: list[_Tuple], text: _Lines | str | bytes | None) -> None:
    """Send ``rows`` to ``copy``: as the payload ``text`` (or the one built by a
    formatter), else row by row with ``write_row`` (which escapes)."""
    if callable(text):
        text = _copy_text(rows, text)
    if text is None:
        write = copy.write_row
        for r in rows:
            write(r)
    else:
        copy.write(text)


def _formatted(cur: Any, rows: list[_Tuple]) -> bytes:
    """The COPY text-format payload of ``rows`` as ``write_row`` would send it through
    ``cur``'s connection (psycopg's own formatting, escapes included), built without
    sending anything."""
    if not rows:
        return b""
    from psycopg.copy import Copy, FileWriter

    buffer = io.BytesIO()
    with (
        cur.connection.cursor() as spare,
        Copy(spare, binary=False, writer=FileWriter(buffer)) as copy,
    ):
        write = copy.write_row
        for r in rows:
            write(r)
    return buffer.getvalue()


@dataclass
class _Prepared:
    """What the PostgreSQL writer sends after the postings, made ready while the server
    takes them: the COPY payloads of the orders' rows (see :meth:`_Batch.order_rows`)
    and of the trades."""

    created: int
    """Rows in ``created_text``."""
    updated: int
    """Rows in ``updated_text``."""
    created_text: bytes
    updated_text: bytes
    trades_text: str | None


_POSTING_CHUNK = 1024
"""Transactions whose postings the PostgreSQL writer builds and sends at a time."""

_LOADED_TEXT = ", ".join(
    f"{c}::text" if isinstance(orders.c[c].type, Amount) else c for c in _LOADED_COLUMNS
)
""":data:`_LOADED_COLUMNS` with the amounts read as text (``int()`` of a string is
cheaper than of the ``Decimal`` a ``numeric`` loads as)."""


class _PostgresSink(_Sink):
    amount = staticmethod(_int_amount)

    _TX = f"COPY ledger_transactions ({_columns(ledger_transactions)}) FROM STDIN"
    _POSTINGS = f"COPY ledger_postings ({_columns(ledger_postings)}) FROM STDIN"
    _TRADES = f"COPY trades ({_columns(trades)}) FROM STDIN"
    _BALANCES = (
        f"INSERT INTO balances (account, asset, amount) {_unnest(balances, _PG_TYPES)} "
        "ON CONFLICT (account, asset) DO UPDATE SET amount = balances.amount + excluded.amount"
    )
    # orders: COPY into a session temp table, then one upsert from it (about twice as
    # fast as binding 22 arrays for unnest)
    _ORDERS_TEMP = (
        "CREATE TEMP TABLE IF NOT EXISTS crossbook_orders_in (LIKE orders) ON COMMIT DELETE ROWS"
    )
    _ORDERS_COPY = f"COPY crossbook_orders_in ({_columns(orders)}) FROM STDIN"
    _ORDERS = (
        f"INSERT INTO orders ({_columns(orders)}) SELECT {_columns(orders)} "
        "FROM crossbook_orders_in ORDER BY market, order_id "
        "ON CONFLICT (market, order_id) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in _ORDER_COLUMNS if c not in _ORDER_KEY)
    )
    _ORDERS_NEW = f"COPY orders ({_columns(orders)}) FROM STDIN"
    _UPDATES_TEMP = (
        "CREATE TEMP TABLE IF NOT EXISTS crossbook_orders_up ON COMMIT DELETE ROWS AS SELECT "
        + ", ".join(_UPDATE_COLUMNS + _ORDER_KEY)
        + " FROM orders WITH NO DATA"
    )
    _UPDATES_COPY = (
        f"COPY crossbook_orders_up ({', '.join(_UPDATE_COLUMNS + _ORDER_KEY)}) FROM STDIN"
    )
    _ORDERS_UPDATE = (
        "UPDATE orders AS o SET "
        + ", ".join(f"{c} = u.{c}" for c in _UPDATE_COLUMNS)
        + " FROM crossbook_orders_up AS u WHERE o.market = u.market AND o.order_id = u.order_id"
    )
    _NESTED_LOOP = "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"
    _DEFAULT_JOINS = "SET LOCAL enable_hashjoin TO DEFAULT; SET LOCAL enable_mergejoin TO DEFAULT"
    _LOAD = (
        # one index probe per id whatever the statistics say (a table grown since its
        # last ANALYZE gets a scan of the whole market from ``order_id = ANY(...)``):
        f"SELECT o.* FROM unnest(%s::bigint[]) AS k(id) CROSS JOIN LATERAL "
        f"(SELECT {_LOADED_TEXT} FROM orders WHERE market = %s AND order_id = k.id "
        "OFFSET 0) AS o"
    )
    _PROGRESS = (
        "INSERT INTO projection_progress (log, last_seq) VALUES (%s, %s) "
        "ON CONFLICT (log) DO UPDATE SET last_seq = excluded.last_seq"
    )

    def progress(self, conn: Connection, log: str, *, lock: bool) -> int:
        query = select(projection_progress.c.last_seq).where(projection_progress.c.log == log)
        if lock:
            query = query.with_for_update()
        value = conn.execute(query).scalar_one_or_none()
        return 0 if value is None else int(value)

    def load_orders(self, cur: Any, need: dict[str, list[int]]) -> dict[_Key, _Row]:
        states: dict[_Key, _Row] = {}
        for market, ids in need.items():
            cur.execute(self._LOAD, (ids, market))
            for values in cur.fetchall():
                states[(values[0], values[1])] = _stored_order(values)
        return states

    def flush(self, conn: Connection, b: _Batch, last_seq: int) -> int:
        # The server ingests a COPY's rows while they arrive, in its own process (on the
        # other core), and the postings are most of its work. While it takes the
        # transactions, the writer finds the orders to load and builds the first chunk
        # of postings; it loads the orders, sends the other chunks as it builds them,
        # then makes the rest of the batch ready (order rows, balances, payloads) while
        # the server is still on the postings.
        rows = 1
        with self.cursor(conn) as cur:
            states: dict[_Key, _Row] = {}
            prepared: _Prepared | None = None
            if b.tx_rows:
                chunks = b.posting_chunks(_POSTING_CHUNK)
                with cur.copy(self._TX) as copy:
                    _write_rows(copy, b.tx_rows, _tx_lines)
                    need = b.keys_to_load() if b.order_events else {}
                    first = next(chunks)
                    first_text = _copy_text(first, _posting_lines)
                if need:
                    states = self.load_orders(cur, need)
                with cur.copy(self._POSTINGS) as copy:
                    _write_rows(copy, first, first_text)
                    for chunk in chunks:
                        _write_rows(copy, chunk, _posting_lines)
                    bal = b.balance_rows()
                    columns = [list(c) for c in zip(*bal, strict=True)]
                    prepared = self._prepare(cur, b, states)
                if bal:  # (none only for transactions without postings)
                    cur.execute(self._BALANCES, columns)
                rows += len(b.tx_rows) + b.posting_count + len(bal)
            if prepared is None:
                if b.order_events:
                    states = self.load_orders(cur, b.keys_to_load())
                prepared = self._prepare(cur, b, states)
            if b.trade_rows:
                with cur.copy(self._TRADES) as copy:
                    _write_rows(copy, b.trade_rows, prepared.trades_text)
                rows += len(b.trade_rows)
            if prepared.created:
                self._insert_orders(cur, prepared.created_text)
            if prepared.updated:
                cur.execute(self._UPDATES_TEMP)
                with cur.copy(self._UPDATES_COPY) as copy:
                    copy.write(prepared.updated_text)
                # one index probe per row (the default plan hashes all of orders)
                cur.execute(self._NESTED_LOOP)
                cur.execute(self._ORDERS_UPDATE)
                cur.execute(self._DEFAULT_JOINS)
            rows += prepared.created + prepared.updated
            cur.execute(self._PROGRESS, (b.log, last_seq))
        return rows

    @staticmethod
    def _prepare(cur: Any, b: _Batch, states: dict[_Key, _Row]) -> _Prepared:
        created, updated = b.order_rows(states) if b.order_events else ([], [])
        states.clear()  # freed here, while the server works, rather than after the write
        trades_text = _copy_text(b.trade_rows, _trade_lines) if b.trade_rows else None
        return _Prepared(
            len(created), len(updated), _formatted(cur, created), _formatted(cur, updated),
            trades_text,
        )  # fmt: skip

    def _insert_orders(self, cur: Any, created: bytes) -> None:
        """``COPY`` straight into ``orders``; if a row meets a stored one (an order id
        reused after the order closed, the only way a created row can), redo them all
        as one upsert from a temp table. ``created``: the rows' COPY payload."""
        cur.execute("SAVEPOINT crossbook_orders")
        try:
            with cur.copy(self._ORDERS_NEW) as copy:
                copy.write(created)
        except self.dialect.loaded_dbapi.IntegrityError:
            cur.execute("ROLLBACK TO SAVEPOINT crossbook_orders")
            cur.execute(self._ORDERS_TEMP)
            with cur.copy(self._ORDERS_COPY) as copy:
                copy.write(created)
            cur.execute(self._ORDERS)
        cur.execute("RELEASE SAVEPOINT crossbook_orders")


@contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic garbage collector paused (if it runs) for the duration. A batch
    allocates a few rows per event (tuples and lists without cycles, freed by reference
    counting when the write ends); collections in the middle of it only promote them to
    the oldest generation, which then gets full collections of the whole heap: 15-20% of
    the write time in ``bench/projection_bench.py``. A pause is only a delay: whatever is
    due is collected after the write."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class ProjectionWriter:
    """Projects ``(seq, events)`` items of named logs into the ledger tables.

    Safe to feed the same items any number of times (see the module docstring). One
    writer per log at a time is the intended use; concurrent writers of one log are
    serialized by the progress row lock (PostgreSQL) or the write lock (SQLite).
    """

    def __init__(
        self, url: str | URL, *, auto_migrate: bool = False, shard: int = 0, shards: int = 1
    ) -> None:
        """Open ``url`` (see :func:`crossbook.ledger.db.make_engine`); with
        ``auto_migrate`` first upgrade its schema to the newest migration. ``shard`` of
        ``shards``: the accounts shard whose logs this writer projects (see the module
        docstring)."""
        check_shard(shard, shards)
        self.shard = shard
        self.shards = shards
        self._batch: Callable[[str, Callable[[Any], Any]], _Batch] = (
            _Batch if shards == 1 else functools.partial(_ShardBatch, shard=shard, shards=shards)
        )
        if auto_migrate:
            migrate(url)
        self.engine: Engine = make_engine(url)
        name = self.engine.dialect.name
        if name == "sqlite":
            self._sink: _Sink = _SqliteSink(self.engine)
        elif name == "postgresql":
            self._sink = _PostgresSink(self.engine)
        else:
            raise ValueError(f"unsupported database: {name}")

    def write(self, log: str, batch: Sequence[Item]) -> WriteStats:
        """Apply the items of ``batch`` whose seq is above ``log``'s progress, in one
        database transaction (all or nothing)."""
        with _no_gc():
            return self._write(log, batch)

    def _write(self, log: str, batch: Sequence[Item]) -> WriteStats:
        sink = self._sink
        with self.engine.connect() as conn:
            conn.execution_options(**{BEGIN_IMMEDIATE: True})
            with conn.begin():
                last = sink.progress(conn, log, lock=True)
                b = self._batch(log, sink.amount)
                applied = skipped = 0
                for seq, events in batch:
                    if seq <= last:
                        skipped += 1
                        continue
                    last = seq
                    applied += 1
                    b.add(seq, events)
                if applied == 0:
                    return WriteStats(0, skipped, 0, 0, last)
                rows = sink.flush(conn, b, last)
        return WriteStats(applied, skipped, b.events, rows, last)

    def last_seq(self, log: str) -> int:
        """The highest seq of ``log`` already applied (0: none); resume after it."""
        with self.engine.connect() as conn:
            return self._sink.progress(conn, log, lock=False)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> ProjectionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
