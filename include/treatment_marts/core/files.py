"""Restricted-zone file writes: atomic (write a temporary file, then rename) and owner-only from the start."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, and only the owner can read it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # One temporary name per writer: mapped tasks (one process each) may replace the same file at once.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
