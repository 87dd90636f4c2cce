"""Data contract of the forecast project: what `forecast.data` accepts, fixes and refuses.

Every fix must be counted and warned about, and every refusal must name the source, the column
and the rows or series, so that a user can correct the file from the message alone.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.errors import UserError
from common.schema import DataQualityWarning
from forecast.data import (
    DEFAULT_ID,
    DataError,
    SeriesData,
    fingerprint,
    infer_freq,
    load,
    prepare,
    write_series,
)

# The opening of Prophet's example_air_passengers.csv, with its old-Mac CR-only line endings.
AIR_PASSENGERS = "ds,y\r1949-01-01,112\r1949-02-01,118\r1949-03-01,132\r1949-04-01,129\r"


def daily(n: int = 10, start: str = "2024-01-01", sid: str | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"ds": pd.date_range(start, periods=n, freq="D").strftime("%Y-%m-%d"), "y": range(n)}
    )
    return frame if sid is None else frame.assign(series_id=sid)[["series_id", "ds", "y"]]


def clean(df: pd.DataFrame, **kwargs: object) -> SeriesData:
    """`prepare`, failing the test on a DataQualityWarning: the data is meant to need no fixing."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataQualityWarning)
        return prepare(df, **kwargs)  # type: ignore[arg-type]


# -- reading files ----------------------------------------------------------------------------
def test_cr_only_line_endings_load(tmp_path: Path) -> None:
    path = tmp_path / "example_air_passengers.csv"
    path.write_bytes(AIR_PASSENGERS.encode())
    assert b"\n" not in path.read_bytes()
    data = load(path)
    assert data.freq == "MS"
    assert data.ids == [DEFAULT_ID]
    assert data.series(DEFAULT_ID)["y"].tolist() == [112.0, 118.0, 132.0, 129.0]
    assert data.series(DEFAULT_ID)["ds"].iloc[-1] == pd.Timestamp("1949-04-01")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_and_load_round_trip_with_the_same_fingerprint(tmp_path: Path, suffix: str) -> None:
    frame = pd.concat([daily(20, sid="b"), daily(15, "2024-01-03", sid="a")], ignore_index=True)
    expected = clean(frame)
    path = write_series(frame, tmp_path / f"series{suffix}")
    assert path.is_file()
    data = load(path)
    assert data.ids == ["a", "b"]
    pd.testing.assert_frame_equal(data.frame, expected.frame)
    assert fingerprint(data) == fingerprint(expected)


def test_parquet_keeps_datetimes_and_numeric_ids_as_text(tmp_path: Path) -> None:
    frame = daily(5).assign(ds=lambda d: pd.to_datetime(d["ds"]).astype("datetime64[ns]"))
    frame.assign(series_id=7).to_parquet(tmp_path / "s.parquet")
    data = load(tmp_path / "s.parquet")
    assert data.ids == ["7"]
    assert str(data.frame["ds"].dtype) == "datetime64[us]"
    assert fingerprint(data) == fingerprint(clean(daily(5).assign(series_id="7")))


def test_csv_ids_that_look_numeric_keep_their_zeros(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("series_id,ds,y\n007,2024-01-01,1\n007,2024-01-02,2\n010,2024-01-01,3\n")
    assert load(path, min_length=None).ids == ["007", "010"]


def test_unreadable_files_are_user_errors_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"absent\.csv: no such file"):
        load(tmp_path / "absent.csv")
    with pytest.raises(UserError, match=r"series\.txt: unsupported file type"):
        write_series(daily(), tmp_path / "series.txt")


def test_fingerprint_changes_with_the_values() -> None:
    base = clean(daily())
    assert fingerprint(base) == fingerprint(clean(daily()))
    assert re.fullmatch(r"[0-9a-f]{64}", fingerprint(base))
    assert fingerprint(base) != fingerprint(clean(daily().assign(y=lambda d: d["y"] + 1)))


# -- layout -----------------------------------------------------------------------------------
def test_single_series_gets_the_default_id_and_extra_columns_are_ignored() -> None:
    data = clean(daily(7).assign(note="x", weather=1.5))
    assert DEFAULT_ID == "series"
    assert list(data.frame.columns) == ["series_id", "ds", "y"]
    assert data.ids == ["series"] and len(data) == 1
    assert data.frame["y"].dtype == np.float64
    assert str(data.frame["ds"].dtype) == "datetime64[us]"
    assert data.frame["ds"].dt.tz is None
    assert data.fixes == {"series": {"filled": 0, "trimmed": 0, "duplicates": 0, "reordered": 0}}


