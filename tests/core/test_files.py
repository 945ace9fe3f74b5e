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
