"""The outside attack: one attacker holding every public release of a data root at once (issues 13, 15).

The pipeline protects each release against the earlier releases *it* chooses to model (pipeline/windows.py:
a window against its months and the same window one release before). This attack does not reuse that
choice: it reads the public marts of every period as they are published now, one system of linked tables
per population and span of months (the financial year, the year to date and the rolling 12 months of a
March release are one span: the same clients), and derives from the definitions alone every relation it
can between them:

* a span is at least every published span it contains (a month, an earlier year to date), and at most
  any published span that overlaps it plus the months it does not cover (the months summed, a rolling
  window against the one before it);
* a flow (new presentations, exits) over a span is at least its months summed, less the clients counted
  in two of them (exact when no client presents or exits twice);
* a subset population is at most its superset over the same span (new presentations and exits are in
  treatment), cell by cell.

Each relation holds for the true counts only up to a *slack* (clients counted by another episode); the
attacker is given the slacks, computed from the restricted history, and each table's national overlap, so
it is stronger than any outsider. Counts are whole numbers (the audit's integer bounds). A cell is
recovered when the attack narrows it to 1..k or pins it to one value (``strict``, the default; the
pipeline's own sensitive-cell rule is ``small_only``).

Not held (documented in docs/disclosure.md): earlier versions of a revised period (``.releases`` keeps
them; the revision's own audit holds the version it replaces), the derived marts (rates, unmet need,
trend: computed from published cells) and the completions' bound by the exits of its months.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from treatment_marts.core.config import load_areas, load_rules
from treatment_marts.core.ids import Period
from treatment_marts.core.settings import Settings
from treatment_marts.disclosure.audit import AuditResult, audit
from treatment_marts.disclosure.relations import linked_relations
from treatment_marts.disclosure.tables import LinearRelation, MartTable, Zeros
from treatment_marts.marts import load_marts, select_population
from treatment_marts.marts.populations import (
    SUBSET_OF,
    area_overlap,
    distinct_episodes,
    national_overlap,
    subset_slack,
)
from treatment_marts.marts.windows import (
    FLOWS,
    WINDOWED_POPULATIONS,
    WindowSpan,
    not_counted_by_same_episode,
    not_counted_in_parts,
    repeated_in_parts,
    select_window_population,
    window_span,
)
from treatment_marts.pipeline.history import read_month
from treatment_marts.pipeline.windows import published_mart

ClientsOf = Callable[[str, tuple[Period, ...]], "pd.DataFrame | None"]
"""The clients of a population over a span of months (one row per client of an area), or None."""


@dataclass
class PublicSystem:
    """The published marts of one population over one span of months (one or more releases)."""

    population: str
    months: tuple[Period, ...]
    tables: list[MartTable] = field(default_factory=list)

    @property
    def scope(self) -> str:
        label = str(self.months[0]) if len(self.months) == 1 else f"{self.months[0]}..{self.months[-1]}"
        return f"{self.population}:{label}"


@dataclass
class OutsideAttack:
    """What the attacker held and what it found."""

    releases: list[str]
    systems: int
    tables: int
    relations: int
    result: AuditResult
    seconds: float

    @property
    def recovered(self) -> pd.DataFrame:
        return self.result.intervals[self.result.intervals["disclosed"]]

    def summary(self) -> dict[str, object]:
        intervals = self.result.intervals
        return {
            "releases": self.releases,
            "systems": self.systems,
            "tables": self.tables,
            "relations": self.relations,
            "suppressed_cells": int(len(intervals)),
            "recovered_cells": int(len(self.recovered)),
            "recovered": [
                {"mart": r.mart, "period": r.period, "cell": r.cell, "reason": r.reason}
                for r in self.recovered.head(50).itertuples()
            ],
            "seconds": round(self.seconds, 1),
        }


def published_periods(settings: Settings) -> list[Period]:
    """Every period with a public release manifest, oldest first."""
    root = settings.public_dir / "releases"
    if not root.exists():
        return []
    return sorted(
        Period.parse(p.name.removeprefix("period="))
        for p in root.iterdir()
        if p.name.startswith("period=") and (p / "manifest.json").exists()
    )


class _Clients:
    """Clients of a population over a span, from the restricted history (for the slacks and overlaps)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rules, self.areas = load_rules(settings.config_dir), load_areas(settings.config_dir)
        self.months: dict[Period, pd.DataFrame | None] = {}
        self.cache: dict[tuple[str, tuple[Period, ...]], pd.DataFrame | None] = {}

    def month(self, period: Period) -> pd.DataFrame | None:
        if period not in self.months:
            self.months[period] = read_month(self.settings, period, self.rules, self.areas)
        return self.months[period]

    def of(self, population: str, months: tuple[Period, ...]) -> pd.DataFrame | None:
        key = (population, months)
        if key not in self.cache:
            frames = [self.month(m) for m in months]
            if any(f is None for f in frames):
                self.cache[key] = None
            elif len(months) == 1:
                self.cache[key] = select_population(frames[0], population, str(months[0]))
            else:
                span = WindowSpan("rolling_12", months)  # only its months are read
                history = distinct_episodes(pd.concat(frames, ignore_index=True))
                self.cache[key] = select_window_population(history, population, span)
        return self.cache[key]


