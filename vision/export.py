"""Export the trained network to ONNX and prove the export computes the same thing.

The service runs the ONNX file with ONNX Runtime on the CPU: for these backbones it is several
times faster than eager PyTorch at batch 1 (see benchmarks/README.md). An export is only kept if
its logits match PyTorch's on real, preprocessed images to within `PARITY_TOLERANCE`; otherwise
training fails and the previous model stays where it was.

The batch dimension is dynamic, so one file serves a single upload and a batch transform alike.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from common.errors import TrainingError

logger = logging.getLogger(__name__)
INPUT_NAME, OUTPUT_NAME = "image", "logits"
#: The issue's bar for "the same model": max |logit difference| on real inputs.
PARITY_TOLERANCE = 1e-4


def export_onnx(net: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """Write `net` (eval mode, CPU) as ONNX with a dynamic batch dimension; returns `path`."""
    net = net.cpu().eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    # Two examples: torch.export specialises a dimension it only ever sees as 1.
    example = example[:2] if len(example) >= 2 else example.repeat(2, 1, 1, 1)
    with warnings.catch_warnings(), _quiet("torch.onnx", "onnxscript", "onnx_ir"):
        # torch.export's internals warn about their own deprecations; nothing for us to act on.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        program = torch.onnx.export(
            net,
            (example.cpu(),),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
            verbose=False,
        )
    assert program is not None
    program.save(str(path), external_data=False)  # one self-contained file in the artifact
    return path


def session(path: Path, threads: int = 0) -> ort.InferenceSession:
    """An ONNX Runtime session on the CPU (`threads` 0: one per core)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only: the graph optimiser's notes are noise
    # ONNX Runtime's threads spin for a while after each run, waiting for more work; between
    # runs the service decodes and resizes with torch, whose threads they would then starve
    # (measured: a 2.6 ms decode + forward took 8 ms with spinning on).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check_parity(net: nn.Module, path: Path, images: torch.Tensor) -> float:
    """Max |logit difference| between PyTorch and ONNX Runtime on `images`; TrainingError above
    the tolerance."""
    with torch.no_grad():
        expected = net.cpu().eval()(images.cpu()).numpy()
    got = session(path).run([OUTPUT_NAME], {INPUT_NAME: images.cpu().numpy()})[0]
    diff = float(np.abs(got - expected).max())
    if not diff <= PARITY_TOLERANCE:  # `not <=` so that NaN fails too
        raise TrainingError(
            f"the ONNX export differs from the PyTorch model by {diff:.2e} in the logits "
            f"(tolerance {PARITY_TOLERANCE:.0e}); the model was not published"
        )
    logger.info("ONNX parity on %d images: max |logit diff| %.2e", len(images), diff)
    return diff


class _quiet:
    """Raise the named loggers to WARNING for a block (the exporter logs every step at INFO)."""

    def __init__(self, *names: str) -> None:
        self.loggers = [logging.getLogger(n) for n in names]
        self.levels: list[int] = []

    def __enter__(self) -> None:
        self.levels = [lg.level for lg in self.loggers]
        for lg in self.loggers:
            lg.setLevel(logging.WARNING)

    def __exit__(self, *exc: object) -> None:
        for lg, level in zip(self.loggers, self.levels, strict=True):
            lg.setLevel(level)
