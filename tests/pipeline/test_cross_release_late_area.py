"""A late area cannot be read off two releases (issue 13: publishing the areas that arrived, then re-running
when the last one did, gave all 226 of the late area's hidden cells exactly as new national minus old
national). Until the cross-release repair runs at pipeline scale, a revision that changes the set of areas
is refused and the current release stays byte for byte as it was; so is one that drops an area.

The late area's clients come from a hand-made adversarial generator (a handful of people, every cell of
theirs a small group); the other areas are an ordinary synthetic month, only there so the national cells
are large enough to publish.
"""

from __future__ import annotations

import pandas as pd
import pytest

from treatment_marts.core.ids import Period, RunId
from treatment_marts.core.settings import Settings
from treatment_marts.ops.synth import generate_extract, write_extract
from treatment_marts.pipeline.areas import accept_areas, land_area, plan_areas, validate_area
from treatment_marts.pipeline.protect import RevisionChangesAreas, protect
from treatment_marts.pipeline.publish import publish

PERIOD = Period.parse("2024-03")
ON_TIME = ["Exborough", "Northton"]  # two areas are enough to have national cells to subtract
LATE = "Little Haven"
LATE_CODE = "E06900008"


def few_people(template: pd.Series, sexes: str) -> pd.DataFrame:
    """Hand-made clients of one area: copies of one contract-valid record (its codes for everything the
    attack does not use), each a different person (reference, initials, date of birth) of the given sex,
    in treatment all month."""
    rows = []
    for i, sex in enumerate(sexes):
        row = template.copy()
        row["client_ref"] = f"LATE{i:06d}"
        row["episode_id"] = f"EPLATE{i:06d}"
        row["first_initial"], row["surname_initial"] = "ABCDEFGH"[i], "QRSTUVWX"[i]
        row["date_of_birth"] = pd.Timestamp(f"19{60 + i}-0{1 + i % 9}-1{i % 9}")
        row["sex"] = sex
        row["discharge_date"], row["discharge_reason"] = pd.NaT, None
        rows.append(row)
    return pd.DataFrame(rows).reset_index(drop=True).astype(template.to_frame().T.dtypes.to_dict())


def release(settings: Settings, inbox_frames: dict[str, pd.DataFrame], run: str, expected: list[str]) -> None:
    inbox = settings.data_root / f"inbox_{run}"
    for code, rows in inbox_frames.items():
        write_extract(rows, inbox / f"{code}.parquet")
    run_id = RunId.parse(run)
    for unit in plan_areas(settings, PERIOD, run_id, inbox):
        validate_area(settings, PERIOD, run_id, land_area(settings, PERIOD, run_id, unit))
    accepted = accept_areas(settings, PERIOD, run_id, expected_areas=expected)
    staged = protect(settings, PERIOD, run_id, accepted.landed_paths)
    publish(settings, PERIOD, run_id, staged.staged_dir)


def public_marts(settings: Settings) -> dict[str, pd.DataFrame]:
    out = {}
    for path in sorted((settings.public_dir / "marts").glob(f"*/period={PERIOD}/data.parquet")):
        if not path.parts[-3].startswith("unmet_need"):
            out[path.parts[-3]] = pd.read_parquet(path)
    return out


def _public_files(settings: Settings) -> dict[str, bytes]:
    return {
        str(p.relative_to(settings.public_dir)): p.read_bytes()
        for p in sorted(settings.public_dir.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def first_release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict, pd.DataFrame]:
    root = tmp_path_factory.mktemp("late_area")
    settings = Settings.from_env(data_root=root / "data")
    bulk = generate_extract(PERIOD, clients=600, areas=ON_TIME, seed=11)
    on_time = {str(code): rows for code, rows in bulk.groupby("la_code")}
    release(settings, on_time, "first_release", [*ON_TIME, LATE])  # the late area sends nothing yet
    return settings, on_time, _public_files(settings)


def test_the_first_release_has_no_row_for_the_late_area(first_release) -> None:
    settings, _, _ = first_release
    by_area = [frame for frame in public_marts(settings).values() if "area" in frame.columns]
    assert by_area and all(LATE not in set(frame["area"]) for frame in by_area)


def test_a_revision_adding_the_late_area_is_refused_and_the_release_is_unchanged(first_release) -> None:
    settings, on_time, files = first_release
    template = generate_extract(PERIOD, clients=200, areas=[LATE, "Exborough"], seed=5)
    late = few_people(template[template["la_code"] == LATE_CODE].iloc[0], "FFFMM")
    with pytest.raises(RevisionChangesAreas, match=f"adds {LATE}.*subtract one national figure"):
        release(settings, {**on_time, LATE_CODE: late}, "late_area_release", [*ON_TIME, LATE])
    assert _public_files(settings) == files, "the current release is byte-identical"


def test_a_revision_dropping_an_area_is_refused_and_the_release_is_unchanged(first_release) -> None:
    settings, on_time, files = first_release
    fewer = {code: rows for code, rows in on_time.items() if code != "E08900001"}  # Exborough's file is missing
    with pytest.raises(RevisionChangesAreas, match="leaves out Exborough"):
        release(settings, fewer, "dropped_area_release", [*ON_TIME, LATE])
    assert _public_files(settings) == files, "the current release is byte-identical"
