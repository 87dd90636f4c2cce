"""Turning a validated Telco frame into the numeric matrix the models see.

Two layers: `engineer` is a pure function adding features that help (average charge per month,
recent price change, number of services); `ChurnFeatures` is the fitted part, following the
scikit-learn contract. It is fitted on the training split only, learns which category levels
exist there and so the column layout, and saves itself as JSON, so the exact preprocessing
travels inside the artifact and serving never re-implements it.

Every output column remembers its *source* (e.g. "Contract=Month-to-month" comes from
"Contract"), which is how per-feature SHAP values are summed into per-customer reason codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from churn.schema import ADDONS, KEY, LABEL, TELCO_SCHEMA

NUMERIC = ("SeniorCitizen", "tenure", "MonthlyCharges", "TotalCharges")
ENGINEERED = ("avg_monthly_charge", "charge_change", "n_services")
CATEGORICAL = tuple(
    c.name for c in TELCO_SCHEMA.columns if c.kind == "category" and c.name not in (LABEL, KEY)
)

#: Rows as columns: a validated DataFrame, or column name -> list/array (e.g. API records).
#: Everything below works on plain numpy arrays, because pandas costs ~20-100 µs per call: fine
#: for a million rows, most of the budget for one API request.
Columns = Mapping[str, Any]


def engineer(columns: Columns) -> dict[str, np.ndarray]:
    """Numeric columns plus engineered ones; a pure function of one customer's own fields."""
    tenure = np.asarray(columns["tenure"], dtype=np.float64)
    monthly = np.asarray(columns["MonthlyCharges"], dtype=np.float64)
    total = np.asarray(columns["TotalCharges"], dtype=np.float64)
    # IBM's file leaves TotalCharges blank for customers in their first month (tenure 0): they
    # have not been billed yet, so the truthful value is 0, not a median.
    total = np.where(np.isnan(total), tenure * monthly, total)
    avg = total / np.maximum(tenure, 1.0)
    # One (7, n) comparison rather than seven: numpy's cost per call dominates for one row.
    yes = np.array([columns[c] for c in ("PhoneService", *ADDONS)], dtype=object) == "Yes"
    services = yes.sum(axis=0, dtype=np.float64) + (
        np.asarray(columns["InternetService"], dtype=object) != "No"
    )
    return {
        "SeniorCitizen": np.asarray(columns["SeniorCitizen"], dtype=np.float64),
        "tenure": tenure,
        "MonthlyCharges": monthly,
        "TotalCharges": total,
        "avg_monthly_charge": avg,
        # Paying more now than on average so far: a recent price rise, a known churn trigger.
        "charge_change": monthly - np.where(tenure > 0, avg, monthly),
        "n_services": services,
    }


def _columns_of(values: Any, lookup: dict[str, int]) -> list[int] | np.ndarray:
    """Each value's one-hot output column, by dict lookup: the same cost for 1 row or 1M,
    where pandas' vectorised lookup has a fixed cost that dominates one API request. A
    validated frame's categorical column is mapped once per category instead (its codes)."""
    dtype = getattr(values, "dtype", None)
    if isinstance(dtype, pd.CategoricalDtype):
        per_code = np.array([lookup.get(c, -1) for c in dtype.categories] + [-1])
        return per_code[values.cat.codes.to_numpy()]  # code -1 (missing) -> the final -1
    return [lookup.get(v, -1) for v in values]


# auto_wrap_output_keys=None: scikit-learn would otherwise wrap `transform` to support
# `set_output(transform="pandas")`, a few microseconds per call that a single API request
# notices; the models take the numpy matrix.
class ChurnFeatures(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """One-hot categories plus numeric and engineered features, as a float32 matrix."""

    def __init__(self, engineered: bool = True) -> None:
        self.engineered = engineered

    def fit(self, X: pd.DataFrame, y: Any = None) -> Self:
        self.numeric_ = list(NUMERIC) + (list(ENGINEERED) if self.engineered else [])
        # Levels in the schema's order, keeping only those seen in training: a level the model
        # never saw carries no information, and an all-zero group is how it is scored.
        self.categories_ = {
            c: [level for level in TELCO_SCHEMA[c].categories or () if (X[c] == level).any()]
            for c in CATEGORICAL
        }
        self._set_layout()
        return self

    def _set_layout(self) -> None:
        names = list(self.numeric_)
        sources = list(self.numeric_)
        for column, levels in self.categories_.items():
            names += [f"{column}={level}" for level in levels]
            sources += [column] * len(levels)
        self.feature_names_out_ = names
        self.sources_ = sources
        self.n_features_out_ = len(names)
        # Derived from the fitted state, not learned: each category level's output column, and
        # a features x sources 0/1 matrix that sums one-hot columns back into their source.
        self._columns = {
            c: {level: names.index(f"{c}={level}") for level in levels}
            for c, levels in self.categories_.items()
        }
        self.source_names_ = list(dict.fromkeys(sources))
        position = {s: j for j, s in enumerate(self.source_names_)}
        self._grouping = np.zeros((len(names), len(self.source_names_)))
        self._grouping[np.arange(len(names)), [position[s] for s in sources]] = 1.0

    def transform(self, X: Columns, engineered: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """The float32 model matrix; pass `engineer(X)` if you already have it."""
        # No imputation step: validation refuses missing numbers, and `engineer` fills the one
        # gap the schema allows (TotalCharges of first-month customers) with its true value.
        numeric = engineer(X) if engineered is None else engineered
        n = len(numeric["tenure"])
        out = np.zeros((n, self.n_features_out_), dtype=np.float32)
        out[:, : len(self.numeric_)] = np.column_stack([numeric[c] for c in self.numeric_])
        # One-hot: each value's output column (-1 for a level not seen in training, left all
        # zero), then a single scatter.
        hot = np.array(
            [_columns_of(X[column], lookup) for column, lookup in self._columns.items()],
            dtype=np.int64,
        ).T.reshape(n, len(self._columns))  # (n, categorical columns)
        rows, which = np.nonzero(hot >= 0)
        out[rows, hot[rows, which]] = 1.0
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_out_, dtype=object)

    def aggregate(self, values: np.ndarray) -> np.ndarray:
        """Sum per-feature values (e.g. SHAP contributions, n x features) by source column:
        n x len(source_names_)."""
        return np.asarray(values, dtype=np.float64) @ self._grouping

    def to_dict(self) -> dict[str, Any]:
        return {
            "engineered": self.engineered,
            "numeric": self.numeric_,
            "categories": self.categories_,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChurnFeatures:
        features = cls(engineered=data["engineered"])
        features.numeric_ = list(data["numeric"])
        features.categories_ = {k: list(v) for k, v in data["categories"].items()}
        features._set_layout()
        return features
