"""The reference profile: a compact, JSON-serialisable picture of the training data and of the
model's scores, stored inside each artifact so that monitoring compares new data with exactly
what this model was trained on.

Per numeric feature: quantile bin edges and the share of rows in each bin (for PSI), summary
statistics, and a seeded sample of values (for KS and Wasserstein, which need the distribution
itself). Per categorical feature: the share of each level. For the score: the same as a numeric
feature, plus a histogram on fixed [0, 1] bins that a person can read (the calibrated-probability
histogram for churn). Missing values count as a bin of their own, so a column that starts
arriving empty is drift too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from common.errors import ArtifactError

#: Where an artifact keeps its profile, relative to the artifact directory.
PROFILE_FILE = "monitoring/reference.json"
N_BINS = 10
SAMPLE_SIZE = 2000
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


class NumericProfile(BaseModel):
    kind: Literal["numeric"] = "numeric"
    count: int
    missing: float  # share of rows with no value
    edges: list[float]  # inner bin edges: bins are (-inf, e0), [e0, e1), ..., [e_last, inf)
    shares: list[float]  # share of the non-missing rows in each bin (len(edges) + 1)
    mean: float
    std: float
    min: float
    max: float
    quantiles: dict[str, float]
    sample: list[float]  # up to SAMPLE_SIZE values, seeded


class CategoricalProfile(BaseModel):
    kind: Literal["category"] = "category"
    count: int
    missing: float
    shares: dict[str, float]  # level -> share of the non-missing rows


FeatureProfile = Annotated[NumericProfile | CategoricalProfile, Field(discriminator="kind")]


class Histogram(BaseModel):
    edges: list[float]
    counts: list[int]


class ReferenceProfile(BaseModel):
    """What the model was trained on and what it predicted there."""

    features: dict[str, FeatureProfile]
    score_name: str | None = None
    score: NumericProfile | None = None
    score_histogram: Histogram | None = None
    #: Metrics on held-out data, the yardstick for realised and estimated performance.
    performance: dict[str, float] = Field(default_factory=dict)
    #: The same data's *estimated* metrics (CBPE): an estimate is compared with an estimate,
    #: so that any bias of the estimator (e.g. slightly under-confident probabilities) cancels.
    estimated: dict[str, float] = Field(default_factory=dict)
    threshold: float | None = None

    def save(self, artifact_dir: Path) -> Path:
        path = artifact_dir / PROFILE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=1))
        return path

    @classmethod
    def load(cls, artifact_dir: Path) -> ReferenceProfile | None:
        """The artifact's profile, or None for an artifact trained before profiles existed."""
        path = artifact_dir / PROFILE_FILE
        if not path.exists():
            return None
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except (ValueError, OSError) as exc:
            raise ArtifactError(f"{path}: unreadable reference profile: {exc}") from exc


def numeric_profile(values: Any, *, bins: int = N_BINS, seed: int = 0) -> NumericProfile:
    """Quantile bins, statistics and a sample of a numeric column (NaN = missing)."""
    x = np.asarray(values, dtype=np.float64)
    present = x[~np.isnan(x)]
    if present.size == 0:
        raise ValueError("cannot profile a numeric column with no values")
    # Quantile edges give each bin ~1/bins of the reference rows, PSI's usual set-up. A column
    # with few distinct values (0/1, whole months) repeats edges: keep each once.
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
    # When the top edge is the maximum (e.g. every training image 224 px wide), a larger value
    # would share its bin and PSI could never see it: give "above the reference" its own bin.
    if edges[-1] >= present.max():
        edges = np.append(edges, np.nextafter(present.max(), np.inf))
    rng = np.random.default_rng(seed)
    sample = present if present.size <= SAMPLE_SIZE else rng.choice(present, SAMPLE_SIZE, False)
    return NumericProfile(
        count=int(x.size),
        missing=float(1 - present.size / x.size),
        edges=edges.tolist(),
        shares=bin_shares(present, edges).tolist(),
        mean=float(present.mean()),
        std=float(present.std()),
        min=float(present.min()),
        max=float(present.max()),
        quantiles={f"p{round(q * 100):02d}": float(np.quantile(present, q)) for q in QUANTILES},
        sample=np.sort(sample).tolist(),
    )


def categorical_profile(values: Any) -> CategoricalProfile:
    """Level shares of a categorical column (None/NaN = missing)."""
    s = pd.Series(values, dtype=object)
    present = s[s.notna()].astype(str)
    if present.empty:
        raise ValueError("cannot profile a categorical column with no values")
    shares = present.value_counts(normalize=True, sort=False)
    return CategoricalProfile(
        count=len(s),
        missing=float(1 - len(present) / len(s)),
        shares={str(k): float(v) for k, v in shares.items()},
    )


def bin_shares(present: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of `present` (no NaN) in each of the bins that `edges` cut."""
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    return counts / max(present.size, 1)


def build_profile(
    features: Mapping[str, Any],
    kinds: Mapping[str, Literal["numeric", "category"]],
    *,
    scores: Sequence[float] | np.ndarray | None = None,
    score_name: str | None = None,
    performance: Mapping[str, float] | None = None,
    estimated: Mapping[str, float] | None = None,
    threshold: float | None = None,
    seed: int = 0,
) -> ReferenceProfile:
    """Profile the columns named in `kinds` (from a frame or a mapping of columns)."""
    profiles: dict[str, NumericProfile | CategoricalProfile] = {}
    for name, kind in kinds.items():
        if name not in features:
            raise ValueError(f"column {name!r} is not in the data to profile")
        column = features[name]
        try:
            profiles[name] = (
                numeric_profile(column, seed=seed)
                if kind == "numeric"
                else categorical_profile(column)
            )
        except ValueError as exc:
            raise ValueError(f"column {name!r}: {exc}") from exc
    score_profile = histogram = None
    if scores is not None:
        s = np.asarray(scores, dtype=np.float64)
        score_profile = numeric_profile(s, seed=seed)
        if s.min() >= 0.0 and s.max() <= 1.0:  # a probability: 20 bins a person can read
            edges = np.linspace(0.0, 1.0, 21)
            counts, _ = np.histogram(s, bins=edges)
            histogram = Histogram(edges=edges.tolist(), counts=counts.tolist())
    return ReferenceProfile(
        features=profiles,
        score_name=score_name,
        score=score_profile,
        score_histogram=histogram,
        performance=dict(performance or {}),
        estimated=dict(estimated or {}),
        threshold=threshold,
    )
