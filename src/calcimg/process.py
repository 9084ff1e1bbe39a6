"""Process-wide set-up for the processes that analyse films (the ``calcimg`` command,
batch workers, benchmarks). Kept apart from :mod:`calcimg.batch` so that every command
can call it at start-up without importing the batch machinery."""

from __future__ import annotations

import sys

__all__ = ["steady_allocator"]


def steady_allocator() -> None:
    """Keep freed memory in the process for the next film (glibc on Linux; else nothing).

    glibc hands large blocks to ``mmap`` and raises that threshold as such blocks are
    freed; after some decoders' buffers (JPEG 2000) the analysis's film-sized arrays come
    from fresh pages again and pay the page faults: the 9 MP JPEG 2000 film's detect took
    566 ms against 300 ms for the same pixels from an uncompressed file
    (``scripts/bench.py``). With a fixed 1 GB mmap and trim threshold the arrays are
    reused from the heap: bench.py's bytes per pixel stay at 32-37, a batch's peak RSS
    rises by 5-7 % (the README has the figures).
    """
    import ctypes

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 1 << 30)
        libc.mallopt(m_trim_threshold, 1 << 30)
    except (OSError, AttributeError):  # not glibc (musl, ...): keep its defaults
        return
