"""Time series in, one validated `SeriesData` out: the forecast pipeline's only door for data.

A table holds one series as `ds, y` columns (Prophet's layout) or many as `series_id, ds, y`, in
CSV or Parquet; other columns are ignored. `prepare` makes regular series of it: dates parsed
(time zones converted to UTC), values checked, duplicates merged, unsorted rows sorted, the
frequency inferred (or checked) and missing points interpolated. What it can fix it fixes,
counts per series and warns about (`DataQualityWarning`); what it cannot (a date that is no
date, a value that is no number, a series too short) raises `DataError`, naming the source, the
column and the rows or series.

Row numbers count data rows from 1, as `common.schema` does: "row 3" is the third row of the
table, on line 4 of a CSV. The cell-level parsing (ids, dates, values) is `forecast.parsing`'s.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from common import etl
from common.errors import UserError
from common.schema import DataQualityWarning
from forecast import frequency, parsing
from forecast.config import Duplicates
from forecast.parsing import DATETIME as _DATETIME

#: The id of the series in a table without a `series_id` column.
DEFAULT_ID = "series"
#: What `prepare` repairs, as counted per series in `SeriesData.fixes`, and how the summary says it.
_FIXED = {
    "filled": "missing points interpolated",
    "duplicates": "duplicates merged",
    "reordered": "rows out of date order, sorted",
    "trimmed": "rows without y before a series' first or after its last value dropped",
}
_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_MAX_SHOWN = 10

logger = logging.getLogger(__name__)


class DataError(UserError):
    """Time series that cannot be used as given; the message names the source and where."""


class UnknownSeriesError(DataError, KeyError):
    """A series id not in the data; also a KeyError, as a failed lookup by key."""

    __str__ = Exception.__str__  # KeyError's would print the message in quotes


@dataclass
class SeriesData:
    """Regular series, long format: `series_id` (str), `ds` (naive datetime), `y` (float), sorted
    by series then ds, without gaps on `freq`. `fixes[id]` counts what `prepare` repaired in each
    series (`filled`, `duplicates`, `reordered`, `trimmed`); `notes` are remarks for the summary.
    `filled[id]` marks the series' points that `prepare` interpolated: the backtest must neither
    score them nor train on them, since each was drawn from the points after it."""

    frame: pd.DataFrame
    freq: str
    fixes: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    filled: dict[str, np.ndarray] = field(default_factory=dict)

    def filled_mask(self, series_id: str) -> np.ndarray:
        """Per point of `series(series_id)`: True where it was interpolated."""
        n = len(self._rows[series_id])
        return self.filled.get(series_id, np.zeros(n, dtype=bool))

    @cached_property
    def _rows(self) -> dict[str, np.ndarray]:
        """Each series' row positions, found once, so that `series` is a take, not a scan."""
        return {str(k): v for k, v in self.frame.groupby("series_id", sort=False).indices.items()}

    @property
    def ids(self) -> list[str]:
        return list(self._rows)

    def __len__(self) -> int:
        """The number of series."""
        return len(self._rows)

    def series(self, series_id: str) -> pd.DataFrame:
        """One series as a `ds, y` frame."""
        if series_id not in self._rows:
            known = _listing(dict.fromkeys(self.ids))
            raise UnknownSeriesError(f"no series {series_id!r} in the data (it has {known})")
        return self.frame.iloc[self._rows[series_id]][["ds", "y"]].reset_index(drop=True)

    def summary(self) -> str:
        """Human-readable lines: frequency, series, lengths, date range and what was fixed."""
        lengths = pd.Series({sid: len(rows) for sid, rows in self._rows.items()})
        pattern = "%Y-%m-%d %H:%M" if frequency.family(self.freq) == "h" else "%Y-%m-%d"
        first, last = (self.frame["ds"].agg(how).strftime(pattern) for how in ("min", "max"))
        if lengths.nunique() == 1:
            length = f"{lengths.iloc[0]} points each"
        else:
            length = f"{lengths.min()} to {lengths.max()} points (median {lengths.median():g})"
        lines = [
            f"frequency: {self.freq} ({frequency.describe(self.freq)})",
            f"series: {len(self)} ({_listing(dict.fromkeys(self.ids))})",
            f"length: {length}",
            f"dates: {first} to {last}",
        ]
        for kind, what in _FIXED.items():
            counts = {sid: n[kind] for sid, n in self.fixes.items() if n.get(kind)}
            if counts:
                total = sum(counts.values())
                lines.append(f"{what}: {total} in {len(counts)} series ({_listing(counts)})")
        if len(lines) == 4:
            lines.append("fixed: nothing, the data was regular and clean")
        return "\n".join(lines + [f"note: {note}" for note in self.notes])


