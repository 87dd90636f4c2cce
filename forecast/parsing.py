"""Cell-level parsing for `forecast.data`: a table's `series_id`, `ds` and `y` columns typed, with
a `Problem` for every cell that is no id, no date or no number.

Nothing here raises for bad cells: the problems are collected, so that `forecast.data` can refuse
the whole table in one `DataError` that lists them all. Row numbers count data rows from 1, as
`common.schema` does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from common.schema import Problem

# One resolution whatever the source (CSV parses to us, Parquet may hold ns), so that the same
# series read from either format has the same fingerprint.
DATETIME = "datetime64[us]"
# Rows a Problem keeps, as many as `common.schema` shows; its count says how many there are.
_MAX_ROWS = 10


def parse(df: pd.DataFrame, default_id: str) -> tuple[pd.DataFrame, str | None, list[Problem]]:
    """`series_id, ds, y` and each row's number, typed, from a table with `ds` and `y` columns;
    a note if time zones were converted; and every problem found (the frame is usable if none)."""
    df = df.reset_index(drop=True)
    problems: list[Problem] = []
    ids = _series_ids(df, default_id, problems)
    ds, tz_note = _parse_dates(df["ds"], problems)
    y = _parse_values(df["y"], problems)
    rows = np.arange(1, len(df) + 1)
    return pd.DataFrame({"series_id": ids, "ds": ds, "y": y, "row": rows}), tz_note, problems


def _problem(column: str, message: str, mask: np.ndarray, values: pd.Series) -> Problem:
    positions = np.flatnonzero(mask)
    examples = list(dict.fromkeys(values.iloc[positions[:200]].tolist()))[:5]
    rows = [int(p) + 1 for p in positions[:_MAX_ROWS]]
    return Problem(column, message, rows=rows, count=int(positions.size), examples=examples)


def _blank(raw: pd.Series) -> np.ndarray:
    if not (raw.dtype == object or pd.api.types.is_string_dtype(raw)):
        return raw.isna().to_numpy()
    text = raw.astype("string").str.strip()
    return (text.isna() | (text == "")).to_numpy(dtype=bool)


def _series_ids(df: pd.DataFrame, default_id: str, problems: list[Problem]) -> pd.Series:
    """Each row's series id as text; `default_id` throughout a table without the column."""
    if "series_id" not in df.columns:
        return pd.Series(default_id, index=df.index, dtype=str)
    absent = _blank(df["series_id"])
    if absent.any():
        problems.append(_problem("series_id", "is missing", absent, df["series_id"]))
    return df["series_id"].astype(str).str.strip()


def _to_datetime(text: pd.Series, fmt: str | None) -> pd.Series:
    try:
        return pd.to_datetime(text, errors="coerce", format=fmt)
    except ValueError:  # mixed UTC offsets: pandas converts them only to a common UTC
        return pd.to_datetime(text, errors="coerce", format=fmt, utc=True)


def _parse_dates(raw: pd.Series, problems: list[Problem]) -> tuple[pd.Series, str | None]:
    """Naive timestamps (aware ones converted to UTC), NaT where a value is no date."""
    absent = _blank(raw)
    if pd.api.types.is_datetime64_any_dtype(raw):
        parsed = raw
    else:
        # As text, so that numbers such as 20240131 read as dates, not as epoch nanoseconds.
        text = raw.astype("string")
        # ISO 8601 first, which takes a date beside a date and time ("2024-01-07 12:00"); the
        # format pandas infers from the first value holds every value to that one's layout.
        parsed = _to_datetime(text, "ISO8601")
        if (parsed.isna().to_numpy() & ~absent).any():
            inferred = _to_datetime(text, None)
            parsed = min(parsed, inferred, key=lambda p: int(p.isna().sum()))
    note = None
    if parsed.dt.tz is not None:
        note = f"timestamps had time zone {parsed.dt.tz}: converted to UTC, kept without a zone"
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    if absent.any():
        problems.append(_problem("ds", "is missing", absent, raw))
    bad = ~absent & parsed.isna().to_numpy()
    if bad.any():
        problems.append(_problem("ds", "is not a date", bad, raw))
    return parsed.astype(DATETIME), note


def _parse_values(raw: pd.Series, problems: list[Problem]) -> pd.Series:
    """Floats; NaN for a blank value (interpolated later, like a missing point)."""
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        y = raw.astype(float)
    else:
        blank = _blank(raw)
        y = pd.to_numeric(raw.astype("string").str.strip().mask(blank), errors="coerce")
        y = y.astype(float)
        bad = ~blank & y.isna().to_numpy()
        if bad.any():
            problems.append(_problem("y", "is not a number", bad, raw))
    infinite = np.isinf(y.to_numpy())
    if infinite.any():
        problems.append(_problem("y", "is infinite", infinite, raw))
    return y