def public_systems(settings: Settings) -> tuple[dict[str, PublicSystem], list[str]]:
    """Every published clients mart of every current release, grouped by population and span."""
    config = load_marts(settings.config_dir)
    periods = published_periods(settings)
    systems: dict[str, PublicSystem] = {}
    for period in periods:
        for definition in config.marts:
            span = window_span(definition.window, period)
            mart = published_mart(settings, definition.name, period) if definition.measure == "clients" else None
            if span is None or mart is None:
                continue
            frame = mart[["period", *definition.dimensions, "count", "status"]].copy()
            for column in ("period", *definition.dimensions):
                frame[column] = frame[column].astype("string")
            frame["count"] = frame["count"].astype("Int64")
            system = PublicSystem(definition.population, span.months)
            system = systems.setdefault(system.scope, system)
            system.tables.append(MartTable(definition.name, tuple(definition.dimensions), frame))
    return systems, [str(p) for p in periods]


def _with_overlap(systems: dict[str, PublicSystem], clients_of: ClientsOf) -> None:
    """Give each table its national overlap D (the attacker is told it: stronger than an outsider)."""
    for system in systems.values():
        found = clients_of(system.population, system.months)
        if found is None:
            continue
        overlap = national_overlap(found)
        system.tables = [
            MartTable(t.name, t.dimensions, t.frame, overlap=area_overlap(overlap, t.dimensions)) for t in system.tables
        ]


def _contained(whole: PublicSystem, spans: list[PublicSystem], clients_of: ClientsOf) -> list[LinearRelation]:
    """``whole >= part - slack`` for every published span inside ``whole`` (its months, earlier years to date)."""
    whole_clients = clients_of(whole.population, whole.months)
    out: list[LinearRelation] = []
    for part in (s for s in spans if set(s.months) < set(whole.months)):
        part_clients = clients_of(part.population, part.months)
        if whole_clients is None or part_clients is None:
            continue
        slack = not_counted_by_same_episode(part_clients, whole_clients)
        out += linked_relations([(whole.scope, whole.tables, 1.0), (part.scope, part.tables, -1.0)], lower=-slack)
    return out


def _covered(
    whole: PublicSystem, spans: list[PublicSystem], month_of: dict[Period, PublicSystem], clients_of: ClientsOf
) -> list[LinearRelation]:
    """``whole <= cover + the months it leaves out + slack``, for no cover (the months summed) and for every
    published longer span overlapping ``whole`` (a rolling window against the one before it)."""
    whole_clients = clients_of(whole.population, whole.months)
    covers: list[PublicSystem | None] = [None]
    covers += [s for s in spans if len(s.months) > 1 and s is not whole and set(s.months) & set(whole.months)]
    out: list[LinearRelation] = []
    for cover in covers:
        rest = [m for m in whole.months if cover is None or m not in cover.months]
        parts = [cover] if cover is not None else []
        if whole_clients is None or any(m not in month_of for m in rest):
            continue
        parts += [month_of[m] for m in rest]
        found = [clients_of(p.population, p.months) for p in parts]
        if any(f is None for f in found):
            continue
        terms = [(whole.scope, whole.tables, 1.0)] + [(p.scope, p.tables, -1.0) for p in parts]
        out += linked_relations(terms, upper=not_counted_in_parts(whole_clients, [f for f in found if f is not None]))
    return out


