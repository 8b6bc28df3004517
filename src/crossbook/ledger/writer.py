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
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import Dialect, Engine, Insert, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection

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
from crossbook.ledger.db import BEGIN_IMMEDIATE, make_engine, migrate
from crossbook.ledger.schema import (
    Amount,
    OrderStatus,
    amount_binder,
    balances,
    ledger_postings,
    ledger_transactions,
    orders,
    projection_progress,
    trades,
)

Item = tuple[int, Sequence[object]]
"""``(input seq, events produced by that input)``."""

_LOAD_CHUNK = 500
_ORDER_KEY = ("market", "order_id")
_ORDER_UPDATE_COLUMNS = [c.name for c in orders.columns if c.name not in _ORDER_KEY]

_Key = tuple[str, int]
_Row = dict[str, Any]


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


class _Compiled:
    """A Core statement compiled once for the engine's dialect and run with the DB-API's
    ``executemany`` (no per-row SQLAlchemy parameter processing: the hot path). Amount
    columns go through :func:`amount_binder`, as ``Amount`` would bind them."""

    def __init__(self, stmt: Insert, dialect: Dialect, table: Table) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        names = list(compiled.positiontup or []) if self.positional else list(compiled.params)
        self.bind = amount_binder(dialect.name)
        self.names = names
        self.get = itemgetter(*names)
        self.amounts = [i for i, n in enumerate(names) if isinstance(table.c[n].type, Amount)]

    def run(self, conn: Connection, rows: Sequence[_Row]) -> None:
        if not rows:
            return
        get, bind, amounts = self.get, self.bind, self.amounts
        values: list[tuple[Any, ...]]
        if len(self.names) == 1:
            values = [(bind(get(r)) if amounts else get(r),) for r in rows]
        elif not amounts:
            values = [get(r) for r in rows]
        else:
            values = []
            for r in rows:
                v = list(get(r))
                for i in amounts:
                    v[i] = bind(v[i])
                values.append(tuple(v))
        params: list[Any]
        if self.positional:
            params = values
        else:
            names = self.names
            params = [dict(zip(names, v, strict=True)) for v in values]
        conn.exec_driver_sql(self.sql, params)


class _Statements:
    """The dialect's insert / upsert statements, built and compiled once per writer."""

    def __init__(self, dialect: Dialect) -> None:
        insert: Callable[[Any], Any]
        if dialect.name == "postgresql":
            insert = postgresql.insert
        elif dialect.name == "sqlite":
            insert = sqlite.insert
        else:
            raise ValueError(f"unsupported database: {dialect.name}")
        self.transactions = _Compiled(insert(ledger_transactions), dialect, ledger_transactions)
        self.postings = _Compiled(insert(ledger_postings), dialect, ledger_postings)
        self.trades = _Compiled(insert(trades), dialect, trades)
        bal = insert(balances)
        added = (
            func.crossbook_add(balances.c.amount, bal.excluded.amount)
            if dialect.name == "sqlite"
            else balances.c.amount + bal.excluded.amount
        )
        self.balances = _Compiled(
            bal.on_conflict_do_update(
                index_elements=[balances.c.account, balances.c.asset], set_={"amount": added}
            ),
            dialect,
            balances,
        )
        order = insert(orders)
        self.orders = _Compiled(
            order.on_conflict_do_update(
                index_elements=[orders.c.market, orders.c.order_id],
                set_={name: order.excluded[name] for name in _ORDER_UPDATE_COLUMNS},
            ),
            dialect,
            orders,
        )
        prog = insert(projection_progress)
        self.progress = _Compiled(
            prog.on_conflict_do_update(
                index_elements=[projection_progress.c.log],
                set_={"last_seq": prog.excluded.last_seq},
            ),
            dialect,
            projection_progress,
        )


