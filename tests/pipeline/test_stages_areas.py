"""The per-area stage wrappers the DAG maps: each area lands and validates on its own; accept_areas gathers the
areas that passed and records the ones left out, and why."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from treatment_marts.core.ids import Period, RunId, area_run_id
from treatment_marts.core.settings import Settings
from treatment_marts.ingest.land import ExtractError
from treatment_marts.ops.synth import generate_extract, write_extract
from treatment_marts.pipeline.areas import accept_areas, land_area, plan_areas, validate_area
from treatment_marts.pipeline.record import run_dir

RUN = RunId.sanitise("manual__2024-04-02T00:00:00+00:00")  # an Airflow run id, made safe at the entry point
PERIOD = Period.parse("2024-03")


@pytest.fixture
def inbox_run(tmp_path: Path):
    settings = Settings.from_env(data_root=tmp_path)
    frame = generate_extract("2024-03", clients=600, areas=["Exborough", "Northton"], seed=41)
    inbox = tmp_path / "inbox" / "period=2024-03"
    write_extract(frame[frame["la_code"] == "E08900001"], inbox / "Exborough.csv")
    # Northton's file also carries two Exborough rows: an export fault the area check must catch
    northton = frame[frame["la_code"] == "E06900002"]
    write_extract(pd.concat([northton, frame[frame["la_code"] == "E08900001"].head(2)]), inbox / "E06900002.parquet")
    return settings, inbox


def test_areas_land_and_validate_separately_and_the_run_records_who_was_left_out(inbox_run) -> None:
    settings, inbox = inbox_run
    units = plan_areas(settings, PERIOD, RUN, inbox)
    assert [(u.unit, u.area_code) for u in units] == [("Exborough", "E08900001"), ("Northton", "E06900002")]

    landed = {u.unit: land_area(settings, PERIOD, RUN, u) for u in units}
    passed = validate_area(settings, PERIOD, RUN, landed["Exborough"])
    assert passed.unit == "Exborough"
    with pytest.raises(
        ExtractError, match=r"2 row\(s\) of this area's file carry another area's la_code \(E08900001: 2\)"
    ):
        validate_area(settings, PERIOD, RUN, landed["Northton"])

    accepted = accept_areas(settings, PERIOD, RUN, expected_areas=["Exborough", "Northton", "Southmoor"])
    assert accepted.included == ["Exborough"]
    assert [(e.unit, e.stage) for e in accepted.excluded] == [("Northton", "validate"), ("Southmoor", "arrival")]
    assert "another area's la_code" in accepted.excluded[0].reason
    assert accepted.landed_paths == landed["Exborough"].landed_paths

    run = run_dir(settings, RUN)
    assert json.loads((run / "areas.json").read_text())["excluded"] == [e.to_dict() for e in accepted.excluded]
    assert [i["source"] for i in json.loads((run / "landed.json").read_text())["landed"]] == ["Exborough.csv"]
    current = settings.restricted_dir / "landed" / "period=2024-03" / "CURRENT.json"
    assert json.loads(current.read_text())["landed_paths"] == landed["Exborough"].landed_paths
    # each area worked under its own run id: no two mapped tasks wrote the same file
    assert (run_dir(settings, area_run_id(RUN, "Exborough")) / "validation.json").exists()


def test_no_area_passing_means_nothing_to_protect(inbox_run) -> None:
    settings, inbox = inbox_run
    (unit,) = plan_areas(settings, PERIOD, RUN, inbox / "E06900002.parquet")
    landed = land_area(settings, PERIOD, RUN, unit)
    with pytest.raises(ExtractError):
        validate_area(settings, PERIOD, RUN, landed)
    with pytest.raises(ExtractError, match=r"no area passed land and validate for 2024-03: Northton \(validate\)"):
        accept_areas(settings, PERIOD, RUN)
