"""One side of an L2 book: price -> visible quantity, with prices kept sorted.

Invariants: ``prices`` is strictly ascending and holds exactly the keys of ``levels``;
every quantity is > 0. A change costs a dict operation plus, when a level appears or
disappears, a binary search and a list insert/delete (memmove); the best price is
``prices[-1]`` for bids and ``prices[0]`` for asks, O(1).
"""

from __future__ import annotations

from bisect import bisect_left

from crossbook.marketdata.records import Level


class BookSide:
    __slots__ = ("levels", "prices")

    def __init__(self) -> None:
        self.levels: dict[int, int] = {}
        self.prices: list[int] = []

    def set(self, price: int, quantity: int) -> None:
        """Set the absolute visible quantity at ``price`` (0 removes the level)."""
        levels = self.levels
        if quantity:
            if price not in levels:
                prices = self.prices
                if not prices or price > prices[-1]:
                    prices.append(price)
                else:
                    prices.insert(bisect_left(prices, price), price)
            levels[price] = quantity
        elif levels.pop(price, None) is not None:
            prices = self.prices
            if prices[-1] == price:
                prices.pop()
            else:
                del prices[bisect_left(prices, price)]

    def ascending(self, limit: int | None = None) -> list[Level]:
        levels = self.levels
        prices = self.prices if limit is None else self.prices[: max(0, limit)]
        return [(p, levels[p]) for p in prices]

    def descending(self, limit: int | None = None) -> list[Level]:
        levels = self.levels
        prices = self.prices if limit is None else self.prices[max(0, len(self.prices) - limit) :]
        return [(p, levels[p]) for p in reversed(prices)]