class _Batch:
    """Rows derived from the applied items of one batch (pure until :meth:`flush`)."""

    def __init__(self, log: str) -> None:
        self.log = log
        self.events = 0
        self.tx_rows: list[_Row] = []
        self.posting_rows: list[_Row] = []
        self.balance_delta: dict[tuple[str, str], int] = {}
        self.trade_rows: list[_Row] = []
        self.order_events: list[tuple[int, Any]] = []

    def add(self, seq: int, events: Sequence[object]) -> None:
        self.events += len(events)
        for e in events:
            t = type(e)
            if t is TransactionPosted:
                self._transaction(seq, e)  # type: ignore[arg-type]
            elif t in _ORDER_HANDLERS:
                self.order_events.append((seq, e))
                if t is OrderFilled:
                    self._trade(seq, e)  # type: ignore[arg-type]

    def _transaction(self, seq: int, e: TransactionPosted) -> None:
        self.tx_rows.append(
            {"tx_id": e.tx_id, "log": self.log, "seq": seq, "ts": e.ts, "type": e.type,
             "ref": e.ref}
        )  # fmt: skip
        delta = self.balance_delta
        for n, p in enumerate(e.postings):
            self.posting_rows.append(
                {"tx_id": e.tx_id, "n": n, "account": p.account, "asset": p.asset,
                 "amount": p.amount}
            )  # fmt: skip
            key = (p.account, p.asset)
            delta[key] = delta.get(key, 0) + p.amount

    def _trade(self, seq: int, e: OrderFilled) -> None:
        self.trade_rows.append(
            {"market": e.market, "trade_id": e.trade_id, "price": e.price,
             "quantity": e.quantity, "taker_side": e.taker_side.value,
             "taker_order_id": e.taker_order_id, "taker_owner": e.taker_owner,
             "maker_order_id": e.maker_order_id, "maker_owner": e.maker_owner,
             "seq": seq, "ts": e.ts}
        )  # fmt: skip

    def order_rows(self, conn: Connection) -> list[_Row]:
        """Apply the order events in order to the rows they touch; return the final
        state of every changed row."""
        states = _load_orders(conn, self._keys_to_load())
        dirty: dict[_Key, _Row] = {}
        for seq, e in self.order_events:
            _ORDER_HANDLERS[type(e)](states, dirty, seq, e)
        return [dirty[k] for k in sorted(dirty)]

    def _keys_to_load(self) -> dict[str, list[int]]:
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

    def flush(self, conn: Connection, st: _Statements) -> int:
        """Write everything (executemany per table); return the number of rows."""
        rows = 0
        if self.tx_rows:
            st.transactions.run(conn, self.tx_rows)
            st.postings.run(conn, self.posting_rows)
            bal = [
                {"account": a, "asset": s, "amount": self.balance_delta[(a, s)]}
                for a, s in sorted(self.balance_delta)  # fixed lock order across writers
            ]
            st.balances.run(conn, bal)
            rows += len(self.tx_rows) + len(self.posting_rows) + len(bal)
        if self.trade_rows:
            st.trades.run(conn, self.trade_rows)
            rows += len(self.trade_rows)
        if self.order_events:
            order_rows = self.order_rows(conn)
            if order_rows:
                st.orders.run(conn, order_rows)
                rows += len(order_rows)
        return rows


def _load_orders(conn: Connection, need: dict[str, list[int]]) -> dict[_Key, _Row]:
    states: dict[_Key, _Row] = {}
    for market, ids in need.items():
        for i in range(0, len(ids), _LOAD_CHUNK):
            chunk = ids[i : i + _LOAD_CHUNK]
            query = select(orders).where(orders.c.market == market, orders.c.order_id.in_(chunk))
            for row in conn.execute(query):
                r = dict(row._mapping)
                states[(r["market"], r["order_id"])] = r
    return states


# ------------------------------------------------------------------ order events
# Each handler: (states, dirty, seq, event) -> None; mutates the touched row in place.


def _touch(dirty: dict[_Key, _Row], key: _Key, row: _Row, seq: int, ts: int) -> None:
    row["updated_seq"] = seq
    row["updated_ts"] = ts
    dirty[key] = row


def _on_accepted(states: dict[_Key, _Row], dirty: dict[_Key, _Row], seq: int, e: Any) -> None:
    a: OrderAccepted = e
    key = (a.market, a.order_id)
    row = {
        "market": a.market, "order_id": a.order_id, "owner": a.owner,
        "client_order_id": a.client_order_id, "side": a.side.value, "type": a.type.value,
        "time_in_force": a.time_in_force.value, "price": a.price, "quantity": a.quantity,
        "quote_quantity": a.quote_quantity, "stop_price": a.stop_price,
        "display_quantity": a.display_quantity, "post_only": a.post_only,
        "status": OrderStatus.NEW.value, "reason": None, "filled": 0,
        "filled_quote_scaled": 0, "leaves": a.quantity if a.quantity > 0 else a.quote_quantity,
        "created_seq": seq, "updated_seq": seq, "created_ts": a.ts, "updated_ts": a.ts,
    }  # fmt: skip
    states[key] = row
    dirty[key] = row


