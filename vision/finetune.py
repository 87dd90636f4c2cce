"""The fine-tuning loop: two phases, AdamW, warm-up then cosine decay, label smoothing, early
stopping on validation loss, and a checkpoint after every epoch to resume from.

Phase 1 trains the new head with the backbone frozen; phase 2 unfreezes everything at a lower
learning rate. Each phase gets a fresh optimizer and schedule, as an uninterrupted run would, so
a resumed run continues exactly where it stopped: the shuffling and augmentation of epoch `e`
are seeded with `seed + e`, never with what earlier epochs drew.

`Finetuner.fit` returns self with the best network (lowest validation loss) in `net_`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2
from tqdm.auto import tqdm

from common.errors import UserError
from vision.config import VisionConfig
from vision.data import Item
from vision.images import Preprocessing, decode
from vision.model import head_of, set_backbone_trainable

logger = logging.getLogger(__name__)
EpochCallback = Callable[[int, dict[str, float]], None]


def select_device(preference: str = "auto") -> torch.device:
    """cuda, then Apple's mps, then the CPU; an explicit choice that is absent is an error."""
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
        "cpu": True,
    }
    if preference == "auto":
        return torch.device(next(d for d in ("cuda", "mps", "cpu") if available[d]))
    if not available.get(preference, False):
        raise UserError(f"device {preference!r} is not available here; use auto or cpu")
    return torch.device(preference)


class ImageDataset(Dataset[tuple[torch.Tensor, int]]):
    """Files decoded with the serving decoder; augmented (training) or only preprocessed."""

    def __init__(self, items: list[Item], prep: Preprocessing, augment: bool = False) -> None:
        self.items, self.prep = items, prep
        self.augment = (
            v2.Compose([
                v2.RandomResizedCrop(prep.image_size, scale=(0.5, 1.0), antialias=True),
                v2.RandomHorizontalFlip(),
                # No hue jitter: on tensors it costs ~5 ms an image, more than the training step.
                v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3),
            ])
            if augment
            else None
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        item = self.items[index]
        image = decode(item.path.read_bytes())
        if self.augment is None:
            return self.prep.apply(image), item.label
        return self.prep.normalise(self.augment(image)), item.label


