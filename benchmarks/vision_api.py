"""Benchmark: the vision API's p50 per JPEG against the in-process limit, decode + preprocess +
ONNX forward on the same bytes. The goal is API <= 1.3x in-process.

    python -m benchmarks.vision_api [--blocks 120] [--per-block 40]

(`python -m benchmarks.vision` runs it too, after the training and engine figures.)

How, and why so:
- The server (`python -m vision serve`, one uvicorn worker) and the limit (a process of its own
  running decode -> preprocess -> forward, chained as a request runs them) are both pinned to
  CPU 0, the client to CPU 1.
- They take turns in short blocks: N limit runs, N raw `image/jpeg` requests to `/predict`, N
  multipart uploads, N raw requests to the floor, and again, `--blocks` times (~0.7 s a
  block). The floor (`benchmarks.vision_floor`) is uvicorn serving a bare ASGI app around the
  same predictor: the gap between it and the service is what FastAPI, our middleware, the
  metrics and the drift window cost a request. This VM's speed drifts by
  20% within minutes and by several percent within seconds, so two figures taken seconds apart
  partly measure the drift; taking turns, both sides see the same machine.
- The figure is the p50 of every API sample over the p50 of every limit sample. The spread is
  that ratio for each group of 10 blocks.
- The client is `KeepAliveClient` (a raw socket; wrk only runs for whole seconds), ~0.01 ms
  slower than wrk per request.

The served model is mobilenet_v3_small with random weights (latency does not depend on what
the weights learned), packaged as training packages one, with a reference profile of every
statistic the service watches, so the drift window does its real work. Results go to
benchmarks/results/vision_api.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from tqdm import tqdm

from benchmarks.measure import KeepAliveClient, free_port, on_cpu, pinned, save, wait_ready

GOAL = 1.3
GROUP = 10  # blocks per group, for the spread


def photo_jpeg(width: int = 640, height: int = 480) -> bytes:
    """A smooth, photo-like JPEG (gradients and shapes): noise would be an unfair decode."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x / width * 255, y / height * 255, (x + y) / (width + height) * 255], -1)
    image = Image.fromarray(rgb.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((200, 120, 440, 360), fill=(220, 40, 60))
    draw.rectangle((40, 300, 180, 440), fill=(30, 160, 90))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def make_artifact(root: Path) -> Path:
    """mobilenet_v3_small with random weights, packaged exactly as training packages one."""
    from common.artifacts import ArtifactStore, package_versions
    from common.monitoring.profile import build_profile
    from vision.export import export_onnx
    from vision.images import STAT_NAMES, Preprocessing
    from vision.model import MODEL_DIR, ONNX_FILE, ModelSpec, build
    from vision.monitor import WATCHED
    from vision.serve import MODEL_LIBRARIES

    classes = [f"class_{i}" for i in range(10)]
    net = build("mobilenet_v3_small", len(classes), "none").eval()
    rng = np.random.default_rng(0)
    reference: dict[str, object] = {name: rng.uniform(0, 1, 200) for name in STAT_NAMES}
    reference["predicted_class"] = list(rng.choice(classes, 200))
    with ArtifactStore(root, "vision").create() as draft:
        ModelSpec("mobilenet_v3_small", Preprocessing(class_names=classes)).save(
            draft.path / MODEL_DIR, net
        )
        export_onnx(net, torch.randn(2, 3, 224, 224), draft.path / MODEL_DIR / ONNX_FILE)
        build_profile(
            reference, WATCHED, scores=rng.uniform(0, 1, 200), score_name="confidence"
        ).save(draft.path)
        draft.info.update(package_versions=package_versions(MODEL_LIBRARIES),
                          metrics={"val": {"accuracy": 0.0}})  # fmt: skip
    assert draft.final_path is not None
    return draft.final_path


def timings_ms(fn: Callable[[], object], repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(round((time.perf_counter() - start) * 1e3, 4))
    return samples


def limit_process(model: Path, jpeg: Path) -> None:
    """The in-process side, run as a subprocess: for each line `NAME N` on stdin, one JSON list
    of N timings (ms) of NAME: `chained` (the yardstick), `decode_preprocess`, `forward`, or
    `predictor` (the whole predictor call: adds the top-k answer and the drift statistics)."""
    from common.serving.memory import keep_freed_memory
    from vision.images import decode
    from vision.serve import VisionPredictor

    keep_freed_memory()  # malloc set up as in the service, so the two differ only by the API
    data = jpeg.read_bytes()
    predictor = VisionPredictor.from_artifact(model)
    record = VisionPredictor.record_from_bytes(data, {})
    prep, forward = predictor.prep, predictor._run_onnx
    batch = prep.network_input([prep.resize_crop(decode(data))])
    runs: dict[str, Callable[[], object]] = {
        "chained": lambda: forward(prep.network_input([prep.resize_crop(decode(data))])),
        "decode_preprocess": lambda: prep.network_input([prep.resize_crop(decode(data))]),
        "forward": lambda: forward(batch),
        "predictor": lambda: predictor.predict_batch([record]),
    }
    for run in runs.values():
        timings_ms(run, 10)
    print("ready", flush=True)
    for line in sys.stdin:
        name, repeats = line.split()
        print(json.dumps(timings_ms(runs[name], int(repeats))), flush=True)


def multipart_body(jpeg: bytes, boundary: str) -> bytes:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="photo.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
    )
    return head.encode() + jpeg + f"\r\n--{boundary}--\r\n".encode()


def p50(samples: list[float]) -> float:
    return round(statistics.median(samples), 3)


def compare(model: Path, jpeg: bytes, blocks: int, per_block: int, workdir: Path) -> dict:
    """The API against the limit, taking turns in blocks (see the module's docstring)."""
    path = workdir / "photo.jpg"
    path.write_bytes(jpeg)
    command = [sys.executable, "-m", "benchmarks.vision_api", "--limit-process", str(model),
               str(path)]  # fmt: skip
    limit = subprocess.Popen(pinned(command, 0), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)  # fmt: skip
    port = free_port()
    env = {**os.environ, "MLP_TRACKING": "false", "MLP_SERVE_LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "vision", "serve", "--model", str(model), "--port", str(port)]
    server = subprocess.Popen(pinned(command, 0), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    floor_port = free_port()
    command = [sys.executable, "-m", "benchmarks.vision_floor", str(model), str(floor_port)]
    floor = subprocess.Popen(pinned(command, 0), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip

    def in_process(name: str, repeats: int) -> list[float]:
        assert limit.stdin and limit.stdout
        limit.stdin.write(f"{name} {repeats}\n")
        limit.stdin.flush()
        return json.loads(limit.stdout.readline())

    boundary = "benchmarkboundary"
    kinds = {"raw_jpeg": (jpeg, "image/jpeg"),
             "multipart": (multipart_body(jpeg, boundary),
                           f"multipart/form-data; boundary={boundary}")}  # fmt: skip
    samples: dict[str, list[list[float]]] = {
        "limit": [],
        **{name: [] for name in kinds},
        "floor_raw_jpeg": [],
    }
    try:
        assert limit.stdout and limit.stdout.readline().strip() == "ready"
        wait_ready(f"http://127.0.0.1:{port}", timeout=120)
        wait_ready(f"http://127.0.0.1:{floor_port}", timeout=120)
        # The service times ONNX Runtime against eager PyTorch when it loads; the limit is ONNX.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metadata") as response:
            engine = json.load(response)["engine"]
        with on_cpu(1):
            client, floor_client = KeepAliveClient(port), KeepAliveClient(floor_port)
            requests = {name: (client, client.request_bytes(*kind))
                        for name, kind in kinds.items()}  # fmt: skip
            requests["floor_raw_jpeg"] = (
                floor_client,
                floor_client.request_bytes(*kinds["raw_jpeg"]),
            )
            for sender, request in requests.values():  # warm-up
                [sender.post(request) for _ in range(100)]
            for _ in tqdm(range(blocks), desc="API, floor and in-process, taking turns"):
                samples["limit"].append(in_process("chained", per_block))
                for name, (sender, request) in requests.items():
                    samples[name].append([sender.post(request) * 1e3 for _ in range(per_block)])
            client.close()
            floor_client.close()
        pieces = {f"{name}_ms": p50(in_process(name, 300))
                  for name in ("decode_preprocess", "forward", "predictor")}  # fmt: skip
    finally:
        for process in (server, floor):
            process.terminate()
            process.wait(timeout=30)
        limit.kill()
    return {"server_engine": engine, **summarise(samples, pieces, per_block)}


def summarise(samples: dict[str, list[list[float]]], pieces: dict, per_block: int) -> dict:
    def flat(name: str, start: int = 0, stop: int | None = None) -> list[float]:
        return [s for block in samples[name][start:stop] for s in block]

    base = p50(flat("limit"))
    result: dict = {
        "blocks": len(samples["limit"]), "per_block": per_block, "goal_ratio": GOAL,
        "in_process": {"decode_then_forward_ms": base, **pieces},
    }  # fmt: skip
    starts = range(0, len(samples["limit"]) - GROUP + 1, GROUP)
    # The limit of each group beside its ratios: on this VM the ratio rises when the machine
    # is slow (busy neighbours hurt the server's cold Python more than the forward pass).
    result["in_process"]["group_decode_then_forward_ms"] = [
        p50(flat("limit", i, i + GROUP)) for i in starts
    ]
    for name in samples:
        if name == "limit":
            continue
        groups = [p50(flat(name, i, i + GROUP)) / p50(flat("limit", i, i + GROUP)) for i in starts]
        api = p50(flat(name))
        result[f"api_{name}"] = {
            "p50_ms": api,
            "p99_ms": round(float(np.percentile(flat(name), 99)), 3),
            "ratio": round(api / base, 3),
            "group_ratios": [round(r, 3) for r in groups],
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=120, help="Turns each side takes.")
    parser.add_argument("--per-block", type=int, default=40, help="Runs or requests per turn.")
    parser.add_argument(
        "--limit-process", nargs=2, type=Path, metavar=("MODEL", "JPEG"), help=argparse.SUPPRESS
    )  # the in-process side, run as a subprocess
    args = parser.parse_args()
    if args.limit_process:
        limit_process(*args.limit_process)
        return
    if args.blocks < GROUP or args.per_block < 1:
        parser.error(f"--blocks must be at least {GROUP} and --per-block at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model = make_artifact(workdir / "store")
        save("vision_api", compare(model, photo_jpeg(), args.blocks, args.per_block, workdir))


if __name__ == "__main__":
    main()