def _on_rejected(states: dict[_Key, _Row], dirty: dict[_Key, _Row], seq: int, e: Any) -> None:
    r: OrderRejected = e
    key = (r.market, r.order_id)
    if key in states:
        return
    row = {
        "market": r.market, "order_id": r.order_id, "owner": r.owner,
        "client_order_id": r.client_order_id, "side": None, "type": None,
        "time_in_force": None, "price": None, "quantity": None, "quote_quantity": None,
        "stop_price": None, "display_quantity": None, "post_only": None,
        "status": OrderStatus.REJECTED.value, "reason": r.reason.value, "filled": 0,
        "filled_quote_scaled": 0, "leaves": 0, "created_seq": seq, "updated_seq": seq,
        "created_ts": r.ts, "updated_ts": r.ts,
    }  # fmt: skip
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
        row["filled"] += f.quantity
        row["filled_quote_scaled"] += notional
        row["leaves"] = leaves
        row["status"] = (
            OrderStatus.FILLED.value if leaves == 0 else OrderStatus.PARTIALLY_FILLED.value
        )
        _touch(dirty, key, row, seq, f.ts)


def _closer(status: OrderStatus) -> Callable[[dict[_Key, _Row], dict[_Key, _Row], int, Any], None]:
    def close(states: dict[_Key, _Row], dirty: dict[_Key, _Row], seq: int, e: Any) -> None:
        c: OrderCancelled | OrderExpired = e
        key = (c.market, c.order_id)
        row = states.get(key)
        if row is None:
            return
        row["status"] = status.value
        row["reason"] = c.reason.value
        row["leaves"] = 0
        _touch(dirty, key, row, seq, c.ts)

    return close


def _on_amended(states: dict[_Key, _Row], dirty: dict[_Key, _Row], seq: int, e: Any) -> None:
    a: OrderAmended = e
    key = (a.market, a.order_id)
    row = states.get(key)
    if row is None:
        return
    row["price"] = a.price
    row["quantity"] = a.quantity
    row["leaves"] = a.leaves
    _touch(dirty, key, row, seq, a.ts)


def _on_triggered(states: dict[_Key, _Row], dirty: dict[_Key, _Row], seq: int, e: Any) -> None:
    t: OrderTriggered = e
    key = (t.market, t.order_id)
    row = states.get(key)
    if row is None:
        return
    if row["status"] == OrderStatus.NEW.value:
        row["status"] = OrderStatus.TRIGGERED.value
    _touch(dirty, key, row, seq, t.ts)


_ORDER_HANDLERS: dict[type, Callable[[dict[_Key, _Row], dict[_Key, _Row], int, Any], None]] = {
    OrderAccepted: _on_accepted,
    OrderRejected: _on_rejected,
    OrderFilled: _on_filled,
    OrderCancelled: _closer(OrderStatus.CANCELLED),
    OrderExpired: _closer(OrderStatus.EXPIRED),
    OrderAmended: _on_amended,
    OrderTriggered: _on_triggered,
}


class ProjectionWriter:
    """Projects ``(seq, events)`` items of named logs into the ledger tables.

    Safe to feed the same items any number of times (see the module docstring). One
    writer per log at a time is the intended use; concurrent writers of one log are
    serialized by the progress row lock (PostgreSQL) or the write lock (SQLite).
    """

    def __init__(self, url: str | URL, *, auto_migrate: bool = False) -> None:
        """Open ``url`` (see :func:`crossbook.ledger.db.make_engine`); with
        ``auto_migrate`` first upgrade its schema to the newest migration."""
        if auto_migrate:
            migrate(url)
        self.engine: Engine = make_engine(url)
        self._st = _Statements(self.engine.dialect)

    def write(self, log: str, batch: Sequence[Item]) -> WriteStats:
        """Apply the items of ``batch`` whose seq is above ``log``'s progress, in one
        database transaction (all or nothing)."""
        with self.engine.connect() as conn:
            conn.execution_options(**{BEGIN_IMMEDIATE: True})
            with conn.begin():
                last = _progress(conn, log, lock=True)
                b = _Batch(log)
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
                rows = b.flush(conn, self._st)
                self._st.progress.run(conn, [{"log": log, "last_seq": last}])
        return WriteStats(applied, skipped, b.events, rows + 1, last)

    def last_seq(self, log: str) -> int:
        """The highest seq of ``log`` already applied (0: none); resume after it."""
        with self.engine.connect() as conn:
            return _progress(conn, log, lock=False)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> ProjectionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _progress(conn: Connection, log: str, *, lock: bool) -> int:
    query = select(projection_progress.c.last_seq).where(projection_progress.c.log == log)
    if lock:
        query = query.with_for_update()
    value = conn.execute(query).scalar_one_or_none()
    return 0 if value is None else int(value)
