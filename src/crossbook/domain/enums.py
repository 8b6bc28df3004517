"""Enumerations shared by commands and events. Values are stable wire strings."""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    LIMIT = "limit"
    MARKET = "market"
    STOP_LIMIT = "stop_limit"
    STOP_MARKET = "stop_market"


class TimeInForce(StrEnum):
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"


class Trigger(StrEnum):
    """When a stop order fires, compared with the market's last trade price.

    ``AUTO`` resolves at placement: stop-loss semantics (buy stops fire at or
    above the stop price, sell stops at or below).
    """

    AUTO = "auto"
    AT_OR_ABOVE = "at_or_above"
    AT_OR_BELOW = "at_or_below"


class SelfTradePrevention(StrEnum):
    """What happens when a taker would match a maker of the same owner.

    The taker's mode applies. ``NONE`` lets the trade happen.
    """

    NONE = "none"
    EXPIRE_TAKER = "expire_taker"
    EXPIRE_MAKER = "expire_maker"
    EXPIRE_BOTH = "expire_both"


class RejectReason(StrEnum):
    UNKNOWN_MARKET = "unknown_market"
    INVALID_PRICE = "invalid_price"
    PRICE_NOT_ON_TICK = "price_not_on_tick"
    INVALID_QUANTITY = "invalid_quantity"
    QUANTITY_NOT_ON_STEP = "quantity_not_on_step"
    QUANTITY_TOO_LOW = "quantity_too_low"
    QUANTITY_TOO_HIGH = "quantity_too_high"
    NOTIONAL_TOO_LOW = "notional_too_low"
    INVALID_TIME_IN_FORCE = "invalid_time_in_force"
    INVALID_STOP_PRICE = "invalid_stop_price"
    STOP_WOULD_TRIGGER_IMMEDIATELY = "stop_would_trigger_immediately"
    INVALID_DISPLAY_QUANTITY = "invalid_display_quantity"
    INVALID_ORDER = "invalid_order"
    DUPLICATE_CLIENT_ORDER_ID = "duplicate_client_order_id"
    DUPLICATE_ORDER_ID = "duplicate_order_id"
    POST_ONLY_WOULD_TAKE = "post_only_would_take"
    UNKNOWN_ORDER = "unknown_order"
    ORDER_NOT_AMENDABLE = "order_not_amendable"
    AMEND_NO_CHANGE = "amend_no_change"
    AMEND_QUANTITY_TOO_LOW = "amend_quantity_too_low"
    # refused by the account service before the order reaches the engine
    INSUFFICIENT_BALANCE = "insufficient_balance"
    QUOTE_QUANTITY_REQUIRED = "quote_quantity_required"
    QUANTITY_REQUIRED = "quantity_required"
    WRONG_SHARD = "wrong_shard"  # the user belongs to another accounts shard


class CancelReason(StrEnum):
    USER = "user"
    CANCEL_ALL = "cancel_all"
    AMEND = "amend"


class ExpireReason(StrEnum):
    IOC = "ioc"
    FOK = "fok"
    MARKET = "market"
    SELF_TRADE_TAKER = "self_trade_taker"
    SELF_TRADE_MAKER = "self_trade_maker"
