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
from churn.features import ChurnFeatures, Columns, engineer
from common.errors import ArtifactError


class Scorer(Protocol):
    def margin(self, X: np.ndarray) -> np.ndarray: ...
    def contributions(self, X: np.ndarray) -> np.ndarray: ...
    def save(self, directory: Path) -> None: ...


MODEL_DIR = "model"
# Below this many rows a prediction uses one thread: waking an OpenMP team costs more than
# scoring a handful of rows, and on a busy machine (a server next to its load) the team's
# spinning threads fight for cores and one API request takes ~10 ms instead of ~0.3 ms.
PARALLEL_ROWS = 1000


@dataclass
class XGBoostScorer:
    booster: xgb.Booster

    def __post_init__(self) -> None:
        # XGBoost reads its thread count from the booster, not per call, and changing it is not
        # thread-safe, so small batches get their own single-threaded copy.
        self._single = self.booster.copy()
        self._single.set_param({"nthread": 1})

    def _for(self, X: np.ndarray) -> xgb.Booster:
        return self._single if len(X) < PARALLEL_ROWS else self.booster

    def margin(self, X: np.ndarray) -> np.ndarray:
        return self._for(X).inplace_predict(X, predict_type="margin")

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """n x (features + 1): SHAP values, with the bias (expected margin) last."""
        threads = 1 if len(X) < PARALLEL_ROWS else -1
        # The matrix comes from the fitted features, so checking its (absent) feature names
        # against the booster's only costs time (~30 us a call).
        return self._for(X).predict(
            xgb.DMatrix(X, nthread=threads), pred_contribs=True, validate_features=False
        )

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
        return self.booster.predict(X, raw_score=True, num_threads=_threads(X))

    def contributions(self, X: np.ndarray) -> np.ndarray:
        return self.booster.predict(X, pred_contrib=True, num_threads=_threads(X))

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


def _threads(X: np.ndarray) -> int:
    """LightGBM's per-call thread count: 1 for small batches, else its default (0)."""
    return 1 if len(X) < PARALLEL_ROWS else 0


SCORERS: dict[str, Any] = {
    "logistic": LogisticScorer,
    "xgboost": XGBoostScorer,
    "lightgbm": LightGBMScorer,
}


@dataclass
class Scores:
    """What `ChurnModel.score` returns for n rows."""

    probability: np.ndarray  # (n,) calibrated
    contributions: np.ndarray  # (n, sources): log-odds contributions, features.source_names_
    bias: np.ndarray  # (n,) the expected log-odds
    engineered: dict[str, np.ndarray]  # the numeric values the model saw, by name


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

    def score(self, rows: Columns) -> Scores:
        """Probabilities and their explanation from one pass over the features."""
        engineered = engineer(rows)
        X = self.features.transform(rows, engineered)
        raw = self.scorer.contributions(X)  # (n, features + 1), the bias last
        # SHAP values are additive: they sum exactly to the log-odds margin (to float32
        # rounding, ~1e-6), so one model call gives both the score and its explanation.
        return Scores(
            probability=self.calibrator.transform(raw.sum(axis=1, dtype=np.float64)),
            contributions=self.features.aggregate(raw[:, :-1]),
            bias=raw[:, -1],
            engineered=engineered,
        )

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
