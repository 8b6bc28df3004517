"""Binance's kline intervals and their UTC boundaries, in integer nanoseconds.

Fixed-length intervals are aligned to the Unix epoch (``3d`` included, like Binance),
except ``1w``, which starts on Monday 00:00 UTC (the epoch was a Thursday). ``1M`` is
the calendar month in UTC. A candle covers ``[open_time, close_time]`` with
``close_time = next open_time - 1``.
"""

from __future__ import annotations

SECOND_NS = 1_000_000_000
MINUTE_NS = 60 * SECOND_NS
HOUR_NS = 60 * MINUTE_NS
DAY_NS = 24 * HOUR_NS
WEEK_NS = 7 * DAY_NS
MONTH = "1M"

INTERVALS: dict[str, tuple[int, int]] = {
    "1m": (MINUTE_NS, 0),
    "3m": (3 * MINUTE_NS, 0),
    "5m": (5 * MINUTE_NS, 0),
    "15m": (15 * MINUTE_NS, 0),
    "30m": (30 * MINUTE_NS, 0),
    "1h": (HOUR_NS, 0),
    "2h": (2 * HOUR_NS, 0),
    "4h": (4 * HOUR_NS, 0),
    "6h": (6 * HOUR_NS, 0),
    "8h": (8 * HOUR_NS, 0),
    "12h": (12 * HOUR_NS, 0),
    "1d": (DAY_NS, 0),
    "3d": (3 * DAY_NS, 0),
    "1w": (WEEK_NS, 4 * DAY_NS),  # 1970-01-05 was a Monday
    MONTH: (0, 0),  # calendar month
}
"""name -> (length in ns, offset of the alignment from the epoch); length 0: calendar month."""


def civil_from_days(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day number (0 = 1970-01-01), proleptic Gregorian."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def days_from_civil(year: int, month: int, day: int) -> int:
    """Day number (0 = 1970-01-01) of a proleptic Gregorian date."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month - 3 if month > 2 else month + 9) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def month_bounds(ts: int) -> tuple[int, int]:
    year, month, _ = civil_from_days(ts // DAY_NS)
    start = days_from_civil(year, month, 1) * DAY_NS
    nxt = days_from_civil(year + month // 12, month % 12 + 1, 1) * DAY_NS
    return start, nxt - 1


def interval_bounds(interval: str, ts: int) -> tuple[int, int]:
    """(open_time, close_time) of the ``interval`` candle containing ``ts``."""
    try:
        length, offset = INTERVALS[interval]
    except KeyError:
        raise ValueError(f"unknown kline interval: {interval!r}") from None
    if length == 0:
        return month_bounds(ts)
    start = (ts - offset) // length * length + offset
    return start, start + length - 1
