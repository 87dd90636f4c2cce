"""The vision pipeline's configuration: one frozen, typed object, saved inside every artifact.

Defaults follow the usual fine-tuning recipe for a pretrained backbone: a few epochs training
only the new head (a randomly initialised head would otherwise send large gradients through,
and spoil, the pretrained features), then the whole network at a tenth of the learning rate.
`make train-vision` trains the built-in data from scratch at 64 px instead (about three minutes
on two CPU cores; see the Makefile's VISION_TRAIN_ARGS).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Backbone = Literal["resnet18", "mobilenet_v3_small", "efficientnet_b0"]
Device = Literal["auto", "cpu", "cuda", "mps"]


class VisionConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    backbone: Backbone = "mobilenet_v3_small"
    #: DEFAULT (torchvision's pretrained weights), none, or a state-dict file.
    weights: str = "DEFAULT"
    #: Side of the network's input; None: what the pretrained weights were trained at (224).
    image_size: int | None = Field(None, ge=32, le=1024)
    val_size: float = Field(0.2, gt=0, lt=1, description="Held out when the folder has no val/.")

    head_epochs: int = Field(2, ge=0, description="Phase 1: backbone frozen, head trained.")
    finetune_epochs: int = Field(8, ge=0, description="Phase 2: everything trained.")
    batch_size: int = Field(32, ge=1)
    head_lr: float = Field(1e-3, gt=0)
    finetune_lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_fraction: float = Field(0.1, ge=0, lt=1, description="Of each phase's steps.")
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    augment: bool = True
    #: Phase 2 stops when validation loss has not improved for this many epochs.
    patience: int = Field(3, ge=1)
    #: Weight the loss by inverse class frequency when the largest class is this many times the
    #: smallest (or more); 1.0 always weights.
    weight_classes_above: float = Field(1.5, ge=1.0)

    device: Device = "auto"
    #: Mixed precision (bfloat16/float16 autocast) on CUDA; ignored on CPU.
    amp: bool = True
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes.")
    threads: int = Field(0, ge=0, description="torch CPU threads; 0: torch's default.")
    seed: int = 42

    @property
    def epochs(self) -> int:
        return self.head_epochs + self.finetune_epochs
