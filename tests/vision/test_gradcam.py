"""Grad-CAM on a network small enough to know the answer: two 1x1 filters, one firing on red and
one on blue, each averaged into one class's logit. The heat map of a class must light up where
that class's colour is, and nowhere else."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from vision.gradcam import GradCam, last_conv

SIDE = 32


def colour_detector() -> nn.Module:
    """Class 0's logit is the mean redness of the image, class 1's its mean blueness."""
    conv = nn.Conv2d(3, 2, kernel_size=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).view(2, 3, 1, 1))
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def red_and_blue() -> torch.Tensor:
    """Black, a red square in the top-left quarter and a blue one in the bottom-right."""
    image = torch.zeros(3, SIDE, SIDE)
    image[0, 2:12, 2:12] = 1.0
    image[2, 20:30, 20:30] = 1.0
    return image


@pytest.mark.parametrize(("class_index", "region"), [(0, (2, 12)), (1, (20, 30))])
def test_the_heat_map_peaks_where_the_class_evidence_is(
    class_index: int, region: tuple[int, int]
) -> None:
    net = colour_detector()
    heat = GradCam(net).heatmap(red_and_blue(), class_index)
    assert heat.shape == (SIDE, SIDE) and heat.dtype == np.float32
    assert heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    start, stop = region
    inside = np.zeros((SIDE, SIDE), bool)
    inside[start:stop, start:stop] = True
    peak = np.unravel_index(heat.argmax(), heat.shape)
    assert inside[peak], peak
    assert heat[inside].mean() > 0.9 and heat[~inside].max() < 0.5  # the other square stays dark


def test_a_heat_map_leaves_no_gradients_or_hooks_behind() -> None:
    net = colour_detector()
    GradCam(net).heatmap(red_and_blue(), 0)
    assert all(p.grad is None for p in net.parameters())
    assert not last_conv(net)._forward_hooks
