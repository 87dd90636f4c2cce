"""The forecast dashboard, page by page, through Streamlit's AppTest (no browser).

Each test runs the real entry point (`forecast/dashboard/app.py`) and reaches a page the way
Streamlit does, with `AppTest.switch_page`, against the session's artifact (`MODEL_DIR`) and
monitoring folder (`MLP_MONITORING_ROOT`: a healthy run, then a level-shifted one). Forecasts
are made in-process, or, with `API_URL` set, by the real forecast API served from a thread on a
free local port, so conditioning on pasted points is exercised end to end both ways. What the
charts show is read back from the data Streamlit sends with them. The pure functions behind the
pages are checked directly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Element

from common.errors import UserError
from common.settings import Settings, get_settings
from forecast.dashboard import backtest, monitoring, predict
from forecast.dashboard.history_csv import parse_history
from forecast.evaluate import BASELINE
from forecast.serve import ForecastPredictor
from tests.conftest import assert_says_how_to_train

APP = Path(__file__).parents[2] / "forecast" / "dashboard" / "app.py"
# Loading the model on a cold cache (statsmodels, every series' model) takes a few seconds on a
# slow machine.
TIMEOUT_S = 60
MODEL_PAGES = ["predict.py", "backtest.py"]
MODELS = ["naive", "seasonal_naive", "ets"]  # the session artifact's (tests/forecast/conftest.py)
FORECAST_COLUMNS = ["ds", "yhat", "yhat_lower", "yhat_upper"]


@pytest.fixture(scope="module")
def dashboard_model(forecast_artifact: Path) -> tuple[type, Path]:
    """What `model_dir`, `dashboard_api` and `via_api` (tests/conftest.py) show and serve."""
    return ForecastPredictor, forecast_artifact


@pytest.fixture
def monitored(
    settings: Settings, model_dir: Path, forecast_monitoring: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The dashboard reads the session's monitoring root (a healthy run, then a shifted one)."""
    monkeypatch.setenv("MLP_MONITORING_ROOT", str(forecast_monitoring))
    get_settings.cache_clear()  # `settings` clears it again afterwards
    return forecast_monitoring / "forecast"


def open_page(page: str | None = None) -> AppTest:
    """The app after its first run, on `page` (a file beside app.py) or the default page; it
    must raise nothing."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
    if page is not None:
        at.switch_page(page).run()
    assert_no_exception(at)
    return at


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def chart_data(chart: Element) -> pd.DataFrame:
    """The data behind an Altair chart, as Streamlit sent it (Arrow IPC bytes)."""
    return pa.ipc.open_stream(chart.proto.datasets[0].data.data).read_pandas()


def charts(at: AppTest) -> list[pd.DataFrame]:
    return [chart_data(c) for c in at.get("vega_lite_chart")]


def metric(at: AppTest, label: str) -> str:
    values = [m.value for m in at.metric if m.label.startswith(label)]
    assert values, f"no metric {label!r} in {[m.label for m in at.metric]}"
    return values[0]


def drawn_forecast(at: AppTest) -> pd.DataFrame:
    """The forecast rows of the Forecast page's chart, as ds, yhat, yhat_lower, yhat_upper."""
    frame = charts(at)[0]
    shown = frame[frame["part"] == "forecast"].rename(columns={"y": "yhat"})
    return shown[FORECAST_COLUMNS].reset_index(drop=True)


