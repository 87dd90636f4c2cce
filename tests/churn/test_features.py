"""Unit tests of the churn features: engineered columns, fitted state, persistence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn.features import ChurnFeatures, engineer
from churn.schema import KEY, TELCO_SCHEMA
from common.schema import validate


@pytest.fixture(scope="module")
def customers(telco_frame: pd.DataFrame) -> pd.DataFrame:
    return validate(telco_frame, TELCO_SCHEMA)


def test_engineer_fills_first_month_total_with_zero_and_counts_services() -> None:
    df = pd.DataFrame(
        {
            "SeniorCitizen": [0, 1],
            "tenure": [0, 10],
            "MonthlyCharges": [70.0, 100.0],
            "TotalCharges": [np.nan, 800.0],
            "PhoneService": ["Yes", "No"],
            "InternetService": ["Fiber optic", "No"],
            "OnlineSecurity": ["Yes", "No internet service"],
            "OnlineBackup": ["No", "No internet service"],
            "DeviceProtection": ["Yes", "No internet service"],
            "TechSupport": ["No", "No internet service"],
            "StreamingTV": ["Yes", "No internet service"],
            "StreamingMovies": ["No", "No internet service"],
        }
    )
    out = engineer(df)
    assert out["TotalCharges"].tolist() == [0.0, 800.0]
    assert out["avg_monthly_charge"].tolist() == [0.0, 80.0]
    # A new customer has no history, so no price change; the other pays 20 more than average.
    assert out["charge_change"].tolist() == [0.0, 20.0]
    assert out["n_services"].tolist() == [5.0, 0.0]


def test_fit_learns_only_from_the_rows_it_is_given(customers: pd.DataFrame) -> None:
    dsl_only = customers[customers["InternetService"] == "DSL"]
    features = ChurnFeatures().fit(dsl_only)
    assert features.categories_["InternetService"] == ["DSL"]
    # Rows with a level unseen in training get an all-zero group rather than an error.
    X = features.transform(customers[customers["InternetService"] == "Fiber optic"].head(5))
    column = features.feature_names_out_.index("InternetService=DSL")
    assert (X[:, column] == 0).all()


def test_transform_layout_drops_the_id_and_the_label(customers: pd.DataFrame) -> None:
    features = ChurnFeatures().fit(customers)
    X = features.transform(customers)
    assert X.dtype == np.float32
    assert X.shape == (len(customers), features.n_features_out_)
    assert not np.isnan(X).any()
    names = features.feature_names_out_
    assert not any(n.startswith((KEY, "Churn")) for n in names)
    assert "Contract=Month-to-month" in names and "n_services" in names
    assert len(features.sources_) == len(names)


def test_without_engineered_features(customers: pd.DataFrame) -> None:
    features = ChurnFeatures(engineered=False).fit(customers)
    assert "n_services" not in features.feature_names_out_


def test_json_round_trip_gives_identical_matrix(customers: pd.DataFrame) -> None:
    import json

    features = ChurnFeatures().fit(customers)
    restored = ChurnFeatures.from_dict(json.loads(json.dumps(features.to_dict())))
    np.testing.assert_array_equal(features.transform(customers), restored.transform(customers))


def test_aggregate_sums_one_hot_columns_into_their_source(customers: pd.DataFrame) -> None:
    features = ChurnFeatures().fit(customers)
    values = np.ones((3, features.n_features_out_))
    grouped = features.aggregate(values)
    assert grouped.shape == (3, len(features.source_names_))
    column = features.source_names_.index
    assert grouped[:, column("Contract")].tolist() == [3.0, 3.0, 3.0]  # three contract levels
    assert grouped[:, column("tenure")].tolist() == [1.0, 1.0, 1.0]
    assert grouped.sum() == pytest.approx(values.sum())


def test_records_as_columns_transform_like_the_validated_frame(customers: pd.DataFrame) -> None:
    """The API passes plain lists per column; they must give exactly the frame's matrix."""
    features = ChurnFeatures().fit(customers)
    head = customers.head(20)
    columns = {c: [None if pd.isna(v) else v for v in head[c].astype(object)] for c in head.columns}
    np.testing.assert_array_equal(features.transform(columns), features.transform(head))
