"""Windows over consecutive monthly releases (issue 15): the year to date is published with each month,
each release is protected with the earlier releases it overlaps, and an outside attacker who holds every
published release (all their marts) and the relations the definitions imply recovers nothing.

Small on purpose (two areas, a few hundred clients, April to June): the attack needs the public files,
not size; the pipeline's own run is the code under test."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from treatment_marts.core.config import load_areas, load_rules
from treatment_marts.core.ids import Period
from treatment_marts.core.settings import Settings
from treatment_marts.disclosure.audit import audit
from treatment_marts.disclosure.relations import linked_relations
from treatment_marts.disclosure.tables import LinearRelation, MartTable
from treatment_marts.marts import load_marts, select_population
from treatment_marts.marts.populations import distinct_episodes
from treatment_marts.marts.windows import (
    not_counted_by_same_episode,
    not_counted_in_parts,
    select_window_population,
    window_span,
)
from treatment_marts.ops.attack import outside_attack
from treatment_marts.ops.synth import generate_extract, write_extract
from treatment_marts.pipeline.history import read_month
from treatment_marts.pipeline.run import run_period

PERIODS = [Period.parse(p) for p in ("2024-04", "2024-05", "2024-06")]
AREAS = ["Exborough", "Northton"]
YTD = "in_treatment_substance_area_sex_fy_to_date"


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    base = tmp_path_factory.mktemp("windows")
    settings = Settings.from_env(data_root=base / "data")
    for period in PERIODS:
        frame = generate_extract(period, clients=600, areas=AREAS, seed=15)
        run_period(settings, period, write_extract(frame, base / f"{period}.csv"), run_id=f"release_{period}")
    return settings


def manifest(settings: Settings, period: Period) -> dict:
    return json.loads((settings.public_dir / "releases" / f"period={period}" / "manifest.json").read_text())


def staged(settings: Settings, period: Period, name: str) -> dict:
    return json.loads((settings.restricted_dir / "runs" / f"release_{period}" / name).read_text())


def test_each_month_publishes_the_windows_ending_with_it(releases: Settings) -> None:
    for period in PERIODS:
        assert YTD in manifest(releases, period)["marts"]
    june = staged(releases, PERIODS[-1], "run_manifest.json")["marts_not_built"]
    assert "2023-07" in june["in_treatment_substance_area_sex_rolling_12"]  # no history before April
    assert june["in_treatment_substance_area_sex_fy"] == "financial_year is built at the March period only"
    ytd = pd.read_parquet(releases.public_dir / "marts" / YTD / "period=2024-06" / "data.parquet")
    month = pd.read_parquet(
        releases.public_dir / "marts" / "in_treatment_substance_area_sex" / "period=2024-06" / "data.parquet"
    )
    total = ("Total", "Total", "Total")
    key = ["area", "substance_group", "sex"]
    # three months of distinct clients: more than any month, fewer than the three months summed
    assert ytd.set_index(key).loc[total, "count"] > month.set_index(key).loc[total, "count"]


def test_each_release_names_the_earlier_releases_it_was_protected_with(releases: Settings) -> None:
    windows = staged(releases, PERIODS[-1], "windows.json")
    assert [e["period"] for e in windows["protected_against"]] == ["2024-04", "2024-05"]
    review = json.loads(
        (releases.restricted_dir / "runs" / f"release_{PERIODS[-1]}" / "review" / "summary.json").read_text()
    )
    assert review["windows"]["protected_against"] == windows["protected_against"]


def outside_attacker(settings: Settings) -> tuple[list[MartTable], list[str], list[LinearRelation]]:
    """Every published mart of every release (each release's marts one system per population and window),
    and the window relations, with slacks from the clients (stronger than a real attacker)."""
    config = load_marts(settings.config_dir)
    rules, areas = load_rules(settings.config_dir), load_areas(settings.config_dir)
    history = {p: read_month(settings, p, rules, areas) for p in PERIODS}
    tables: list[MartTable] = []
    scopes: list[str] = []
    by_scope: dict[str, list[MartTable]] = {}
    for period in PERIODS:
        for definition in config.marts:
            path = settings.public_dir / "marts" / definition.name / f"period={period}" / "data.parquet"
            if definition.measure != "clients" or not path.exists():
                continue
            frame = pd.read_parquet(path)[["period", *definition.dimensions, "count", "status"]]
            frame["period"] = frame["period"].astype("string")
            table = MartTable(definition.name, tuple(definition.dimensions), frame)
            span = window_span(definition.window, period)
            scope = f"{definition.population}:{span.label() if span else period}"
            tables.append(table)
            scopes.append(scope)
            by_scope.setdefault(scope, []).append(table)

    def clients(population: str, months: list[Period]) -> pd.DataFrame:
        frames = pd.concat([history[m] for m in months], ignore_index=True)
        if len(months) == 1:
            return select_population(frames, population, str(months[0]))
        span = window_span("fy_to_date", months[-1])
        assert span is not None and list(span.months) == months
        return select_window_population(distinct_episodes(frames), population, span)

    relations: list[LinearRelation] = []
    for period in PERIODS[1:]:
        span = window_span("fy_to_date", period)
        assert span is not None
        months = list(span.months)
        window_scope = f"in_treatment:{span.label()}"
        whole = clients("in_treatment", months)
        parts = [clients("in_treatment", [m]) for m in months]
        for month, part in zip(months, parts, strict=True):
            month_scope = f"in_treatment:{month}"
            slack = not_counted_by_same_episode(part, whole)
            relations += linked_relations(
                [(window_scope, by_scope[window_scope], 1.0), (month_scope, by_scope[month_scope], -1.0)], lower=-slack
            )
        relations += linked_relations(
            [(window_scope, by_scope[window_scope], 1.0)]
            + [(f"in_treatment:{m}", by_scope[f"in_treatment:{m}"], -1.0) for m in months],
            upper=not_counted_in_parts(whole, parts),
        )
        before = window_span("fy_to_date", period.minus(1))
        assert before is not None
        before_scope = f"in_treatment:{before.label()}"
        slack = not_counted_by_same_episode(clients("in_treatment", list(before.months)), whole)
        relations += linked_relations(
            [(window_scope, by_scope[window_scope], 1.0), (before_scope, by_scope[before_scope], -1.0)], lower=-slack
        )
    return tables, scopes, relations


def test_an_attacker_holding_every_release_recovers_nothing(releases: Settings) -> None:
    tables, scopes, relations = outside_attacker(releases)
    assert len(relations) > 100
    result = audit(tables, scopes=scopes, relations=relations)
    assert len(result.intervals) > 0 and result.passed, result.intervals[result.intervals["disclosed"]].head()


def test_the_outside_attack_holding_every_release_recovers_nothing(releases: Settings) -> None:
    """ops/attack.py: every relation it derives between all the spans published (not only those the
    pipeline chose to model), pinning included (strict)."""
    attack = outside_attack(releases)
    assert attack.releases == [str(p) for p in PERIODS]
    assert attack.relations > 100 and len(attack.result.intervals) > 0
    assert attack.recovered.empty, attack.recovered.head()


def test_a_revised_month_is_protected_with_the_later_windows_that_hold_it(releases: Settings, tmp_path: Path) -> None:
    """Late data for April after May and June are out: their years to date hold April's clients, so the
    revised April is protected with them as context (the attacker has them), and every cell April hid
    stays hidden (carried forward)."""
    target = tmp_path / "data"
    shutil.copytree(releases.data_root, target, symlinks=True)
    settings = Settings.from_env(data_root=target)
    month = "in_treatment_substance_area_sex"
    path = settings.public_dir / "marts" / month / "period=2024-04" / "data.parquet"
    hidden_before = set(pd.read_parquet(path).query("status == 'c'")[["area", "substance_group", "sex"]].itertuples())
    frame = generate_extract(PERIODS[0], clients=600, areas=AREAS, seed=15)
    corrected = frame.drop(frame.index[::40])  # every 40th row: a correction that keeps every area
    run_period(settings, PERIODS[0], write_extract(corrected, tmp_path / "v2.csv"), run_id="release_2024-04_v2")
    windows = json.loads((settings.restricted_dir / "runs" / "release_2024-04_v2" / "windows.json").read_text())
    assert {e["period"] for e in windows["protected_against"]} == {"2024-05", "2024-06"}
    hidden_after = set(pd.read_parquet(path).query("status == 'c'")[["area", "substance_group", "sex"]].itertuples())
    assert {tuple(r[1:]) for r in hidden_before} <= {tuple(r[1:]) for r in hidden_after}
