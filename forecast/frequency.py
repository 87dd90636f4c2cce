"""Frequencies: which ones the project supports, and what follows from each (season length,
default horizon, the next timestamps).

A series' frequency is a pandas offset alias. Only regular calendars are supported, since every
model here (and MASE's seasonal scale) assumes evenly spaced points: hourly (`h`), daily (`D`),
weekly (`W-SUN` ... `W-SAT`) and monthly (`MS` month start, `ME` month end).
"""

from __future__ import annotations

import pandas as pd

from common.errors import UserError

#: Per family: season length in steps, default horizon, human name.
FAMILIES: dict[str, tuple[int, int, str]] = {
    "h": (24, 48, "hourly"),
    "D": (7, 30, "daily"),
    "W": (52, 12, "weekly"),
    "M": (12, 12, "monthly"),
}


def family(freq: str) -> str:
    """`h`, `D`, `W` or `M` for a supported alias; UserError otherwise."""
    try:
        offset = pd.tseries.frequencies.to_offset(freq)
    except ValueError:
        raise UserError(f"unknown frequency {freq!r} (use h, D, W-SUN, MS or ME)") from None
    name = offset.rule_code if offset is not None else ""
    if offset is None or getattr(offset, "n", 1) != 1:
        raise UserError(f"frequency {freq!r}: multiples are not supported (use h, D, W, MS, ME)")
    if name == "h":
        return "h"
    if name == "D":
        return "D"
    if name.startswith("W-"):
        return "W"
    if name in ("MS", "ME"):
        return "M"
    raise UserError(f"frequency {freq!r} is not supported (use h, D, W-SUN, MS or ME)")


def normalise(freq: str) -> str:
    """The canonical alias (`W` -> `W-SUN`), checked."""
    family(freq)
    return pd.tseries.frequencies.to_offset(freq).freqstr


def season_length(freq: str) -> int:
    return FAMILIES[family(freq)][0]


def default_horizon(freq: str) -> int:
    return FAMILIES[family(freq)][1]


def describe(freq: str) -> str:
    return FAMILIES[family(freq)][2]


def period_alias(freq: str) -> str:
    """The alias of the same calendar as a pandas Period (`MS` and `ME` are both `M` there)."""
    return "M" if family(freq) == "M" else normalise(freq)


def closes_at(stamps: pd.DatetimeIndex, freq: str) -> pd.DatetimeIndex:
    """When the period each timestamp stands for is over: the start of the next period. A
    day stamped 2024-03-14 closes at 2024-03-15 00:00, a month stamped 2024-02-01 (MS) or
    2024-02-29 (ME) at 2024-03-01, an hour stamped 05:00 at 06:00; a point cannot be expected
    before then. A week stamped on its first day closes seven days later (a pandas week
    Period would end on the stamp instead: `W-SUN` weeks end on Sundays)."""
    if family(freq) == "W":
        return stamps + pd.Timedelta(weeks=1)
    return (stamps.to_period(period_alias(freq)) + 1).start_time


def future_dates(last: pd.Timestamp, freq: str, horizon: int) -> pd.DatetimeIndex:
    """The `horizon` timestamps after `last`."""
    return pd.date_range(last, periods=horizon + 1, freq=freq)[1:]
