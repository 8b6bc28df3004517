"""Demo mode: funded users with API keys, and a market maker that keeps books alive.

``setup_demo`` is idempotent: users, keys and deposits are created once and the
credentials file is reused on every later start (deposits carry fixed ids, so a
repeated deposit is refused by the ledger rather than credited twice).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from pathlib import Path
from typing import Any

import structlog

from crossbook.domain.commands import CancelAll, PlaceOrder
from crossbook.domain.enums import SelfTradePrevention, Side, TimeInForce
from crossbook.domain.ledger import Deposit
from crossbook.domain.markets import Market

log = structlog.get_logger("crossbook.demo")

CREDENTIALS_FILE = "demo-credentials.json"
DEMO_USERS = ("alice@demo.crossbook", "bob@demo.crossbook")
MAKER = "maker@demo.crossbook"
TAKER = "taker@demo.crossbook"
FUNDS = {"BTC": "10", "ETH": "100", "USDT": "1000000"}
MAKER_FUNDS = {"BTC": "1000", "ETH": "10000", "USDT": "100000000"}
START_PRICES = {"BTCUSDT": "50000", "ETHUSDT": "3000"}


async def setup_demo(state: Any) -> dict[str, Any]:
    """Create (once) the demo users, the two bot accounts (market maker and taker),
    their keys and balances; return ``{"users": [...], "maker": {...}, "taker": {...}}``."""
    from crossbook.domain.money import parse_amount

    gw = state.gateway
    path = state.data_dir / CREDENTIALS_FILE
    saved: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    def account(email: str) -> dict[str, Any]:
        existing = gw.auth.user_by_email(email)  # a start that died before the file
        user_id = existing.id if existing else gw.auth.create_user(email, "crossbook-demo")
        key, secret = gw.auth.create_api_key(user_id, read=True, trade=True, withdraw=True)
        return {"email": email, "password": "crossbook-demo", "userId": user_id,
                "apiKey": key, "secret": secret}  # fmt: skip

    creds = {
        "users": saved.get("users") or [account(email) for email in DEMO_USERS],
        "maker": saved.get("maker") or account(MAKER),
        "taker": saved.get("taker") or account(TAKER),
    }
    for user in (*creds["users"], creds["maker"], creds["taker"]):
        funds = FUNDS if user["email"] in DEMO_USERS else MAKER_FUNDS
        for asset, text in funds.items():
            if asset not in gw.assets:
                continue
            amount = parse_amount(text, gw.assets[asset].scale)
            deposit_id = f"demo-{user['userId']}-{asset}"
            await gw.runtime.submit(
                Deposit(
                    seq=0, ts=0, user=user["userId"], asset=asset, amount=amount,
                    network="demo", deposit_id=deposit_id,
                )
            )  # fmt: skip
    if creds != saved:  # written once everyone is funded: clients can start at once
        write_credentials(state.data_dir, creds)
    return creds


class MarketMaker:
    """Quotes a ladder around a drifting mid price in every market and now and then
    takes liquidity, so books, trades, tickers and klines move."""

    def __init__(
        self, state: Any, user_id: int, taker_id: int, *, seed: int = 1, period: float = 0.5
    ) -> None:
        self.state = state
        self.user_id = user_id
        self.taker_id = taker_id
        self.rng = random.Random(seed)
        self.period = period
        self.mids: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="demo-market-maker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        from crossbook.domain.money import parse_amount

        gw = self.state.gateway
        for m in gw.markets.values():
            last = gw.marketdata.last_price(m.symbol)
            start = START_PRICES.get(m.symbol, "100")
            self.mids[m.symbol] = last or parse_amount(start, m.price_scale)
        while True:
            try:
                for m in gw.markets.values():
                    await self.quote(m)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the demo bot must never take the exchange down
                if not gw.runtime.accepting:
                    return  # the exchange is stopping
                log.warning("market maker step failed", error=repr(exc))
            await asyncio.sleep(self.period)

    async def quote(self, m: Market) -> None:
        submit = self.state.gateway.runtime.submit
        rng = self.rng
        mid = self.mids[m.symbol]
        mid += rng.choice((-1, 0, 1)) * m.tick_size * rng.randint(1, 20)
        mid = max(mid, 100 * m.tick_size)
        self.mids[m.symbol] = mid
        await submit(CancelAll(seq=0, ts=0, market=m.symbol, owner=self.user_id))
        spread = max(m.tick_size, mid // 5000 // m.tick_size * m.tick_size)
        min_qty = max(m.min_quantity, _min_notional_quantity(m, mid))
        for level in range(1, 6):
            for side, price in (
                (Side.BUY, mid - spread * level),
                (Side.SELL, mid + spread * level),
            ):
                qty = min_qty * rng.randint(1, 20)
                qty -= qty % m.step_size
                await submit(
                    PlaceOrder(
                        seq=0,
                        ts=0,
                        market=m.symbol,
                        owner=self.user_id,
                        side=side,
                        price=price,
                        quantity=qty,
                        stp=SelfTradePrevention.NONE,
                    )
                )
        if rng.random() < 0.6:  # the taker hits the best quote: trades, tickers, klines
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            price = mid + spread if side is Side.BUY else mid - spread
            await submit(
                PlaceOrder(
                    seq=0, ts=0, market=m.symbol, owner=self.taker_id, side=side,
                    price=price, quantity=min_qty, time_in_force=TimeInForce.IOC,
                )
            )  # fmt: skip


def _min_notional_quantity(m: Market, price: int) -> int:
    """The smallest quantity (on the step) whose notional at ``price`` meets the minimum."""
    if not m.min_notional:
        return m.step_size
    need = -(-m.min_notional * m.notional_divisor // (price * 10**m.quote_scale))
    return int(-(-need // m.step_size) * m.step_size)


def write_credentials(data_dir: Path, creds: dict[str, Any]) -> None:
    """``DIR/demo-credentials.json``: ``users`` (for clients) and the bots' accounts,
    readable by the owner only."""
    path = data_dir / CREDENTIALS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(creds, indent=2))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