def assert_same_forecast(shown: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(pd.to_datetime(shown["ds"])) == list(pd.to_datetime(expected["ds"]))
    for column in FORECAST_COLUMNS[1:]:
        np.testing.assert_allclose(shown[column], expected[column], rtol=1e-6)


def paste(at: AppTest, text: str) -> AppTest:
    at.text_area(key="forecast.pasted").input(text).run()
    assert_no_exception(at)
    return at


def recent_csv(files, series_id: str, n: int) -> tuple[str, pd.DataFrame]:
    """The first `n` healthy actuals of `series_id` after training, as `ds,y` text and frame."""
    actuals = pd.read_csv(files.healthy, parse_dates=["ds"], dtype={"series_id": str})
    points = actuals[actuals["series_id"] == series_id][["ds", "y"]].iloc[:n]
    return points.to_csv(index=False), points.reset_index(drop=True)


# -- forecast ----------------------------------------------------------------------------------


def test_the_forecast_page_draws_history_and_the_stored_forecast(
    model_dir: Path, forecast_predictor: ForecastPredictor
) -> None:
    at = open_page()
    assert at.title[0].value == "Forecast"
    series = at.selectbox(key="forecast.series")
    first = forecast_predictor.ids[0]
    assert series.value == first
    assert series.options == [
        f"{s} ({forecast_predictor.selected[s]})" for s in forecast_predictor.ids
    ]
    assert metric(at, "Model") == forecast_predictor.selected[first]
    expected = forecast_predictor.forecast(first, forecast_predictor.horizon)
    assert_same_forecast(drawn_forecast(at), expected)
    frame = charts(at)[0]
    history = frame[frame["part"] == "history"]
    season = int(forecast_predictor.manifest.extra["season"])
    tail = max(predict.SEASONS_SHOWN * season, 2 * forecast_predictor.horizon)
    own = forecast_predictor.models[first].history_.iloc[-tail:]
    np.testing.assert_allclose(history["y"], own["y"])
    assert list(pd.to_datetime(history["ds"])) == list(own["ds"])
    assert len(at.dataframe[0].value) == forecast_predictor.horizon, "the points table"
    assert "in-process" in at.caption[0].value


def test_choosing_another_series_changes_the_chart(
    model_dir: Path, forecast_predictor: ForecastPredictor
) -> None:
    at = open_page()
    before = charts(at)[0]
    second = forecast_predictor.ids[1]
    at.selectbox(key="forecast.series").set_value(second).run()
    assert_no_exception(at)
    after = charts(at)[0]
    assert not np.allclose(before["y"], after["y"])
    assert metric(at, "Model") == forecast_predictor.selected[second]
    expected = forecast_predictor.forecast(second, forecast_predictor.horizon)
    assert_same_forecast(drawn_forecast(at), expected)


def test_the_horizon_slider_is_respected(
    model_dir: Path, forecast_predictor: ForecastPredictor
) -> None:
    at = open_page()
    slider = at.slider(key="forecast.horizon")
    assert (slider.min, slider.max, slider.value) == (1, forecast_predictor.horizon,
                                                      forecast_predictor.horizon)  # fmt: skip
    slider.set_value(5).run()
    assert_no_exception(at)
    shown = drawn_forecast(at)
    assert len(shown) == 5 and len(at.dataframe[0].value) == 5
    first = forecast_predictor.ids[0]
    assert_same_forecast(shown, forecast_predictor.forecast(first, 5))


def test_conditioning_on_pasted_points_in_process(
    model_dir: Path, forecast_predictor: ForecastPredictor, forecast_files
) -> None:
    first = forecast_predictor.ids[0]
    text, points = recent_csv(forecast_files, first, 10)
    at = paste(open_page(), text)
    assert not at.error, [e.value for e in at.error]
    frame = charts(at)[0]
    assert (frame["part"] == "your points").sum() == 10
    expected = forecast_predictor.forecast(first, forecast_predictor.horizon, points)
    assert_same_forecast(drawn_forecast(at), expected)
    assert expected["ds"].iloc[0] == points["ds"].iloc[-1] + pd.Timedelta(days=1)
    assert metric(at, "Forecast from") == f"{expected['ds'].iloc[0]:%Y-%m-%d}"


def test_conditioning_through_the_api_matches_in_process(
    via_api: str, forecast_predictor: ForecastPredictor, forecast_files
) -> None:
    second = forecast_predictor.ids[1]
    text, points = recent_csv(forecast_files, second, 7)
    at = open_page()
    assert via_api in at.caption[0].value and any(via_api in c.value for c in at.sidebar.caption)
    at.selectbox(key="forecast.series").set_value(second)
    at.slider(key="forecast.horizon").set_value(9)
    at = paste(at, text)
    assert not at.error, [e.value for e in at.error]
    expected = forecast_predictor.forecast(second, 9, points)
    assert_same_forecast(drawn_forecast(at), expected)


def test_a_monitoring_file_can_be_uploaded_its_series_rows_kept(
    model_dir: Path, forecast_predictor: ForecastPredictor, forecast_files
) -> None:
    """An upload wins over pasted text; a `series_id` column keeps the chosen series' rows."""
    first = forecast_predictor.ids[0]
    at = paste(open_page(), "ds,y\nnot a date,1")
    at.file_uploader(key="forecast.upload").upload(
        "healthy.csv", forecast_files.healthy.read_bytes(), "text/csv"
    ).run()
    assert_no_exception(at)
    assert not at.error, [e.value for e in at.error]
    _, points = recent_csv(forecast_files, first, 40)
    assert (charts(at)[0]["part"] == "your points").sum() == len(points)
    expected = forecast_predictor.forecast(first, forecast_predictor.horizon, points)
    assert_same_forecast(drawn_forecast(at), expected)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ds,value\n2022-07-20,1", "needs the columns ds and y under a header line `ds,y`; y "
         "missing (columns found: ds, value)"),
        ("ds,y\n2022-07-20,1\n2022-07-21,abc", "y is not a finite number on line 3 ('abc')"),
        ("ds,y\nyesterday,3\n2022-07-21,4\n07/22/2022,5",
         "ds is not a date on line 2 ('yesterday'), line 4 ('07/22/2022')"),
        ("ds,y\n2022-07-20,nan", "y is not a finite number on line 2 ('nan')"),
        ("ds,y\n", "has a header but no points"),
        ("series_id,ds,y\nstore_99,2022-07-20,1", "no row of series 'store_01'"),
    ],
    ids=["no-y-column", "bad-number", "bad-dates", "nan", "no-points", "other-series"],
)  # fmt: skip
def test_malformed_points_show_the_problem_not_a_traceback(
    model_dir: Path, text: str, problem: str
) -> None:
    at = paste(open_page(), text)
    assert len(at.error) == 1
    assert at.error[0].value.startswith("Cannot use these points: the pasted points")
    assert problem in at.error[0].value
    assert not at.get("vega_lite_chart") and not at.metric