def _listing(counts: dict[str, int | None]) -> str:
    """`'a' (3), 'b' (1)` for at most ten series, then how many more."""
    shown = [repr(k) if n is None else f"{k!r} ({n})" for k, n in list(counts.items())[:_MAX_SHOWN]]
    more = f" and {len(counts) - _MAX_SHOWN} more" if len(counts) > _MAX_SHOWN else ""
    return ", ".join(shown) + more


def _parse(df: pd.DataFrame, source: str) -> tuple[pd.DataFrame, str | None]:
    """`series_id, ds, y` and each row's number, typed; DataError listing every bad value."""
    missing = [c for c in ("ds", "y") if c not in df.columns]
    if missing:
        found = ", ".join(repr(str(c)) for c in df.columns) or "none"
        names = " and ".join(repr(c) for c in missing)
        plural = "s" if len(missing) > 1 else ""
        raise DataError(f"{source}: no column{plural} {names} (columns found: {found})")
    if len(df) == 0:
        raise DataError(f"{source}: the table has no rows")
    work, tz_note, problems = parsing.parse(df, DEFAULT_ID)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise DataError(f"{source}: {len(problems)} problem(s) found\n{lines}")
    return work, tz_note


def infer_freq(ds: pd.Series) -> str:
    """One series' frequency from the median spacing of its timestamps: `h`, `D`, `W-<DAY>`
    (anchored on the data's weekday), `MS` or `ME` (month starts or ends); DataError otherwise."""
    stamps = pd.DatetimeIndex(pd.to_datetime(ds)).dropna().unique().sort_values()
    if len(stamps) < 2:
        raise DataError(f"cannot infer a frequency from {len(stamps)} timestamp; pass freq")
    spacing = pd.Timedelta(np.median(np.diff(stamps.to_numpy())))
    if spacing == pd.Timedelta(hours=1):
        return "h"
    if spacing == pd.Timedelta(days=1):
        return "D"
    # The most common weekday or month position names the grid; `prepare` then reports the rows
    # off it, rather than this guessing from whichever row happens to be first.
    if spacing == pd.Timedelta(weeks=1):
        return f"W-{_WEEKDAYS[int(np.bincount(stamps.day_of_week, minlength=7).argmax())]}"
    if pd.Timedelta(days=28) <= spacing <= pd.Timedelta(days=31):
        starts, ends = stamps.is_month_start.mean(), stamps.is_month_end.mean()
        if max(starts, ends) > 0.5:
            return "MS" if starts >= ends else "ME"
        raise DataError(
            "timestamps are a month apart but not on the first (MS) or last (ME) day of the "
            f"month (e.g. {stamps[0]:%Y-%m-%d}); monthly data must use one or the other"
        )
    raise DataError(
        f"the median spacing between timestamps is {spacing}, which fits no supported frequency "
        "(hourly h, daily D, weekly W-SUN..W-SAT, monthly MS or ME); pass freq if the data has "
        "one of these with gaps"
    )


def _common_freq(groups: dict[str, pd.DataFrame], source: str) -> str:
    found: dict[str, list[str]] = {}
    for sid, group in groups.items():
        if len(group) < 2:
            continue  # nothing to infer from; the grid and min_length checks still apply
        try:
            found.setdefault(infer_freq(group["ds"]), []).append(sid)
        except DataError as exc:
            raise DataError(f"{source}: series {sid!r}: {exc}") from None
    if not found:
        raise DataError(f"{source}: every series has one timestamp; cannot infer the frequency")
    if len(found) > 1:
        kinds = "; ".join(f"{f}: {_listing(dict.fromkeys(ids))}" for f, ids in found.items())
        raise DataError(f"{source}: the series have different frequencies ({kinds})")
    return next(iter(found))


