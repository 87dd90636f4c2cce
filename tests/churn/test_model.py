"""Model behaviour (directional and invariance tests), persistence and the Predictor contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn.schema import TELCO_SCHEMA
from churn.serve import ChurnPredictor, CustomerRecord, risk_bands
from common.errors import ArtifactError
from common.schema import validate

SAFE = {
    "customerID": "0001-SAFEE", "gender": "Female", "SeniorCitizen": 0, "Partner": "Yes",
    "Dependents": "Yes", "tenure": 60, "PhoneService": "Yes", "MultipleLines": "Yes",
    "InternetService": "DSL", "OnlineSecurity": "Yes", "OnlineBackup": "Yes",
    "DeviceProtection": "Yes", "TechSupport": "Yes", "StreamingTV": "No",
    "StreamingMovies": "No", "Contract": "Two year", "PaperlessBilling": "No",
    "PaymentMethod": "Bank transfer (automatic)", "MonthlyCharges": 65.0, "TotalCharges": 3900.0,
}  # fmt: skip
RISKY = {
    **SAFE, "customerID": "0002-RISKY", "Partner": "No", "Dependents": "No", "tenure": 2,
    "InternetService": "Fiber optic", "OnlineSecurity": "No", "OnlineBackup": "No",
    "DeviceProtection": "No", "TechSupport": "No", "Contract": "Month-to-month",
    "PaperlessBilling": "Yes", "PaymentMethod": "Electronic check", "MonthlyCharges": 85.0,
    "TotalCharges": 170.0,
}  # fmt: skip


@pytest.fixture(scope="module")
def predictor(trained_artifact: Path) -> ChurnPredictor:
    return ChurnPredictor.from_artifact(trained_artifact)


def frame(*records: dict) -> pd.DataFrame:
    return validate(pd.DataFrame(list(records)), TELCO_SCHEMA)


def test_month_to_month_new_fiber_customer_scores_higher(predictor: ChurnPredictor) -> None:
    p = predictor.model.predict_proba(frame(RISKY, SAFE))
    assert p[0] > p[1] + 0.2
    assert p[0] > 0.4 and p[1] < 0.1


def test_gender_barely_moves_the_score(predictor: ChurnPredictor, telco_frame) -> None:
    df = validate(telco_frame.head(500), TELCO_SCHEMA)
    flipped = df.copy()
    flipped["gender"] = (
        df["gender"].map({"Female": "Male", "Male": "Female"}).astype(df["gender"].dtype)
    )
    delta = np.abs(predictor.model.predict_proba(df) - predictor.model.predict_proba(flipped))
    assert delta.mean() < 0.02 and delta.max() < 0.05


def test_longer_tenure_lowers_risk(predictor: ChurnPredictor) -> None:
    tenures = [1, 12, 36, 72]
    rows = [
        {**RISKY, "customerID": f"{t:04d}-TENUR", "tenure": t, "TotalCharges": t * 85.0}
        for t in tenures
    ]
    p = predictor.model.predict_proba(frame(*rows))
    assert len(p) == len(tenures)
    assert p[0] > p[-1] + 0.2


def test_probabilities_are_probabilities(predictor: ChurnPredictor, telco_frame) -> None:
    p = predictor.model.predict_proba(validate(telco_frame, TELCO_SCHEMA))
    assert ((p >= 0) & (p <= 1)).all()
    # Calibrated: the mean prediction is close to the observed churn rate.
    assert abs(p.mean() - (telco_frame["Churn"] == "Yes").mean()) < 0.03


def test_contributions_add_up_to_the_margin(predictor: ChurnPredictor, telco_frame) -> None:
    df = validate(telco_frame.head(50), TELCO_SCHEMA)
    model = predictor.model
    margin = model.scorer.margin(model.features.transform(df))
    np.testing.assert_allclose(model.explain(df).sum(axis=1), margin, rtol=1e-4, atol=1e-4)


def test_predict_batch_keeps_order_and_gives_reasons(predictor: ChurnPredictor) -> None:
    records = [CustomerRecord(**RISKY), CustomerRecord(**SAFE)]
    out = predictor.predict_batch(records)
    assert [o.customerID for o in out] == ["0002-RISKY", "0001-SAFEE"]
    risky = out[0]
    assert risky.churn and risky.risk_band in ("medium", "high")
    assert not out[1].churn and out[1].risk_band == "low"
    assert len(risky.reasons) == 3
    assert {r.feature for r in risky.reasons} <= set(predictor.model.features.sources_)
    contributions = [abs(r.contribution) for r in risky.reasons]
    assert contributions == sorted(contributions, reverse=True)
    # One row alone gives the same answer as inside a batch (to float rounding: BLAS sums a
    # 1-row and a 2-row product in a different order).
    single = predictor.predict(records[0])
    assert single.churn_probability == pytest.approx(risky.churn_probability, abs=1e-12)
    assert [(r.feature, r.value) for r in single.reasons] == [
        (r.feature, r.value) for r in risky.reasons
    ]


def test_record_model_refuses_bad_records() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="Contract"):
        CustomerRecord(**{**SAFE, "Contract": "Weekly"})
    with pytest.raises(ValidationError, match="tenure"):
        CustomerRecord(**{**SAFE, "tenure": -1})
    with pytest.raises(ValidationError, match="Churn"):
        CustomerRecord(**{**SAFE, "Churn": "Yes"})


def test_risk_bands() -> None:
    assert risk_bands(np.array([0.1, 0.3, 0.7]), 0.2).tolist() == ["low", "medium", "high"]
    assert risk_bands(np.array([0.55, 0.65]), 0.6).tolist() == ["low", "high"]


def test_save_load_round_trip_is_exact(trained_artifact: Path, telco_frame, tmp_path) -> None:
    df = validate(telco_frame, TELCO_SCHEMA)
    first = ChurnPredictor.from_artifact(trained_artifact)
    first.model.save(tmp_path / "copy")
    again = type(first.model).load(tmp_path / "copy")
    np.testing.assert_array_equal(first.model.predict_proba(df), again.predict_proba(df))
    assert again.threshold == first.model.threshold and again.family == first.model.family


def test_metadata_describes_the_model(predictor: ChurnPredictor) -> None:
    meta = predictor.metadata()
    assert meta["project"] == "churn"
    assert 0.75 < meta["metrics"]["test"]["roc_auc"] < 0.92
    assert "tenure" in meta["input_schema"]["properties"]
    assert "churn_probability" in meta["output_schema"]["properties"]


def test_corrupted_artifact_is_refused(trained_artifact: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(trained_artifact, tmp_path / "copy"))
    model_file = next(p for p in (copy / "model").iterdir() if p.name != "model.json")
    model_file.write_bytes(model_file.read_bytes()[:-10] + b"corrupted!")
    with pytest.raises(ArtifactError, match=f"{model_file.name} does not match its checksum"):
        ChurnPredictor.from_artifact(copy)


def test_score_agrees_with_predict_proba(predictor: ChurnPredictor, telco_frame) -> None:
    """Serving takes the margin from the SHAP sum (one model call); it must be the margin."""
    df = validate(telco_frame.head(500), TELCO_SCHEMA)
    scores = predictor.model.score(df)
    np.testing.assert_allclose(scores.probability, predictor.model.predict_proba(df), atol=1e-6)
    assert scores.contributions.shape == (500, len(predictor.model.features.source_names_))
