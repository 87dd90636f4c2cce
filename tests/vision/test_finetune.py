"""The fine-tuning loop: its schedule, the device it picks, what phase 1 may and may not touch,
early stopping, class weights, and a checkpoint that resumes to exactly the network an
uninterrupted run ends with.

Finetuner is driven directly (no ONNX export, no artifact): a 32 px mobilenet_v3_small from
scratch over the 36-image shapes set takes well under a second an epoch.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from common.errors import UserError
from vision.config import VisionConfig
from vision.data import scan
from vision.finetune import Finetuner, ImageDataset, select_device, warmup_cosine
from vision.images import Preprocessing
from vision.model import build, head_of

BASE = VisionConfig(
    backbone="mobilenet_v3_small", weights="none", image_size=32, head_epochs=0,
    finetune_epochs=2, batch_size=16, head_lr=3e-3, finetune_lr=3e-3, seed=5,
)  # fmt: skip


@pytest.fixture(scope="module")
def datasets(shapes_dir: Path) -> tuple[ImageDataset, ImageDataset]:
    folder = scan(shapes_dir, seed=BASE.seed)
    prep = Preprocessing.for_size(32, folder.classes)
    return ImageDataset(folder.train, prep, augment=True), ImageDataset(folder.val, prep)


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: float sums in the same order, run after run."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def new_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build(BASE.backbone, 3, "none")


def snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), rtol=0, atol=1e-6), key


def test_warmup_then_cosine_to_zero() -> None:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2.0)
    scheduler = warmup_cosine(optimizer, steps=10, warmup=4)
    lrs = [optimizer.param_groups[0]["lr"]]
    for _ in range(10):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs[:4] == pytest.approx([0.5, 1.0, 1.5, 2.0])  # linear warm-up to the peak
    assert lrs[4] == pytest.approx(2.0)  # cosine starts at the peak
    assert lrs[7] == pytest.approx(1.0)  # halfway through the decay: half the peak
    assert lrs[10] == pytest.approx(0.0, abs=1e-12)  # and zero at the end
    decay = lrs[4:]
    assert all(a >= b for a, b in itertools.pairwise(decay))
    assert decay[1] == pytest.approx(1.0 + math.cos(math.pi / 6))  # 2 * 0.5 * (1 + cos(pi/6))


def test_no_warmup_starts_at_the_peak() -> None:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    warmup_cosine(optimizer, steps=4, warmup=0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1.0)


def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert select_device("auto") == torch.device("cpu")
    assert select_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert select_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device("auto") == torch.device("cuda")


def test_auto_device_on_this_machine_is_the_cpu_when_it_has_no_accelerator() -> None:
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has an accelerator")
    assert select_device("auto").type == "cpu"


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_an_absent_explicit_device_is_a_user_error(
    device: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(UserError, match=f"device '{device}' is not available here"):
        select_device(device)


def test_logits_run_on_the_networks_device_not_the_training_one(datasets) -> None:
    """`fit` returns `net_` on the CPU; train.py then asks for its validation logits. On a GPU
    run `tuner.device` is cuda, and moving the images there crashed against CPU weights. The
    meta device stands in for an accelerator this machine may lack: it holds no data, so
    logits computed there cannot come back to the CPU."""
    _, val = datasets
    tuner = Finetuner(new_net(), BASE)
    tuner.device = torch.device("meta")
    logits, labels = tuner.logits(tuner.net.cpu(), val)
    assert logits.device.type == "cpu" and logits.shape == (len(val), 3)
    assert torch.isfinite(logits).all() and len(labels) == len(val)


def test_phase_one_trains_the_head_and_leaves_the_backbone_alone(datasets) -> None:
    train, val = datasets
    net = new_net()
    head = head_of(net)[2]
    head_name = next(n for n, m in net.named_modules() if m is head) + "."
    before = snapshot(net)
    config = BASE.model_copy(update={"head_epochs": 1, "finetune_epochs": 0})
    tuner = Finetuner(net, config).fit(train, val)
    after = snapshot(tuner.net_)

    backbone = [k for k in before if not k.startswith(head_name)]
    buffers = [k for k in backbone if "running_" in k or "num_batches_tracked" in k]
    assert len(buffers) > 50  # BatchNorm statistics are part of what must not move
    for key in backbone:
        assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before[head_name + "weight"], after[head_name + "weight"])
    assert [h["phase"] for h in tuner.history_] == [1]


def test_phase_two_trains_everything(datasets) -> None:
    train, val = datasets
    net = new_net()
    before = snapshot(net)
    config = BASE.model_copy(update={"finetune_epochs": 1})
    after = snapshot(Finetuner(net, config).fit(train, val).net_)
    first_conv = next(k for k in before if k.endswith("weight") and before[k].dim() == 4)
    assert not torch.equal(before[first_conv], after[first_conv])
    assert any(not torch.equal(before[k], after[k]) for k in before if "running_mean" in k)


@pytest.mark.parametrize(
    ("head_epochs", "finetune_epochs", "stop_after"),
    [(0, 2, 1), (1, 2, 2)],
    ids=["mid-phase", "after-the-phase-switch"],
)
def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(
    datasets, tmp_path: Path, head_epochs: int, finetune_epochs: int, stop_after: int
) -> None:
    train, val = datasets
    config = BASE.model_copy(
        update={"head_epochs": head_epochs, "finetune_epochs": finetune_epochs}
    )
    whole = Finetuner(new_net(), config).fit(train, val)

    checkpoint = tmp_path / "run.pt"
    first = Finetuner(new_net(), config, checkpoint=checkpoint).fit(
        train, val, until_epoch=stop_after
    )
    assert len(first.history_) == stop_after and checkpoint.is_file()
    assert not checkpoint.with_suffix(".tmp").exists()
    assert torch.load(checkpoint, weights_only=True)["epoch"] == stop_after - 1

    # Another initialisation and another (equivalent) device setting: the checkpoint decides.
    again = config.model_copy(update={"device": "cpu"})
    resumed = Finetuner(new_net(seed=99), again, checkpoint=checkpoint).fit(train, val, resume=True)
    assert len(resumed.history_) == config.epochs
    assert resumed.history_ == whole.history_
    assert resumed.best_val_loss_ == whole.best_val_loss_
    assert_same_state(snapshot(resumed.net_), snapshot(whole.net_))


def test_resuming_with_other_settings_is_refused_naming_them(datasets, tmp_path: Path) -> None:
    train, val = datasets
    checkpoint = tmp_path / "run.pt"
    Finetuner(new_net(), BASE, checkpoint=checkpoint).fit(train, val, until_epoch=1)
    changed = BASE.model_copy(update={"finetune_lr": 1e-2, "batch_size": 8})
    with pytest.raises(UserError, match=r"other settings \(batch_size, finetune_lr\)"):
        Finetuner(new_net(), changed, checkpoint=checkpoint).fit(train, val, resume=True)


@pytest.mark.parametrize("where", ["no file", "no path"])
def test_resuming_without_a_checkpoint_is_refused(datasets, tmp_path: Path, where: str) -> None:
    train, val = datasets
    checkpoint = tmp_path / "never-written.pt" if where == "no file" else None
    with pytest.raises(UserError, match="no checkpoint to resume from"):
        Finetuner(new_net(), BASE, checkpoint=checkpoint).fit(train, val, resume=True)


def test_class_weights_reach_the_training_loss_only(datasets) -> None:
    weights = [0.5, 1.0, 3.0]
    tuner = Finetuner(new_net(), BASE, class_weights=weights)
    assert torch.equal(tuner.loss_fn.weight, torch.tensor(weights))
    assert tuner.loss_fn.label_smoothing == BASE.label_smoothing
    assert tuner.val_loss_fn.weight is None and tuner.val_loss_fn.label_smoothing == 0
    assert Finetuner(new_net(), BASE).loss_fn.weight is None

    # And the loop uses that loss: every training step goes through it.
    seen: list[torch.Tensor | None] = []
    loss_fn = tuner.loss_fn

    def spy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        seen.append(loss_fn.weight)
        return loss_fn(logits, labels)

    tuner.loss_fn = spy  # type: ignore[assignment]
    train, val = datasets
    tuner.fit(train, val, until_epoch=1)
    assert len(seen) == math.ceil(len(train) / BASE.batch_size)
    assert all(torch.equal(w, torch.tensor(weights)) for w in seen)


def _scripted_val_losses(monkeypatch: pytest.MonkeyPatch, losses: list[float]) -> None:
    values = iter(losses)
    monkeypatch.setattr(Finetuner, "evaluate", lambda self, net, data: (next(values), 0.5))


def test_early_stopping_keeps_the_best_epoch(
    datasets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, val = datasets
    config = BASE.model_copy(update={"finetune_epochs": 6, "patience": 2})
    _scripted_val_losses(monkeypatch, [1.0, 0.8, 0.9, 0.85, 0.1, 0.1])
    net = new_net()
    states: list[dict[str, torch.Tensor]] = []
    tuner = Finetuner(net, config, on_epoch=lambda epoch, record: states.append(snapshot(net)))
    tuner.fit(train, val)
    assert [h["epoch"] for h in tuner.history_] == [1, 2, 3, 4]  # 2 epochs without a better loss
    assert tuner.best_val_loss_ == 0.8
    assert_same_state(snapshot(tuner.net_), states[1])


def test_resuming_a_run_that_stopped_early_trains_no_further(
    datasets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, val = datasets
    config = BASE.model_copy(update={"finetune_epochs": 6, "patience": 1})
    checkpoint = tmp_path / "run.pt"
    _scripted_val_losses(monkeypatch, [1.0, 2.0, 0.1, 0.1, 0.1, 0.1])
    first = Finetuner(new_net(), config, checkpoint=checkpoint).fit(train, val)
    assert len(first.history_) == 2  # stopped early
    resumed = Finetuner(new_net(), config, checkpoint=checkpoint).fit(train, val, resume=True)
    assert len(resumed.history_) == 2
    assert resumed.best_val_loss_ == 1.0
