"""A revision carries the earlier release's suppressions forward from the public release itself.

Regressions from the hostile-input round: with the restricted suppression-log link missing, a revision
published without carrying anything forward and an attack on both releases recovered a hidden cell (8);
a truncated log blocked every revision with an ArrowInvalid traceback.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from treatment_marts.core.config import load_areas, load_rules
from treatment_marts.core.labels import TOTAL
from treatment_marts.core.settings import Settings
from treatment_marts.disclosure.audit import audit
from treatment_marts.disclosure.relations import revision_relations, table_keys
from treatment_marts.disclosure.tables import MartTable, scoped_key, table_cell
from treatment_marts.marts import dimension_levels, load_marts
from treatment_marts.ops.synth import generate_extract, write_extract
from treatment_marts.pipeline.protect import EarlierReleaseUnreadable
from treatment_marts.pipeline.run import run_period

PERIOD = "2024-03"
AREAS = ["Exborough", "Northton"]  # the other configured areas send nothing: a partial release, and small


def _hidden(settings: Settings) -> dict[str, set[tuple]]:
    """Per public mart of the period, the rows it withholds (their dimension labels)."""
    out = {}
    for path in sorted((settings.public_dir / "marts").glob(f"*/period={PERIOD}/data.parquet")):
        frame = pd.read_parquet(path)
        dims = [c for c in frame.columns if c not in ("period", "count", "status", "percent")]
        out[path.parts[-3]] = set(frame.loc[frame["status"].eq("c").fillna(False), dims].itertuples(index=False))
    return out


@pytest.fixture(scope="module")
def first_release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    base = tmp_path_factory.mktemp("revisions")
    frame = generate_extract(PERIOD, clients=1500, areas=AREAS, seed=3)  # two areas: seconds, not minutes
    settings = Settings.from_env(data_root=base / "data")
    run_period(settings, PERIOD, write_extract(frame, base / "v1.csv"), run_id="release_v1")
    return base / "data", frame


def _copy(data: Path, tmp_path: Path) -> Settings:
    target = tmp_path / "data"
    shutil.copytree(data, target, symlinks=True)
    return Settings.from_env(data_root=target)


def test_a_revision_carries_forward_even_when_the_restricted_log_link_is_gone(first_release, tmp_path: Path) -> None:
    data, frame = first_release
    settings = _copy(data, tmp_path)
    before = _hidden(settings)
    (settings.restricted_dir / "suppression_log" / f"period={PERIOD}").unlink()  # the link, not the versions
    corrected = frame.drop(frame.index[::40])  # every 40th row: a correction that keeps every area
    run_period(settings, PERIOD, write_extract(corrected, tmp_path / "v2.csv"), run_id="release_v2")
    after = _hidden(settings)
    for mart, rows in before.items():
        if mart.startswith("unmet_need"):
            continue  # derived: withheld with its source mart
        assert rows <= after[mart], f"{mart}: {len(rows - after[mart])} cell(s) hidden before are published now"


def test_a_revision_whose_earlier_mart_cannot_be_read_is_refused_and_changes_nothing(
    first_release, tmp_path: Path
) -> None:
    data, frame = first_release
    settings = _copy(data, tmp_path)
    mart = settings.public_dir / "marts" / "in_treatment_ethnicity_area_substance" / f"period={PERIOD}"
    parquet = mart / "data.parquet"
    target = parquet.resolve()
    target.write_bytes(target.read_bytes()[:100])  # truncated on disk
    public_before = {p: p.read_bytes() for p in settings.public_dir.rglob("*") if p.is_file()}
    with pytest.raises(EarlierReleaseUnreadable, match="in_treatment_ethnicity_area_substance") as err:
        run_period(settings, PERIOD, write_extract(frame, tmp_path / "v2.csv"), run_id="release_v2")
    assert "restore" in str(err.value) and "Traceback" not in str(err.value)
    assert {p: p.read_bytes() for p in settings.public_dir.rglob("*") if p.is_file()} == public_before


# --- a corrected extract protected against the release it replaces (issue 13, "What to build" 3) -------------


def _public_tables(settings: Settings) -> dict[str, MartTable]:
    """The period's public marts (not derived ones) as tables, by name."""
    config = load_marts(
        settings.config_dir, set(dimension_levels(load_rules(settings.config_dir), load_areas(settings.config_dir)))
    )
    out = {}
    for definition in config.marts:
        path = settings.public_dir / "marts" / definition.name / f"period={PERIOD}" / "data.parquet"
        if definition.derived_from is None and path.exists():
            dims = list(definition.dimensions)
            frame = pd.read_parquet(path, columns=["period", *dims, "count", "status"])
            for column in ("period", *dims):
                frame[column] = frame[column].astype("string")
            out[definition.name] = (definition.population, MartTable(definition.name, tuple(dims), frame))
    return out


def _with_truth(settings: Settings, run_id: str, tables: dict) -> dict:
    """The tables with each withheld cell's true count (the run's restricted suppression log)."""
    log = pd.read_parquet(settings.restricted_dir / "runs" / run_id / "suppression_log.parquet")
    truth = {(m, c): v for m, c, v in zip(log["mart"], log["cell"], log["true_count"], strict=True)}
    out = {}
    for name, (population, table) in tables.items():
        dims = list(table.dimensions)
        cells = [table_cell(dict(zip(dims, row, strict=True))) for row in table.frame[dims].itertuples(index=False)]
        true = [truth.get((name, c)) for c in cells]
        frame = table.frame.assign(true_count=pd.array(true, dtype="Int64"))
        out[name] = (population, MartTable(name, table.dimensions, frame))
    return out


