"""The trained churn model as one object: features → scorer → calibration → decision.

A *scorer* is one of three model families behind one small interface: raw log-odds (`margin`)
and per-feature contributions to it (`contributions`, exact SHAP values from XGBoost's
`pred_contribs` and LightGBM's `pred_contrib`; for the logistic baseline, coefficient times
standardised value, its exact SHAP value under feature independence). Each saves in its library's
native format, never as a pickle. `ChurnModel` bundles the scorer with the fitted features, the
probability calibration and the cost-based threshold, and `ChurnPredictor` puts it behind the
shared `Predictor` contract.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, Self

import lightgbm as lgb
import numpy as np
import pandas as pd
import xgboost as xgb
from pydantic import BaseModel

from churn.calibration import Calibrator
from churn.config import Family
from churn.features import ChurnFeatures, engineer
from churn.schema import KEY, LABEL, TELCO_SCHEMA
from common.artifacts import check_compatible, read_manifest
from common.errors import ArtifactError
from common.predictor import Predictor
from common.schema import record_model

MODEL_DIR = "model"


class Scorer(Protocol):
    def margin(self, X: np.ndarray) -> np.ndarray: ...
    def contributions(self, X: np.ndarray) -> np.ndarray: ...
    def save(self, directory: Path) -> None: ...


@dataclass
class XGBoostScorer:
    booster: xgb.Booster

    def margin(self, X: np.ndarray) -> np.ndarray:
        return self.booster.inplace_predict(X, predict_type="margin")

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """n x (features + 1): SHAP values, with the bias (expected margin) last."""
        return self.booster.predict(xgb.DMatrix(X), pred_contribs=True)

    def save(self, directory: Path) -> None:
        self.booster.save_model(directory / "xgboost.ubj")

    @classmethod
    def load(cls, directory: Path) -> XGBoostScorer:
        booster = xgb.Booster()
        booster.load_model(directory / "xgboost.ubj")
        return cls(booster)


@dataclass
class LightGBMScorer:
    booster: lgb.Booster

    def margin(self, X: np.ndarray) -> np.ndarray:
        return self.booster.predict(X, raw_score=True)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        return self.booster.predict(X, pred_contrib=True)

    def save(self, directory: Path) -> None:
        self.booster.save_model(directory / "lightgbm.txt")

    @classmethod
    def load(cls, directory: Path) -> LightGBMScorer:
        return cls(lgb.Booster(model_file=directory / "lightgbm.txt"))


@dataclass
class LogisticScorer:
    """A standardised logistic regression, kept as its numbers rather than a pickled estimator."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def margin(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean) / self.scale) @ self.coef + self.intercept

    def contributions(self, X: np.ndarray) -> np.ndarray:
        # Standardised features have mean 0 on the training split, so coef * z is each
        # feature's SHAP value and the intercept is the expected margin.
        phi = (X - self.mean) / self.scale * self.coef
        return np.hstack([phi, np.full((len(X), 1), self.intercept)])

    def save(self, directory: Path) -> None:
        data = {k: np.asarray(v).tolist() for k, v in vars(self).items()}
        (directory / "logistic.json").write_text(json.dumps(data))

    @classmethod
    def load(cls, directory: Path) -> LogisticScorer:
        data = json.loads((directory / "logistic.json").read_text())
        return cls(
            mean=np.asarray(data["mean"]),
            scale=np.asarray(data["scale"]),
            coef=np.asarray(data["coef"]),
            intercept=float(data["intercept"]),
        )


SCORERS: dict[str, Any] = {
    "logistic": LogisticScorer,
    "xgboost": XGBoostScorer,
    "lightgbm": LightGBMScorer,
}