def test_many_series_are_sorted_by_series_then_date() -> None:
    frame = pd.concat([daily(5, sid="s2"), daily(8, "2023-12-30", sid="s1")]).iloc[::-1]
    # Reversed rows are out of date order within each series: fixed, with a warning.
    with pytest.warns(DataQualityWarning, match="out of date order"):
        data = prepare(frame)
    assert data.ids == ["s1", "s2"] and len(data) == 2
    assert data.frame["series_id"].tolist() == ["s1"] * 8 + ["s2"] * 5
    s1 = data.series("s1")
    assert list(s1.columns) == ["ds", "y"]
    assert s1["ds"].is_monotonic_increasing and s1["ds"].iloc[0] == pd.Timestamp("2023-12-30")
    assert s1["y"].tolist() == list(map(float, range(8)))


def test_missing_columns_are_named_with_the_columns_found() -> None:
    with pytest.raises(DataError, match=r"sales\.csv: no column 'y' \(columns found: 'ds', 'v'\)"):
        prepare(pd.DataFrame({"ds": ["2024-01-01"], "v": [1]}), source="sales.csv")
    with pytest.raises(DataError, match="no columns 'ds' and 'y'"):
        prepare(pd.DataFrame({"date": ["2024-01-01"], "value": [1]}))
    with pytest.raises(DataError, match="no rows"):
        prepare(pd.DataFrame({"ds": [], "y": []}))


def test_unknown_series_is_a_user_error_and_a_key_error() -> None:
    data = clean(daily(sid="a"))
    with pytest.raises(UserError, match="no series 'zz' in the data \\(it has 'a'\\)") as caught:
        data.series("zz")
    assert isinstance(caught.value, KeyError)
    assert str(caught.value).startswith("no series")  # not in KeyError's quotes


def test_summary_reports_frequency_series_lengths_dates_and_fixes() -> None:
    frame = pd.concat([daily(10, sid="a"), daily(6, sid="b").drop(index=[2, 3])])
    with pytest.warns(DataQualityWarning, match="interpolated 2 missing points"):
        text = prepare(frame).summary()
    assert "frequency: D (daily)" in text
    assert "series: 2 ('a', 'b')" in text
    assert "length: 6 to 10 points" in text
    assert "dates: 2024-01-01 to 2024-01-10" in text
    assert "missing points interpolated: 2 in 1 series ('b' (2))" in text
    assert "nothing" in clean(daily()).summary()


# -- dates ------------------------------------------------------------------------------------
def test_unparseable_dates_name_the_column_rows_and_values() -> None:
    frame = daily(6)
    frame.loc[[1, 4], "ds"] = ["not a date", "2024-13-45"]
    frame.loc[5, "ds"] = None
    with pytest.raises(DataError) as caught:
        prepare(frame, source="sales.csv")
    message = str(caught.value)
    assert message.startswith("sales.csv: 2 problem(s) found")
    # Data rows count from 1, as in common.schema: the second data row is "row 2".
    assert "column 'ds': is not a date (2 rows: 2, 5; e.g. 'not a date', '2024-13-45')" in message
    assert "column 'ds': is missing (1 row: 6" in message


@pytest.mark.parametrize(
    "dates",
    [
        ["2024-01-30", "2024-01-31", "2024-02-01"],
        ["01/30/2024", "01/31/2024", "02/01/2024"],  # a layout pandas infers from the first
        [20240130, 20240131, 20240201],  # numbers read as dates, not as epoch nanoseconds
        ["2024-01-30", "2024-01-31 00:00", "2024-02-01T00:00:00"],  # ISO 8601, mixed precision
    ],
)
def test_date_layouts(dates: list[object]) -> None:
    data = clean(pd.DataFrame({"ds": dates, "y": [1.0, 2.0, 3.0]}))
    assert data.series(DEFAULT_ID)["ds"].tolist() == list(pd.date_range("2024-01-30", periods=3))


