"""The churn model behind the shared serving contract: what the API, the dashboard and
monitoring call.

Per customer, `ChurnPredictor` returns the calibrated churn probability, the decision at the
threshold saved with the model, a risk band, and the top three reason codes: the customer
fields that push the log-odds furthest (exact SHAP values summed per field), with the value the
model saw. One column-wise core does the work, so a single API record (~0.3 ms) and a
10,000-row CSV give identical answers through identical code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, Self

import lightgbm as lgb
import numpy as np
import pandas as pd
import xgboost as xgb
from pydantic import BaseModel

from churn.features import Columns
from churn.model import MODEL_DIR, ChurnModel
from churn.schema import KEY, LABEL, TELCO_SCHEMA
from common.artifacts import Manifest, check_compatible, read_manifest
from common.errors import ArtifactError
from common.predictor import TabularPredictor
from common.schema import TableSchema, record_model

# One customer as the API takes it: the schema's fields, the label excluded and the ID optional
# (a what-if customer has none). Generated from TELCO_SCHEMA so it cannot drift from the data
# contract the model was trained under.
CustomerRecord = record_model(TELCO_SCHEMA, "Customer", exclude=(LABEL,), optional=(KEY,))

# The same contract for whole tables (CSV, tensors): no label, the ID optional, and no duplicate
# check, since a batch must give exactly one answer per line sent.
REQUEST_SCHEMA = TableSchema(
    name="churn_request",
    columns=tuple(
        replace(c, required=False, nullable=True) if c.name == KEY else c
        for c in TELCO_SCHEMA.columns
        if c.name != LABEL
    ),
)

N_REASONS = 3
OUTPUT_COLUMNS = {
    KEY: "string",
    "churn_probability": "float",
    "churn": "bool",
    "risk_band": "string",
    **{
        f"reason_{i}_{part}": kind
        for i in range(1, N_REASONS + 1)
        for part, kind in (("feature", "string"), ("value", "string"), ("contribution", "float"))
    },
}
# Two customers for the API docs and smoke tests: a new month-to-month fiber customer paying
# by electronic check (high risk) and a long-standing two-year DSL one (low risk).
EXAMPLES = [
    {
        "customerID": "7590-VHVEG", "gender": "Female", "SeniorCitizen": 0, "Partner": "No",
        "Dependents": "No", "tenure": 2, "PhoneService": "Yes", "MultipleLines": "No",
        "InternetService": "Fiber optic", "OnlineSecurity": "No", "OnlineBackup": "No",
        "DeviceProtection": "No", "TechSupport": "No", "StreamingTV": "Yes",
        "StreamingMovies": "No", "Contract": "Month-to-month", "PaperlessBilling": "Yes",
        "PaymentMethod": "Electronic check", "MonthlyCharges": 85.5, "TotalCharges": 171.0,
    },
    {
        "customerID": "5575-GNVDE", "gender": "Male", "SeniorCitizen": 0, "Partner": "Yes",
        "Dependents": "Yes", "tenure": 60, "PhoneService": "Yes", "MultipleLines": "Yes",
        "InternetService": "DSL", "OnlineSecurity": "Yes", "OnlineBackup": "Yes",
        "DeviceProtection": "Yes", "TechSupport": "Yes", "StreamingTV": "No",
        "StreamingMovies": "No", "Contract": "Two year", "PaperlessBilling": "No",
        "PaymentMethod": "Bank transfer (automatic)", "MonthlyCharges": 65.0,
        "TotalCharges": 3900.0,
    },
]  # fmt: skip


class Reason(BaseModel):
    """One reason code: a customer field, its value, and how far it moves the log-odds."""

    feature: str
    value: str | float | None
    contribution: float


class ChurnPrediction(BaseModel):
    customerID: str | None = None
    churn_probability: float
    churn: bool
    risk_band: Literal["low", "medium", "high"]
    reasons: list[Reason]


def risk_bands(probability: np.ndarray, threshold: float) -> np.ndarray:
    """Below the threshold: low; up to even odds: medium (worth an offer); above: high."""
    band = (probability >= threshold).astype(np.int8) + (probability >= max(0.5, threshold))
    return _BANDS[band]


_BANDS = np.array(["low", "medium", "high"], dtype=object)


# The input type is BaseModel, not CustomerRecord: that class is generated at run time from
# TELCO_SCHEMA (so it cannot drift from the data contract), which a static type cannot name.
class ChurnPredictor(TabularPredictor[BaseModel, ChurnPrediction]):
    project = "churn"
    input_model = CustomerRecord
    output_model = ChurnPrediction
    input_schema = REQUEST_SCHEMA
    output_columns = OUTPUT_COLUMNS
    score_field = "churn_probability"
    examples = EXAMPLES

    def __init__(self, path: Path, manifest: Manifest, model: ChurnModel) -> None:
        super().__init__(path, manifest)
        self.model = model

    @classmethod
    def from_artifact(cls, path: Path) -> Self:
        manifest = read_manifest(path, project=cls.project)
        check_compatible(manifest, ["xgboost", "lightgbm", "sklearn"])
        try:
            model = ChurnModel.load(path / MODEL_DIR)
        except (
            OSError,
            ValueError,
            KeyError,
            xgb.core.XGBoostError,
            lgb.basic.LightGBMError,
        ) as exc:
            raise ArtifactError(f"{path}: model files cannot be read: {exc}") from exc
        return cls(path, manifest, model)

    @property
    def threshold(self) -> float:
        return self.model.threshold

    def predict_columns(self, rows: Columns, n: int, *, as_text: bool = False) -> dict[str, Any]:
        """The core: `n` validated rows as columns -> flat output columns (see `predict_table`).

        Reason values are plain Python numbers and strings, or all text with `as_text` (for a
        table, whose column must hold one type).
        """
        scores = self.model.score(rows)
        probability, phi = scores.probability, scores.contributions  # phi: (n, sources)
        names = self.model.features.source_names_
        top = np.argsort(-np.abs(phi), axis=1, kind="stable")[:, :N_REASONS]  # (n, reasons)
        top_phi = phi[np.arange(n)[:, None], top]
        # Reason values as the model saw them: engineered columns (TotalCharges filled for new
        # customers) replace the raw ones of the same name. Only the sources that are someone's
        # reason are gathered: three for one customer, rather than all twenty-two. Validation
        # leaves no missing value in a source, and engineering fills TotalCharges.
        values = np.empty(phi.shape, dtype=object)
        for j in set(top.ravel().tolist()):
            column = scores.engineered.get(names[j])
            column = np.asarray(rows[names[j]]) if column is None else column
            values[:, j] = column  # as Python floats and strings
        top_values = values[np.arange(n)[:, None], top]  # (n, reasons)
        if as_text:
            top_values = top_values.astype(str)
        ids = rows[KEY] if KEY in rows else [None] * n
        out: dict[str, Any] = {
            KEY: np.asarray(ids, dtype=object),
            "churn_probability": probability,
            "churn": probability >= self.threshold,
            "risk_band": risk_bands(probability, self.threshold),
        }
        for k in range(top.shape[1]):
            out[f"reason_{k + 1}_feature"] = [names[j] for j in top[:, k].tolist()]
            out[f"reason_{k + 1}_value"] = top_values[:, k].tolist()
            out[f"reason_{k + 1}_contribution"] = top_phi[:, k]
        return out

    def predict_table(self, table: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(self.predict_columns(table, len(table), as_text=True))

    def predict_batch(self, records: Sequence[BaseModel]) -> list[ChurnPrediction]:
        columns = {f: [getattr(r, f) for r in records] for f in CustomerRecord.model_fields}
        out = self.predict_columns(columns, len(records))
        # Plain Python lists: indexing numpy arrays element by element is ~10x slower.
        col = {k: v.tolist() if isinstance(v, np.ndarray) else list(v) for k, v in out.items()}
        reasons = zip(
            *(
                zip(col[f"reason_{k}_feature"], col[f"reason_{k}_value"],
                    col[f"reason_{k}_contribution"], strict=True)
                for k in range(1, N_REASONS + 1)
            ),
            strict=True,
        )  # fmt: skip
        # model_construct skips re-validating what this code just computed (~4 µs per object).
        return [
            ChurnPrediction.model_construct(
                customerID=key,
                churn_probability=p,
                churn=decision,
                risk_band=band,
                reasons=[Reason.model_construct(feature=f, value=v, contribution=c)
                         for f, v, c in why],
            )
            for key, p, decision, band, why in zip(
                col[KEY], col["churn_probability"], col["churn"], col["risk_band"], reasons,
                strict=True,
            )
        ]  # fmt: skip
