"""The churn dashboard, page by page, through Streamlit's AppTest (no browser).

Each test runs the real entry point (`churn/dashboard/app.py`) and reaches a page the way
Streamlit does, with `AppTest.switch_page`, against the session's trained model (`MODEL_DIR`).
Predictions are made in-process, or, with `API_URL` set, by the real churn API served from a
thread on a free local port. The pure functions behind the batch and threshold pages are also
checked directly.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Element

from churn.calibration import cheapest
from churn.config import ChurnConfig
from churn.dashboard import batch, threshold
from churn.schema import LABEL
from churn.serve import EXAMPLES, ChurnPredictor, CustomerRecord
from common.artifacts import read_manifest
from common.errors import DataValidationError
from common.settings import Settings
from tests.conftest import assert_says_how_to_train

APP = Path(__file__).parents[2] / "churn" / "dashboard" / "app.py"
# Loading the model on a cold cache, then scoring, takes a few seconds on a slow machine.
TIMEOUT_S = 60
PAGES = ["report.py", "what_if.py", "batch.py", "threshold.py"]


@pytest.fixture(scope="module")
def dashboard_model(trained_artifact: Path) -> tuple[type, Path]:
    """What `model_dir`, `dashboard_api` and `via_api` (tests/conftest.py) show and serve."""
    return ChurnPredictor, trained_artifact


@pytest.fixture(scope="module")
def predictor(trained_artifact: Path) -> ChurnPredictor:
    return ChurnPredictor.from_artifact(trained_artifact)


@pytest.fixture
def customers_csv(telco_frame: pd.DataFrame) -> bytes:
    """40 customers as a training file has them: every column, the label included."""
    return telco_frame.head(40).to_csv(index=False).encode()


def open_page(page: str | None = None) -> AppTest:
    """The app after its first run, on `page` (a file beside app.py) or the default page."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chart_data(chart: Element) -> pd.DataFrame:
    """The data behind an Altair chart, as Streamlit sent it (Arrow IPC bytes)."""
    return pa.ipc.open_stream(chart.proto.datasets[0].data.data).read_pandas()


def metric(at: AppTest, label: str) -> str:
    """The displayed value of the metric whose label starts with `label`."""
    values = [m.value for m in at.metric if m.label.startswith(label)]
    assert values, f"no metric {label!r} in {[m.label for m in at.metric]}"
    return values[0]


# -- model report ------------------------------------------------------------------------------


def test_report_shows_test_metrics_curves_importance_and_model_card(model_dir: Path) -> None:
    at = open_page()
    manifest = read_manifest(model_dir)
    assert at.title[0].value == "Model report"
    assert metric(at, "ROC-AUC") == f"{manifest.metric('test.roc_auc'):.3f}"
    assert metric(at, "PR-AUC") == f"{manifest.metric('test.pr_auc'):.3f}"
    assert len(at.get("image")) == 5  # ROC, PR, calibration, lift, cost
    assert at.get("vega_lite_chart"), "no importance chart"
    card = "\n".join(m.value for m in at.markdown)
    assert f"# Churn model {manifest.version}" in card and "Intended use" in card


# -- what-if -----------------------------------------------------------------------------------


def default_prediction(predictor: ChurnPredictor):
    """What the model says of the form's default customer (the what-if form has no ID)."""
    record = {k: v for k, v in EXAMPLES[0].items() if k != "customerID"}
    return predictor.predict(CustomerRecord.model_validate(record))


def submit(at: AppTest) -> AppTest:
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_what_if_predicts_the_default_customer_in_process(
    model_dir: Path, predictor: ChurnPredictor
) -> None:
    at = submit(open_page("what_if.py"))
    expected = default_prediction(predictor)
    assert metric(at, "Churn probability") == f"{expected.churn_probability:.1%}"
    assert metric(at, "Decision") == ("Contact" if expected.churn else "No action")
    assert metric(at, "Risk band") == expected.risk_band
    reasons = chart_data(at.get("vega_lite_chart")[0])
    assert reasons["reason"].str.split(" = ").str[0].tolist() == [
        r.feature for r in expected.reasons
    ]
    assert reasons["contribution"].tolist() == pytest.approx(
        [r.contribution for r in expected.reasons]
    )


