"""Temperature scaling: it recovers a temperature that was put in on purpose, it makes an
over-confident model's top-label ECE small, and its softmax is a distribution that never
changes which class wins.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vision.calibration import fit_temperature, softmax, top_label_ece


def overconfident(t: float, n: int = 6000, k: int = 5, seed: int = 0):
    """Logits whose labels are drawn from softmax(true logits), then multiplied by `t`: a model
    `t` times too sure of itself. Returns (logits, labels) as tensors."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0, 1.5, (n, k))
    p = softmax(true)
    labels = np.array([rng.choice(k, p=row) for row in p])
    return torch.tensor(true * t, dtype=torch.float32), torch.tensor(labels)


@pytest.mark.parametrize("t", [3.0, 0.5])
def test_fit_recovers_a_known_temperature(t: float) -> None:
    logits, labels = overconfident(t)
    assert fit_temperature(logits, labels) == pytest.approx(t, rel=0.15)


def test_a_calibrated_model_keeps_a_temperature_near_one() -> None:
    logits, labels = overconfident(1.0, seed=1)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, rel=0.1)


def test_scaling_makes_an_overconfident_model_calibrated_without_changing_its_answers() -> None:
    logits, labels = overconfident(3.0, seed=2)
    fit_logits, fit_labels = logits[:3000], labels[:3000]
    t = fit_temperature(fit_logits, fit_labels)
    held_out = logits[3000:].numpy().astype(np.float64)
    y = labels[3000:].numpy()
    before, after = softmax(held_out), softmax(held_out, t)
    assert top_label_ece(before, y) > 0.1  # three times too sure: badly calibrated
    assert top_label_ece(after, y) < 0.03
    assert top_label_ece(after, y) < top_label_ece(before, y) / 4
    assert (before.argmax(1) == after.argmax(1)).all()  # accuracy untouched


def test_a_separable_set_gets_a_small_but_bounded_temperature() -> None:
    labels = torch.arange(30) % 3
    logits = torch.nn.functional.one_hot(labels, 3).float() * 8  # always right, by far
    t = fit_temperature(logits, labels)
    assert 0.05 <= t < 1.0 and np.isfinite(t)  # sharper, yet within the clip


@pytest.mark.parametrize("temperature", [1.0, 0.1, 7.0])
def test_softmax_rows_are_distributions_even_for_huge_logits(temperature: float) -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 50, (200, 6))
    logits[0] = [1000.0, -1000.0, 0, 0, 0, 999.0]  # exp() of these overflows unless shifted
    p = softmax(logits, temperature)
    assert np.isfinite(p).all() and (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    assert (p.argmax(1) == logits.argmax(1)).all()


def test_top_label_ece_of_known_cases() -> None:
    labels = np.array([0, 1, 2, 0])
    sure_and_right = np.eye(3)[labels]
    assert top_label_ece(sure_and_right, labels) == pytest.approx(0.0)
    # 90% sure of the right class every time: 10 points under-confident.
    p = np.full((4, 3), 0.05)
    p[np.arange(4), labels] = 0.9
    assert top_label_ece(p, labels) == pytest.approx(0.1)
    # 90% sure, right half the time: 40 points over-confident.
    wrong = labels.copy()
    wrong[:2] = (wrong[:2] + 1) % 3
    assert top_label_ece(p, wrong) == pytest.approx(0.4)
