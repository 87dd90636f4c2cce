"""ONNX export: the file computes what the PyTorch network computes (parity within 1e-4), takes
any batch size, and the parity check refuses a file that is not of the network it is given.

The network is a small conv net (BatchNorm and pooling included, as in the real backbones), so
the module's one export takes a few seconds; the real backbone's export is checked through the
trained artifact in test_train.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from common.errors import TrainingError
from vision.export import (
    INPUT_NAME,
    OUTPUT_NAME,
    PARITY_TOLERANCE,
    check_parity,
    export_onnx,
    session,
)


def small_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2), nn.BatchNorm2d(8), nn.Hardswish(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    )  # fmt: skip
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        net.train()(torch.randn(16, 3, 24, 24) * 2 + 0.5)
    return net.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Path]:
    net = small_net(0)
    path = tmp_path_factory.mktemp("onnx") / "net.onnx"
    example = torch.randn(2, 3, 24, 24)
    assert export_onnx(net, example, path) == path
    return net, path


def test_export_matches_pytorch_within_the_tolerance(exported) -> None:
    net, path = exported
    torch.manual_seed(1)
    images = torch.randn(8, 3, 24, 24)
    diff = check_parity(net, path, images)
    assert 0 <= diff <= PARITY_TOLERANCE
    assert path.stat().st_size > 0 and not list(path.parent.glob("*.data"))  # one file


@pytest.mark.parametrize("batch", [1, 5])
def test_the_batch_dimension_is_dynamic(exported, batch: int) -> None:
    net, path = exported
    runner = session(path, threads=1)
    [image_input] = runner.get_inputs()
    assert image_input.name == INPUT_NAME
    assert not isinstance(image_input.shape[0], int)  # symbolic, not the example's 2
    images = torch.randn(batch, 3, 24, 24)
    [logits] = runner.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})
    assert logits.shape == (batch, 4)
    with torch.no_grad():
        np.testing.assert_allclose(logits, net(images).numpy(), atol=PARITY_TOLERANCE, rtol=0)


def test_parity_fails_for_the_file_of_another_network(exported) -> None:
    _, path = exported
    other = small_net(seed=7)  # the same architecture, other weights
    with pytest.raises(TrainingError, match=r"differs from the PyTorch model.*not published"):
        check_parity(other, path, torch.randn(4, 3, 24, 24))


def test_parity_fails_when_the_network_gives_nan(exported) -> None:
    net, path = exported
    broken = small_net(0)
    broken.load_state_dict(net.state_dict())
    with torch.no_grad():
        broken[-1].bias[0] = float("nan")
    with pytest.raises(TrainingError, match="differs"):
        check_parity(broken, path, torch.randn(2, 3, 24, 24))
