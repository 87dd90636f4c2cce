"""The evaluation metrics of a vision model, on hand-made probabilities: values checked against
their definitions, and no warning from sklearn on a valid distribution."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from vision.evaluate import metrics


def test_log_loss_is_the_mean_negative_log_of_the_true_class_without_warnings() -> None:
    """Softmax outputs can underflow to exactly 0; such rows still sum to one and must not make
    sklearn warn (as clipping them up to 1e-7 once did), nor change the value of the others."""
    probabilities = np.array([[0.9, 0.1, 0.0], [0.0, 0.8, 0.2], [0.25, 0.25, 0.5], [0.0, 0.0, 1.0]])
    labels = np.array([0, 1, 2, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        result = metrics(probabilities, labels, ["a", "b", "c"])
    expected = -np.mean(np.log([0.9, 0.8, 0.5, 1.0]))
    assert result["log_loss"] == pytest.approx(expected, rel=1e-12)
    assert result["accuracy"] == 1.0 and result["n_images"] == 4


def test_a_certain_wrong_answer_costs_a_large_finite_log_loss() -> None:
    result = metrics(np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([1, 0]), ["a", "b"])
    assert math.isfinite(result["log_loss"]) and result["log_loss"] > 10
