"""A release that leaves areas out (one failed validation, one sent nothing) says so, and never shows them
as zeros: no row for either area in any mart, warehouse table or export, and the manifests name both."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest

from treatment_marts.core.ids import Period, RunId
from treatment_marts.core.settings import Settings
from treatment_marts.ingest.land import ExtractError
from treatment_marts.ops.synth import generate_extract, write_extract
from treatment_marts.pipeline.areas import accept_areas, land_area, plan_areas, validate_area
from treatment_marts.pipeline.protect import protect
from treatment_marts.pipeline.publish import publish

PERIOD = Period.parse("2024-03")
RUN = RunId.parse("partial_run")
DELIVERED = ["Exborough", "Northton", "Southmoor"]
EXPECTED = [*DELIVERED, "Little Haven"]  # Little Haven sends nothing this month
# The configured areas this deployment does not expect send nothing either: the release names them too.
UNEXPECTED = {"Westfield", "Eastcliff", "Kingsbridge", "Millbrook"}
LEFT_OUT = {"Northton", "Little Haven"}  # Northton fails validation
# Labels that exist only through a left-out area (their location / region): no row for them either.
THEIR_LABELS = {"area": LEFT_OUT, "location": {"Northton"}, "region": {"North West", "East Midlands"}}


@pytest.fixture(scope="module")
def partial(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("partial")
    settings = Settings.from_env(data_root=root / "data")
    frame = generate_extract(PERIOD, clients=1200, areas=DELIVERED, seed=7)
    inbox = root / "inbox"
    for code, rows in frame.groupby("la_code"):
        if code == "E06900002":  # Northton's file also carries two Exborough rows: it fails validation
            rows = pd.concat([rows, frame[frame["la_code"] == "E08900001"].head(2)])
        write_extract(rows, inbox / f"{code}.parquet")
    for unit in plan_areas(settings, PERIOD, RUN, inbox):
        landed = land_area(settings, PERIOD, RUN, unit)
        try:
            validate_area(settings, PERIOD, RUN, landed)
        except ExtractError:
            assert unit.unit == "Northton"  # its file carries another area's rows
    accepted = accept_areas(settings, PERIOD, RUN, expected_areas=EXPECTED)
    assert {e.unit for e in accepted.excluded} == LEFT_OUT
    staged = protect(settings, PERIOD, RUN, accepted.landed_paths)
    publish(settings, PERIOD, RUN, staged.staged_dir)
    return settings


def _rows_of_left_out_areas(frame: pd.DataFrame) -> int:
    hits = pd.Series(False, index=frame.index)
    for column, labels in THEIR_LABELS.items():
        if column in frame.columns:
            hits |= frame[column].astype("string").isin(labels).fillna(False)
    return int(hits.sum())


def test_no_mart_has_a_row_for_an_area_left_out(partial: Settings) -> None:
    marts = sorted((partial.public_dir / "marts").glob(f"*/period={PERIOD}/data.parquet"))
    assert marts
    with_area = [p for p in marts if "area" in pd.read_parquet(p).columns]
    assert with_area, "some marts are by area"
    for path in marts:
        assert _rows_of_left_out_areas(pd.read_parquet(path)) == 0, path.parent.parent.name


def test_no_warehouse_table_has_a_row_for_an_area_left_out(partial: Settings) -> None:
    with sqlite3.connect(partial.data_root / "warehouse.db") as con:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        for table in tables:
            frame = pd.read_sql(f'select * from "{table}"', con)
            assert _rows_of_left_out_areas(frame) == 0, table


def test_no_export_shows_an_area_left_out_and_the_notes_say_the_release_is_partial(partial: Settings) -> None:
    exports = partial.public_dir / "exports" / f"period={PERIOD}"
    for path in sorted((exports / "csv").glob("*.csv")):
        assert _rows_of_left_out_areas(pd.read_csv(path, dtype=str)) == 0, path.name
    books = {p.name for p in exports.glob("*.xlsx")}
    assert not {b for b in books if b.startswith(("Northton", "Little_Haven"))}, books
    assert "Exborough_2024-03.xlsx" in books
    notes = pd.read_excel(exports / "Exborough_2024-03.xlsx", sheet_name="Notes", header=2)  # title, instructions
    partial_note = " ".join(t for t in notes["Note text"] if t.startswith("Partial release"))
    assert "Little Haven" in partial_note and "Northton" in partial_note


def test_the_release_manifest_names_the_areas_left_out(partial: Settings) -> None:
    manifest = json.loads((partial.public_dir / "releases" / f"period={PERIOD}" / "manifest.json").read_text())
    assert manifest["partial"] is True
    assert manifest["areas_left_out"] == sorted(LEFT_OUT | UNEXPECTED)
    with sqlite3.connect(partial.data_root / "warehouse.db") as con:
        (row,) = con.execute("select manifest from releases where period = ?", (PERIOD,)).fetchall()
    assert json.loads(row[0])["areas_left_out"] == sorted(LEFT_OUT | UNEXPECTED)


def test_the_audit_checked_the_tables_that_were_published(partial: Settings) -> None:
    staged = partial.restricted_dir / "runs" / RUN / "marts"
    for path in sorted(staged.glob("*.parquet")):
        published = partial.public_dir / "marts" / path.stem / f"period={PERIOD}" / "data.parquet"
        assert len(pd.read_parquet(path)) == len(pd.read_parquet(published)), path.stem
