"""Drift of new data against a reference profile: PSI plus a statistical test, per feature and for
the model's score.

- PSI (population stability index) on the reference's quantile bins, missing values a bin of
  their own. The usual reading: < 0.1 stable, 0.1-0.25 moderate, > 0.25 major.
- Numeric features: the two-sample Kolmogorov-Smirnov test against the reference sample, and
  the Wasserstein distance divided by the reference's standard deviation (unit-free).
- Categorical features: a chi-square goodness-of-fit test against the reference shares, and
  the Jensen-Shannon distance (base 2, 0 to 1).

A feature counts as drifted when its PSI is at least moderate AND the test rejects "same
distribution" at p < 0.01. Either alone misleads: on a small batch PSI is inflated by sampling
noise (its expected value is about bins / rows), and on a large one any test rejects changes
too small to matter. scipy does the statistics; we take nothing from Evidently, whose API moved
in 0.7, for what is a few dozen lines here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

from common.monitoring.profile import (
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    bin_shares,
)

PSI_MODERATE, PSI_MAJOR = 0.1, 0.25
P_VALUE = 0.01
_EPS = 1e-4  # stands in for an empty bin: PSI's log ratio is undefined at zero
OTHER = "(unseen level)"


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    e = np.clip(np.asarray(expected, dtype=np.float64), _EPS, None)
    a = np.clip(np.asarray(actual, dtype=np.float64), _EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def status_of(value: float) -> str:
    return "major" if value > PSI_MAJOR else "moderate" if value >= PSI_MODERATE else "stable"


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str  # "numeric" or "category"
    rows: int
    psi: float
    test: str  # "ks" or "chi2"
    statistic: float
    p_value: float
    distance_name: str  # "wasserstein_norm" or "jensen_shannon"
    distance: float
    status: str  # stable, moderate, major (by PSI)
    drifted: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def numeric_drift(name: str, ref: NumericProfile, values: Any) -> FeatureDrift:
    x = np.asarray(values, dtype=np.float64)
    present = x[~np.isnan(x)]
    missing = 1.0 - present.size / max(x.size, 1)
    expected = np.append(np.asarray(ref.shares) * (1 - ref.missing), ref.missing)
    actual = np.append(bin_shares(present, np.asarray(ref.edges)) * (1 - missing), missing)
    value = psi(expected, actual)
    if present.size:
        # Asymptotic p-values: the exact ones cost O(n·m) and give up (with a warning) on ties.
        test = stats.ks_2samp(ref.sample, present, method="asymp")
        statistic, p_value = float(test.statistic), float(test.pvalue)
        distance = stats.wasserstein_distance(ref.sample, present) / max(ref.std, 1e-12)
    else:  # nothing but missing values: as different as it gets
        statistic, p_value, distance = 1.0, 0.0, float("inf")
    return FeatureDrift(
        name, "numeric", int(x.size), value, "ks", statistic, p_value,
        "wasserstein_norm", float(distance), status_of(value),
        value >= PSI_MODERATE and p_value < P_VALUE,
    )  # fmt: skip


def categorical_drift(name: str, ref: CategoricalProfile, values: Any) -> FeatureDrift:
    s = pd.Series(values, dtype=object)
    present = s[s.notna()].astype(str)
    missing = 1.0 - len(present) / max(len(s), 1)
    levels = list(ref.shares)
    counts = present.value_counts()
    unseen = counts.drop(levels, errors="ignore").sum()  # levels training never had
    observed = np.array([counts.get(level, 0) for level in levels] + [unseen], dtype=np.float64)
    ref_shares = np.array([ref.shares[level] for level in levels] + [0.0])
    expected = np.append(ref_shares * (1 - ref.missing), ref.missing)
    actual = np.append(observed / max(observed.sum(), 1) * (1 - missing), missing)
    value = psi(expected, actual)
    if observed.sum():
        smoothed = np.clip(ref_shares, _EPS, None)
        smoothed /= smoothed.sum()
        test = stats.chisquare(observed, smoothed * observed.sum())
        statistic, p_value = float(test.statistic), float(test.pvalue)
        distance = float(jensenshannon(ref_shares, observed / observed.sum(), base=2))
    else:
        statistic, p_value, distance = float("inf"), 0.0, 1.0
    return FeatureDrift(
        name, "category", len(s), value, "chi2", statistic, p_value,
        "jensen_shannon", distance, status_of(value),
        value >= PSI_MODERATE and p_value < P_VALUE,
    )  # fmt: skip


@dataclass(frozen=True)
class DriftResult:
    features: list[FeatureDrift]
    prediction: FeatureDrift | None

    @property
    def rows(self) -> int:
        """Rows in the batch (every feature was looked at over all of them)."""
        return self.features[0].rows if self.features else 0

    @property
    def drifted(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    def metrics(self) -> dict[str, float]:
        """The numbers alert rules can refer to, e.g. `drift.share_drifted`."""
        out = {
            "drift.share_drifted": len(self.drifted) / max(len(self.features), 1),
            "drift.n_drifted": float(len(self.drifted)),
            "drift.max_psi": max((f.psi for f in self.features), default=0.0),
        }
        if self.prediction is not None:
            out["drift.prediction_psi"] = self.prediction.psi
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": [f.to_dict() for f in self.features],
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "drifted": self.drifted,
        }


def detect_drift(
    profile: ReferenceProfile, columns: Mapping[str, Any], scores: Any | None = None
) -> DriftResult:
    """Drift of every profiled feature in `columns` (a frame or a mapping), and of the scores."""
    missing = [name for name in profile.features if name not in columns]
    if missing:
        raise ValueError(f"columns missing from the data to monitor: {', '.join(missing)}")
    features = [
        numeric_drift(name, ref, columns[name])
        if isinstance(ref, NumericProfile)
        else categorical_drift(name, ref, columns[name])
        for name, ref in profile.features.items()
    ]
    prediction = None
    if scores is not None and profile.score is not None:
        prediction = numeric_drift(profile.score_name or "score", profile.score, scores)
    return DriftResult(features, prediction)
