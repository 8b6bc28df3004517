"""The matching engine: routes commands to per-market books (pure, deterministic).

``execute(command) -> list[Event]`` is the whole interface that changes state. The
engine reads no clock and no randomness: ids derive from the command's ``seq``.
A command with ``seq <= last_seq`` is a redelivery and is ignored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from crossbook.domain.commands import AmendOrder, CancelAll, CancelOrder, Command, PlaceOrder
from crossbook.domain.enums import RejectReason
from crossbook.domain.events import AmendRejected, CancelRejected, Event, OrderRejected
from crossbook.domain.markets import Market
from crossbook.engine.book import OrderBook
from crossbook.engine.views import Level, OpenOrder

SNAPSHOT_VERSION = 1


class EngineSnapshot(msgspec.Struct, frozen=True):
    version: int
    last_seq: int
    markets: list[Market]
    books: list[dict[str, Any]]


_snapshot_encoder = msgspec.json.Encoder()
_snapshot_decoder = msgspec.json.Decoder(EngineSnapshot)


class MatchingEngine:
    """Order books for a set of markets, driven by one ordered command stream."""

    def __init__(self, markets: Iterable[Market]) -> None:
        self.books: dict[str, OrderBook] = {}
        for market in markets:
            if market.symbol in self.books:
                raise ValueError(f"market listed twice: {market.symbol}")
            self.books[market.symbol] = OrderBook(market)
        self.last_seq = 0
        self._handlers: dict[type, Callable[[Any], list[Event]]] = {
            PlaceOrder: self._place,
            CancelOrder: self._cancel,
            CancelAll: self._cancel_all,
            AmendOrder: self._amend,
        }

    @property
    def markets(self) -> list[Market]:
        return [book.market for book in self.books.values()]

    def execute(self, command: Command) -> list[Event]:
        """Apply one command and return its events (``[]`` for a redelivery)."""
        if command.seq <= self.last_seq:
            return []
        self.last_seq = command.seq
        if type(command) is PlaceOrder:  # the hot path, without a second dispatch
            book = self.books.get(command.market)
            if book is not None:
                return book.execute_place(command)
        return self._handlers[type(command)](command)

    def _place(self, c: PlaceOrder) -> list[Event]:
        book = self.books.get(c.market)
        if book is None:
            return [
                OrderRejected(
                    c.seq, c.ts, c.market, c.order_id or c.seq, c.owner, c.client_order_id,
                    RejectReason.UNKNOWN_MARKET,
                )
            ]  # fmt: skip
        return book.execute_place(c)

    def _cancel(self, c: CancelOrder) -> list[Event]:
        book = self.books.get(c.market)
        if book is None:
            return [
                CancelRejected(
                    c.seq, c.ts, c.market, c.order_id, c.owner, c.client_order_id,
                    RejectReason.UNKNOWN_MARKET,
                )
            ]  # fmt: skip
        return book.execute_cancel(c)

    def _cancel_all(self, c: CancelAll) -> list[Event]:
        book = self.books.get(c.market)
        if book is None:
            return [
                CancelRejected(c.seq, c.ts, c.market, 0, c.owner, "", RejectReason.UNKNOWN_MARKET)
            ]
        return book.execute_cancel_all(c)

    def _amend(self, c: AmendOrder) -> list[Event]:
        book = self.books.get(c.market)
        if book is None:
            return [
                AmendRejected(
                    c.seq, c.ts, c.market, c.order_id, c.owner, c.client_order_id,
                    RejectReason.UNKNOWN_MARKET,
                )
            ]  # fmt: skip
        return book.execute_amend(c)

    # ------------------------------------------------------------------ views

    def depth(self, symbol: str) -> tuple[list[Level], list[Level]]:
        """(bids, asks) as (price, visible quantity), best first."""
        return self.books[symbol].depth()

    def open_orders(self, symbol: str) -> list[OpenOrder]:
        """Resting and stop orders of a market, by order id."""
        return self.books[symbol].open_orders()

    # --------------------------------------------------------------- snapshot

    def snapshot(self) -> bytes:
        """Canonical encoding of the whole state: equal states give equal bytes."""
        books = [self.books[s].to_snapshot() for s in sorted(self.books)]
        markets = [self.books[s].market for s in sorted(self.books)]
        return _snapshot_encoder.encode(
            EngineSnapshot(SNAPSHOT_VERSION, self.last_seq, markets, books)
        )

    @classmethod
    def restore(cls, data: bytes) -> MatchingEngine:
        snap = _snapshot_decoder.decode(data)
        if snap.version != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported engine snapshot version {snap.version}")
        engine = cls(snap.markets)
        engine.last_seq = snap.last_seq
        for book_data in snap.books:
            engine.books[book_data["symbol"]].load_snapshot(book_data)
        return engine

    def state_hash(self) -> str:
        """BLAKE2b-256 of the canonical snapshot, hex."""
        return hashlib.blake2b(self.snapshot(), digest_size=32).hexdigest()
