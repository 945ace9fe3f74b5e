"""Restricted-zone files and folders: owner-only from creation, written atomically, nothing left behind on failure.

Why from creation: ``mkdir(parents=True, mode=0o700)`` applies the mode to the last folder only, so a first
run that failed before publishing left ``restricted/`` 0755 (world-listable) for ever after. Every folder
of the restricted zones (raw, restricted, quarantine) is made with :func:`make_private_dirs`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# Folder names of the data root's restricted zones (Settings.raw_dir, restricted_dir, quarantine_dir are
# data_root / these): a private write below one makes that zone and everything under it owner-only, and
# leaves the data root (which also holds public/) with the default permissions.
RAW_ZONE, RESTRICTED_ZONE, QUARANTINE_ZONE = "raw", "restricted", "quarantine"
PRIVATE_ZONES = (RAW_ZONE, RESTRICTED_ZONE, QUARANTINE_ZONE)


def private_top(path: Path) -> Path | None:
    """The restricted zone folder ``path`` lies in (its innermost ancestor named as a zone), or None."""
    return next((p for p in [Path(path), *Path(path).parents] if p.name in PRIVATE_ZONES), None)


def make_private_dirs(path: Path, top: Path | None = None) -> Path:
    """Create the folder ``path``; every folder created from ``top`` down (or, without ``top``, every missing
    folder) is owner-only (0o700) whatever the umask. Folders above ``top`` get the default permissions (the
    data root also holds the public zone); folders that already exist are left as they are.
    """
    path = Path(path)
    if top is not None:
        top = Path(top)
        if path != top and top not in path.parents:
            raise ValueError(f"{path} is not inside {top}")
        top.parent.mkdir(parents=True, exist_ok=True)
        chain = [path, *(p for p in path.parents if p == top or top in p.parents)]
    else:
        chain = [path, *path.parents]
    missing = [folder for folder in chain if not folder.exists()]
    for folder in reversed(missing):  # outermost first
        with contextlib.suppress(FileExistsError):  # another writer made it meanwhile
            folder.mkdir(mode=PRIVATE_DIR_MODE)
            os.chmod(folder, PRIVATE_DIR_MODE)  # mkdir's mode is filtered by the umask
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a folder")
    return path


def write_private(path: Path, data: bytes, top: Path | None = None) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, and only the owner can read it.

    Missing folders are created owner-only (see :func:`make_private_dirs`): from ``top`` down, by default from
    the restricted zone the path lies in (:func:`private_top`), else every missing folder. On any failure (a
    full disk, a read-only folder) the temporary file is removed and the ``OSError`` propagates.
    """
    make_private_dirs(path.parent, top if top is not None else private_top(path.parent))
    # One temporary name per writer: mapped tasks (one process each) may replace the same file at once.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
