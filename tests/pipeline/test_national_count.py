"""A client open in two areas counts once nationally (issue 18: 20 such clients took the national Total
from 2,765 to 2,785 while the notes said each adult is counted once).

The extract is an ordinary synthetic month with 20 hand-made clients added: people in treatment in
Exborough who also start an episode in Northton during the month (the same initials, date of birth and
sex; another agency and episode). The expected figures are counted here from the raw extract, not with
the package's population code.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from openpyxl import load_workbook

from treatment_marts.core.labels import TOTAL
from treatment_marts.core.settings import Settings
from treatment_marts.ops.synth import generate_extract, write_extract
from treatment_marts.pipeline.run import run_period

PERIOD = "2024-03"
PERSON = ["first_initial", "surname_initial", "date_of_birth", "sex"]
AREAS = ["Exborough", "Northton"]


def open_in_month(frame: pd.DataFrame) -> pd.DataFrame:
    start, end = pd.Timestamp(f"{PERIOD}-01"), pd.Timestamp(f"{PERIOD}-01") + pd.offsets.MonthEnd(0)
    kept = (frame["consent"] == "Y") & (frame["triage_date"] <= end)
    kept &= frame["discharge_date"].isna() | (frame["discharge_date"] >= start)
    return frame[kept.fillna(False)]


def with_clients_in_two_areas(frame: pd.DataFrame, n: int = 20) -> pd.DataFrame:
    """``frame`` plus, for ``n`` people in treatment in Exborough and in no other area, an episode in
    Northton that starts in the month (so it is their latest)."""
    exborough, northton = "E08900001", "E06900002"
    people = open_in_month(frame)
    areas_per_person = people.groupby(PERSON)["la_code"].nunique()
    single = areas_per_person[areas_per_person == 1].index
    candidates = people[people["la_code"] == exborough].set_index(PERSON).loc[lambda f: f.index.isin(single)]
    chosen = candidates[~candidates.index.duplicated()].head(n).reset_index()
    template = frame[frame["la_code"] == northton].iloc[0]
    copies = chosen.copy()
    copies["la_code"] = northton
    copies["dat_code"], copies["agency_code"] = template["dat_code"], template["agency_code"]
    copies["episode_id"] = [f"EPTWOAREA{i:05d}" for i in range(len(copies))]
    copies["referral_date"] = copies["triage_date"] = pd.Timestamp(f"{PERIOD}-20")
    copies["discharge_date"], copies["discharge_reason"] = pd.NaT, None
    copies = copies[frame.columns].astype(frame.dtypes.to_dict())
    return pd.concat([frame, copies], ignore_index=True)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, pd.DataFrame]:
    # Two areas only (the others send nothing, so the release is partial): the protect stage takes seconds.
    extract = with_clients_in_two_areas(generate_extract(PERIOD, clients=4000, areas=AREAS, seed=5))
    path = write_extract(extract, tmp_path_factory.mktemp("inbox") / "extract.parquet")
    settings = Settings.from_env(data_root=tmp_path_factory.mktemp("data"))
    run_period(settings, PERIOD, path, run_id="two_areas")
    return settings, extract


def test_the_national_total_counts_each_person_once_and_each_area_its_own_clients(
    release: tuple[Settings, pd.DataFrame],
) -> None:
    settings, extract = release
    people = open_in_month(extract)
    persons = len(people.drop_duplicates(PERSON))
    per_area = people.drop_duplicates([*PERSON, "la_code"])
    assert len(per_area) - persons >= 20  # the hand-made clients (and any the generator made by chance)
    mart = pd.read_parquet(
        settings.public_dir / "marts" / "in_treatment_substance_area_sex" / f"period={PERIOD}" / "data.parquet"
    )
    margins = mart[(mart["substance_group"] == TOTAL) & (mart["sex"] == TOTAL)].set_index("area")["count"]
    assert margins[TOTAL] == persons  # distinct people, not the sum of the areas
    # the areas' totals (published, or withheld: their true counts from the restricted suppression log)
    log = pd.read_parquet(settings.restricted_dir / "runs" / "two_areas" / "suppression_log.parquet")
    withheld = log[log["mart"] == "in_treatment_substance_area_sex"].set_index("cell")["true_count"]
    codes = {"Exborough": "E08900001", "Northton": "E06900002"}
    for area in AREAS:
        shown = margins[area]
        cell = json.dumps({"area": area, "sex": TOTAL, "substance_group": TOTAL}, sort_keys=True)
        count = int(withheld[cell]) if pd.isna(shown) else int(shown)
        assert count == per_area["la_code"].eq(codes[area]).sum(), area  # each area counts its own clients


def test_the_release_passes_the_audit_that_knows_the_national_total_is_a_distinct_count(
    release: tuple[Settings, pd.DataFrame],
) -> None:
    settings, _ = release
    staged = settings.restricted_dir / "runs" / "two_areas"
    intervals = pd.read_parquet(staged / "audit_intervals.parquet")
    assert len(intervals) and not intervals["disclosed"].any()
    manifest = json.loads((settings.public_dir / "releases" / f"period={PERIOD}" / "manifest.json").read_text())
    assert "overlap" not in json.dumps(manifest)  # D is never published


def test_the_workbook_notes_say_how_a_client_in_two_areas_is_counted(release: tuple[Settings, pd.DataFrame]) -> None:
    settings, _ = release
    book = load_workbook(settings.public_dir / "exports" / f"period={PERIOD}" / f"Exborough_{PERIOD}.xlsx")
    text = " ".join(str(c.value) for sheet in book.worksheets for row in sheet.iter_rows() for c in row if c.value)
    assert "A client in treatment in two areas is in both areas' figures" in text
    assert "each adult once" in text
