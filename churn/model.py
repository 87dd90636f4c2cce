"""The trained churn model as one object: features → scorer → calibration → decision.

A *scorer* is one of three model families behind one small interface: raw log-odds (`margin`)
and per-feature contributions to it (`contributions`, exact SHAP values from XGBoost's
`pred_contribs` and LightGBM's `pred_contrib`; for the logistic baseline, coefficient times
standardised value, its exact SHAP value under feature independence). Each saves in its library's
native format, never as a pickle. `ChurnModel` bundles the scorer with the fitted features, the
probability calibration and the cost-based threshold; `churn.serve` puts it behind the shared
`Predictor` contract.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import lightgbm as lgb
import numpy as np
import pandas as pd
import xgboost as xgb

from churn.calibration import Calibrator
from churn.config import Family
from churn.features import ChurnFeatures, Columns
from common.errors import ArtifactError

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

    def predict_proba(self, rows: Columns) -> np.ndarray:
        """Calibrated churn probabilities for validated rows (a frame, or columns of records)."""
        return self.calibrator.transform(self.scorer.margin(self.features.transform(rows)))

    def score(self, rows: Columns) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Probabilities, per-source contributions to the log-odds (n x sources, in the order
        of `features.source_names_`) and the bias, from one feature transform."""
        X = self.features.transform(rows)
        raw = self.scorer.contributions(X)
        probability = self.calibrator.transform(self.scorer.margin(X))
        return probability, self.features.aggregate(raw[:, :-1]), raw[:, -1]

    def explain(self, rows: Columns) -> pd.DataFrame:
        """Per-customer contributions to the log-odds, summed per source column (+ "bias")."""
        raw = self.scorer.contributions(self.features.transform(rows))
        frame = pd.DataFrame(
            self.features.aggregate(raw[:, :-1]), columns=self.features.source_names_
        )
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
