"""From raw scores to trustworthy probabilities, and from probabilities to a decision.

Gradient boosting trained with class weights ranks customers well but its probabilities are not
frequencies, so a calibrator is fitted on a split the model never saw. The decision threshold
then follows from money, not from 0.5: every customer we contact costs a retention offer, every
churner we miss costs their lost revenue. With calibrated probabilities the optimum sits near
offer / missed; `choose_threshold` finds it on data rather than trusting the formula.
"""

from __future__ import annotations

from typing import Any, Literal, Self

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

Method = Literal["sigmoid", "isotonic"]


class Calibrator:
    """Maps log-odds margins to calibrated probabilities (Platt scaling or isotonic).

    Follows the scikit-learn contract: the constructor stores the method, `fit` learns `params_`.
    """

    def __init__(self, method: Method = "sigmoid") -> None:
        self.method = method

    def fit(self, margin: np.ndarray, y: np.ndarray) -> Self:
        margin = np.asarray(margin, dtype=np.float64)
        if self.method == "sigmoid":
            # Platt scaling keeps the ranking (AUC unchanged) and needs only two numbers, so it
            # stays stable on the few hundred churners of a small calibration split.
            lr = LogisticRegression(C=1e6).fit(margin.reshape(-1, 1), y)
            self.params_ = {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}
        else:
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(margin, y)
            self.params_ = {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}
        return self

    def transform(self, margin: np.ndarray) -> np.ndarray:
        margin = np.asarray(margin, dtype=np.float64)
        if self.method == "sigmoid":
            return 1.0 / (1.0 + np.exp(-(self.params_["a"] * margin + self.params_["b"])))
        return np.interp(margin, self.params_["x"], self.params_["y"])

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "params": self.params_}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        calibrator = cls(method=data["method"])
        calibrator.params_ = dict(data["params"])
        return calibrator


def cost_curve(
    y: np.ndarray,
    probability: np.ndarray,
    *,
    cost_missed: float,
    cost_offer: float,
    thresholds: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per threshold: customers contacted, churners caught (tp) and missed, precision, recall
    and total cost on these rows (the counts let a reader re-price the curve with other costs).

    Cost model: every contacted customer (probability >= threshold) gets an offer costing
    `cost_offer`; every churner not contacted costs `cost_missed`. It assumes an offer keeps a
    churner, which is optimistic; raise `cost_offer` to account for offers that fail.
    """
    y = np.asarray(y).astype(bool)
    p = np.asarray(probability)
    if thresholds is None:
        thresholds = np.round(np.arange(0.01, 1.0, 0.01), 2)
    contacted = p[None, :] >= thresholds[:, None]
    tp = (contacted & y[None, :]).sum(axis=1)
    n_contacted = contacted.sum(axis=1)
    missed = y.sum() - tp
    return pd.DataFrame(
        {
            "threshold": thresholds,
            "contacted": n_contacted,
            "tp": tp,
            "missed": missed,
            "precision": np.where(n_contacted > 0, tp / np.maximum(n_contacted, 1), np.nan),
            "recall": tp / max(int(y.sum()), 1),
            "cost": total_cost(missed, n_contacted, cost_missed=cost_missed, cost_offer=cost_offer),
        }
    )


def total_cost(missed: Any, contacted: Any, *, cost_missed: float, cost_offer: float) -> Any:
    """The cost model in one line: each churner missed, plus each customer contacted."""
    return missed * cost_missed + contacted * cost_offer


def cheapest(curve: pd.DataFrame) -> pd.Series:
    """The cost curve's row with the lowest cost (the lowest such threshold on ties)."""
    return curve.loc[curve["cost"].idxmin()]


def choose_threshold(
    y: np.ndarray, probability: np.ndarray, *, cost_missed: float, cost_offer: float
) -> float:
    """The threshold with the lowest total cost (the lowest such threshold on ties)."""
    curve = cost_curve(y, probability, cost_missed=cost_missed, cost_offer=cost_offer)
    return float(cheapest(curve)["threshold"])