def test_what_if_follows_the_form(model_dir: Path) -> None:
    """A two-year contract lowers the risk of the default (month-to-month) customer."""
    at = submit(open_page("what_if.py"))
    monthly = float(metric(at, "Churn probability").rstrip("%"))
    at.selectbox(key="what_if.Contract").set_value("Two year")
    at.number_input(key="what_if.tenure").set_value(60)
    submit(at)
    assert float(metric(at, "Churn probability").rstrip("%")) < monthly


def test_what_if_with_an_unreachable_api_shows_an_error(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    at = submit(open_page("what_if.py"))
    assert not at.metric
    assert "cannot reach the API at http://127.0.0.1:9/predict" in at.error[0].value


def test_what_if_through_the_api_matches_in_process(
    via_api: str, predictor: ChurnPredictor
) -> None:
    at = submit(open_page("what_if.py"))
    expected = default_prediction(predictor)
    assert metric(at, "Churn probability") == f"{expected.churn_probability:.1%}"
    assert len(chart_data(at.get("vega_lite_chart")[0])) == len(expected.reasons)


# -- batch scoring -----------------------------------------------------------------------------


def upload(at: AppTest, data: bytes, name: str = "customers.csv") -> AppTest:
    at.file_uploader[0].upload(name, data, "text/csv").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_batch_scores_a_file_and_summarises_it(
    model_dir: Path, customers_csv: bytes, predictor: ChurnPredictor
) -> None:
    at = upload(open_page("batch.py"), customers_csv)
    assert not at.error
    table = at.dataframe[0].value
    expected = batch.score_in_process(predictor, customers_csv, "customers.csv")
    assert len(table) == 40
    assert table["churn_probability"].tolist() == pytest.approx(
        expected["churn_probability"].tolist()
    )
    assert metric(at, "Customers scored") == "40"
    assert metric(at, "To contact") == str(int(expected["churn"].sum()))
    assert at.get("download_button")[-1].proto.label == "Download the scores (CSV)"


def test_batch_lists_every_problem_of_an_invalid_file(
    model_dir: Path, telco_frame: pd.DataFrame
) -> None:
    bad = telco_frame.head(5).copy()
    bad.loc[1, "Contract"] = "Weekly"  # data row 2
    bad.loc[2, "tenure"] = -3  # data row 3
    at = upload(open_page("batch.py"), bad.to_csv(index=False).encode(), "bad.csv")
    assert "bad.csv: 2 problems found" in at.error[0].value
    problems = at.dataframe[0].value.set_index("column")
    assert problems.loc["Contract", "rows"] == "2"
    assert "Weekly" in problems.loc["Contract", "examples"]
    assert problems.loc["tenure", "rows"] == "3"
    assert "minimum" in problems.loc["tenure", "message"]
    assert not at.metric, "nothing is scored when the file is invalid"


def test_batch_through_the_api_matches_in_process(
    via_api: str, customers_csv: bytes, predictor: ChurnPredictor
) -> None:
    at = upload(open_page("batch.py"), customers_csv)  # with the label, which the API refuses
    assert not at.error
    table = at.dataframe[0].value
    expected = batch.score_in_process(predictor, customers_csv, "customers.csv")
    assert table["customerID"].tolist() == expected["customerID"].tolist()
    assert table["churn_probability"].tolist() == pytest.approx(
        expected["churn_probability"].tolist()
    )
    assert metric(at, "To contact") == str(int(expected["churn"].sum()))


def test_batch_through_the_api_shows_its_error_and_detail(
    via_api: str, telco_frame: pd.DataFrame
) -> None:
    bad = telco_frame.head(5).copy()
    bad.loc[1, "Contract"] = "Weekly"
    at = upload(open_page("batch.py"), bad.to_csv(index=False).encode(), "bad.csv")
    assert at.error[0].value.startswith("invalid request")
    assert "Contract" in at.error[0].value
    problems = at.dataframe[0].value.set_index("column")
    assert problems.loc["Contract", "rows"] == "2"


def test_batch_ignores_the_label_and_checks_the_rest(
    predictor: ChurnPredictor, telco_frame: pd.DataFrame
) -> None:
    with_label = telco_frame.head(10).to_csv(index=False).encode()
    without = telco_frame.head(10).drop(columns=[LABEL]).to_csv(index=False).encode()
    scored = batch.score_in_process(predictor, with_label, "a.csv")
    pd.testing.assert_frame_equal(scored, batch.score_in_process(predictor, without, "b.csv"))
    # The API refuses columns outside its schema, so the label is dropped before sending.
    assert LABEL not in batch.request_body(with_label, "a.csv").decode().splitlines()[0]
    assert batch.request_body(without, "b.csv") == without
    counts = batch.band_counts(scored)
    assert counts["risk band"].tolist() == ["low", "medium", "high"]
    assert counts["customers"].sum() == 10
    with pytest.raises(DataValidationError, match=r"empty\.csv: 1 problem"):
        batch.score_in_process(predictor, b"gender,tenure\n", "empty.csv")


# -- threshold explorer ------------------------------------------------------------------------


def test_threshold_explorer_reprices_the_decision(model_dir: Path) -> None:
    at = open_page("threshold.py")
    config = ChurnConfig(**read_manifest(model_dir).config)
    assert at.slider(key="threshold.cost_missed").value == config.cost_missed_churner
    assert at.slider(key="threshold.cost_offer").value == config.cost_retention_offer
    assert len(at.get("vega_lite_chart")) == 2
    before = (metric(at, "Cost-optimal threshold"), metric(at, "Expected cost at the optimum"))

    # Offers nearly as dear as a lost customer: contacting only pays for the surest churners.
    at.slider(key="threshold.cost_offer").set_value(400.0).run()
    after = (metric(at, "Cost-optimal threshold"), metric(at, "Expected cost at the optimum"))
    assert float(after[0]) > float(before[0])
    assert after[1] != before[1]

    curve = threshold.reprice(
        pd.read_csv(model_dir / "explanations" / "cost_curve.csv"),
        config.cost_missed_churner,
        400.0,
    )
    assert after[0] == f"{cheapest(curve)['threshold']:.2f}"

    # Offers dearer than a lost customer: contacting anyone loses money.
    at.slider(key="threshold.cost_missed").set_value(1.0).run()
    assert not at.exception
    assert any("contacts no one" in c.value for c in at.caption)


def test_repricing_at_the_training_prices_gives_the_saved_curve(model_dir: Path) -> None:
    saved = pd.read_csv(model_dir / "explanations" / "cost_curve.csv")
    config = ChurnConfig(**read_manifest(model_dir).config)
    again = threshold.reprice(saved, config.cost_missed_churner, config.cost_retention_offer)
    assert again["cost"].tolist() == pytest.approx(saved["cost"].tolist())
    assert threshold.nearest(saved, 0.123)["threshold"] == pytest.approx(0.12)


# -- no model ----------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_without_a_model_every_page_says_how_to_train_one(
    page: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODEL_DIR", raising=False)
    monkeypatch.delenv("API_URL", raising=False)
    at = open_page(None if page == "report.py" else page)
    assert_says_how_to_train(at, "churn", settings)


def test_a_model_dir_that_is_not_an_artifact_is_an_error_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    at = open_page()
    assert re.search(r"no manifest\.json; not an artifact directory", at.error[0].value)
