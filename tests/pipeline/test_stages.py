"""The whole pipeline in-process: what the CLI and every DAG run do, on a small synthetic month."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from treatment_marts.core.settings import Settings
from treatment_marts.ops.synth import generate_extract, write_extract
from treatment_marts.pipeline.run import run_period

SENDING = ["Exborough", "Northton", "Little Haven"]
PERIOD = "2024-03"


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    # three areas, one of them tiny (Little Haven): every stage and a month that needs suppression, without
    # the eight-area disclosure workload (the benchmarks and tests/pipeline/test_combined_missing_area.py keep it)
    frame = generate_extract(PERIOD, clients=1500, areas=SENDING, seed=7)
    path = write_extract(frame, tmp_path_factory.mktemp("inbox") / "extract.csv")
    return path, frame


@pytest.fixture(scope="module")
def published(extract: tuple[Path, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict]:
    settings = Settings.from_env(data_root=tmp_path_factory.mktemp("data"))
    return settings, run_period(settings, PERIOD, extract[0], run_id="test_run_1")


def test_every_mart_is_published_with_no_small_count(published: tuple[Settings, dict]) -> None:
    settings, result = published
    marts = result.publish.marts
    assert "in_treatment_substance_area_sex" in marts
    for name in marts:
        frame = pd.read_parquet(settings.public_dir / "marts" / name / f"period={PERIOD}")
        assert {"period", "count", "status"} <= set(frame.columns)
        published_counts = frame["count"].dropna()
        assert not ((published_counts >= 1) & (published_counts <= 3)).any(), name
        assert (frame.loc[frame["count"].isna(), "status"] == "c").all()
        assert frame.loc[frame["count"].notna(), "status"].isna().all()


def test_margins_and_suppression_are_consistent(published: tuple[Settings, dict]) -> None:
    settings, _ = published
    mart = pd.read_parquet(settings.public_dir / "marts" / "in_treatment_substance_area_sex" / f"period={PERIOD}")
    grand = mart[(mart.area == "Total") & (mart.substance_group == "Total") & (mart.sex == "Total")]["count"].iloc[0]
    assert 1000 < grand < 2250  # roughly the clients asked for (in-month churn and consent exclusions aside)
    assert mart["status"].eq("c").any(), "a realistic month with a tiny area must need some suppression"


def test_restricted_outputs_hold_the_true_values(published: tuple[Settings, dict]) -> None:
    settings, result = published
    log = pd.read_parquet(result.publish.suppression_log)
    assert {"mart", "cell", "true_count", "suppression"} <= set(log.columns)
    assert set(log["suppression"]) <= {"primary", "secondary"}
    assert Path(result.publish.suppression_log).is_relative_to(settings.restricted_dir)
    assert log.loc[log["suppression"] == "primary", "true_count"].between(1, 3).all()
    report = Path(result.publish.ig_report).read_text()
    assert "Disclosure audit passed" in report and "RESTRICTED" in report


def test_manifest_records_inputs_and_rules(
    published: tuple[Settings, dict], extract: tuple[Path, pd.DataFrame]
) -> None:
    settings, result = published
    manifest = json.loads(
        (
            settings.public_dir / "marts" / "in_treatment_substance_area_sex" / f"period={PERIOD}" / "_manifest.json"
        ).read_text()
    )
    assert manifest["run_id"] == "test_run_1" and manifest["period"] == PERIOD
    assert len(manifest["ruleset_sha256"]) == 64 and manifest["package_version"]
    import hashlib

    assert manifest["inputs"][0]["sha256"] == hashlib.sha256(extract[0].read_bytes()).hexdigest()


def test_warehouse_has_the_marts(published: tuple[Settings, dict]) -> None:
    settings, result = published
    db = settings.warehouse_url.removeprefix("sqlite:///")
    with sqlite3.connect(db) as con:
        tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
        assert set(result.publish.marts) <= tables
        assert "suppression_log" not in tables  # restricted data lives elsewhere
        rows = con.execute(
            "select count(*) from in_treatment_substance_area_sex where period = ?", (PERIOD,)
        ).fetchone()[0]
    assert rows == len(
        pd.read_parquet(settings.public_dir / "marts" / "in_treatment_substance_area_sex" / f"period={PERIOD}")
    )


def test_no_identifier_reaches_a_public_artefact(
    published: tuple[Settings, dict], extract: tuple[Path, pd.DataFrame]
) -> None:
    settings, _ = published
    frame = extract[1]
    needles = set(frame["client_ref"].dropna().astype(str))
    needles |= set(frame["partial_postcode"].dropna().astype(str))
    dobs = frame["date_of_birth"].dropna()
    needles |= set(dobs.dt.strftime("%Y-%m-%d")) | set(dobs.dt.strftime("%d/%m/%Y")) | set(dobs.dt.strftime("%Y%m%d"))
    public_files = [p for p in settings.public_dir.rglob("*") if p.is_file()] + [
        Path(settings.warehouse_url.removeprefix("sqlite:///"))
    ]
    assert public_files
    for path in public_files:
        if path.suffix == ".xlsx":
            import zipfile

            text = "".join(
                zipfile.ZipFile(path).read(n).decode("utf-8", "ignore") for n in zipfile.ZipFile(path).namelist()
            )
        else:
            text = path.read_bytes().decode("utf-8", "ignore")
        found = [n for n in needles if n in text]
        assert not found, f"{path.name} contains {len(found)} identifier value(s)"


def test_rerun_gives_byte_identical_marts(published: tuple[Settings, dict], extract: tuple[Path, pd.DataFrame]) -> None:
    settings, first = published
    before = {name: Path(path).read_bytes() for name, path in first.publish.marts.items()}
    second = run_period(settings, PERIOD, extract[0], run_id="test_run_2")
    after = {name: Path(path).read_bytes() for name, path in second.publish.marts.items()}
    assert before == after


def test_bad_extract_publishes_nothing_and_keeps_the_previous_release(
    published: tuple[Settings, dict], extract: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    from treatment_marts.validation.gx_runner import ValidationFailed

    settings, _ = published
    snapshot = {p: p.read_bytes() for p in settings.public_dir.rglob("*") if p.is_file()}
    bad = extract[1].copy()
    bad.loc[bad.index[:5], "sex"] = "X"
    path = write_extract(bad, tmp_path / "bad.csv")
    with pytest.raises(ValidationFailed) as err:
        run_period(settings, PERIOD, path, run_id="bad_run")
    assert "sex" in str(err.value)
    assert {p: p.read_bytes() for p in settings.public_dir.rglob("*") if p.is_file()} == snapshot
    assert list((settings.raw_dir / f"period={PERIOD}").glob("bad.*.csv")), "the raw file is kept"


def test_validation_results_are_recorded_in_the_restricted_warehouse(published: tuple[Settings, dict]) -> None:
    from treatment_marts.publish.warehouse import read_table, table_names

    settings, _ = published
    assert "validation_results" not in table_names(settings.warehouse_url)
    results = read_table(settings.restricted_warehouse_url, "validation_results", restricted=True)
    mine = results[results["run_id"] == "test_run_1"]
    assert len(mine) > 90 and mine["success"].all()
    assert {"expectation", "column_name", "severity", "unexpected_count", "rule"} <= set(mine.columns)


def test_a_revised_release_keeps_every_cell_the_earlier_release_suppressed(tmp_path: Path) -> None:
    """Across releases: re-publishing a period after a correction cannot be differenced against the first."""
    from treatment_marts.disclosure.protect import CARRIED_RULE
    from treatment_marts.pipeline.protect import suppressed_in_current_release

    settings = Settings.from_env(data_root=tmp_path / "data")
    # two areas (the others send nothing: a partial release): a revision of all eight is protected against
    # the release it replaces as one system, minutes rather than seconds (docs/performance.md)
    frame = generate_extract(PERIOD, clients=1500, areas=["Exborough", "Northton"], seed=3)
    run_period(settings, PERIOD, write_extract(frame, tmp_path / "v1.csv"), run_id="release_v1")
    first = suppressed_in_current_release(settings, PERIOD)
    assert first and None not in first, "keys are carried per population"
    corrected = frame.drop(frame.index[::40])  # the provider resends the month with every 40th episode withdrawn
    run_period(settings, PERIOD, write_extract(corrected, tmp_path / "v2.csv"), run_id="release_v2")
    second = suppressed_in_current_release(settings, PERIOD)
    for population, keys in first.items():
        assert keys <= second[population], (
            f"{population}: a cell hidden in the first release is published in the revision"
        )
    log = pd.read_parquet(settings.restricted_dir / "suppression_log" / f"period={PERIOD}" / "suppression_log.parquet")
    assert (log["run_id"] == "release_v2").all()
    assert log["rule"].eq(CARRIED_RULE).any() or log["suppression"].eq("primary").sum() >= sum(map(len, first.values()))


def test_the_record_level_product_is_written_restricted_and_in_the_ig_report(published: tuple[Settings, dict]) -> None:
    settings, result = published
    folder = settings.restricted_dir / "record_level" / f"period={PERIOD}"
    product = pd.read_parquet(folder / "record_level.parquet")
    assert len(product) > 0 and not {"client_ref", "date_of_birth", "partial_postcode"} & set(product.columns)
    assert oct((folder / "record_level.parquet").stat().st_mode & 0o777) == oct(0o600)
    report = Path(result.publish.ig_report).read_text()
    assert "Record-level extract" in report and "Naive K3 deletion" in report
