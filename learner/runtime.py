"""Process-wide compute settings of a training process: threads, allocator, matmul precision."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

import torch

log = logging.getLogger(__name__)

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Let glibc reuse freed tensor memory instead of returning it to the kernel.

    A CPU update allocates and frees the same few-MB activations hundreds of times a
    second. By default glibc serves each from a fresh ``mmap`` whose pages fault in on
    first touch, which costs more than the arithmetic (a ReLU over [5, 512, 256] takes
    ~4x longer). Raising the mmap and trim thresholds keeps those blocks in the heap.
    Returns False where the C library has no ``mallopt`` (not glibc).
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, 2 * _KEEP_BYTES - 1)
    )
    log.debug("glibc mallopt thresholds raised: %s", ok)
    return ok


def configure(
    device: torch.device, threads: int | None, *, tf32: bool = True, overlap: bool = False
) -> None:
    """Threads and allocator on the CPU; TF32 matmuls and convolutions on CUDA (``tf32``).

    ``threads`` None on the CPU with ``overlap`` (a learner thread beside the env loop):
    one core is left to the env loop (torch's default would take every core for the
    updates, and the two would fight over them; on 2 cores that is 1 torch thread).
    """
    if threads is None and overlap and device.type == "cpu":
        threads = max(1, (os.cpu_count() or 1) - 1)
    if threads:
        torch.set_num_threads(threads)
    if device.type == "cpu":
        keep_freed_memory()
    else:
        set_tf32(tf32)


def set_tf32(enabled: bool) -> None:
    """TF32 tensor-core matmuls and convolutions on CUDA (fp32 storage, 10-bit mantissa
    products): the default of every learner process on CUDA (``learner.tf32``)."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