@dataclass
class ChurnModel:
    """Everything needed to go from raw Telco rows to a calibrated probability and a decision."""

    features: ChurnFeatures
    family: Family
    scorer: Scorer
    calibrator: Calibrator
    threshold: float

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """Calibrated churn probabilities for validated rows."""
        return self.calibrator.transform(self.scorer.margin(self.features.transform(df)))

    def explain(self, df: pd.DataFrame) -> pd.DataFrame:
        """Per-customer contributions to the log-odds, summed per source column (+ "bias")."""
        raw = self.scorer.contributions(self.features.transform(df))
        frame = self.features.aggregate(raw[:, :-1])
        frame["bias"] = raw[:, -1]
        return frame

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.scorer.save(directory)
        spec = {
            "family": self.family,
            "threshold": self.threshold,
            "features": self.features.to_dict(),
            "calibration": self.calibrator.to_dict(),
        }
        (directory / "model.json").write_text(json.dumps(spec, indent=2))

    @classmethod
    def load(cls, directory: Path) -> ChurnModel:
        spec = json.loads((directory / "model.json").read_text())
        family = spec["family"]
        if family not in SCORERS:
            raise ArtifactError(f"{directory}: unknown model family {family!r}")
        return cls(
            features=ChurnFeatures.from_dict(spec["features"]),
            family=family,
            scorer=SCORERS[family].load(directory),
            calibrator=Calibrator.from_dict(spec["calibration"]),
            threshold=float(spec["threshold"]),
        )


# One customer as the API will take it: the schema's fields, the label excluded and the ID
# optional (a what-if customer has none).
CustomerRecord = record_model(TELCO_SCHEMA, "Customer", exclude=(LABEL,), optional=(KEY,))


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


def risk_band(probability: float, threshold: float) -> Literal["low", "medium", "high"]:
    """Below the threshold: low; up to even odds: medium (worth an offer); above: high."""
    if probability < threshold:
        return "low"
    return "medium" if probability < max(0.5, threshold) else "high"


# The input type is BaseModel, not CustomerRecord: that class is generated at run time from
# TELCO_SCHEMA (so it cannot drift from the data contract), which a static type cannot name.
class ChurnPredictor(Predictor[BaseModel, ChurnPrediction]):
    project = "churn"
    input_model = CustomerRecord
    output_model = ChurnPrediction
    n_reasons = 3

    def __init__(self, path: Path, manifest: Any, model: ChurnModel) -> None:
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

    def predict_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """Probability, decision, band and top reasons for validated rows, in order."""
        probability = self.model.predict_proba(df)
        contributions = self.explain(df).drop(columns="bias")
        names = contributions.columns.to_numpy()
        # Reason values as the model saw them: engineered columns (TotalCharges filled for new
        # customers) replace the raw ones of the same name.
        engineered = engineer(df)
        values = pd.concat(
            [df.drop(columns=[LABEL, *engineered.columns], errors="ignore"), engineered], axis=1
        )[names].to_numpy(dtype=object)
        phi = contributions.to_numpy()
        top = np.argsort(-np.abs(phi), axis=1)[:, : self.n_reasons]  # (rows, n_reasons)
        top_phi = np.take_along_axis(phi, top, axis=1)
        top_values = np.take_along_axis(values, top, axis=1)
        reasons = [
            [Reason(feature=names[j], value=_plain(v), contribution=float(c))
             for j, v, c in zip(cols, vals, cs, strict=True)]
            for cols, vals, cs in zip(top, top_values, top_phi, strict=True)
        ]  # fmt: skip
        threshold = self.model.threshold
        return pd.DataFrame(
            {
                "customerID": df.get(KEY),
                "churn_probability": probability,
                "churn": probability >= threshold,
                "risk_band": [risk_band(p, threshold) for p in probability],
                "reasons": reasons,
            }
        )

    def explain(self, df: pd.DataFrame) -> pd.DataFrame:
        return self.model.explain(df)

    def predict_batch(self, records: Sequence[BaseModel]) -> list[ChurnPrediction]:
        df = pd.DataFrame(
            [r.model_dump() for r in records], columns=list(CustomerRecord.model_fields)
        )
        out = self.predict_frame(df)
        return [ChurnPrediction(**row) for row in out.to_dict(orient="records")]


def _plain(value: Any) -> str | float | None:
    """A JSON-friendly scalar: numpy numbers to float, NaN to None, anything else to str."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (int, float, np.number)):
        return float(value)
    return str(value)
