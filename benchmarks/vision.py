"""Benchmark: vision training speed, eager PyTorch vs ONNX Runtime, and the API against in-process.

    python -m benchmarks.vision [--blocks 120] [--per-block 40] [--skip-training]

Measures on this machine's CPU:
- training images/s (forward, backward and AdamW step on augmented, decoded images from the
  built-in set, through the same `ImageDataset` and DataLoader training uses) for the built-in
  recipe (resnet18 at 64 px) and for fine-tuning mobilenet_v3_small and resnet18 at 224 px;
- per-image latency p50 at batch 1, 224 px, eager PyTorch vs ONNX Runtime, per backbone;
- decoding, resizing and normalising a 640x480 JPEG: torchvision's decoder (what serving uses)
  vs PIL;
- the API's p50 per JPEG (raw bytes and multipart to `/predict`, one uvicorn worker, at
  concurrency 1) against the in-process decode + ONNX forward on the same bytes, the two
  taking turns in short blocks: `benchmarks/vision_api.py`, which says how and why. The goal
  is API p50 <= 1.3x in-process.

Latency doesn't depend on what the weights learned, so the served model is mobilenet_v3_small
with random weights, exported and packaged like a trained one. With two CPUs and `taskset`, the
server (and the in-process run) are pinned to CPU 0 and the client to CPU 1.
Results go to benchmarks/results/vision.json.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.measure import save
from benchmarks.vision_api import GROUP, compare, make_artifact, p50, photo_jpeg, timings_ms

BACKBONES = ("mobilenet_v3_small", "resnet18", "efficientnet_b0")


def p50_ms(fn: Callable[[], object], repeats: int, warmup: int = 5) -> float:
    timings_ms(fn, warmup)
    return p50(timings_ms(fn, repeats))


def training_speed(data: Path, backbone: str, size: int, batches: int) -> dict:
    from vision.data import scan
    from vision.finetune import ImageDataset
    from vision.images import Preprocessing
    from vision.model import build

    folder = scan(data, verify=False)
    prep = Preprocessing.for_size(size, folder.classes)
    loader = torch.utils.data.DataLoader(
        ImageDataset(folder.train, prep, augment=True), batch_size=32, shuffle=True
    )
    net = build(backbone, len(folder.classes), "none").train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    seen, start, done = 0, 0.0, 0
    while done < batches + 1:
        for images, labels in loader:
            if done == 1:  # the first batch warms up the allocator and kernels
                start, seen = time.perf_counter(), 0
            loss = loss_fn(net(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(labels)
            done += 1
            if done > batches:
                break
    return {"backbone": backbone, "image_size": size, "batch": 32,
            "images_per_s": round(seen / (time.perf_counter() - start), 1)}  # fmt: skip


def engines(backbone: str, workdir: Path, repeats: int) -> dict:
    from vision.export import export_onnx, session
    from vision.model import build

    net = build(backbone, 10, "none").eval()
    x = torch.randn(1, 3, 224, 224)
    path = export_onnx(net, torch.randn(2, 3, 224, 224), workdir / f"{backbone}.onnx")
    onnx = session(path)
    array = x.numpy()
    with torch.inference_mode():
        eager = p50_ms(lambda: net(x), repeats)
    onnx_ms = p50_ms(lambda: onnx.run(None, {"image": array}), repeats)
    return {"backbone": backbone, "eager_ms": eager, "onnxruntime_ms": onnx_ms}


def decoding(jpeg: bytes, repeats: int) -> dict:
    from vision.images import Preprocessing, decode

    prep = Preprocessing()

    def with_pil() -> np.ndarray:
        image = Image.open(io.BytesIO(jpeg)).convert("RGB")
        scale = prep.resize_size / min(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)),
                             Image.Resampling.BILINEAR)  # fmt: skip
        left, top = (image.width - 224) // 2, (image.height - 224) // 2
        array = np.asarray(image.crop((left, top, left + 224, top + 224)), np.float32) / 255
        return (array - prep.mean) / prep.std

    return {"jpeg": "640x480", "torchvision_ms": p50_ms(lambda: prep.apply(decode(jpeg)), repeats),
            "pil_ms": p50_ms(with_pil, repeats)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=120, help="API/in-process turns.")
    parser.add_argument("--per-block", type=int, default=40, help="Runs or requests per turn.")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    if args.blocks < GROUP or args.per_block < 1:
        parser.error(f"--blocks must be at least {GROUP} and --per-block at least 1")
    from vision.data import write_shapes

    results: dict = {"threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        jpeg = photo_jpeg()
        if not args.skip_training:
            data = write_shapes(workdir / "shapes", per_class=60, size=96, seed=1)
            results["training"] = [
                training_speed(data, "resnet18", 64, batches=15),
                training_speed(data, "mobilenet_v3_small", 224, batches=6),
                training_speed(data, "resnet18", 224, batches=4),
            ]
        results["batch1_224px"] = [engines(b, workdir, repeats=50) for b in BACKBONES]
        results["decode_resize_normalise"] = decoding(jpeg, repeats=200)
        model = make_artifact(workdir / "store")
        results["api"] = compare(model, jpeg, args.blocks, args.per_block, workdir)
    save("vision", results)


if __name__ == "__main__":
    main()
