"""A small area's second month (issue 15): the year to date bounds a month margin, and the margin's own
table lines carry the bound to the age bands below it.

Two areas of about 150 clients: in May the month marts are safe alone, but the April-May year to date,
published beside April's release, bounds Northton's "Non-opiate and alcohol" margin of May, and through
that margin's age line five hidden age bands were proved to be 1-3. No relation names an age band, so the
window repair found no window cell to hide and the release audit refused the release (before the fix:
``DisclosureAuditFailed``, nothing published). The repair now follows the exposed cell's table lines to
the nearest cells a relation does name, and the release is published and passes the outside attack."""

from __future__ import annotations

from pathlib import Path

import pytest

from treatment_marts.core.ids import Period
from treatment_marts.core.settings import Settings
from treatment_marts.ops.attack import outside_attack
from treatment_marts.ops.synth import generate_extract, write_extract
from treatment_marts.pipeline.run import run_period

PERIODS = [Period.parse(p) for p in ("2024-04", "2024-05")]


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    base: Path = tmp_path_factory.mktemp("small")
    settings = Settings.from_env(data_root=base / "data")
    for period in PERIODS:
        frame = generate_extract(str(period), clients=300, areas=["Exborough", "Northton"], seed=15)
        run_period(settings, period, write_extract(frame, base / f"{period}.csv"), run_id=f"release_{period}")
    return settings


def test_the_second_month_of_two_small_areas_is_published(releases: Settings) -> None:
    for period in PERIODS:
        assert (releases.public_dir / "releases" / f"period={period}" / "manifest.json").exists()


def test_an_attacker_holding_both_releases_recovers_nothing(releases: Settings) -> None:
    attack = outside_attack(releases)
    assert attack.releases == [str(p) for p in PERIODS]
    assert attack.recovered.empty, attack.recovered.to_string()