def _regularise(
    group: pd.DataFrame, sid: str, freq: str, source: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """The series' timestamps and values on its grid, which points were filled (a mask), and
    how many were filled and trimmed.
    Missing y at a series' ends cannot be interpolated: the series runs from its first value to
    its last."""
    ds, y, rows = (group[c].to_numpy() for c in ("ds", "y", "row"))
    valid = ~np.isnan(y)
    start, end = int(valid.argmax()), len(y) - int(valid[::-1].argmax())
    ds, y, rows = ds[start:end], y[start:end], rows[start:end]
    grid = pd.date_range(ds[0], ds[-1], freq=freq).to_numpy().astype(ds.dtype)
    if len(grid) == 0:  # no grid date between the first and last row: none of them is on it
        grid = pd.date_range(ds[0], periods=1, freq=freq).to_numpy().astype(ds.dtype)
    at = np.minimum(np.searchsorted(grid, ds), len(grid) - 1)
    off = grid[at] != ds
    if off.any():
        first = pd.Timestamp(ds[0])
        where = f"a {freq} date" if off[0] else f"the {freq} grid that starts at {first}"
        raise DataError(
            f"{source}: row {rows[off][0]}: ds {pd.Timestamp(ds[off][0])} of series {sid!r} is "
            f"not on {where} ({off.sum()} row(s) off it); pass the data's frequency as freq, or "
            "fix the dates"
        )
    values = np.full(len(grid), np.nan)
    values[at] = y
    missing = np.isnan(values)
    if missing.any():  # linear in position is linear in time here: the grid is evenly spaced
        values = pd.Series(values).interpolate().to_numpy()
    return grid, values, missing, {"filled": int(missing.sum()), "trimmed": len(valid) - len(y)}


def _merge_duplicates(
    work: pd.DataFrame, how: Duplicates, source: str
) -> tuple[pd.DataFrame, dict[str, int]]:
    """One row per series and timestamp, and how many rows were merged away per series. `work`
    is sorted stably by series and ds, so the file's order decides which duplicate is last."""
    repeated = work.duplicated(["series_id", "ds"], keep=False).to_numpy()
    if not repeated.any():
        return work, {}
    if how == "error":
        clashes = work[repeated].groupby(["series_id", "ds"])["row"].agg(list)
        shown = "; ".join(
            f"series {s!r} at {d}: rows {', '.join(map(str, rows))}"
            for (s, d), rows in clashes.iloc[:_MAX_SHOWN].items()
        )
        raise DataError(
            f"{source}: {len(clashes)} duplicate timestamp(s) (same series_id and ds): {shown}; "
            "pass duplicates='mean' or 'last' to merge them"
        )
    counts = work.duplicated(["series_id", "ds"]).groupby(work["series_id"]).sum()
    # groupby's mean and last skip NaN, so a blank duplicate never hides a value.
    merged = work.groupby(["series_id", "ds"], as_index=False, sort=True)
    merged = merged.agg(y=("y", how), row=("row", "first"))
    return merged, {str(sid): int(n) for sid, n in counts.items() if n}


def _warn(message: str) -> None:
    warnings.warn(message, DataQualityWarning, stacklevel=3)  # at prepare's caller


def prepare(
    df: pd.DataFrame,
    *,
    freq: str | None = None,
    duplicates: Duplicates = "mean",
    min_length: int | None = None,
    source: str = "data",
) -> SeriesData:
    """Validate and regularise `ds, y` or `series_id, ds, y` rows (see the module docstring)."""
    if duplicates not in ("error", "mean", "last"):
        raise ValueError(f"duplicates must be 'error', 'mean' or 'last', got {duplicates!r}")
    work, tz_note = _parse(df, source)
    by_id = work.groupby("series_id", sort=False)
    empty = [sid for sid, n in by_id["y"].count().items() if n == 0]
    if empty:
        raise DataError(f"{source}: series without any y value: {_listing(dict.fromkeys(empty))}")

    backwards = (by_id["ds"].diff() < pd.Timedelta(0)).groupby(work["series_id"]).sum()
    unsorted = {str(sid): int(n) for sid, n in backwards.items() if n}
    if unsorted:
        _warn(f"{source}: rows out of date order, sorted, in series {_listing(unsorted)}")
    work = work.sort_values(["series_id", "ds"], kind="stable", ignore_index=True)
    work, merged = _merge_duplicates(work, duplicates, source)
    if merged:
        _warn(f"{source}: duplicate timestamps merged ({duplicates}) in series {_listing(merged)}")

    groups = {str(sid): group for sid, group in work.groupby("series_id", sort=True)}
    freq = frequency.normalise(freq) if freq is not None else _common_freq(groups, source)
    stamps, values, fixes, short, masks = [], [], {}, {}, {}
    for sid, group in groups.items():
        grid, y, masks[sid], fixes[sid] = _regularise(group, sid, freq, source)
        fixes[sid] |= {"duplicates": merged.get(sid, 0), "reordered": unsorted.get(sid, 0)}
        stamps.append(grid)
        values.append(y)
        if min_length is not None and len(y) < min_length:
            short[sid] = len(y)
    if short:
        shown = ", ".join(f"{sid!r} has {n}" for sid, n in list(short.items())[:_MAX_SHOWN])
        raise DataError(
            f"{source}: {len(short)} series too short for the backtest and horizon, which need "
            f"at least {min_length} points: {shown}{' ...' if len(short) > _MAX_SHOWN else ''}"
        )
    ids = np.repeat(list(groups), [len(y) for y in values])
    frame = pd.DataFrame({"series_id": pd.Series(ids, dtype=str), "ds": np.concatenate(stamps),
                          "y": np.concatenate(values)}).astype({"ds": _DATETIME})  # fmt: skip
    filled = [n["filled"] for n in fixes.values() if n["filled"]]
    if filled:
        _warn(f"{source}: interpolated {sum(filled)} missing points in {len(filled)} of "
              f"{len(fixes)} series")  # fmt: skip
    filled_masks = {sid: mask for sid, mask in masks.items() if mask.any()}
    return SeriesData(frame, freq, fixes, [tz_note] if tz_note else [], filled_masks)


def load(
    path: str | Path,
    *,
    freq: str | None = None,
    duplicates: Duplicates = "mean",
    min_length: int | None = None,
) -> SeriesData:
    """Read a CSV or Parquet table of series and `prepare` it, naming the file in every error."""
    # Ids stay text even where they look numeric ("007" keeps its zeros).
    # pandas reads "NA", "None", "null" as missing by default: as series ids they are names.
    frame = etl.read_table(path, dtype={"series_id": "str"}, na_values={"series_id": [""]},
                           keep_na_for=("ds", "y"))  # fmt: skip
    return prepare(frame, freq=freq, duplicates=duplicates, min_length=min_length, source=str(path))


def read_table_of_series(path: str | Path) -> pd.DataFrame:
    """A CSV this project wrote with a `series_id` column (scores, expectations, a monitoring
    run's series): ids stay text, and a series called "NA" or "null" keeps its name; only an
    empty cell is missing."""
    return pd.read_csv(path, dtype={"series_id": str}, keep_default_na=False, na_values=[""])


def fingerprint(data: SeriesData) -> str:
    """A sha256 of the prepared series, the same whichever file format they came from."""
    return etl.fingerprint(data.frame)


def write_series(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write series to .csv or .parquet (by suffix), atomically."""
    path = Path(path)
    if path.suffix.lower() not in etl.TABLE_SUFFIXES:
        raise UserError(f"{path}: unsupported file type {path.suffix!r} (use .csv or .parquet)")
    return etl.write_table(frame, path)
