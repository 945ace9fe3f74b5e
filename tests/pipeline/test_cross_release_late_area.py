"""A late area, published by the README's procedure (publish the areas that arrived, re-run when the
last one does), cannot be read off the two releases (issue 13: new national minus old national gave all
226 of the late area's hidden cells exactly).

The late area's clients come from a hand-made adversarial generator (a handful of people, every cell of
theirs a small group); the other areas are an ordinary synthetic month, only there so the national cells
are large enough to publish.
"""

from __future__ import annotations

import pandas as pd
import pytest

from treatment_marts.core.ids import Period, RunId
from treatment_marts.core.labels import TOTAL
from treatment_marts.core.settings import Settings
from treatment_marts.ops.synth import generate_extract, write_extract
from treatment_marts.pipeline.areas import accept_areas, land_area, plan_areas, validate_area
from treatment_marts.pipeline.protect import protect
from treatment_marts.pipeline.publish import publish

PERIOD = Period.parse("2024-03")
ON_TIME = ["Exborough", "Northton", "Southmoor", "Westfield", "Eastcliff", "Kingsbridge", "Millbrook"]
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


@pytest.fixture(scope="module")
def two_releases(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    root = tmp_path_factory.mktemp("late_area")
    settings = Settings.from_env(data_root=root / "data")
    bulk = generate_extract(PERIOD, clients=1500, areas=ON_TIME, seed=11)
    on_time = {str(code): rows for code, rows in bulk.groupby("la_code")}
    template = generate_extract(PERIOD, clients=200, areas=[LATE, "Exborough"], seed=5)
    template = template[template["la_code"] == LATE_CODE].iloc[0]
    late = few_people(template, "FFFMM")
    release(settings, on_time, "first_release", [*ON_TIME, LATE])  # the late area sends nothing yet
    first = public_marts(settings)
    release(settings, {**on_time, LATE_CODE: late}, "late_area_release", [*ON_TIME, LATE])
    return first, public_marts(settings)


def test_the_first_release_has_no_row_for_the_late_area(two_releases) -> None:
    first, second = two_releases
    assert all(LATE not in set(frame["area"]) for frame in first.values())
    assert any(LATE in set(frame["area"]) for frame in second.values())


def test_no_hidden_cell_of_the_late_area_is_new_national_minus_old_national(two_releases) -> None:
    """The on-time areas' files are byte-identical (their checksums are public), so any cell of the late
    area whose national line is published in both releases is the difference of the two: none may be."""
    first, second = two_releases
    recovered = []
    for mart, frame in second.items():
        dims = [c for c in frame.columns if c not in ("period", "count", "status", "percent")]
        new = frame.set_index(dims)["count"]
        old = first[mart].set_index(dims)["count"]
        late = frame[frame["area"].eq(LATE) & frame["count"].isna()]
        for labels in late[dims].itertuples(index=False, name=None):
            national = (TOTAL, *labels[1:]) if dims[0] == "area" else None
            assert national is not None, f"{mart}: area is the first dimension of every mart"
            if not pd.isna(new.get(national)) and not pd.isna(old.get(national)):
                recovered.append((mart, labels))
    hidden = sum(int((f["area"].eq(LATE) & f["count"].isna()).sum()) for f in second.values())
    assert hidden > 0
    assert recovered == [], f"{len(recovered)} of {hidden} hidden late-area cells recovered, e.g. {recovered[:3]}"
