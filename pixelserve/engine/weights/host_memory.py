"""Host memory on a CPU device: freed tensor memory kept for reuse, not page-faulted back every step.

A denoising step on a CPU allocates and frees tensors of tens of MiB (a full-size SD 1.5 UNet's
self-attention at 256x256 alone makes 64 MiB score matrices). glibc's malloc serves blocks that large
with ``mmap`` and hands them back to the kernel with ``munmap`` when freed, and a thread other than the
main one (the engine's device thread) has its own arena whose heaps it trims as well. So every step
asks the kernel for the same memory again and page-faults it in, zero-filled, one 4 KiB page at a
time: about 460,000 page faults per UNet step and 440,000 per VAE decode at 256x256
(bench/perf.py's ``cpu_fullsize`` row reports them per image).

``retain()`` sets glibc's malloc, for the whole process, to serve everything from one heap
(``M_ARENA_MAX`` 1, ``M_MMAP_MAX`` 0) and never to trim it on its own (``M_TRIM_THRESHOLD``): the next
step reuses the blocks the last one freed, with no page faults once warm. The process keeps its
peak memory mapped instead of giving it back after each step (it needed it at every step anyway).
``release()`` (``malloc_trim``) hands the free part back to the kernel where memory really was freed
for good: after a model is unloaded and after an out-of-memory error (engine/weights/gc_freeze.py).

This is the tuning jemalloc or tcmalloc give a CPU inference process through ``LD_PRELOAD`` (the
PyTorch CPU performance guide's advice), done in-process so that ``pixelserve serve`` needs no
launcher. Python has no binding for ``mallopt``/``malloc_trim``, hence ctypes. Other C libraries
(musl, macOS): both are no-ops.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import threading

log = logging.getLogger(__name__)

# <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
INT_MAX = 2**31 - 1

_lock = threading.Lock()
_retained = False


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the C library this process runs on
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()  # glibc only: musl has no such function
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


def retained() -> bool:
    """Whether ``retain()`` has switched this process's malloc."""
    return _retained


def retain() -> bool:
    """Keep freed memory for reuse (process-wide, once); False where the C library is not glibc.

    Effective in full only before any other thread has allocated: glibc fixes its arena limit at
    the first thread's first allocation, and a thread's own arena still hands blocks of 64 MiB and
    more back to the kernel. So the engine calls it when it is built (LocalEngine), which in a
    server, the process engine's worker and a benchmark comes before any thread runs; called later
    (a test process), it still keeps the main heap and every arena untrimmed.
    """
    global _retained
    with _lock:
        if _retained:
            return True
        libc = _glibc()
        if libc is None:
            log.info("not glibc: host memory left to the C library's defaults")
            return False
        ok = all(libc.mallopt(param, value) == 1 for param, value in (
            (M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, INT_MAX)))
        _retained = ok
        if not ok:
            log.warning("glibc refused a mallopt setting: host memory partly at its defaults")
        return ok


def release() -> bool:
    """Hand the heap's free memory back to the kernel (``malloc_trim(0)``); False where not glibc."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
