"""Hand freed memory back to the operating system between in-process stages.

A stage frees its frames when it returns, but the allocators keep the pages: glibc's heap (NumPy, pandas)
and Arrow's own pool (mimalloc) do not share free memory with each other, so the next stage's allocations
land on new pages and the process peaks at the sum of both. In Airflow every task is its own process and
this does not arise; `treatment-marts run` (one process) releases between stages instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc


def release_memory() -> None:
    """Collect garbage, release Arrow's unused pool memory and trim glibc's heap (no-op where absent)."""
    gc.collect()
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except (ImportError, AttributeError):
        pass
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)
