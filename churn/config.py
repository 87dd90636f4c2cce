"""The churn pipeline's configuration: one frozen, typed object, saved inside every artifact.

Defaults are sized so `make train-churn` finishes in well under a minute on two cores; raise
`n_trials` for a real search. Override from the CLI (`--trials`, `--cost-missed`, ...) or by
building a `ChurnConfig` in code.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Family = Literal["logistic", "xgboost", "lightgbm"]


class ChurnConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Stratified splits: train fits, validation early-stops and picks the winner, calibration
    # fits the calibrator and the threshold, test is touched once for the reported metrics.
    test_size: float = Field(0.2, gt=0, lt=1)
    val_size: float = Field(0.1, gt=0, lt=1)
    calibration_size: float = Field(0.1, gt=0, lt=1)

    families: tuple[Family, ...] = ("logistic", "xgboost", "lightgbm")
    n_trials: int = Field(12, ge=1, description="Optuna trials per boosted family.")
    search_timeout_s: float | None = Field(None, gt=0, description="Per-family search cap.")
    max_rounds: int = Field(1000, ge=1, description="Most boosting rounds before early stopping.")
    early_stopping_rounds: int = Field(50, ge=1)
    threads: int = Field(0, ge=0, description="Threads for boosting; 0 means all cores.")

    calibration: Literal["sigmoid", "isotonic"] = "sigmoid"
    # Business costs, in any currency: a churner we fail to contact vs. one retention offer.
    cost_missed_churner: float = Field(500.0, gt=0)
    cost_retention_offer: float = Field(50.0, gt=0)

    engineered_features: bool = True
    seed: int = 42
    # `promote` refuses a model whose test ROC-AUC is below this.
    promote_min_roc_auc: float = Field(0.75, ge=0, le=1)

    @model_validator(mode="after")
    def _splits_leave_training_data(self) -> ChurnConfig:
        held_out = self.test_size + self.val_size + self.calibration_size
        if held_out >= 0.9:
            raise ValueError(f"test+val+calibration = {held_out:.2f} leaves too little to train")
        return self

    @property
    def fractions(self) -> dict[str, float]:
        held_out = self.test_size + self.val_size + self.calibration_size
        return {
            "train": 1 - held_out,
            "val": self.val_size,
            "calibration": self.calibration_size,
            "test": self.test_size,
        }