def warmup_cosine(optimizer: torch.optim.Optimizer, steps: int, warmup: int) -> Any:
    """Linear warm-up over `warmup` steps, then cosine decay to zero at `steps`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class Finetuner:
    """Fits a network in two phases; `checkpoint` (a file) makes the run resumable."""

    def __init__(
        self,
        net: nn.Module,
        config: VisionConfig,
        *,
        class_weights: list[float] | None = None,
        checkpoint: Path | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> None:
        self.net, self.config, self.checkpoint = net, config, checkpoint
        self.on_epoch = on_epoch
        self.device = select_device(config.device)
        weight = (
            torch.tensor(class_weights, dtype=torch.float32, device=self.device)
            if class_weights
            else None
        )
        self.loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)
        # Validation loss is unweighted and unsmoothed: the quantity temperature scaling and
        # early stopping should care about is plain negative log-likelihood.
        self.val_loss_fn = nn.CrossEntropyLoss()

    def fit(
        self, train: Dataset, val: Dataset, *, resume: bool = False, until_epoch: int | None = None
    ) -> Finetuner:
        """Train; with `resume`, continue from the checkpoint. `until_epoch` stops early
        (after that many epochs in all), as an interrupted run would."""
        cfg = self.config
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        net = self.net.to(self.device)
        state = self._load_checkpoint() if resume else None
        start = state["epoch"] + 1 if state else 0
        best_loss = state["best_loss"] if state else math.inf
        best_state = state["best_state"] if state else None
        bad_epochs = state["bad_epochs"] if state else 0
        self.history_: list[dict[str, float]] = state["history"] if state else []
        if state:
            net.load_state_dict(state["net"])
            logger.info("resuming at epoch %d/%d from %s", start + 1, cfg.epochs, self.checkpoint)
        optimizer = scheduler = None
        last = cfg.epochs if until_epoch is None else min(cfg.epochs, until_epoch)
        if state and state["phase"] == 2 and bad_epochs >= cfg.patience:
            start = last  # the checkpointed run had stopped early: nothing is left to train
        for epoch in range(start, last):
            phase = 1 if epoch < cfg.head_epochs else 2
            if optimizer is None or epoch == cfg.head_epochs:
                optimizer, scheduler = self._phase(net, phase, len(train))
                if epoch == cfg.head_epochs:
                    bad_epochs = 0  # patience is phase 2's: head-only epochs don't count
                if state and state["phase"] == phase and epoch == start:
                    optimizer.load_state_dict(state["optimizer"])
                    scheduler.load_state_dict(state["scheduler"])
            torch.manual_seed(cfg.seed + epoch)  # this epoch's augmentation, whatever came before
            train_loss, train_acc = self._train_epoch(net, train, optimizer, scheduler, epoch)
            val_loss, val_acc = self.evaluate(net, val)
            record = {"epoch": epoch + 1, "phase": phase, "train_loss": train_loss,
                      "train_accuracy": train_acc, "val_loss": val_loss, "val_accuracy": val_acc,
                      "lr": optimizer.param_groups[0]["lr"]}  # fmt: skip
            self.history_.append(record)
            logger.info("%s: train loss %.3f acc %.3f | val loss %.3f acc %.3f", self._desc(epoch),
                        train_loss, train_acc, val_loss, val_acc)  # fmt: skip
            if self.on_epoch:
                self.on_epoch(epoch + 1, record)
            if val_loss < best_loss - 1e-4:
                best_loss, bad_epochs = val_loss, 0
                best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
            else:
                bad_epochs += 1
            self._save_checkpoint(net, optimizer, scheduler, epoch, phase, best_loss, best_state,
                                  bad_epochs)  # fmt: skip
            if phase == 2 and bad_epochs >= cfg.patience:
                logger.info("early stop after epoch %d: no better val loss in %d", epoch + 1,
                            cfg.patience)  # fmt: skip
                break
        if best_state is not None:
            net.load_state_dict(best_state)
        self.best_val_loss_ = best_loss
        self.net_ = net.cpu().eval()
        return self

    def _phase(self, net: nn.Module, phase: int, n_train: int) -> tuple[Any, Any]:
        cfg = self.config
        set_backbone_trainable(net, trainable=phase == 2)
        lr = cfg.head_lr if phase == 1 else cfg.finetune_lr
        params = [p for p in net.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
        epochs = cfg.head_epochs if phase == 1 else cfg.finetune_epochs
        steps = epochs * math.ceil(n_train / cfg.batch_size)
        return optimizer, warmup_cosine(optimizer, steps, int(steps * cfg.warmup_fraction))

    def _loader(self, data: Dataset, shuffle: bool, epoch: int = 0) -> DataLoader:
        generator = torch.Generator().manual_seed(self.config.seed + epoch)
        return DataLoader(data, batch_size=self.config.batch_size, shuffle=shuffle,
                          generator=generator, num_workers=self.config.num_workers,
                          pin_memory=self.device.type == "cuda")  # fmt: skip

    def _autocast(self, device: torch.device) -> Any:
        """Mixed precision on CUDA when `amp` is set; plain float32 anywhere else."""
        if device.type != "cuda" or not self.config.amp:
            return torch.autocast("cpu", enabled=False)
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)

    def _train_epoch(
        self, net: nn.Module, data: Dataset, optimizer: Any, scheduler: Any, epoch: int
    ) -> tuple[float, float]:
        net.train()
        # A frozen backbone keeps its BatchNorm statistics too: phase 1 must not move them.
        if epoch < self.config.head_epochs:
            for module in net.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        head = head_of(net)[2]
        head.train()
        # float16 gradients underflow without loss scaling; bfloat16 (and the CPU) need none.
        fp16 = self.device.type == "cuda" and self.config.amp and not torch.cuda.is_bf16_supported()
        scaler = torch.amp.GradScaler("cuda", enabled=fp16)
        total, correct, seen = 0.0, 0, 0
        bar = tqdm(self._loader(data, True, epoch), desc=self._desc(epoch), leave=False,
                   disable=None, unit="batch")  # fmt: skip
        for images, labels in bar:
            images, labels = images.to(self.device), labels.to(self.device)
            with self._autocast(self.device):
                logits = net(images)
                loss = self.loss_fn(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            total += loss.item() * len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            seen += len(labels)
            bar.set_postfix(loss=f"{total / seen:.3f}", acc=f"{correct / seen:.3f}")
        return total / max(seen, 1), correct / max(seen, 1)

    def _desc(self, epoch: int) -> str:
        phase = "head" if epoch < self.config.head_epochs else "all"
        return f"epoch {epoch + 1}/{self.config.epochs} ({phase})"

    @torch.no_grad()
    def logits(self, net: nn.Module, data: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and labels of a whole dataset, in order, on the CPU.

        Runs wherever `net` is, not on `self.device`: `fit` hands back `net_` on the CPU (ready to
        save and export), and callers then compute its validation logits with this method."""
        net.eval()
        device = next(net.parameters()).device
        out, labels = [], []
        for images, y in self._loader(data, shuffle=False):
            with self._autocast(device):
                out.append(net(images.to(device)).float().cpu())
            labels.append(y)
        return torch.cat(out), torch.cat(labels)

    def evaluate(self, net: nn.Module, data: Dataset) -> tuple[float, float]:
        logits, labels = self.logits(net, data)
        loss = float(self.val_loss_fn(logits, labels))
        return loss, float((logits.argmax(1) == labels).float().mean())

    def _save_checkpoint(
        self, net: nn.Module, optimizer: Any, scheduler: Any, epoch: int, phase: int,
        best_loss: float, best_state: Any, bad_epochs: int,
    ) -> None:  # fmt: skip
        if self.checkpoint is None:
            return
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint.with_suffix(".tmp")
        torch.save({
            "config": self.config.model_dump(mode="json"), "epoch": epoch, "phase": phase,
            "net": net.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "best_loss": best_loss,
            "best_state": best_state, "bad_epochs": bad_epochs, "history": self.history_,
        }, tmp)  # fmt: skip
        os.replace(tmp, self.checkpoint)  # a kill mid-write leaves the previous checkpoint

    def _load_checkpoint(self) -> dict[str, Any]:
        if self.checkpoint is None or not self.checkpoint.is_file():
            raise UserError(f"no checkpoint to resume from at {self.checkpoint}")
        state = torch.load(self.checkpoint, map_location=self.device, weights_only=True)
        saved = {k: v for k, v in state["config"].items() if k not in ("device", "num_workers")}
        now = {k: v for k, v in self.config.model_dump(mode="json").items() if k in saved}
        if saved != now:
            changed = sorted(k for k in saved if saved[k] != now.get(k))
            raise UserError(
                f"{self.checkpoint} was written with other settings ({', '.join(changed)}); "
                "resume with the same ones, or start afresh without --resume"
            )
        return state
