"""Helpers shared by the benchmark scripts: timing a command and recording its peak memory."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


@dataclass
class Measurement:
    command: str
    wall_s: float
    peak_rss_mb: float
    returncode: int
    stdout: str = ""


def measure(
    cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Measurement:
    """Run `cmd`, returning its wall time, the peak RSS of its largest process and its stdout.

    `os.wait4` reports the child's own resource use, so the peak is that of the command (the
    largest of its processes), not of this script.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env={**os.environ, **(env or {})}, cwd=cwd, stdout=subprocess.PIPE, text=True
    )
    stdout = proc.stdout.read() if proc.stdout else ""  # until the command closes it (exits)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    return Measurement(
        command=" ".join(cmd),
        wall_s=round(wall, 2),
        peak_rss_mb=round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
        returncode=os.waitstatus_to_exitcode(status),
        stdout=stdout.strip(),
    )


def save(name: str, payload: dict) -> Path:
    """Write results with the machine they were measured on, and print them."""
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "benchmark": name,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        **payload,
    }  # fmt: skip
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=lambda o: asdict(o)))
    print(json.dumps(payload, indent=2, default=lambda o: asdict(o)))
    return path
