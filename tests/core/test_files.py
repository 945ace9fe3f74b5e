"""write_private stays atomic when several writers replace the same file at once (mapped DAG tasks do)."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

from treatment_marts.core.files import write_private


def test_concurrent_writers_of_one_file_never_fail_and_leave_one_whole_payload(tmp_path: Path) -> None:
    target = tmp_path / "restricted" / "CURRENT.json"
    payloads = [f"writer {i} ".encode() * 2000 for i in range(6)]
    errors: list[BaseException] = []

    def write(payload: bytes) -> None:
        try:
            for _ in range(40):
                write_private(target, payload)
        except BaseException as exc:  # noqa: BLE001 - the test reports any failure
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_bytes() in payloads
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["CURRENT.json"], "no temporary file left behind"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_dirs_are_owner_only_from_top_down_whatever_the_umask(tmp_path: Path) -> None:
    """mkdir(parents=True, mode=0o700) applies the mode to the last folder only: restricted/ was left 0755."""
    import os

    from treatment_marts.core.files import make_private_dirs

    root = tmp_path / "data"
    previous = os.umask(0o002)
    try:
        leaf = make_private_dirs(root / "restricted" / "landed" / "period=2024-03", top=root / "restricted")
    finally:
        os.umask(previous)
    assert leaf.is_dir()
    for folder in (root / "restricted", root / "restricted" / "landed", leaf):
        assert _mode(folder) == 0o700, folder
    assert _mode(root) != 0o700, "above top (the data root, which holds public/): default permissions"


def test_private_dirs_refuse_a_path_outside_top(tmp_path: Path) -> None:
    import pytest

    from treatment_marts.core.files import make_private_dirs

    with pytest.raises(ValueError, match="not inside"):
        make_private_dirs(tmp_path / "public" / "x", top=tmp_path / "restricted")


def test_write_private_creates_every_missing_folder_owner_only(tmp_path: Path) -> None:
    target = tmp_path / "restricted" / "runs" / "r1" / "result.json"
    write_private(target, b"{}")
    for folder in (tmp_path / "restricted", tmp_path / "restricted" / "runs", target.parent):
        assert _mode(folder) == 0o700, folder
    assert _mode(target) == 0o600


def test_a_failed_private_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    import pytest

    target = tmp_path / "restricted" / "big.bin"
    target.parent.mkdir()
    (tmp_path / "restricted" / "big.bin").mkdir()  # os.replace onto a folder fails after the data is written
    with pytest.raises(OSError):
        write_private(target, b"x" * 10_000)
    assert [p.name for p in target.parent.iterdir()] == ["big.bin"]


def test_a_private_write_on_a_fresh_data_root_leaves_the_data_root_default(tmp_path: Path) -> None:
    """The data root also holds public/: only the restricted zone a file lies in becomes owner-only."""
    import os

    from treatment_marts.core.settings import Settings

    settings = Settings.from_env(data_root=tmp_path / "fresh")
    previous = os.umask(0o022)
    try:
        write_private(settings.restricted_dir / "runs" / "r1" / "areas" / "x.json", b"{}")
        write_private(settings.quarantine_dir / "period=2024-03" / "q.parquet", b"")
    finally:
        os.umask(previous)
    assert _mode(settings.data_root) == 0o755
    for folder in (settings.restricted_dir, settings.restricted_dir / "runs", settings.quarantine_dir):
        assert _mode(folder) == 0o700, folder
