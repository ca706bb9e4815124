"""Host memory reuse between training steps (``backends.reuse_host_memory``).

glibc's malloc serves every block over its mmap threshold (at most 32 MB) with a fresh ``mmap`` and returns it to
the kernel on ``free``. A CPU fooling step allocates such blocks several times per step (VGG19: fc1's 411 MB weight
gradient from CE, again from the penalty's second-order pass, their sum, Adam's temporaries), and every page of
each is faulted in and zeroed by the kernel again. ``mallopt(M_MMAP_MAX, 0)`` serves them from the heap instead and
``mallopt(M_TRIM_THRESHOLD, -1)`` keeps freed memory there for the next step. The arithmetic is unchanged (the same
kernels on the same, equally aligned data); the process keeps its peak resident memory until it exits.
Measured (BENCHMARKS.md, table (e)): VGG19's 224 x 224 Location / Grad-CAM step 3.2 s -> 1.8 s on a 2-core AMD EPYC,
2.20 s (1.95-2.64 between processes) -> 1.38 s on a 2-core Intel Xeon.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD = -1    # glibc malloc.h
M_MMAP_MAX = -4


@functools.lru_cache(maxsize=1)
def _glibc():
    """The C library when it is glibc (``gnu_get_libc_version`` exists), else None (musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version
    except (OSError, AttributeError):
        return None
    return libc


def reuse_host_memory(enabled: bool) -> str:
    """Keep large host blocks in glibc's heap and freed memory for reuse (``enabled``), or leave malloc as it is.
    Returns what was done, one line for the run's log. Idempotent; it cannot be undone within the process
    (``enabled=False`` does not restore glibc's defaults after an earlier ``True``)."""
    if not enabled:
        return "backends.reuse_host_memory=false: glibc malloc left at its defaults"
    libc = _glibc()
    if libc is None:
        return "backends.reuse_host_memory=true has no effect here: the C library is not glibc"
    ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, -1) == 1
    if not ok:
        raise RuntimeError("backends.reuse_host_memory=true: glibc's mallopt refused M_MMAP_MAX=0 / "
                           "M_TRIM_THRESHOLD=-1; allowed: false")
    return "backends.reuse_host_memory=true: glibc malloc keeps large blocks and freed memory in its heap"
