"""Crossbook's domain: money, assets, markets, commands and events (pure, typed, immutable)."""

from crossbook.domain.commands import AmendOrder, CancelAll, CancelOrder, Command, PlaceOrder
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
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
)
from crossbook.domain.markets import DEFAULT_ASSETS, DEFAULT_MARKETS, Asset, Market, make_market
from crossbook.domain.money import AmountError, format_amount, parse_amount

__all__ = [
    "DEFAULT_ASSETS",
    "DEFAULT_MARKETS",
    "AmendOrder",
    "AmendRejected",
    "AmountError",
    "Asset",
    "BookLevelChanged",
    "CancelAll",
    "CancelOrder",
    "CancelReason",
    "CancelRejected",
    "Command",
    "Event",
    "ExpireReason",
    "Market",
    "OrderAccepted",
    "OrderAmended",
    "OrderCancelled",
    "OrderExpired",
    "OrderFilled",
    "OrderRejected",
    "OrderTriggered",
    "OrderType",
    "PlaceOrder",
    "RejectReason",
    "SelfTradePrevention",
    "Side",
    "TimeInForce",
    "Trigger",
    "format_amount",
    "make_market",
    "parse_amount",
]