def test_time_zones_are_converted_to_utc_and_noted() -> None:
    frame = pd.DataFrame({"ds": [f"2024-03-0{d}T00:00:00+02:00" for d in (1, 2, 3)], "y": 1.0})
    data = clean(frame)
    assert data.frame["ds"].dt.tz is None
    assert data.frame["ds"].iloc[0] == pd.Timestamp("2024-02-29 22:00")
    assert "converted to UTC" in data.summary()
    mixed = frame.assign(
        ds=["2024-03-01T00:00+01:00", "2024-03-01T23:00+00:00", "2024-03-02T23:00Z"]
    )
    assert clean(mixed).frame["ds"].iloc[1] == pd.Timestamp("2024-03-01 23:00")


# -- values -----------------------------------------------------------------------------------
def test_non_numeric_values_name_the_column_rows_and_values() -> None:
    frame = daily(5).astype({"y": object})
    frame.loc[[0, 3], "y"] = ["12,5", "n/a!"]
    with pytest.raises(
        DataError,
        match=re.escape("column 'y': is not a number (2 rows: 1, 4; e.g. '12,5', 'n/a!')"),
    ):
        prepare(frame, source="f.csv")


def test_infinite_values_are_refused() -> None:
    with pytest.raises(DataError, match="column 'y': is infinite \\(1 row: 3"):
        prepare(daily(4).assign(y=[1.0, 2.0, np.inf, 4.0]))


