"""Window marts of a release, and what an attacker holding every earlier release knows of them.

The protect stage (pipeline/protect.protect_populations) builds a release's month marts; this module adds
its window marts (marts/windows.py: rolling 12 months, financial year to date, the closed financial
year), built from the history of accepted months (pipeline/history.py), and the cross-release state:

* **context**: every earlier *published* release whose window overlaps this one's, as the attacker holds
  it: the published cells (constants) and the withheld ones (unknowns; their true counts, rebuilt from the
  history, are only the suppressor's feasible point). The ledger is the public release itself (the ``c``
  statuses of each mart per period), as tau-argus reads an a-priori file, so it cannot drift from what
  is public.
* **relations** (disclosure/relations.linked_relations): a window is at least each month it covers and
  at most their sum, and a flow (new presentations, exits) at least their sum less the clients who
  entered twice (so, with the months, exactly their sum); a window at least an earlier window it
  contains (a financial year to date never falls from one month to the next); a rolling window at most
  the previous one plus its new month. The previous window comes with the same relations to its own
  months (the month that left included), or two consecutive rolling windows of a flow would give the
  month that left less the month that joined. Each holds for the true counts up to a slack the pipeline
  computes from the clients (never published).

protect_release repairs the pattern against that one system (it never changes an earlier release: a
context cell it could pin is protected through this release's cells), and the audit checks it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from treatment_marts.core.config import AreasConfig, RulesConfig
from treatment_marts.core.ids import Period
from treatment_marts.core.settings import Settings
from treatment_marts.marts import build_mart, select_population
from treatment_marts.marts.definitions import MartDefinition, MartsConfig
from treatment_marts.marts.windows import (
    FLOWS,
    WindowSpan,
    not_counted_by_same_episode,
    not_counted_in_parts,
    repeated_in_parts,
    select_window_population,
    window_span,
)
from treatment_marts.pipeline.history import read_month

if TYPE_CHECKING:
    from treatment_marts.disclosure.tables import LinearRelation, MartTable

Prepare = Callable[[pd.DataFrame], pd.DataFrame]


@dataclass
class WindowRelease:
    """A release's window marts by scope, the earlier releases it is protected with, and the relations."""

    tables: dict[str, list[MartTable]] = field(default_factory=dict)
    definitions: dict[str, list[MartDefinition]] = field(default_factory=dict)
    not_built: dict[str, str] = field(default_factory=dict)
    relations: list[LinearRelation] = field(default_factory=list)
    context: dict[str, list[MartTable]] = field(default_factory=dict)
    protected_against: dict[str, list[str]] = field(default_factory=dict)  # earlier period -> marts
    spans: dict[str, str] = field(default_factory=dict)  # scope -> months covered, for the manifest
    # a revision: the later published windows that contain this month, which the month marts themselves
    # are protected with (pipeline/protect.protect_populations' first stage)
    month_relations: list[LinearRelation] = field(default_factory=list)
    month_context: dict[str, list[MartTable]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """What the IG review shows: the windows built and every earlier release this one was protected with."""
        return {
            "windows": dict(self.spans),
            "protected_against": [{"period": p, "marts": m} for p, m in sorted(self.protected_against.items())],
            "relations": len(self.relations),
        }


@dataclass
class _Builder:
    """Months of the history and client sets, read or built once per protect run."""

    settings: Settings
    period: Period
    current: pd.DataFrame
    rules: RulesConfig
    areas: AreasConfig
    levels: dict[str, list[str]]
    prepare: Prepare
    frames: dict[Period, pd.DataFrame | None] = field(default_factory=dict)
    clients: dict[tuple[str, tuple[Period, ...]], pd.DataFrame] = field(default_factory=dict)

    def month(self, period: Period) -> pd.DataFrame | None:
        if period == self.period:
            return self.current
        if period not in self.frames:
            raw = read_month(self.settings, period, self.rules, self.areas)
            self.frames[period] = None if raw is None else self.prepare(raw)
        return self.frames[period]

    def missing(self, span: WindowSpan) -> list[Period]:
        return [m for m in span.months if self.month(m) is None]

    def window_clients(self, population: str, window: str, at: Period) -> pd.DataFrame | None:
        """The clients of ``population`` over ``window`` at release ``at`` (the month itself for ``month``)."""
        span = window_span(window, at)  # type: ignore[arg-type]
        if span is None:
            return None
        key = (population, span.months)
        if key not in self.clients:
            frames = [self.month(m) for m in span.months]
            if any(f is None for f in frames):
                return None
            if len(span.months) == 1:
                self.clients[key] = select_population(frames[0], population, str(at))
            else:
                self.clients[key] = select_window_population(pd.concat(frames, ignore_index=True), population, span)
        return self.clients[key]

    def tables(self, definitions: list[MartDefinition], clients: pd.DataFrame, at: Period) -> list[MartTable]:
        from treatment_marts.disclosure.tables import MartTable
        from treatment_marts.marts.populations import area_overlap, national_overlap

        # A client in treatment in two areas over the window is in both areas' rows and once in the national
        # Total, as in a month (issue 18): the tables carry that overlap, or their lines would not add up.
        overlap = national_overlap(clients)
        return [
            MartTable(
                d.name,
                tuple(d.dimensions),
                build_mart(clients, d, str(at), self.levels),
                overlap=area_overlap(overlap, d.dimensions),
            )
            for d in definitions
        ]


def published_mart(settings: Settings, name: str, period: Period) -> pd.DataFrame | None:
    """The public mart of an earlier release, or None when that release did not publish it."""
    from treatment_marts.pipeline.protect import current_release_manifest

    manifest = current_release_manifest(settings, period)
    if manifest is None or name not in [str(m) for m in manifest["marts"]]:
        return None
    return pd.read_parquet(settings.public_dir / "marts" / name / f"period={period}" / "data.parquet")


def _as_context(published: pd.DataFrame, truth: MartTable) -> MartTable:
    """The published table with ``true_count`` for its withheld cells (rebuilt from the history)."""
    dims = list(truth.dimensions)
    frame = published[["period", *dims, "count", "status"]].copy()
    for d in dims:
        frame[d] = frame[d].astype("string")
    true = truth.frame[[*dims, "count"]].copy()
    for d in dims:
        true[d] = true[d].astype("string")
    frame = frame.merge(true.rename(columns={"count": "true_count"}), on=dims, how="left")
    frame["period"] = frame["period"].astype("string")
    frame["count"] = frame["count"].astype("Int64")
    frame["true_count"] = frame["true_count"].astype("Int64").where(frame["count"].isna(), frame["count"])
    return replace(truth, frame=frame)  # keeps what the table declares (its national overlap)


def _values(tables: dict[str, list[MartTable]], context: dict[str, list[MartTable]]) -> dict[str, float]:
    """Scoped key -> the true count (this release) or the published / true count (an earlier release)."""
    from treatment_marts.disclosure.relations import cell_values

    values: dict[str, float] = {}
    for source in (tables, context):
        for scope, scope_tables in source.items():
            values.update(cell_values(scope_tables, scope))
    return values


def span_scope(population: str, span: WindowSpan) -> str:
    """A window's system of linked tables is named by its months: windows of one population covering the
    same months (at the March period the financial year, the year to date and the rolling 12 months) are
    the same clients, so their marts are one system and a cell they share is one variable with one status.
    A one-month window is the month itself (its population's scope)."""
    return population if len(span.months) == 1 else f"{population}.{span.label()}"


def build_windows(  # noqa: C901 -- one pass over the relations of a release; split in a follow-up
    settings: Settings,
    period: Period,
    current: pd.DataFrame,
    month_tables: dict[str, list[MartTable]],
    rules: RulesConfig,
    areas: AreasConfig,
    levels: dict[str, list[str]],
    marts_config: MartsConfig,
    prepare: Prepare,
) -> WindowRelease:
    """The release's window marts (true counts), the earlier releases they overlap and the relations
    between them all. ``current``: the release's month frame as the month marts use it; ``prepare``:
    what the protect stage does to a recoded month (the release's areas, categorical dimensions).
    A window of one month (the year to date in April) joins its month population's system."""
    from treatment_marts.disclosure.relations import linked_relations, widened_to

    out = WindowRelease()
    builder = _Builder(settings, period, current, rules, areas, levels, prepare)
    month_defs = marts_config.by_population()
    window_dims = {(d.population, frozenset(d.dimensions)) for ds in marts_config.by_window().values() for d in ds}
    # The month marts an earlier month's release is held by: for a flow every one (its window is its months
    # summed, so a window cell pins a month margin exactly, and the margin's other tables carry the bound:
    # the outside attack proved six new-presentation ethnicity cells 1-3 from the 16th release when only the
    # referral tables were held); for a stock those with the dimensions of a window mart (a window only
    # bounds a month from above by the whole window's count).
    linked_months = {
        p: list(ds) if p in FLOWS else [d for d in ds if (p, frozenset(d.dimensions)) in window_dims]
        for p, ds in month_defs.items()
    }
    relations: list[LinearRelation] = []
    context: dict[str, list[MartTable]] = {}
    context_clients: dict[str, pd.DataFrame] = {}

    def earlier(scope: str, definitions: list[MartDefinition], at: Period) -> str | None:
        """Add release ``at``'s published marts ``definitions`` (one span) to the context; its name, or None."""
        name = f"{scope}@{at}"
        if name in context:
            return name
        clients = builder.window_clients(definitions[0].population, definitions[0].window, at)
        if clients is None:
            return None
        truth = builder.tables(definitions, clients, at)
        kept = [_as_context(p, t) for t in truth if (p := published_mart(settings, t.name, at)) is not None]
        if not kept:
            return None
        context[name], context_clients[name] = kept, clients
        out.protected_against.setdefault(str(at), []).extend(t.name for t in kept)
        return name

    def to_months(
        scope: str, tables: list[MartTable], clients: pd.DataFrame, population: str, span: WindowSpan
    ) -> list[LinearRelation]:
        """A window and its published months: at least each month, at most their sum, and for a flow at
        least their sum less the repeats (with the months, exact when no client enters twice)."""
        if population not in month_tables or not linked_months.get(population):
            return []
        terms: list[tuple[str, list[MartTable], pd.DataFrame]] = []
        for m in span.months:
            month_clients = builder.window_clients(population, "month", m)
            if month_clients is None:
                continue
            if m == period:
                terms.append((population, month_tables[population], month_clients))
            elif (name := earlier(population, linked_months[population], m)) is not None:
                terms.append((name, context[name], month_clients))
        found: list[LinearRelation] = []
        for term_scope, term_tables, term_clients in terms:  # at least each of its months
            slack = not_counted_by_same_episode(term_clients, clients)
            found += linked_relations([(scope, tables, 1.0), (term_scope, term_tables, -1.0)], lower=-slack)
        if terms and len(terms) == len(span.months):
            summed = [(scope, tables, 1.0)] + [(s, t, -1.0) for s, t, _ in terms]
            parts = [c for _, _, c in terms]
            found += linked_relations(summed, upper=not_counted_in_parts(clients, parts))  # at most their sum
            if population in FLOWS:  # a flow: at least their sum less the repeats
                found += linked_relations(summed, lower=-repeated_in_parts(clients, parts))
        return found

    groups: dict[str, list[MartDefinition]] = {}
    spans: dict[str, WindowSpan] = {}
    for definitions in marts_config.by_window().values():
        window = definitions[0].window
        span = window_span(window, period)
        if span is None:
            out.not_built.update({d.name: f"{window} is built at the March period only" for d in definitions})
            continue
        missing = builder.missing(span)
        if missing:
            out.not_built.update({d.name: f"no accepted extract for {', '.join(missing)}" for d in definitions})
            continue
        scope = span_scope(definitions[0].population, span)
        groups.setdefault(scope, []).extend(definitions)
        spans[scope] = span
    for scope, definitions in groups.items():
        population, span = definitions[0].population, spans[scope]
        clients = builder.window_clients(population, definitions[0].window, period)
        assert clients is not None
        tables = builder.tables(definitions, clients, period)
        out.tables[scope], out.definitions[scope] = tables, definitions
        out.spans[scope] = span.label()
        if len(span.months) == 1:
            continue  # the month itself: its cells are the month marts' cells
        relations += to_months(scope, tables, clients, population, span)
        # the same windows at the previous release (a year to date, a rolling 12 months)
        previous: dict[str, list[MartDefinition]] = {}
        for d in definitions:
            before = window_span(d.window, period.minus(1))
            if before is not None and len(before.months) > 1:
                previous.setdefault(span_scope(population, before), []).append(d)
        for before_scope, before_defs in previous.items():
            name = earlier(before_scope, before_defs, period.minus(1))
            if name is None:
                continue
            before_clients = context_clients[name]
            before_span = window_span(before_defs[0].window, period.minus(1))
            assert before_span is not None
            # what the attacker knows of the earlier window from its own months (the month that left a
            # rolling window included): two consecutive windows of a flow differ by exactly the month that
            # joined less the month that left
            relations += to_months(name, context[name], before_clients, population, before_span)
            if set(before_span.months) <= set(span.months):  # a year to date never falls
                slack = not_counted_by_same_episode(before_clients, clients)
                relations += linked_relations([(scope, tables, 1.0), (name, context[name], -1.0)], lower=-slack)
            elif population in month_tables:  # rolling: at most the previous window plus the new month
                new_month = builder.window_clients(population, "month", period)
                assert new_month is not None
                slack = not_counted_in_parts(clients, [before_clients, new_month])
                terms = [
                    (scope, tables, 1.0),
                    (name, context[name], -1.0),
                    (population, month_tables[population], -1.0),
                ]
                relations += linked_relations(terms, upper=slack)
    # windows of one release and population: the larger contains the smaller (a year to date in 12 months)
    for a, sa in spans.items():
        for b, sb in spans.items():
            if a == b or a not in out.tables or b not in out.tables or len(sa.months) == 1:
                continue
            if out.definitions[a][0].population == out.definitions[b][0].population and set(sa.months) < set(sb.months):
                ca = builder.window_clients(out.definitions[a][0].population, out.definitions[a][0].window, period)
                cb = builder.window_clients(out.definitions[b][0].population, out.definitions[b][0].window, period)
                assert ca is not None and cb is not None
                slack = not_counted_by_same_episode(ca, cb)
                relations += linked_relations([(b, out.tables[b], 1.0), (a, out.tables[a], -1.0)], lower=-slack)
    # A revision (or late data) of this month: later releases already published windows containing it.
    later: list[LinearRelation] = []
    later_names: set[str] = set()
    for definitions in marts_config.by_window().values():
        population, window = definitions[0].population, definitions[0].window
        if population not in month_tables:
            continue
        for ahead in range(1, 36):
            at = period.minus(-ahead)
            span = window_span(window, at)
            if span is None or period not in span.months or published_mart(settings, definitions[0].name, at) is None:
                continue
            name = earlier(span_scope(population, span), definitions, at)
            if name is None:
                continue
            later_names.add(name)
            whole, part = context_clients[name], builder.window_clients(population, "month", period)
            assert part is not None
            slack = not_counted_by_same_episode(part, whole)
            later += linked_relations(
                [(name, context[name], 1.0), (population, month_tables[population], -1.0)], lower=-slack
            )
    values = _values({**month_tables, **out.tables}, context)
    out.relations = widened_to(relations, values)
    out.month_relations = widened_to(later, values)
    out.month_context = {name: context[name] for name in later_names}
    out.context = {name: tables for name, tables in context.items() if name not in later_names}
    return out


def build_trend(
    settings: Settings, period: Period, definition: MartDefinition, current: pd.DataFrame
) -> pd.DataFrame | None:
    """Each closed financial year side by side: the current March release's year (``current``, the staged
    source mart) and every earlier year's as its March release published it, with ``financial_year`` as
    the first dimension. Every cell is a published cell of some release, so the trend adds nothing to
    protect; it is built at the March period only, when the source exists."""
    from treatment_marts.marts.windows import financial_year

    if window_span("financial_year", period) is None:
        return None
    years = [current.assign(period=str(period))]
    for back in range(1, 40):
        march = period.minus(12 * back)
        published = published_mart(settings, str(definition.derived_from), march)
        if published is None:
            break
        years.append(published.assign(period=str(period)))
    frames = []
    for back, frame in enumerate(years):
        year = financial_year(period.minus(12 * back))
        keep = [c for c in frame.columns if c not in ("financial_year", "area_code")]  # codes added at publish
        frames.append(frame[keep].assign(financial_year=year))
    out = pd.concat(list(reversed(frames)), ignore_index=True)
    order = ["period", "financial_year", *[c for c in out.columns if c not in ("period", "financial_year")]]
    out = out[order]
    out["period"] = out["period"].astype(current["period"].dtype)
    out["financial_year"] = out["financial_year"].astype("string")
    return out
