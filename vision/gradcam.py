"""Grad-CAM (Selvaraju et al., 2017): which regions of the image pushed the model towards a class.

The last convolutional layer's activations are weighted by the mean gradient of the class's
logit with respect to each channel, summed, passed through ReLU and upsampled to the input: a
heat map in [0, 1] over the (resized, cropped) image the network saw. Needs the PyTorch network,
not the ONNX file (ONNX Runtime computes no gradients); it costs one forward and one backward
pass, so the API computes it only on request.
"""

from __future__ import annotations

import base64
import io
import threading

import numpy as np
import torch
import torch.nn.functional as torch_f
from matplotlib import colormaps
from PIL import Image
from torch import nn


def last_conv(net: nn.Module) -> nn.Module:
    """The network's last `nn.Conv2d`: the deepest layer that still has a spatial layout."""
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(net).__name__} has no Conv2d layer for Grad-CAM")
    return convs[-1]


class GradCam:
    """Heat maps for one network, which it must own: its forward hook would fire on anyone
    else's prediction. Thread-safe: one heat map at a time, under a lock."""

    def __init__(self, net: nn.Module, layer: nn.Module | None = None) -> None:
        self.net = net.eval()
        self.layer = layer or last_conv(net)
        self._lock = threading.Lock()

    def heatmap(self, image: torch.Tensor, class_index: int) -> np.ndarray:
        """`image`: one normalised input [3, S, S] -> float32 [S, S] in [0, 1]."""
        captured: dict[str, torch.Tensor] = {}

        def forward_hook(_m: nn.Module, _i: object, output: torch.Tensor) -> None:
            captured["activations"] = output

        with self._lock, torch.enable_grad():
            handle = self.layer.register_forward_hook(forward_hook)
            try:
                logits = self.net(image.unsqueeze(0).requires_grad_(True))
            finally:
                handle.remove()
            # autograd.grad, not backward(): no .grad buffers left on the parameters.
            (gradients,) = torch.autograd.grad(logits[0, class_index], captured["activations"])
        activations = captured["activations"].detach()[0]  # [C, h, w]
        weights = gradients.detach()[0].mean(dim=(1, 2))  # [C]
        cam = torch.relu((weights[:, None, None] * activations).sum(dim=0))
        cam = torch_f.interpolate(cam[None, None], size=image.shape[-2:], mode="bilinear",
                                  align_corners=False)[0, 0]  # fmt: skip
        top = float(cam.max())
        return (cam / top if top > 0 else cam).numpy().astype(np.float32)


def overlay(image: torch.Tensor, heat: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """The uint8 image [3, S, S] with the heat map blended over it in a colour scale."""
    base = image.permute(1, 2, 0).numpy().astype(np.float32) / 255.0
    colour = colormaps["turbo"](heat)[..., :3].astype(np.float32)
    blended = (1 - alpha) * base + alpha * colour
    return Image.fromarray((blended * 255).clip(0, 255).astype(np.uint8))


def png_base64(picture: Image.Image) -> str:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