def test_missing_values_inside_a_series_are_interpolated_and_counted() -> None:
    frame = daily(6).astype({"y": object})
    frame["y"] = [0.0, None, "", 3.0, np.nan, 5.0]  # blank text and NaN alike
    with pytest.warns(DataQualityWarning, match="interpolated 3 missing points"):
        data = prepare(frame)
    assert data.series(DEFAULT_ID)["y"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert data.fixes[DEFAULT_ID]["filled"] == 3


def test_missing_values_at_the_ends_are_trimmed() -> None:
    frame = daily(6).assign(y=[np.nan, 1.0, 2.0, np.nan, 4.0, np.nan])
    with pytest.warns(DataQualityWarning, match="interpolated 1 missing points"):
        data = prepare(frame)
    series = data.series(DEFAULT_ID)
    assert series["ds"].iloc[0] == pd.Timestamp("2024-01-02")
    assert series["y"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert data.fixes[DEFAULT_ID]["trimmed"] == 2


def test_a_series_without_any_value_is_refused() -> None:
    frame = pd.concat([daily(4, sid="ok"), daily(3, sid="void").assign(y=np.nan)])
    with pytest.raises(DataError, match="data: series without any y value: 'void'"):
        prepare(frame)


# -- gaps -------------------------------------------------------------------------------------
def test_missing_timestamps_are_filled_counted_and_warned_about() -> None:
    frame = pd.concat([daily(10, sid="gappy").drop(index=[3, 4, 7]), daily(10, sid="full")])
    message = "s.csv: interpolated 3 missing points in 1 of 2 series"
    with pytest.warns(DataQualityWarning, match=message):
        data = prepare(frame, source="s.csv")
    gappy = data.series("gappy")
    assert len(gappy) == 10 and gappy["ds"].diff().iloc[1:].eq(pd.Timedelta(days=1)).all()
    assert gappy["y"].tolist() == list(map(float, range(10)))  # linear between neighbours
    assert data.fixes["gappy"]["filled"] == 3 and data.fixes["full"]["filled"] == 0
    # Which points were filled is kept, for the backtest to leave them out.
    assert np.flatnonzero(data.filled_mask("gappy")).tolist() == [3, 4, 7]
    assert not data.filled_mask("full").any()


def test_nothing_is_logged_when_nothing_is_filled(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="forecast.data"):
        clean(daily())
    assert caplog.text == ""


# -- duplicates and order ---------------------------------------------------------------------
@pytest.fixture
def duplicated() -> pd.DataFrame:
    """Series 'a' has 2024-01-02 three times (values 1, 5, 9: rows 2, 3, 4)."""
    frame = daily(4, sid="a")
    extra = frame.iloc[[1, 1]].assign(y=[5, 9])
    return pd.concat([frame.iloc[:2], extra, frame.iloc[2:], daily(3, sid="b")], ignore_index=True)


def test_duplicates_error_lists_series_dates_and_rows(duplicated: pd.DataFrame) -> None:
    with pytest.raises(DataError) as caught:
        prepare(duplicated, duplicates="error", source="f.csv")
    message = str(caught.value)
    assert message.startswith("f.csv: 1 duplicate timestamp(s)")
    assert "series 'a' at 2024-01-02 00:00:00: rows 2, 3, 4" in message
    assert "duplicates='mean' or 'last'" in message


@pytest.mark.parametrize(("how", "value"), [("mean", 5.0), ("last", 9.0)])
def test_duplicates_are_merged_counted_and_warned(
    duplicated: pd.DataFrame, how: str, value: float
) -> None:
    with pytest.warns(
        DataQualityWarning, match=rf"f\.csv: duplicate .* \({how}\) in series 'a' \(2\)"
    ):
        data = prepare(duplicated, duplicates=how, source="f.csv")  # type: ignore[arg-type]
    assert data.series("a")["y"].tolist() == [0.0, value, 2.0, 3.0]
    assert data.fixes["a"]["duplicates"] == 2 and data.fixes["b"]["duplicates"] == 0


def test_last_duplicate_is_the_last_in_the_file_even_when_unsorted() -> None:
    frame = pd.DataFrame({"ds": ["2024-01-03", "2024-01-01", "2024-01-03", "2024-01-02"],
                          "y": [30.0, 1.0, 33.0, 2.0]})  # fmt: skip
    with pytest.warns(DataQualityWarning):
        data = prepare(frame, duplicates="last")
    assert data.series(DEFAULT_ID)["y"].tolist() == [1.0, 2.0, 33.0]


def test_a_blank_duplicate_does_not_hide_a_value() -> None:
    frame = pd.DataFrame({"ds": ["2024-01-01", "2024-01-02", "2024-01-02"], "y": [1, 7, None]})
    with pytest.warns(DataQualityWarning):
        assert prepare(frame, duplicates="last").series(DEFAULT_ID)["y"].tolist() == [1.0, 7.0]


def test_unsorted_dates_are_sorted_counted_and_warned() -> None:
    frame = daily(6, sid="u").iloc[[0, 3, 1, 2, 5, 4]]
    with pytest.warns(
        DataQualityWarning, match=r"rows out of date order, sorted, in series 'u' \(2\)"
    ):
        data = prepare(pd.concat([frame, daily(3, sid="ok")]))
    assert data.series("u")["y"].tolist() == list(map(float, range(6)))
    assert data.fixes["u"]["reordered"] == 2 and data.fixes["ok"]["reordered"] == 0


def test_interleaved_series_are_not_unsorted() -> None:
    frame = pd.concat([daily(4, sid="a"), daily(4, sid="b")]).sort_values("ds", kind="stable")
    assert clean(frame).fixes["a"]["reordered"] == 0


# -- frequency --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        (pd.date_range("2024-03-30", periods=50, freq="h"), "h"),
        (pd.date_range("2024-01-01", periods=20, freq="D"), "D"),
        (pd.date_range("2024-01-07", periods=20, freq="W-SUN"), "W-SUN"),
        (pd.date_range("2024-01-03", periods=20, freq="W-WED"), "W-WED"),
        (pd.date_range("2020-01-01", periods=30, freq="MS"), "MS"),
        (pd.date_range("2020-01-31", periods=30, freq="ME"), "ME"),
    ],
)
def test_frequency_is_inferred(dates: pd.DatetimeIndex, expected: str) -> None:
    assert infer_freq(pd.Series(dates)) == expected
    # With a few points missing and unsorted: the median spacing still tells.
    shuffled = pd.Series(dates).drop(index=[3, 7]).sample(frac=1.0, random_state=0)
    assert infer_freq(shuffled) == expected
    frame = pd.DataFrame({"ds": dates.astype(str), "y": 1.0}).drop(index=[3, 7])
    with pytest.warns(DataQualityWarning, match="interpolated 2 missing points"):
        data = prepare(frame)
    assert data.freq == expected and data.fixes[DEFAULT_ID]["filled"] == 2
    assert data.series(DEFAULT_ID)["ds"].tolist() == list(dates)


def test_unsupported_spacing_says_the_median_and_to_pass_freq() -> None:
    frame = pd.DataFrame({"ds": pd.date_range("2024-01-01", periods=9, freq="2D"), "y": 1.0})
    with pytest.raises(
        DataError, match=r"f\.csv: series 'series': the median spacing .* is 2 days.*pass freq"
    ):
        prepare(frame, source="f.csv")
    with pytest.raises(DataError, match="median spacing between timestamps is 0 days 00:15:00"):
        infer_freq(pd.Series(pd.date_range("2024-01-01", periods=9, freq="15min")))
    with pytest.raises(DataError, match="from 1 timestamp"):
        infer_freq(pd.Series(pd.to_datetime(["2024-01-01"])))


