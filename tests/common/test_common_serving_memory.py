"""keep_freed_memory: with glibc's thresholds fixed, a request-sized buffer allocated and freed
over and over is reused, not mapped afresh (a page fault every 4 kB) each time."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import textwrap

import pytest

# Run in a child: the thresholds are the whole process's, and the child first forces the bad
# case that about one service process in four fell into by chance (benchmarks/README.md).
CHILD = textwrap.dedent("""
    import ctypes, json, resource
    from common.serving.memory import M_MMAP_THRESHOLD, keep_freed_memory

    def faults_per_buffer():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(50):
            buffer = bytearray(1 << 20)  # 1 MiB, every page written (zeroed)
            del buffer
        return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 50

    libc = ctypes.CDLL(None)
    forced = libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1  # fixed at glibc's starting value
    unlucky = faults_per_buffer()
    kept = keep_freed_memory()
    print(json.dumps({"forced": forced, "unlucky": unlucky, "kept": kept,
                      "after": faults_per_buffer()}))
""")


@pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc",
    reason="malloc is not glibc's here (macOS, musl, Windows): keep_freed_memory leaves it alone",
)
def test_freed_buffers_are_reused_instead_of_mapped_again() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["forced"] and result["kept"]
    assert result["unlucky"] >= 200  # 256 pages of 4 kB, mapped and faulted in every time
    assert result["after"] < 5
