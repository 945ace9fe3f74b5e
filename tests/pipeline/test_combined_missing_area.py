"""A combined national file that holds no episode of an area: the area sent nothing, so it is left out of the
release (no rows, manifest partial and naming it), never published as an area of zeros; the DAG's record of
the run (areas.json, read by `all_areas_included`) names it, so the run ends failed."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from treatment_marts.core.ids import Period, RunId
from treatment_marts.core.settings import Settings
from treatment_marts.ops.synth import generate_extract, write_extract
from treatment_marts.pipeline.areas import accept_areas, land_area, plan_areas, validate_area
from treatment_marts.pipeline.protect import protect
from treatment_marts.pipeline.run import run_period

PERIOD = Period.parse("2024-03")
MISSING = "Exborough"
MISSING_CODE = "E08900001"


def _combined_without_one_area(root) -> object:
    frame = generate_extract(PERIOD, clients=1200, seed=11)
    assert (frame["la_code"] == MISSING_CODE).any(), "the generator puts clients in every area"
    path = root / "inbox" / "extract.csv"
    write_extract(frame[frame["la_code"] != MISSING_CODE], path)
    return path


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("combined")
    settings = Settings.from_env(data_root=root / "data")
    run_period(settings, PERIOD, _combined_without_one_area(root), RunId.parse("cli_run"))
    return settings


def test_no_mart_shows_the_missing_area_as_zeros(released: Settings) -> None:
    marts = sorted((released.public_dir / "marts").glob(f"*/period={PERIOD}/data.parquet"))
    by_area = [p for p in marts if "area" in pd.read_parquet(p).columns]
    assert by_area
    for path in by_area:
        areas = set(pd.read_parquet(path)["area"].astype(str))
        assert MISSING not in areas, path.parent.parent.name
        assert "Northton" in areas, path.parent.parent.name  # the areas the file holds are published


def test_the_release_says_it_is_partial_and_names_the_missing_area(released: Settings) -> None:
    manifest = json.loads((released.public_dir / "releases" / f"period={PERIOD}" / "manifest.json").read_text())
    assert manifest["partial"] is True
    assert manifest["areas_left_out"] == [MISSING]


def test_the_dag_run_record_names_the_missing_area(tmp_path) -> None:
    settings = Settings.from_env(data_root=tmp_path / "data")
    run = RunId.parse("dag_run")
    inbox = _combined_without_one_area(tmp_path).parent
    for unit in plan_areas(settings, PERIOD, run, inbox):
        validate_area(settings, PERIOD, run, land_area(settings, PERIOD, run, unit))
    accepted = accept_areas(settings, PERIOD, run)
    assert [(e.unit, e.stage) for e in accepted.excluded] == [(MISSING, "validate")]
    assert "no episode" in accepted.excluded[0].reason
    staged = protect(settings, PERIOD, run, accepted.landed_paths)
    manifest = json.loads((staged.staged_dir / "run_manifest.json").read_text())
    assert manifest["areas_left_out"] == [MISSING]
