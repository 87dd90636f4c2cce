"""Hyper-parameter search for the boosted families: Optuna over XGBoost and LightGBM.

Each trial trains with early stopping on the validation split and is scored by validation
PR-AUC; the best booster, cut to its best iteration, comes back as a `Candidate`. The first trial
is always a sound default, so even `--trials 1` gives a reasonable model.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import optuna
import xgboost as xgb
from sklearn.metrics import average_precision_score

from churn.config import ChurnConfig, Family
from churn.model import LightGBMScorer, Scorer, XGBoostScorer

logger = logging.getLogger(__name__)


@dataclass
class Candidate:
    """One fitted model family and how it scored on the validation split."""

    family: Family
    scorer: Scorer
    val_pr_auc: float
    params: dict[str, Any] = field(default_factory=dict)
    #: PR-AUC on the calibration split, which no search has seen (set after selection).
    holdout_pr_auc: float | None = None


def _threads(config: ChurnConfig, n_rows: int) -> int:
    """Configured threads, else one below 100k rows: on small data OpenMP's start-up and
    spin-waiting cost more than they save, and collapse when another process shares the cores."""
    if config.threads:
        return config.threads
    return 1 if n_rows < 100_000 else os.cpu_count() or 1


def _positive_weight(y: np.ndarray) -> float:
    """Class imbalance: weight churners up to the non-churners' mass while training; the
    calibrator restores honest probabilities afterwards."""
    return float((y == 0).sum() / max((y == 1).sum(), 1))


def _search(
    family: Family,
    suggest: Callable[[optuna.Trial], dict[str, Any]],
    fit: Callable[[dict[str, Any]], tuple[Scorer, int]],
    first: dict[str, Any],
    Xv: np.ndarray,
    yv: np.ndarray,
    config: ChurnConfig,
) -> Candidate:
    """Run the study: each trial suggests parameters, `fit` trains (returning the scorer and its
    number of rounds), and the scorer's validation PR-AUC decides; the best one is returned."""
    best: Candidate | None = None

    def objective(trial: optuna.Trial) -> float:
        nonlocal best
        params = suggest(trial)
        scorer, rounds = fit(params)
        score = float(average_precision_score(yv, scorer.margin(Xv)))
        if best is None or score > best.val_pr_auc:
            best = Candidate(family, scorer, score, {**params, "rounds": rounds})
        return score

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        # Without a terminal (CI, logs) there is no progress bar: one line per trial instead.
        logger.info(
            "%s trial %d/%d: validation PR-AUC %.4f (best %.4f)",
            family, trial.number + 1, config.n_trials, trial.value, study.best_value,
        )  # fmt: skip

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=config.seed)
    )
    study.enqueue_trial(first)  # a sound default first, so even one trial gives a good model
    interactive = sys.stderr.isatty()
    study.optimize(
        objective,
        n_trials=config.n_trials,
        timeout=config.search_timeout_s,
        show_progress_bar=interactive,
        callbacks=[] if interactive else [report],
    )
    assert best is not None  # the enqueued first trial always runs
    return best


def search_xgboost(
    X: np.ndarray, y: np.ndarray, Xv: np.ndarray, yv: np.ndarray, config: ChurnConfig
) -> Candidate:
    weight = _positive_weight(y)
    dtrain = xgb.QuantileDMatrix(X, y)
    # Early stopping watches the validation log-loss weighted like the training objective: a
    # smooth signal, where PR-AUC on a few hundred churners jumps about and stops too early.
    dval = xgb.QuantileDMatrix(Xv, yv, weight=np.where(yv == 1, weight, 1.0), ref=dtrain)

    def suggest(trial: optuna.Trial) -> dict[str, Any]:
        return {
            "eta": trial.suggest_float("eta", 0.01, 0.3, log=True),
            "max_depth": trial.suggest_int("max_depth", 2, 8),
            "min_child_weight": trial.suggest_float("min_child_weight", 1, 50, log=True),
            "subsample": trial.suggest_float("subsample", 0.6, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
            "lambda": trial.suggest_float("lambda", 1e-3, 10, log=True),
        }

    def fit(params: dict[str, Any]) -> tuple[Scorer, int]:
        booster = xgb.train(
            {
                **params,
                "objective": "binary:logistic",
                "eval_metric": "logloss",
                "tree_method": "hist",
                "scale_pos_weight": weight,
                "nthread": _threads(config, len(y)),
                "seed": config.seed,
            },
            dtrain,
            num_boost_round=config.max_rounds,
            evals=[(dval, "val")],
            early_stopping_rounds=config.early_stopping_rounds,
            verbose_eval=False,
        )
        booster = booster[: booster.best_iteration + 1]  # keep only the trees that helped
        return XGBoostScorer(booster), booster.num_boosted_rounds()

    first = {"eta": 0.05, "max_depth": 4, "min_child_weight": 5, "subsample": 0.8,
             "colsample_bytree": 0.8, "lambda": 1.0}  # fmt: skip
    return _search("xgboost", suggest, fit, first, Xv, yv, config)


def search_lightgbm(
    X: np.ndarray, y: np.ndarray, Xv: np.ndarray, yv: np.ndarray, config: ChurnConfig
) -> Candidate:
    weight = _positive_weight(y)
    # Trials vary min_child_samples, which LightGBM's one-off feature pre-filter would freeze.
    dtrain = lgb.Dataset(X, y, free_raw_data=False, params={"feature_pre_filter": False})
    dval = lgb.Dataset(
        Xv, yv, weight=np.where(yv == 1, weight, 1.0), reference=dtrain, params=dtrain.params
    )

    def suggest(trial: optuna.Trial) -> dict[str, Any]:
        return {
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 4, 64, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 5, 100, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
            "bagging_fraction": trial.suggest_float("bagging_fraction", 0.6, 1.0),
            "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 10, log=True),
        }

    def fit(params: dict[str, Any]) -> tuple[Scorer, int]:
        booster = lgb.train(
            {
                **params,
                "objective": "binary",
                "metric": "binary_logloss",
                "bagging_freq": 1,
                "scale_pos_weight": weight,
                "num_threads": _threads(config, len(y)),
                "seed": config.seed,
                "deterministic": True,
                "verbose": -1,
            },
            dtrain,
            num_boost_round=config.max_rounds,
            valid_sets=[dval],
            callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)],
        )
        # Re-load only the trees up to the best iteration, so the saved model is what scored.
        best = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
        return LightGBMScorer(best), best.num_trees()

    first = {"learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 20,
             "feature_fraction": 0.8, "bagging_fraction": 0.8, "lambda_l2": 1.0}  # fmt: skip
    return _search("lightgbm", suggest, fit, first, Xv, yv, config)