def test_monthly_dates_must_be_month_starts_or_ends() -> None:
    dates = pd.Series(pd.date_range("2020-01-01", periods=12, freq="MS") + pd.Timedelta(days=14))
    with pytest.raises(DataError, match=r"a month apart .* \(e\.g\. 2020-01-15\)"):
        infer_freq(dates)


def test_series_with_different_frequencies_are_refused() -> None:
    weekly = pd.DataFrame(
        {"series_id": "w", "ds": pd.date_range("2024-01-07", periods=5, freq="W"), "y": 1.0}
    )
    with pytest.raises(DataError, match=r"different frequencies \(D: 'd'; W-SUN: 'w'\)"):
        prepare(pd.concat([daily(10, sid="d"), weekly]))


def test_given_freq_is_normalised_and_checked() -> None:
    weekly = pd.DataFrame({"ds": pd.date_range("2024-01-07", periods=6, freq="W"), "y": 1.0})
    assert clean(weekly, freq="W").freq == "W-SUN"
    # Daily data declared weekly: the second row is off the weekly grid from the first.
    with pytest.raises(
        DataError,
        match=r"f\.csv: row 2: ds 2024-01-02 00:00:00 of series 'series' is not on the W-MON grid",
    ):
        prepare(daily(14), freq="W-MON", source="f.csv")
    # Anchored: 2024-01-01 is a Monday, not a Sunday.
    with pytest.raises(DataError, match=r"row 1: ds 2024-01-01 00:00:00 .* is not on a W-SUN date"):
        prepare(daily(14).iloc[::7], freq="W-SUN")
    with pytest.raises(UserError, match="not supported"):
        prepare(daily(), freq="2D")


def test_off_grid_rows_are_named_after_inference() -> None:
    frame = daily(10)
    frame.loc[6, "ds"] = "2024-01-07 12:00"
    with pytest.raises(
        DataError, match=r"row 7: ds 2024-01-07 12:00:00 of series 'series' is not on the D grid"
    ):
        prepare(frame)


# -- length -----------------------------------------------------------------------------------
def test_too_short_series_are_named_with_length_and_minimum() -> None:
    frame = pd.concat([daily(40, sid="long"), daily(12, sid="short"), daily(5, sid="tiny")])
    with pytest.raises(DataError) as caught:
        prepare(frame, min_length=30, source="f.csv")
    message = str(caught.value)
    assert "f.csv: 2 series too short for the backtest and horizon" in message
    assert "at least 30 points: 'short' has 12, 'tiny' has 5" in message
    assert "'long'" not in message
    assert len(prepare(frame, min_length=5)) == 3


def test_length_counts_after_filling() -> None:
    frame = daily(10).drop(index=[2, 3, 4, 5])  # 6 rows spanning 10 days
    with pytest.warns(DataQualityWarning, match="interpolated 4 missing points"):
        assert len(prepare(frame, min_length=10).series(DEFAULT_ID)) == 10


def test_series_named_like_missing_values_keep_their_names(tmp_path) -> None:
    path = tmp_path / "names.csv"
    path.write_text("series_id,ds,y\nNA,2024-01-01,1\nNA,2024-01-02,NA\nNA,2024-01-03,3\n"
                    "null,2024-01-01,2\nnull,2024-01-02,2\nnull,2024-01-03,2\n")  # fmt: skip
    with pytest.warns(DataQualityWarning, match="interpolated 1 missing points"):
        data = load(path)
    assert data.ids == ["NA", "null"]
    assert data.fixes["NA"]["filled"] == 1  # a y of "NA" is still a missing value


@pytest.mark.parametrize(("dates", "freq"), [(["2024-01-02", "2024-01-03"], "W-SUN"),
                                             (["2024-01-15"], "MS")])  # fmt: skip
def test_dates_with_no_grid_point_between_them_are_off_the_grid(dates, freq) -> None:
    with pytest.raises(DataError, match=f"not on a {freq} date"):
        prepare(pd.DataFrame({"ds": dates, "y": 1.0}), freq=freq)