def test_a_file_that_is_not_text_is_refused(model_dir: Path) -> None:
    at = open_page()
    at.file_uploader(key="forecast.upload").upload("x.csv", b"\xff\xfe\x00\x81", "text/csv").run()
    assert_no_exception(at)
    assert at.error[0].value == "Cannot use these points: x.csv is not a text (UTF-8) CSV file"


def test_points_off_the_series_grid_are_refused_by_the_model(model_dir: Path) -> None:
    at = paste(open_page(), "ds,y\n2022-07-20T12:00,900")
    assert len(at.error) == 1
    message = at.error[0].value
    assert message.startswith("Cannot forecast store_01: history:")
    assert "not on the series' D grid" in message
    assert not at.get("vega_lite_chart")


def test_points_off_the_grid_through_the_api_show_its_error_and_detail(via_api: str) -> None:
    at = paste(open_page(), "ds,y\n2022-07-20T12:00,900")
    assert at.error[0].value.startswith("invalid request")
    assert "not on the series' D grid" in at.error[0].value
    assert at.dataframe[0].value["field"].tolist() == ["history"]
    assert not at.get("vega_lite_chart")


def test_an_unreachable_api_shows_an_error(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    at = open_page()
    assert "cannot reach the API at http://127.0.0.1:9/predict" in at.error[0].value
    assert not at.metric


# -- backtest ----------------------------------------------------------------------------------


def test_the_backtest_page_shows_every_model_against_seasonal_naive(
    model_dir: Path, forecast_predictor: ForecastPredictor
) -> None:
    at = open_page("backtest.py")
    assert at.title[0].value == "Backtest"
    table = at.dataframe[0].value
    assert table["model"].tolist() == [*MODELS, "selected"]
    baseline = table.set_index("model").loc[BASELINE]
    assert baseline["vs seasonal naive"] == pytest.approx(1.0)
    won = table.set_index("model")["series won"]
    assert won[MODELS].sum() == won["selected"] == len(forecast_predictor.ids)
    assert {"Every model", "Error by step"} <= {t.label for t in at.tabs}
    assert f"Forecast: {forecast_predictor.ids[0]}" in {t.label for t in at.tabs}
    assert any(c.value.startswith(f"Highlighted: {BASELINE}") for c in at.caption)
    # The promotion gate's figure beside the optimistic in-sample one.
    held_out = forecast_predictor.manifest.metrics["held_out_selection"]["skill"]
    assert metric(at, "Held out") == f"{held_out:.0%}"


def test_the_backtest_page_follows_the_series_and_models_chosen(
    model_dir: Path, forecast_predictor: ForecastPredictor
) -> None:
    at = open_page("backtest.py")
    for series_id in forecast_predictor.ids:
        at.selectbox(key="backtest.series").set_value(series_id).run()
        assert_no_exception(at)
        chosen = forecast_predictor.selected[series_id]
        scores = at.dataframe[1].value
        assert sorted(scores["model"]) == sorted(MODELS)
        assert scores.loc[scores["selected"], "model"].tolist() == [chosen]
        models = at.multiselect(key="backtest.models")
        assert models.options == MODELS
        assert models.value == list(dict.fromkeys([chosen, BASELINE]))
        lines = set(charts(at)[0]["line"])
        assert lines == {"actual", chosen, BASELINE}
    at.multiselect(key="backtest.models").set_value(MODELS).run()
    frame = charts(at)[0]
    assert set(frame["line"]) == {"actual", *MODELS}
    windows = frame[frame["line"] == "ets"].groupby("window").size()
    horizon = forecast_predictor.horizon
    assert len(windows) == 2 and (windows == horizon).all(), "two windows of a horizon each"
    at.multiselect(key="backtest.models").set_value([]).run()
    assert not at.get("vega_lite_chart") and "at least one model" in at.info[0].value


# -- monitoring --------------------------------------------------------------------------------


def test_monitoring_marks_the_alerts_of_the_shifted_run(
    monitored: Path, forecast_predictor: ForecastPredictor
) -> None:
    at = open_page("monitoring.py")
    assert at.title[0].value == "Forecasts against actuals"
    runs = at.selectbox(key="monitoring.run")
    assert runs.value == sorted(p.name for p in (monitored / "runs").iterdir())[-1]
    assert "shifted.csv" in runs.options[-1] and "healthy.csv" in runs.options[0]
    # The series whose error ran highest is shown first: the one the shift broke.
    table = pd.read_csv(monitored / "runs" / runs.value / "series.csv")
    worst = table.loc[table["cusum"].idxmax(), "series_id"]
    assert at.selectbox(key="monitoring.series").value == worst
    frame = charts(at)[0]
    alerts = frame[frame["alert"]]
    assert len(alerts) > 0 and set(alerts["line"]) == {"actual"}
    assert all("error CUSUM" in r or "level-shift ratio" in r for r in alerts["reason"])
    assert "breach an alert rule" in at.warning[0].value
    series = at.dataframe[0].value
    assert series.set_index("series_id").loc[worst, "alert"]


def test_monitoring_of_the_healthy_run_marks_nothing(monitored: Path) -> None:
    at = open_page("monitoring.py")
    first_run = sorted(p.name for p in (monitored / "runs").iterdir())[0]
    at.selectbox(key="monitoring.run").set_value(first_run).run()
    assert_no_exception(at)
    frame = charts(at)[0]
    assert not frame["alert"].any()
    assert "none of its" in at.success[0].value
    assert not at.dataframe[0].value["alert"].any()


def test_monitoring_series_selection_changes_the_chart(
    monitored: Path, forecast_predictor: ForecastPredictor
) -> None:
    at = open_page("monitoring.py")
    series = at.selectbox(key="monitoring.series")
    other = next(s for s in forecast_predictor.ids if s != series.value)
    before = charts(at)[0]
    series.set_value(other).run()
    assert_no_exception(at)
    after = charts(at)[0]
    assert not np.allclose(before["value"], after["value"])
    assert (at.warning or at.success)[0].value.startswith(f"{other}: ")


def test_monitoring_shows_the_shared_section_after_its_own(monitored: Path) -> None:
    at = open_page("monitoring.py")
    assert [t.value for t in at.title] == ["Forecasts against actuals", "Monitoring"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Runs"] == "2"
    assert metrics["Prediction PSI (latest)"] == "n/a"  # a forecaster has no score


def test_monitoring_says_how_to_start_when_nothing_was_monitored(
    settings: Settings, model_dir: Path
) -> None:
    at = open_page("monitoring.py")
    assert at.title[0].value == "Monitoring"
    assert "python -m forecast monitor --actuals PATH" in at.info[0].value
    assert str(settings.monitoring_root / "forecast") in at.caption[0].value


def test_alert_thresholds_come_from_the_rules_file(tmp_path: Path) -> None:
    assert monitoring.alert_thresholds() == monitoring.Thresholds(cusum=5.0, shift_ratio=3.0)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - {name: cusum, metric: error.cusum, above: 8}\n"
        "  - {name: cover, metric: coverage.min, below: 0.4}\n"
    )
    assert monitoring.alert_thresholds(rules) == monitoring.Thresholds(8.0, 3.0)
    rules.write_text("rules: [oops")
    with pytest.raises(UserError, match="not valid YAML"):
        monitoring.alert_thresholds(rules)


def test_mark_alerts_says_which_rule_and_by_how_much() -> None:
    stream = pd.DataFrame({"cusum": [0.0, 6.0, 7.5, 1.0], "shift_ratio": [0.5, 1.0, 2.5, 3.0]})
    marked = monitoring.mark_alerts(stream, monitoring.Thresholds(5.0, 2.0))
    assert marked["alert"].tolist() == [False, True, True, True]
    assert marked["reason"].tolist() == [
        "", "error CUSUM 6.0 > 5", "error CUSUM 7.5 > 5; level-shift ratio 2.50 > 2",
        "level-shift ratio 3.00 > 2",
    ]  # fmt: skip


# -- no model ----------------------------------------------------------------------------------


@pytest.mark.parametrize("page", MODEL_PAGES)
def test_without_a_model_every_page_says_how_to_train_one(
    page: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODEL_DIR", raising=False)
    monkeypatch.delenv("API_URL", raising=False)
    at = open_page(None if page == "predict.py" else page)
    assert_says_how_to_train(at, "forecast", settings)


# -- the functions behind the pages ------------------------------------------------------------


def test_parse_history_reads_iso_dates_sorts_and_drops_other_series() -> None:
    text = (
        "Series_ID, DS ,y\nb,2024-01-03,3\na,2024-01-02T00:00:00Z,2.5\n"
        "a,2024-01-01T01:00:00+01:00,1e2\n"
    )
    points = parse_history(text, "a", "upload.csv")
    assert points["ds"].tolist() == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-02")]
    assert points["y"].tolist() == [100.0, 2.5]
    with pytest.raises(UserError, match=r"upload.csv is empty"):
        parse_history("", "a", "upload.csv")
    many = "ds,y\n" + "2024-01-01,1\n" * 10_001
    with pytest.raises(UserError, match="10,001 points; at most 10,000"):
        parse_history(many, "a", "upload.csv")
    bad = "ds,y\n" + "x,1\n" * 5
    with pytest.raises(
        UserError, match=r"line 2 \('x'\), line 3 \('x'\), line 4 \('x'\) and 2 more"
    ):
        parse_history(bad, "a", "upload.csv")


def test_the_request_is_what_the_api_documents(forecast_predictor: ForecastPredictor) -> None:
    points = pd.DataFrame({"ds": pd.to_datetime(["2022-07-20", "2022-07-21"]), "y": [1.0, 2]})
    assert predict.request_payload("store_01", 3, points) == {
        "series_id": "store_01", "horizon": 3,
        "history": [{"ds": "2022-07-20T00:00:00", "y": 1.0},
                    {"ds": "2022-07-21T00:00:00", "y": 2.0}],
    }  # fmt: skip
    assert predict.request_payload("store_01", 3, None)["history"] == []
    answer = predict.forecast_in_process(
        forecast_predictor, predict.request_payload("store_02", 4, None)
    )
    assert answer.series_id == "store_02" and len(answer.points) == 4


def test_the_windows_frame_draws_each_window_apart(
    forecast_artifact: Path, forecast_predictor: ForecastPredictor
) -> None:
    sid = forecast_predictor.ids[0]
    points = pd.read_parquet(forecast_artifact / "backtest.parquet")
    points = points[points["series_id"] == sid]
    history = forecast_predictor.models[sid].history_
    frame = backtest.windows_frame(points, history, ["ets"], lead_in=14)
    actual = frame[frame["line"] == "actual"]
    assert actual["ds"].iloc[0] == points["ds"].min() - pd.Timedelta(days=14)
    assert actual["ds"].iloc[-1] == points["ds"].max()
    assert frame.loc[frame["line"] == "ets", "window"].nunique() == points["cutoff"].nunique()
