"""Reading the points a user gives the Forecast page to condition a forecast on: CSV text with
a `ds,y` header, pasted or uploaded.

A `series_id` column (as in a file of actuals for `python -m forecast monitor`) is allowed: the
rows of other series are dropped. Only the format is checked here, every problem with the lines
it is on (a missing column, a date or a value that is none, too many points); whether the dates
fit the series' time grid is the model's to say, in-process or in the API, as for any request.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from streamlit.runtime.uploaded_file_manager import UploadedFile

from common.errors import UserError
from forecast.serve import MAX_HISTORY

LISTED_LINES = 3  # an error names this many bad lines at most


def bad_lines(values: pd.Series) -> str:
    """`line 3 ('abc'), line 7 ('') and 2 more`: where a column's bad values are."""
    shown = [f"line {line} ({value!r})" for line, value in values.iloc[:LISTED_LINES].items()]
    more = len(values) - LISTED_LINES
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def parse_history(text: str, series_id: str, source: str) -> pd.DataFrame:
    """Points of one series from CSV text with a `ds,y` header (or `series_id,ds,y`, whose rows
    of other series are dropped), oldest first; UserError naming the problem. Only the format is
    checked here: whether the dates fit the series' grid is the model's to say."""
    try:
        # Read as text, so the lines whose date or number is not one can be named below.
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False,
                            skipinitialspace=True)  # fmt: skip
    except pd.errors.EmptyDataError:
        raise UserError(f"{source} is empty") from None
    except pd.errors.ParserError as exc:
        raise UserError(f"{source} is not readable as CSV: {exc}") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in ("ds", "y") if c not in frame.columns]
    if missing:
        raise UserError(
            f"{source} needs the columns ds and y under a header line `ds,y`; "
            f"{' and '.join(missing)} missing (columns found: {', '.join(frame.columns)})"
        )
    frame.index = pd.RangeIndex(2, len(frame) + 2)  # line numbers, the header being line 1
    if "series_id" in frame.columns:
        frame = frame[frame["series_id"].str.strip() == series_id]
        if frame.empty:
            raise UserError(f"{source} has no row of series {series_id!r} (its series_id column)")
    if frame.empty:
        raise UserError(f"{source} has a header but no points")
    if len(frame) > MAX_HISTORY:
        raise UserError(f"{source} has {len(frame):,} points; at most {MAX_HISTORY:,} are taken")
    # Times with an offset are converted to UTC, the naive clock the series are on; times
    # without one are taken as they are.
    ds = pd.to_datetime(frame["ds"].str.strip(), errors="coerce", format="ISO8601", utc=True)
    if ds.isna().any():
        raise UserError(
            f"{source}: ds is not a date on {bad_lines(frame.loc[ds.isna(), 'ds'])}; "
            "write dates in ISO 8601, e.g. 2024-01-31 or 2024-01-31T13:00"
        )
    y = pd.to_numeric(frame["y"].str.strip(), errors="coerce")
    bad = ~np.isfinite(y.to_numpy(dtype=float))
    if bad.any():
        raise UserError(f"{source}: y is not a finite number on {bad_lines(frame.loc[bad, 'y'])}")
    points = pd.DataFrame({"ds": ds.dt.tz_convert(None).to_numpy(), "y": y.to_numpy(dtype=float)})
    return points.sort_values("ds", kind="stable").reset_index(drop=True)


def recent_points(upload: UploadedFile | None, pasted: str, series_id: str) -> pd.DataFrame | None:
    """The points to condition on: the upload's if any, else the pasted ones; None if neither."""
    if upload is not None:
        try:
            text = upload.getvalue().decode("utf-8-sig")  # a spreadsheet's BOM is no column name
        except UnicodeDecodeError:
            raise UserError(f"{upload.name} is not a text (UTF-8) CSV file") from None
        return parse_history(text, series_id, upload.name)
    if pasted.strip():
        return parse_history(pasted, series_id, "the pasted points")
    return None
