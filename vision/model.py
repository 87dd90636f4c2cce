"""The network: a torchvision backbone by name, its weights, a new classifier head, and what is
saved with it.

Weights (`--weights`):
- `DEFAULT`: torchvision's best ImageNet weights for the backbone, downloaded once and cached
  under `$TORCH_HOME` (default `~/.cache/torch`). Offline, this stops with `WeightsError` saying
  how to go on; it never falls back to random weights silently.
- a file: a state dict saved with `torch.save(model.state_dict(), path)`, loaded with
  `weights_only=True` (a pickle from the internet can run code; tensors cannot). An ImageNet
  head in it (1000 classes) is dropped, since the head is replaced anyway.
- `none`: random initialisation (training from scratch; what the offline demo uses).

The last `nn.Linear` of the network is its head: replaced by one with a row per class.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import get_model, get_model_weights

from common.errors import ArtifactError, UserError
from vision.images import Preprocessing

BACKBONES = ("resnet18", "mobilenet_v3_small", "efficientnet_b0")
#: Inside the artifact: the network's state dict, its ONNX export, and how to rebuild it.
MODEL_DIR = "model"
STATE_FILE = "weights.pt"
ONNX_FILE = "model.onnx"
SPEC_FILE = "model.json"


class WeightsError(UserError):
    """Pretrained weights could not be had (offline, a bad file): says how to go on."""


def head_of(net: nn.Module) -> tuple[nn.Module, str, nn.Linear]:
    """The module holding the last `nn.Linear`, its attribute name, and the layer itself."""
    found: tuple[nn.Module, str, nn.Linear] | None = None
    for parent in net.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Linear):
                found = (parent, name, child)
    if found is None:
        raise ValueError(f"{type(net).__name__} has no nn.Linear layer to use as its head")
    return found


def replace_head(net: nn.Module, n_classes: int) -> nn.Module:
    parent, name, old = head_of(net)
    setattr(parent, name, nn.Linear(old.in_features, n_classes))
    return net


def set_backbone_trainable(net: nn.Module, trainable: bool) -> None:
    """Freeze (phase 1) or unfreeze (phase 2) everything but the head."""
    head = head_of(net)[2]
    head_params = {id(p) for p in head.parameters()}
    for p in net.parameters():
        p.requires_grad = trainable or id(p) in head_params


def weights_preprocessing(backbone: str) -> dict[str, Any]:
    """The input recipe torchvision's DEFAULT weights were trained with (crop, resize, norm)."""
    transforms = get_model_weights(backbone).DEFAULT.transforms()
    return {
        "image_size": int(transforms.crop_size[0]),
        "resize_size": int(transforms.resize_size[0]),
        "mean": tuple(transforms.mean),
        "std": tuple(transforms.std),
        "interpolation": transforms.interpolation.value,
    }


def build(backbone: str, n_classes: int, weights: str | Path = "none") -> nn.Module:
    """A backbone with `weights` and a fresh head for `n_classes`."""
    if backbone not in BACKBONES:
        raise UserError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    if str(weights).upper() == "DEFAULT":
        net = _download_default(backbone)
    else:
        net = get_model(backbone, weights=None)
        if str(weights).lower() != "none":
            _load_state_file(net, Path(weights), backbone)
    return replace_head(net, n_classes)


def _download_default(backbone: str) -> nn.Module:
    enum = get_model_weights(backbone).DEFAULT
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    cached = hub / Path(enum.url).name
    try:
        # torch.hub announces a download on stdout, which `train` keeps for the artifact dir.
        with contextlib.redirect_stdout(sys.stderr):
            return get_model(backbone, weights=enum)
    except (OSError, RuntimeError, pickle.UnpicklingError) as exc:  # URLError is an OSError
        if cached.is_file():
            raise WeightsError(
                f"the cached DEFAULT weights for {backbone}, {cached}, cannot be loaded ({exc}); "
                "delete that file to download it again, or use `--weights none` or "
                "`--weights PATH`"
            ) from None
        raise WeightsError(
            f"could not download the DEFAULT weights for {backbone} from {enum.url} ({exc}). "
            f"Either train from scratch with `--weights none`, or download that file on a "
            f"machine that is online and pass it with `--weights PATH` (or copy it into "
            f"{hub}, where torchvision caches it; TORCH_HOME moves that folder)."
        ) from None


def _load_state_file(net: nn.Module, path: Path, backbone: str) -> None:
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist (or use DEFAULT or none)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises plain errors of many kinds for a bad file
        raise WeightsError(f"{path} is not a state dict torch can load safely: {exc}") from None
    if isinstance(state, dict) and "state_dict" in state:  # a training checkpoint's layout
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a state dict")
    # The head is replaced anyway: an ImageNet (1000-class) head in the file is not an error.
    head_name = _head_prefix(net)
    own = net.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith(head_name)}
    missing = [k for k in own if k not in state and not k.startswith(head_name)]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise WeightsError(
            f"{path} does not fit {backbone}: {len(missing)} missing, {len(unexpected)} "
            f"unexpected and {len(wrong)} mis-shaped tensors "
            f"(e.g. {(missing + unexpected + wrong)[:3]}); was it saved from another backbone?"
        )
    net.load_state_dict(state, strict=False)


def _head_prefix(net: nn.Module) -> str:
    head = head_of(net)[2]
    name = next(n for n, m in net.named_modules() if m is head)
    return name + "."


@dataclass
class ModelSpec:
    """How to rebuild the trained network, and what it needs around it to predict."""

    backbone: str
    preprocessing: Preprocessing
    temperature: float = 1.0  # logits / T are calibrated (see vision.calibration)

    @property
    def classes(self) -> list[str]:
        return self.preprocessing.class_names

    def save(self, folder: Path, net: nn.Module) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), folder / STATE_FILE)
        spec = {
            "backbone": self.backbone,
            "temperature": self.temperature,
            "preprocessing": self.preprocessing.model_dump(mode="json"),
        }
        (folder / SPEC_FILE).write_text(json.dumps(spec, indent=2))

    @classmethod
    def load(cls, folder: Path) -> ModelSpec:
        try:
            spec = json.loads((folder / SPEC_FILE).read_text())
            return cls(
                backbone=spec["backbone"],
                preprocessing=Preprocessing(**spec["preprocessing"]),
                temperature=float(spec["temperature"]),
            )
        except (OSError, KeyError, ValueError) as exc:
            raise ArtifactError(f"{folder / SPEC_FILE} is missing or unreadable: {exc}") from None

    def load_network(self, folder: Path) -> nn.Module:
        """The trained network in eval mode, on the CPU."""
        net = build(self.backbone, len(self.classes), "none")
        state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        return net.eval()
