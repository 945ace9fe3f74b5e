"""Every public artefact of a release moves together or not at all: the exports are staged with the marts,
the warehouse rows and the manifest, and swapped with them; stale staging folders go at the next publish."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from treatment_marts.core.settings import Settings
from treatment_marts.publish.release import PublishError, publish_release

P1 = "2024-03"
MARTS = ("m_area", "m_sex")


def mart() -> pd.DataFrame:
    """A tiny mart in the mart format (no suppressed cell: what is published does not matter here)."""
    return pd.DataFrame(
        {
            "period": pd.array([P1] * 3, dtype="string"),
            "area": pd.array(["Exborough", "Northton", "Total"], dtype="string"),
            "count": pd.array([10, 12, 22], dtype="Int64"),
            "status": pd.array([None, None, None], dtype="string"),
        }
    )


def publish_with_exports(settings: Settings, run_id: str, text: str):
    def write_exports(folder: Path) -> None:
        (folder / "csv").mkdir()
        (folder / "csv" / "m_area.csv").write_text(text)

    return publish_release(
        settings,
        period=P1,
        run_id=run_id,
        marts={name: mart() for name in MARTS},
        suppression_log=pd.DataFrame({"mart": pd.array([], dtype="string"), "cell": pd.array([], dtype="string")}),
        manifest={"ruleset_sha256": "a" * 64},
        exports=write_exports,
    )


def test_the_exports_are_published_with_the_marts_under_the_same_version(tmp_path: Path) -> None:
    settings = Settings.from_env(data_root=tmp_path / "data")
    result = publish_with_exports(settings, "run1", "first")
    exports = settings.public_dir / "exports" / f"period={P1}"
    assert result.exports_path == exports
    assert (exports / "csv" / "m_area.csv").read_text() == "first"
    mart_version = os.readlink(settings.public_dir / "marts" / "m_area" / f"period={P1}")
    assert Path(os.readlink(exports)).name == Path(mart_version).name  # one version, one release


def test_a_failed_publish_leaves_the_previous_exports_in_place(tmp_path: Path) -> None:
    root = tmp_path / "data"
    publish_with_exports(Settings.from_env(data_root=root), "run1", "first")
    down = Settings.from_env(data_root=root, restricted_warehouse_url="postgresql+psycopg://ig@127.0.0.1:9/restricted")
    with pytest.raises(PublishError, match="cannot connect"):
        publish_with_exports(down, "run2", "second")
    exports = root / "public" / "exports"
    assert (exports / f"period={P1}" / "csv" / "m_area.csv").read_text() == "first"
    staged = [p.name for p in (exports / ".releases" / f"period={P1}").iterdir()]
    assert all(name.startswith("run1.") for name in staged), staged  # run2's staged exports were removed


def test_a_stale_staging_folder_is_cleaned_at_the_next_publish(tmp_path: Path) -> None:
    settings = Settings.from_env(data_root=tmp_path / "data")
    stale = settings.public_dir / "exports" / f".period={P1}.crashed_run.tmp"
    (stale / "csv").mkdir(parents=True)
    (stale / "csv" / "m_area.csv").write_text("half-written")
    other = settings.public_dir / "exports" / ".period=2023-11.older.tmp"
    other.mkdir()
    publish_with_exports(settings, "run1", "first")
    assert not stale.exists() and not other.exists()
    assert not list((settings.public_dir / "exports").glob(".period=*"))