def _flow_summed(
    whole: PublicSystem, month_of: dict[Period, PublicSystem], clients_of: ClientsOf
) -> list[LinearRelation]:
    """A flow over ``whole`` is at least its months summed, less the repeats: a month's entries whose
    client the span counts by no episode of the months (a second presentation or exit); exact when none."""
    if whole.population not in FLOWS or any(m not in month_of for m in whole.months):
        return []
    whole_clients = clients_of(whole.population, whole.months)
    months = [clients_of(whole.population, (m,)) for m in whole.months]
    if whole_clients is None or any(m is None for m in months):
        return []
    slack = repeated_in_parts(whole_clients, [m for m in months if m is not None])
    terms = [(whole.scope, whole.tables, 1.0)] + [(month_of[m].scope, month_of[m].tables, -1.0) for m in whole.months]
    return linked_relations(terms, lower=-float(slack))


def _subsets(systems: dict[str, PublicSystem], clients_of: ClientsOf) -> list[LinearRelation]:
    """A subset population (new presentations, exits) is at most in treatment over the same span, per cell."""
    out: list[LinearRelation] = []
    for system in systems.values():
        superset = SUBSET_OF.get(system.population)
        other = systems.get(PublicSystem(superset, system.months).scope) if superset else None
        if other is None or superset is None:
            continue
        sub_clients, super_clients = clients_of(system.population, system.months), clients_of(superset, system.months)
        if sub_clients is None or super_clients is None:
            continue
        slack = float(subset_slack(sub_clients, super_clients))
        out += linked_relations([(system.scope, system.tables, 1.0), (other.scope, other.tables, -1.0)], upper=slack)
    return out


def span_relations(systems: dict[str, PublicSystem], clients_of: ClientsOf) -> list[LinearRelation]:
    """Every relation the definitions give between the published spans of a population, and between
    populations over one span."""
    by_population: dict[str, list[PublicSystem]] = {}
    for system in systems.values():
        by_population.setdefault(system.population, []).append(system)
    relations: list[LinearRelation] = []
    for population, spans in by_population.items():
        if population not in WINDOWED_POPULATIONS:
            continue
        month_of = {s.months[0]: s for s in spans if len(s.months) == 1}
        for whole in (s for s in spans if len(s.months) > 1):
            relations += _contained(whole, spans, clients_of)
            relations += _covered(whole, spans, month_of, clients_of)
            relations += _flow_summed(whole, month_of, clients_of)
    return relations + _subsets(systems, clients_of)


def outside_attack(settings: Settings, *, k: int | None = None, strict: bool = True) -> OutsideAttack:
    """Attack every current public release of ``settings``' data root as one system."""
    started = time.monotonic()
    rules = load_rules(settings.config_dir)
    systems, releases = public_systems(settings)
    attack = attack_systems(
        systems,
        _Clients(settings).of,
        k=rules.disclosure.k if k is None else k,
        zeros=rules.disclosure.zeros,
        strict=strict,
    )
    attack.releases = releases
    attack.seconds = time.monotonic() - started
    return attack


def attack_systems(
    systems: dict[str, PublicSystem], clients_of: ClientsOf, *, k: int, zeros: Zeros, strict: bool = True
) -> OutsideAttack:
    """The attack on published systems, given the clients behind them (for the slacks and overlaps)."""
    started = time.monotonic()
    _with_overlap(systems, clients_of)
    relations = span_relations(systems, clients_of)
    tables = [t for s in systems.values() for t in s.tables]
    scopes = [s.scope for s in systems.values() for _ in s.tables]
    result = audit(tables, k=k, zeros=zeros, scopes=scopes, relations=relations, small_only=not strict)
    return OutsideAttack([], len(systems), len(tables), len(relations), result, time.monotonic() - started)


def cli(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m treatment_marts.ops.attack",
        description="attack every public release of a data root as one attacker; exit 1 if a cell is recovered",
    )
    parser.add_argument("--data-root", type=Path, default=None, help="the data root (default: settings)")
    parser.add_argument("--small-only", action="store_true", help="recovered = narrowed to 0..k only (not pinned)")
    parser.add_argument("--json", type=Path, default=None, help="write the summary here")
    args = parser.parse_args(argv)
    settings = Settings.from_env(data_root=args.data_root) if args.data_root else Settings.from_env()
    attack = outside_attack(settings, strict=not args.small_only)
    summary = attack.summary()
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"outside attack: {len(attack.releases)} release(s), {attack.systems} system(s), {attack.tables} table(s), "
        f"{attack.relations} relation(s); {summary['suppressed_cells']} suppressed cell(s), "
        f"{summary['recovered_cells']} recovered, {attack.seconds:.0f} s"
    )
    for r in attack.recovered.head(50).itertuples():
        print(f"  {r.mart} {r.period} {r.cell} ({r.reason})")
    return 1 if len(attack.recovered) else 0


if __name__ == "__main__":
    sys.exit(cli())