def _overlap(table: MartTable) -> dict[str, int]:
    """D of a table from its true counts: its areas' grand totals less its national one (issue 18)."""
    frame = table.frame
    counts = frame["count"].fillna(frame["true_count"])
    others = [d for d in table.dimensions if d != "area"]
    grand = frame[others].eq(TOTAL).all(axis=1)
    overlap = int(counts[grand & frame["area"].ne(TOTAL)].sum()) - int(counts[grand & frame["area"].eq(TOTAL)].sum())
    return {"area": overlap} if overlap > 0 else {}


@pytest.fixture(scope="module")
def small_release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    base = tmp_path_factory.mktemp("small_revision")
    frame = generate_extract(PERIOD, clients=1500, areas=AREAS, seed=4)  # two areas: the others send nothing
    settings = Settings.from_env(data_root=base / "data")
    run_period(settings, PERIOD, write_extract(frame, base / "v1.parquet"), run_id="small_v1")
    return base / "data", frame


def test_a_corrected_extract_is_protected_against_the_release_it_replaces(small_release, tmp_path: Path) -> None:
    """One client withdrawn from Exborough: an attacker holding both releases, who knows each area's
    cells moved by at most r (r from the true counts: at least as strong as knowing how few records
    changed), proves no withheld cell of the revision to be 0..3 (and the earlier release's withheld
    cells stay withheld). Before, a revision was protected only by carrying suppression forward, and one
    client removed gave a withheld cell as 3."""
    data, frame = small_release
    settings = _copy(data, tmp_path)
    before = _with_truth(settings, "small_v1", _public_tables(settings))
    exborough = frame[(frame["la_code"] == "E08900001") & frame["discharge_date"].isna()]
    gone = exborough.iloc[0][["first_initial", "surname_initial", "date_of_birth", "sex", "la_code"]]
    same = (frame[gone.index] == gone).all(axis=1)
    run_period(settings, PERIOD, write_extract(frame[~same], tmp_path / "v2.parquet"), run_id="small_v2")
    after = _public_tables(settings)
    held_after = _with_truth(settings, "small_v2", after)
    tables, scopes, relations, carried = [], [], [], set()
    for name, (population, table) in after.items():
        tables.append(replace(table, overlap=_overlap(held_after[name][1])))
        scopes.append(population)
        old = before[name][1]
        relations += revision_relations(population, [held_after[name][1]], f"earlier:{population}", [old])
        carried |= {
            scoped_key(population, key)
            for key in table_keys([replace(old, frame=old.frame[old.frame["count"].isna()])])
        }
    olds = [replace(t, frame=t.frame.drop(columns=["true_count"]), overlap=_overlap(t)) for _, t in before.values()]
    old_scopes = [f"earlier:{p}" for p, _ in before.values()]
    result = audit(
        tables + olds,
        scopes=scopes + old_scopes,
        relations=relations,
        carried=carried,
        report=range(len(tables)),
        small_only=True,
    )
    assert len(result.intervals) and result.passed, result.intervals[result.intervals["disclosed"]].head()
    # The IG reviewer is told the rule the revision was audited under and what it accepted: how many withheld
    # cells the attacker holding both releases pins above k (none within 1..k), in the restricted manifest
    # and the IG report, never in the public manifest.
    staged = settings.restricted_dir / "runs" / "small_v2"
    manifest = json.loads((staged / "run_manifest.json").read_text())
    revision = manifest["revision_audit"]
    intervals = pd.read_parquet(staged / "audit_intervals.parquet")
    pinned = intervals[(intervals["lower"] == intervals["upper"]) & (intervals["upper"] > 3)]
    pinned = pinned[pinned["reason"] != "published in the earlier release"]
    assert revision["cells_pinned_above_k"] == len(pinned)
    assert revision["marts_with_pinned_cells"] == sorted(pinned["mart"].unique())
    public = json.loads((settings.public_dir / "releases" / f"period={PERIOD}" / "manifest.json").read_text())
    assert "revision_audit" not in public
    pages = [p.read_text() for p in settings.restricted_dir.rglob("*.html") if "small_v2" in str(p)]
    assert any('id="revision-audit"' in page and "sensitive-cell rule" in page for page in pages), "IG report"
    for name, (_, old) in before.items():
        hidden_before = old.frame["count"].isna().to_numpy()
        assert after[name][1].frame["count"].isna().to_numpy()[hidden_before].all(), name


def test_the_revision_audit_counts_complementary_cells_pinned_above_k_but_not_cells_already_public() -> None:
    from treatment_marts.pipeline.protect import revision_audit

    intervals = pd.DataFrame(
        {
            "mart": ["a", "a", "b", "b", "c"],
            "cell": ["1", "2", "3", "4", "5"],
            "lower": pd.array([7, 4, 12, 2, 9], dtype="Int64"),
            "upper": pd.array([7, 9, 12, 8, 9], dtype="Int64"),
            "reason": ["", "", "", "", "published in the earlier release"],
        }
    )
    found = revision_audit(intervals, k=3)
    assert found["cells_pinned_above_k"] == 2 and found["marts_with_pinned_cells"] == ["a", "b"]
    assert "0..3" in found["rule"]
