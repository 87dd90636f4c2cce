"""Built-in synthetic sales series, so the forecast pipeline trains, tests and demos offline.

Each series is a positive base level plus a piecewise-linear trend, the seasonalities its
frequency allows (weekly for daily and hourly data, daily for hourly, yearly for daily, weekly
and monthly), bumps or dips on US holidays (daily and hourly), Gaussian noise, and in its past
one or two level shifts and a few outliers.

Series are reproducible one by one: series i draws its parameters from a generator seeded with
(seed, i) and its noise from another, in time order, so it does not depend on how many series
are generated, and generating more periods extends it with the same past. Its shifts and
outliers all fall in the first three quarters of the default span, so a longer run's
continuation is clean: only `inject_level_shift` breaks it, on purpose, for monitoring demos.
"""

from __future__ import annotations

from collections.abc import Iterable

import holidays
import numpy as np
import pandas as pd

from common.errors import UserError
from forecast import frequency
from forecast.data import DEFAULT_ID

#: Points per series when `periods` is not given: 60 days hourly, 3 years daily, 4 years weekly,
#: 10 years monthly.
DEFAULT_PERIODS = {"h": 1440, "D": 1095, "W": 208, "M": 120}
_DAY = pd.Timedelta(days=1)
# Anomalies (level shifts, outliers) only before this fraction of the default span: the part a
# model is trained on, never the continuation it is judged or monitored on.
_PAST = 0.75


def generate(
    freq: str = "D",
    n_series: int = 1,
    periods: int | None = None,
    start: str | pd.Timestamp = "2022-01-01",
    seed: int = 42,
) -> pd.DataFrame:
    """`n_series` series ("store_01", ...) of `periods` points on `freq`, as `series_id, ds, y`."""
    freq = frequency.normalise(freq)
    family = frequency.family(freq)
    periods = DEFAULT_PERIODS[family] if periods is None else periods
    if n_series < 1 or periods < 2:
        raise ValueError(f"need n_series >= 1 and periods >= 2, got {n_series} and {periods}")
    ds = pd.date_range(start, periods=periods, freq=freq)
    days = ((ds - ds[0]) / _DAY).to_numpy()
    # The default span in days, whatever `periods` is: the series' shape is fixed by the seed.
    span = (pd.date_range(ds[0], periods=DEFAULT_PERIODS[family], freq=freq)[-1] - ds[0]) / _DAY
    on_holiday = _holidays(ds) if family in ("h", "D") else np.zeros(periods, dtype=bool)
    width = max(2, len(str(n_series)))
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "series_id": f"store_{i + 1:0{width}d}",
                    "ds": ds,
                    "y": _series(np.random.default_rng([seed, i]), days, span, family, on_holiday),
                }
            )
            for i in range(n_series)
        ],
        ignore_index=True,
    )


def _holidays(ds: pd.DatetimeIndex) -> np.ndarray:
    """Whether each timestamp falls on a US public holiday (observed days included)."""
    calendar = holidays.country_holidays("US", years=range(ds[0].year, ds[-1].year + 1))
    return np.asarray(ds.normalize().isin(pd.to_datetime(list(calendar))))


def _series(
    rng: np.random.Generator, days: np.ndarray, span: float, family: str, on_holiday: np.ndarray
) -> np.ndarray:
    """One series' values at `days` (days since its start)."""
    level = rng.uniform(100, 1000)
    # Noise has a stream of its own: a longer series draws more of it at its end, changing no
    # earlier draw and no parameter.
    noise_rng = np.random.default_rng(rng.integers(2**63))

    # Trend: slopes change at 2-4 points of the default span; the last slope carries on beyond
    # it. Bounded so the trend moves the level by at most 20% over the span.
    cuts = np.sort(rng.uniform(0.1, 0.9, rng.integers(2, 5))) * span
    slopes = rng.uniform(-0.2, 0.2, cuts.size + 1) / span
    knots = np.r_[0.0, cuts]
    at_knot = np.r_[0.0, np.cumsum(slopes[:-1] * np.diff(knots))]
    segment = np.searchsorted(cuts, days, side="right")
    shape = at_knot[segment] + slopes[segment] * (days - knots[segment])

    def season(period: float, low: float, high: float) -> np.ndarray:
        """Two harmonics with random phases, peak amplitude between `low` and `high`."""
        weights, phases = rng.uniform(0.3, 1.0, 2), rng.uniform(0, 2 * np.pi, 2)
        waves = np.sin(2 * np.pi * np.outer([1, 2], days) / period + phases[:, None])
        return rng.uniform(low, high) * (weights @ waves) / weights.sum()

    if family in ("h", "D"):
        shape += season(7.0, 0.05, 0.1)
    if family == "h":
        shape += season(1.0, 0.1, 0.2)
    if family != "h":
        shape += season(365.25, 0.05, 0.15)
    shape += on_holiday * rng.choice([-1.0, 1.0]) * rng.uniform(0.1, 0.15)

    # Level shifts in the past only: 0, 1 or 2, together at most 15% of the level.
    n_shifts = rng.choice(3, p=[0.4, 0.4, 0.2])
    when = rng.uniform(0.1, _PAST, n_shifts) * span
    sizes = rng.choice([-1.0, 1.0], n_shifts) * rng.uniform(0.04, 0.075, n_shifts)
    shape += ((days[:, None] >= when) * sizes).sum(axis=1)
    y = level * (1.0 + shape + rng.uniform(0.01, 0.03) * noise_rng.standard_normal(days.size))

    # A few isolated outliers, as multiples of the value (so they stay positive).
    hits = np.searchsorted(days, rng.uniform(0.0, _PAST, rng.integers(2, 6)) * span)
    factors = np.where(rng.random(hits.size) < 0.5, rng.uniform(1.3, 1.6, hits.size),
                       rng.uniform(0.5, 0.7, hits.size))  # fmt: skip
    inside = hits < days.size
    y[hits[inside]] *= factors[inside]
    # The components' bounds keep y above a tenth of the level, outlier dips included; the floor
    # only guards the noise's far tail, so that sales are never zero or negative.
    return np.maximum(y, 0.05 * level)


def inject_level_shift(
    frame: pd.DataFrame,
    *,
    at: pd.Timestamp | str,
    size: float,
    series_ids: Iterable[str] | None = None,
) -> pd.DataFrame:
    """A copy of `frame` with `size` times each series' standard deviation of y added to every
    y from `at` onward, in all series or in `series_ids` only."""
    out = frame.copy()
    ids = out["series_id"] if "series_id" in out.columns else pd.Series(DEFAULT_ID, index=out.index)
    chosen = np.ones(len(out), dtype=bool)
    if series_ids is not None:
        wanted = set(series_ids)
        unknown = sorted(wanted - set(ids))
        if unknown:
            raise UserError(f"no series {', '.join(map(repr, unknown))} in the frame")
        chosen = ids.isin(wanted).to_numpy()
    scale = out["y"].groupby(ids).transform("std").fillna(0.0).to_numpy()
    after = (pd.to_datetime(out["ds"]) >= pd.Timestamp(at)).to_numpy()
    out["y"] = out["y"].astype(float) + np.where(chosen & after, size * scale, 0.0)
    return out
