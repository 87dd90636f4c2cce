"""How a service's process uses glibc's malloc: freed memory is kept for the next request.

By default glibc hands freed memory back to the kernel when more than a threshold of it lies
free at the top of the heap, and serves blocks above another threshold with a fresh `mmap`
each time. Both thresholds move with what the process has allocated and freed so far, so
whether a request's buffers are reused or unmapped and mapped again depends on the process's
history. A request that gets fresh pages pays a page fault for every 4 kB it touches.

Measured on the vision service (benchmarks/README.md): about one server in four, started
alike, took ~200 page faults a request, every request of its life (the 640x480 photo's
decoded pixels, ~0.9 MB, mapped afresh each time), and answered ~0.9 ms slower than the
others; fixing both thresholds in that running server brought it to 0.03 faults and the
others' speed. Fixed thresholds also switch glibc's adjustments off, so every process behaves
the same. The cost: up to `trim_bytes` of freed memory may stay in the process after a large
batch instead of going back to the kernel.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

# mallopt's parameter numbers, from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MiB = 1024 * 1024


def keep_freed_memory(trim_bytes: int = 128 * MiB, mmap_bytes: int = 32 * MiB) -> bool:
    """Fix glibc's trim and mmap thresholds for this process; False where malloc is not
    glibc's (macOS, musl), which is left as it is.

    Blocks under `mmap_bytes` come from the heap and are reused; free memory at the top of the
    heap goes back to the kernel only beyond `trim_bytes`. A 40-megapixel photo (120 MB) is
    still mapped and unmapped on its own."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # no C library found, or no mallopt in it
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success and 0 for a value it refuses (older glibc versions refuse an
    # mmap threshold above 32 MiB on 64-bit machines, hence that default). The mmap threshold
    # first: if it is refused, nothing has been changed.
    if mallopt(M_MMAP_THRESHOLD, mmap_bytes) != 1:
        logger.warning("malloc refused an mmap threshold of %d bytes: left as it was", mmap_bytes)
        return False
    if mallopt(M_TRIM_THRESHOLD, trim_bytes) != 1:
        logger.warning("malloc refused a trim threshold of %d bytes", trim_bytes)
        return False
    return True
