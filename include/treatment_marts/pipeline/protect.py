"""The protect stage: recode, build every mart, suppress (primary + secondary), audit, stage the release.

Three steps, each its own function: `protect_populations` (every population's marts, suppressed against
one attacker who holds the whole release and its population relations; then the independent audit of that
one system), `build_derived_marts` (from the protected marts only, so no new disclosure) and
`write_stage_manifest`. The staged release lives in the run's restricted folder until `publish`.

A release covers the areas the run record says are in it (``areas.json``, written by `accept_areas`): an
area left out (failed, or not delivered) is not a level of any mart, so it has no row anywhere (never a
zero), and the manifest names it (``partial``, ``areas_left_out``). The suppressor and the audit see
exactly those tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from treatment_marts import __version__
from treatment_marts.core.config import AreasConfig, RulesConfig, load_areas, load_rules, ruleset_hash
from treatment_marts.core.files import make_private_dirs
from treatment_marts.core.ids import Period, RunId, checked
from treatment_marts.core.labels import TOTAL
from treatment_marts.core.settings import Settings
from treatment_marts.deidentify.pseudonymise import pseudonym_key
from treatment_marts.deidentify.recode import RecodeResult, recode
from treatment_marts.ingest.land import ExtractError, read_landed
from treatment_marts.marts import build_mart, dimension_levels, load_marts, select_population
from treatment_marts.marts.definitions import MartDefinition, MartsConfig
from treatment_marts.marts.populations import area_overlap, history_months, national_overlap
from treatment_marts.marts.rates import add_percentages, build_completion_rate
from treatment_marts.marts.unmet_need import build_unmet_need, load_prevalence
from treatment_marts.pipeline.history import store_month
from treatment_marts.pipeline.record import accepted_extract, read_json, run_dir, write_json

WINDOWS_FILE = "windows.json"  # the staged release's windows and the earlier releases it was protected with

if TYPE_CHECKING:
    from treatment_marts.disclosure.audit import AuditResult
    from treatment_marts.disclosure.protect import ProtectionResult
    from treatment_marts.disclosure.tables import LinearRelation, MartTable
    from treatment_marts.marts.designs import AreaDesign
    from treatment_marts.pipeline.windows import WindowRelease


@dataclass(frozen=True)
class ProtectResult:
    """The staged, audited release (restricted until published); JSON-able for XCom."""

    period: Period
    run_id: RunId
    staged_dir: Path
    marts: list[str]
    suppressed_cells: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "period": str(self.period),
            "run_id": str(self.run_id),
            "staged_dir": str(self.staged_dir),
            "marts": list(self.marts),
            "suppressed_cells": self.suppressed_cells,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProtectResult:
        return cls(
            period=Period.parse(data["period"]),
            run_id=RunId.parse(data["run_id"]),
            staged_dir=Path(data["staged_dir"]),
            marts=list(data["marts"]),
            suppressed_cells=int(data["suppressed_cells"]),
        )


@dataclass
class ProtectedPopulations:
    """What `protect_populations` wrote and what the manifest and the log need from it."""

    marts: list[str] = field(default_factory=list)
    not_built: dict[str, str] = field(default_factory=dict)
    logs: list[pd.DataFrame] = field(default_factory=list)
    losses: list[pd.DataFrame] = field(default_factory=list)
    intervals: list[pd.DataFrame] = field(default_factory=list)
    windows: dict[str, Any] = field(default_factory=dict)  # pipeline/windows.WindowRelease.summary()
    designs: list[dict[str, str]] = field(default_factory=list)  # marts/designs.AreaDesign, per area then Total
    # A revision, audited with the release it replaces under the sensitive-cell rule: what the IG reviewer
    # must know of it (restricted; `revision_audit`), else None.
    revision: dict[str, Any] | None = None
    # the clients of the record-level product's population as the marts selected them (rules.yaml
    # record_level), so the product does not select them from the episode frame a second time
    record_clients: pd.DataFrame | None = None


def combined_extract(landed_paths: list[str]) -> pd.DataFrame:
    """The period's files as one frame; an episode key in two files is refused (it would count twice)."""
    frames = [read_landed(p) for p in landed_paths]
    combined = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    duplicated = combined.duplicated(["agency_code", "episode_id"], keep=False)
    if duplicated.any():
        agencies = sorted(combined.loc[duplicated, "agency_code"].unique())[:5]
        raise ExtractError(
            f"{int(duplicated.sum())} rows share an (agency_code, episode_id) key across the period's files "
            f"(agencies {agencies}); one episode must appear in exactly one file"
        )
    return combined


class EarlierReleaseUnreadable(RuntimeError):
    """A revision cannot carry the earlier release's suppressions forward: refuse rather than publish."""


def current_release_manifest(settings: Settings, period: Period) -> dict[str, Any] | None:
    """The period's public release manifest, or None before its first release; one that exists but cannot
    be read (or names no marts) refuses the revision, since what it protects cannot be known."""
    manifest_path = settings.public_dir / "releases" / f"period={period}" / "manifest.json"
    if not manifest_path.exists():
        return None
    try:
        manifest = read_json(manifest_path)
        list(manifest["marts"])  # a manifest must name its marts
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EarlierReleaseUnreadable(
            f"period {period} has a public release, but its manifest {manifest_path} cannot be read "
            f"({type(exc).__name__}); a revision must carry its suppressions forward: restore the file from "
            "backup (or withdraw the release), then re-run"
        ) from None
    return dict(manifest)


def suppressed_in_current_release(
    settings: Settings, period: Period, marts_config: MartsConfig | None = None
) -> dict[str | None, set[str]]:
    """Canonical keys of the cells the period's current *public* release withholds, per population.

    Policy across releases (docs/disclosure.md): a revision of a period keeps every cell the earlier
    release suppressed, so the two releases cannot be differenced to expose a hidden value. The state is
    read from the public release it protects (the `c` cells of each mart it names), not from a restricted
    link that can go missing: a revision published without it leaked a cell exactly. When a release
    exists but one of its marts cannot be read, the revision is refused with what to do. Marts no longer
    configured carry their keys into every population (key None); derived marts follow their source.
    """
    from treatment_marts.disclosure.tables import cell_key

    manifest = current_release_manifest(settings, period)
    if manifest is None:
        return {}
    names = [str(m) for m in manifest["marts"]]
    if marts_config is None:  # callers outside the protect stage: the configured catalogue
        rules, areas = load_rules(settings.config_dir), load_areas(settings.config_dir)
        marts_config = load_marts(settings.config_dir, set(dimension_levels(rules, areas)))
    definitions = {d.name: d for d in marts_config.marts}
    carried: dict[str | None, set[str]] = {}
    for name in names:
        definition = definitions.get(name)
        if definition is not None and definition.derived_from is not None:
            continue  # withheld with the clients mart it is derived from
        path = settings.public_dir / "marts" / name / f"period={period}" / "data.parquet"
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as exc:  # missing, truncated or not Parquet (pyarrow's errors are these)
            raise EarlierReleaseUnreadable(
                f"period {period}: the published mart {name} of run {manifest.get('run_id')} cannot be read "
                f"({type(exc).__name__}) at {path}; a revision must carry its suppressions forward: restore "
                f"public/marts/{name}/period={period} (its .releases folder keeps the last versions) or withdraw "
                "the release, then re-run"
            ) from None
        dims = list(definition.dimensions) if definition else [c for c in frame.columns if c not in _MEASURES]
        hidden = frame[frame["status"].astype("string").eq("c").fillna(False)]
        keys = {
            cell_key(str(row["period"]), {d: str(row[d]) for d in dims})
            for _, row in hidden[["period", *dims]].iterrows()
        }
        carried.setdefault(definition.scope if definition else None, set()).update(keys)
    return carried


_MEASURES = ("period", "count", "status", "percent", "area_code")  # area_code: an attribute of area (marts/codes.py)


class RevisionChangesAreas(RuntimeError):
    """A revision would publish a different set of areas than the period's current public release."""


def refuse_a_change_of_areas(settings: Settings, period: Period, areas: AreasConfig, left_out: list[str]) -> None:
    """Refuse a revision whose areas differ from the current public release's (docs/disclosure.md).

    Carrying suppression forward protects the cells hidden before, not the difference between releases:
    with an area added (a late area) or dropped, new national minus old national *is* that area, and every
    cell it withheld comes back. Until the cross-release repair runs at pipeline scale, such a revision is
    refused and the current release stays as it is.
    """
    manifest = current_release_manifest(settings, period)
    if manifest is None:
        return
    before = set(manifest.get("areas_left_out") or [])
    now = set(left_out)
    if before == now:
        return
    added, dropped = sorted(before - now), sorted(now - before)
    change = "; ".join(
        part
        for part in (
            f"adds {', '.join(added)} (left out of the current release)" if added else "",
            f"leaves out {', '.join(dropped)} (in the current release)" if dropped else "",
        )
        if part
    )
    raise RevisionChangesAreas(
        f"period {period}: this revision {change}. Anyone holding both releases could subtract one national "
        "figure from the other and read that area's withheld cells, so it is refused and the current release "
        "is unchanged. Publish the area's figures with the next period, or (for an area dropped by mistake) "
        "re-run with its extract included; see docs/runbook.md"
    )


def areas_left_out(settings: Settings, run_id: RunId, areas: AreasConfig) -> list[str]:
    """Configured areas the run record (``areas.json``) leaves out of this release, sorted; [] for a run
    without per-area records (one national file: every area is in it)."""
    record = run_dir(settings, run_id) / "areas.json"
    if not record.exists():
        return []
    excluded = {str(e["unit"]) for e in read_json(record).get("excluded", [])}
    return sorted(excluded & {a.name for a in areas.areas})


def areas_without_episodes(frame: pd.DataFrame, areas: AreasConfig) -> list[str]:
    """Configured areas with no episode in the recoded frame, sorted: an area that sent nothing (e.g. missing
    from a combined national file) is not an area with no clients, so its cells would be false zeros."""
    present = set(frame["area"].dropna().astype(str).unique())
    return sorted(a.name for a in areas.areas if a.name not in present)


def in_release(areas: AreasConfig, left_out: list[str]) -> AreasConfig:
    """The areas a release covers: the mart levels, the exports' workbooks and unmet need's rows."""
    return areas.model_copy(update={"areas": [a for a in areas.areas if a.name not in set(left_out)]})


def _within(frame: pd.DataFrame, scope: AreasConfig) -> pd.DataFrame:
    """Only the episodes of areas in the release (an earlier month's extract may hold a left-out area)."""
    names = [a.name for a in scope.areas]
    return frame[frame["area"].isin(names).fillna(False)].reset_index(drop=True)


def as_dimensions(frame: pd.DataFrame, levels: dict[str, list[str]]) -> pd.DataFrame:
    """The recoded frame with every publishable dimension held as a categorical over its declared levels.

    Marts filter, sort and group a national month (~1M episodes) several times per population; integer
    codes make each of those cheap and the frame a fraction of its size as Arrow strings. Values outside the
    declared levels are kept (the categories are extended), so the mart builder still names and refuses them.
    """
    from treatment_marts.core.columns import as_categorical

    out = frame.copy(deep=False)
    for name, declared in levels.items():
        if name in out.columns and (out[name].dtype == "string" or out[name].dtype == object):
            out[name] = as_categorical(out[name], declared)
    return out


def _history(
    settings: Settings,
    period: Period,
    months: int,
    current: pd.DataFrame,
    rules: RulesConfig,
    areas: AreasConfig,
    levels: dict[str, list[str]],
    scope: AreasConfig,
) -> tuple[pd.DataFrame, list[str]]:
    """Recoded episodes of the ``months`` accepted extracts ending with ``period`` (for re-presentation),
    of the areas in the release; the periods with no accepted extract are returned instead of a partial
    history."""
    frames, missing = [current], []
    for back in range(months - 1, 0, -1):
        earlier = period.minus(back)
        extract = accepted_extract(settings, earlier)
        if extract is None:
            missing.append(str(earlier))
        else:
            recoded = recode(extract, rules, areas, pseudonym_key=pseudonym_key(settings)).frame
            frames.append(as_dimensions(_within(recoded, scope), levels))
    return (pd.concat(frames, ignore_index=True) if not missing else current), missing


def assert_k_safe(frame: pd.DataFrame, name: str, k: int) -> None:
    """Last line of defence, independent of the suppressor: no published count in 1..k."""
    counts = frame["count"]
    unsafe = counts.notna() & (counts >= 1) & (counts <= k)
    if unsafe.any():
        raise RuntimeError(
            f"mart {name}: {int(unsafe.sum())} published cell(s) hold 1..{k} individuals; refusing to stage"
        )


EARLIER_SCOPE = "earlier:"  # scope prefix of the period's current release in the revision's attack model


def earlier_release_context(
    settings: Settings, period: Period, tables: dict[str, list[MartTable]]
) -> dict[str, list[MartTable]]:
    """The period's current public release as an attacker who kept it holds it, per population (scoped
    ``earlier:<population>``): its published marts of the populations being protected, each withheld cell
    with its true count (``true_count``) from that run's restricted suppression log, so the revision can be
    protected together with it (disclosure.protect.protect_release ``context``). {} before a first release.

    The log is read from the run folder the public manifest names, not the period's suppression-log link
    (which can go missing); without it the revision is refused, since its difference cannot be protected."""
    from treatment_marts.disclosure.tables import MartTable, table_cell

    manifest = current_release_manifest(settings, period)
    if manifest is None:
        return {}
    run_id = str(manifest.get("run_id"))
    log_path = run_dir(settings, RunId.parse(run_id)) / "suppression_log.parquet"
    try:
        log = pd.read_parquet(log_path, columns=["mart", "cell", "true_count"])
    except (OSError, ValueError) as exc:
        raise EarlierReleaseUnreadable(
            f"period {period}: the restricted suppression log of the current release (run {run_id}) cannot be "
            f"read ({type(exc).__name__}) at {log_path}; a revision is protected together with the release it "
            "replaces and needs its withheld counts: restore the run folder from backup, then re-run"
        ) from None
    truth = {(str(m), str(c)): int(v) for m, c, v in zip(log["mart"], log["cell"], log["true_count"], strict=True)}
    published = set(str(m) for m in manifest["marts"])
    context: dict[str, list[MartTable]] = {}
    for population, current in tables.items():
        held = []
        for table in current:
            path = settings.public_dir / "marts" / table.name / f"period={period}" / "data.parquet"
            if table.name not in published or not path.exists():
                continue  # a mart new in this revision: nothing earlier to difference it against
            dims = list(table.dimensions)
            frame = pd.read_parquet(path, columns=["period", *dims, "count", "status"])
            for column in ("period", *dims):
                frame[column] = frame[column].astype("string")
            cells = [table_cell(dict(zip(dims, row, strict=True))) for row in frame[dims].itertuples(index=False)]
            hidden = frame["count"].isna().to_numpy()
            missing = [c for c, h in zip(cells, hidden, strict=True) if h and (table.name, c) not in truth]
            if missing:
                raise EarlierReleaseUnreadable(
                    f"period {period}: the suppression log of run {run_id} lacks {len(missing)} withheld cell(s) "
                    f"of {table.name}; restore the run folder from backup, then re-run"
                )
            true = [truth.get((table.name, c)) if h else None for c, h in zip(cells, hidden, strict=True)]
            frame["count"] = frame["count"].astype("Int64")
            frame["true_count"] = pd.array(true, dtype="Int64")
            complete = frame["count"].fillna(frame["true_count"])
            held.append(MartTable(table.name, table.dimensions, frame, overlap=_overlap_of(frame, dims, complete)))
        if held:
            context[f"{EARLIER_SCOPE}{population}"] = held
    return context


def _overlap_of(frame: pd.DataFrame, dims: list[str], counts: pd.Series) -> dict[str, int]:
    """D of an earlier table (its areas' grand totals less its national one), from its true counts."""
    if "area" not in dims:
        return {}
    others = [d for d in dims if d != "area"]
    grand = frame[others].eq(TOTAL).all(axis=1) if others else pd.Series(True, index=frame.index)
    national = counts[grand & frame["area"].eq(TOTAL)]
    areas = counts[grand & frame["area"].ne(TOTAL)]
    return area_overlap(int(areas.sum()) - int(national.sum()), dims)


def revision_context_relations(
    tables: dict[str, list[MartTable]], context: dict[str, list[MartTable]]
) -> list[LinearRelation]:
    """What an attacker holding the release a revision replaces knows of each cell both publish: the
    revision's cell is within r of the earlier one, r per area (disclosure.relations.revision_relations)."""
    from treatment_marts.disclosure.relations import revision_relations

    relations: list[LinearRelation] = []
    for population, current in tables.items():
        held = context.get(f"{EARLIER_SCOPE}{population}")
        if held:
            names = {t.name for t in held}
            mine = [t for t in current if t.name in names]
            relations.extend(revision_relations(population, mine, f"{EARLIER_SCOPE}{population}", held))
    return relations


def _as_published(
    context: dict[str, list[MartTable]], relations: list[LinearRelation]
) -> tuple[list[MartTable], list[str | None], set[str], set[str]]:
    """The earlier release as the final audit's attacker holds it: its public tables (no true counts), their
    scopes, the revision's keys whose value it already published (disclosure.relations.published_through),
    and its withheld zeros (carried forward there: the attacker knows only >= 0 for them)."""
    from treatment_marts.disclosure.relations import published_through, table_keys
    from treatment_marts.disclosure.tables import scoped_key

    held: list[MartTable] = []
    scopes: list[str | None] = []
    shown: set[str] = set()
    zeros: set[str] = set()
    for scope, tables in context.items():
        for table in tables:
            frame = table.frame
            hidden_zero = frame["count"].isna() & frame["true_count"].eq(0).fillna(False)
            zeros |= {scoped_key(scope, k) for k in table_keys([replace(table, frame=frame[hidden_zero])])}
            shown |= {scoped_key(scope, k) for k in table_keys([replace(table, frame=frame[frame["count"].notna()])])}
            held.append(replace(table, frame=frame.drop(columns=["true_count"])))
            scopes.append(scope)
    return held, scopes, published_through(relations, shown), zeros


def population_relations(tables: dict[str, list[MartTable]], clients: dict[str, pd.DataFrame]) -> list[LinearRelation]:
    """What the attacker knows across the populations of one release: a subset population (marts/
    populations.SUBSET_OF) is at most its superset in every cell both publish, up to the clients the two
    count by different episodes (populations.subset_slack: 0 for new presentations by construction)."""
    from treatment_marts.disclosure.relations import subset_relations
    from treatment_marts.marts.populations import SUBSET_OF, subset_slack

    relations: list[LinearRelation] = []
    for subset, superset in SUBSET_OF.items():
        if subset in tables and superset in tables and tables[subset] and tables[superset]:
            slack = subset_slack(clients[subset], clients[superset])
            relations.extend(subset_relations(subset, tables[subset], superset, tables[superset], slack=slack))
    return relations


COMPLETIONS = "completions_followed_up"


def published_exits(settings: Settings, mart: str, month: str) -> pd.DataFrame | None:
    """A month's exits mart as the attacker holds it, with ``upper``: the published count, or where the
    month withheld the cell the upper end of its protection interval from that month's restricted
    suppression log (the most its audit let anyone prove). None when the month has no release of the mart.
    The log is the one in the run folder the month's public manifest names, as for a revision
    (``earlier_release_context``), not the period's suppression-log link. A withheld cell whose interval
    cannot be read raises EarlierReleaseUnreadable: the outside attacker bounds it from that month's release
    anyway, so leaving it unbounded would model a weaker attacker than the real one."""
    from treatment_marts.disclosure.tables import table_cell

    path = settings.public_dir / "marts" / mart / f"period={month}" / "data.parquet"
    if not path.exists():
        return None
    frame = pd.read_parquet(path).astype({"period": "string"})
    dims = [c for c in ("area", "substance_group", "discharge_group") if c in frame.columns]
    frame["upper"] = frame["count"].astype("Float64")
    manifest = current_release_manifest(settings, Period.parse(month))
    log_path = run_dir(settings, str(manifest["run_id"])) / "suppression_log.parquet" if manifest else None
    withheld = frame["count"].isna()
    if not withheld.any():
        return frame
    log = pd.read_parquet(log_path) if log_path is not None and log_path.exists() else None
    if log is None or "audit_upper" not in log.columns:
        raise EarlierReleaseUnreadable(
            f"the {month} release of {mart} withholds {int(withheld.sum())} cell(s) whose protection intervals "
            f"are not in a readable restricted suppression log ({log_path or 'no release manifest'})"
        )
    log = log[log["mart"] == mart]
    upper = dict(zip(log["cell"].astype(str), log["audit_upper"].astype("Float64"), strict=True))
    cells = [
        table_cell(dict(zip(dims, row, strict=True)))
        for row in frame.loc[withheld, dims].itertuples(index=False, name=None)
    ]
    bounds = pd.array([upper.get(c, pd.NA) for c in cells], dtype="Float64")
    if pd.isna(bounds).any():
        raise EarlierReleaseUnreadable(
            f"the {month} release of {mart} withholds {int(pd.isna(bounds).sum())} cell(s) its restricted "
            f"suppression log ({log_path}) has no protection interval for"
        )
    frame.loc[withheld, "upper"] = bounds
    return frame


def completion_relations(
    settings: Settings,
    tables: dict[str, list[MartTable]],
    sources: dict[str, pd.DataFrame],
    period: Period,
    marts_config: MartsConfig,
    levels: dict[str, list[str]],
) -> list[LinearRelation]:
    """The completions mart against the exits of its window months (marts/completion_bounds.py): each
    completions cell is at most the successful exits those months' releases published in the same cell
    (withheld ones at their audit upper bound), plus the slack the pipeline knows."""
    from treatment_marts.disclosure.relations import upper_bound_relations
    from treatment_marts.marts.completion_bounds import (
        EXIT_DIMENSIONS,
        completion_bound_slack,
        published_exit_bounds,
        true_exit_sums,
        window_months,
    )

    population = COMPLETIONS
    exits = [d for d in marts_config.by_population().get("exits", []) if tuple(d.dimensions) == EXIT_DIMENSIONS]
    if population not in tables or not exits:
        return []
    published = {m: published_exits(settings, exits[0].name, m) for m in window_months(str(period))}
    bounds = published_exit_bounds(published, str(period))
    if bounds.empty:
        return []
    truth = true_exit_sums(sources[population], str(period), exits[0], levels)
    for table in tables[population]:
        if {"area", "substance_group", "representation"} <= set(table.dimensions):
            labels = [
                ({"area": str(a), "substance_group": str(s)}, b)
                for a, s, b in bounds[["area", "substance_group", "bound"]].itertuples(index=False, name=None)
            ]
            # one relation per cell key: the linked tables of a population share their cells
            return upper_bound_relations(
                population, str(period), labels, slack=completion_bound_slack(table.frame, truth)
            )
    return []


def release_windows(
    settings: Settings,
    period: Period,
    analysis: pd.DataFrame,
    month_tables: dict[str, list[MartTable]],
    rules: RulesConfig,
    areas: AreasConfig,
    levels: dict[str, list[str]],
    marts_config: MartsConfig,
    scope: AreasConfig,
) -> WindowRelease:
    """The release's window marts, the earlier releases they overlap and the relations (pipeline/windows.py),
    each history month prepared as this month's frame is (the release's areas, categorical dimensions)."""
    from treatment_marts.pipeline.windows import build_windows

    def prepare(recoded: pd.DataFrame) -> pd.DataFrame:
        return as_dimensions(_within(recoded, scope), levels)

    return build_windows(settings, period, analysis, month_tables, rules, areas, levels, marts_config, prepare)


WINDOW_REPAIRS = 6  # rounds of protect_windows' repair; each hides window cells the last audit named


def protect_windows(
    multi: dict[str, list[MartTable]],
    windows: WindowRelease,
    months: dict[str, list[MartTable]],
    protected: dict[str, ProtectionResult],
    rules: RulesConfig,
    earlier: dict[str, set[str]],
    month_relations: list[LinearRelation],
) -> tuple[dict[str, ProtectionResult], AuditResult]:
    """The release's window marts, protected against one attacker who holds this release's month marts as
    protected (``protected``, true counts from ``months``) and every earlier published release the windows
    overlap: all are context, never changed; a context cell the windows would expose is protected through
    the windows' cells (disclosure.protect.protect_release). Month marts keep the pattern they have alone.

    The repair reaches a context cell only through a relation that names it; a month cell exposed through
    its own table's lines (an age band of an area whose margin a window bounds) is not. So the release
    audit runs here too, and each window cell whose labels are the most of an exposed cell's (its
    projection on the window's dimensions) is hidden in the next round, until the audit passes (at most
    WINDOW_REPAIRS rounds; the stage's own audit then has the last word). Returns the windows' patterns
    and the last round's audit (every cell of the system, the context's included), which the stage reuses
    when it would audit the very same system again."""
    from treatment_marts.disclosure.audit import audit
    from treatment_marts.disclosure.protect import protect_release
    from treatment_marts.disclosure.relations import table_keys
    from treatment_marts.disclosure.tables import scoped_key  # noqa: F811

    held = {
        name: [
            replace(t, frame=t.frame.assign(true_count=truth.frame["count"].astype("Int64")))
            for t, truth in zip(protected[name].tables, months[name], strict=True)
        ]
        for name in months
    }
    context = {**windows.context, **windows.month_context, **held}
    public = [
        (name, replace(t, frame=t.frame.drop(columns=["true_count"]))) for name, ts in context.items() for t in ts
    ]
    window_keys = {name: sorted(table_keys(tables)) for name, tables in multi.items()}
    forced: dict[str, set[str]] = {name: set() for name in multi}
    for _ in range(WINDOW_REPAIRS):
        result = protect_release(
            multi,
            relations=windows.relations,
            k=rules.disclosure.k,
            zeros=rules.disclosure.zeros,
            carried={name: earlier[name] | forced[name] for name in multi},
            cleanup_audits=rules.disclosure.cleanup_audits,
            context=context,
        )
        released = [t for name in multi for t in result[name].tables]
        check = audit(
            released + [t for _, t in public],
            k=rules.disclosure.k,
            zeros=rules.disclosure.zeros,
            scopes=[name for name in multi for _ in result[name].tables] + [name for name, _ in public],
            relations=[*month_relations, *windows.month_relations, *windows.relations],
            carried={scoped_key(name, key) for name in [*months, *multi] for key in earlier[name]},
        )
        exposed = [json.loads(key.split("|", 1)[1]) for key in check.intervals.loc[check.intervals["disclosed"], "key"]]
        added = False
        for labels in exposed:
            for name, keys in window_keys.items():
                nearest = _nearest_cell(labels, keys)
                if nearest is not None and nearest not in forced[name]:
                    forced[name].add(nearest)
                    added = True
        if not added:
            return result, check
    return result, check


def _nearest_cell(labels: dict[str, str], keys: list[str]) -> str | None:
    """The window cell (canonical key, the release's period) sharing the most of ``labels`` and no other
    label: the cell through which a window bounds a month cell with those labels."""
    best, best_size = None, -1
    for key in keys:
        cell = json.loads(key)
        inner = {d: v for d, v in cell.items() if d != "period"}
        if all(labels.get(d) == v for d, v in inner.items()) and len(inner) > best_size:
            best, best_size = key, len(inner)
    return best


def month_populations(
    settings: Settings,
    period: Period,
    analysis: pd.DataFrame,
    rules: RulesConfig,
    areas: AreasConfig,
    levels: dict[str, list[str]],
    scope: AreasConfig,
    populations: dict[str, list[Any]],
    not_built: dict[str, str],
) -> tuple[dict[str, list[MartTable]], dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Each population's month marts (unprotected), its clients and the frame they were selected from (the
    month, or the accepted months a multi-month population needs); a population whose months are not all
    accepted is named in ``not_built`` instead."""
    from treatment_marts.disclosure.tables import MartTable  # noqa: F811

    tables: dict[str, list[MartTable]] = {}
    clients: dict[str, pd.DataFrame] = {}
    sources: dict[str, pd.DataFrame] = {}
    for population, definitions in populations.items():
        source = analysis
        if history_months(population) > 1:
            source, missing = _history(
                settings, period, history_months(population), analysis, rules, areas, levels, scope
            )
            if missing:
                not_built.update({d.name: f"no accepted extract for {', '.join(missing)}" for d in definitions})
                continue
        sources[population] = source
        clients[population] = select_population(source, population, period)
        # A client open in two areas is in both areas' rows and once in the national Total: the audit holds
        # "areas sum to national + 0..D" along area (D never published; docs/disclosure.md, issue 18).
        overlap = national_overlap(clients[population])
        tables[population] = [
            MartTable(
                name=d.name,
                dimensions=tuple(d.dimensions),
                frame=build_mart(clients[population], d, period, levels),
                overlap=area_overlap(overlap, d.dimensions),
            )
            for d in definitions
        ]
    return tables, clients, sources


def _leave_out_completions(
    tables: dict[str, list[MartTable]],
    populations: dict[str, list[MartDefinition]],
    out: ProtectedPopulations,
    reason: str,
) -> None:
    tables.pop(COMPLETIONS, None)
    out.not_built.update({d.name: reason for d in populations.get(COMPLETIONS, [])})


def _completion_bounds(
    settings: Settings,
    tables: dict[str, list[MartTable]],
    sources: dict[str, pd.DataFrame],
    period: Period,
    marts_config: MartsConfig,
    levels: dict[str, list[str]],
    populations: dict[str, list[MartDefinition]],
    out: ProtectedPopulations,
) -> list[LinearRelation]:
    """completion_relations, or, when a window month's withheld exits have no readable interval, the
    completions mart left out of the period with the reason (the suppressor cannot model the attacker's
    bound without them); the rest of the release goes out."""
    try:
        return completion_relations(settings, tables, sources, period, marts_config, levels)
    except EarlierReleaseUnreadable as exc:
        _leave_out_completions(tables, populations, out, f"{exc}; not published for this period")
        return []


def release_designs(
    marts_config: MartsConfig,
    tables: dict[str, list[MartTable]],
    clients: dict[str, pd.DataFrame],
    levels: dict[str, list[str]],
    scope: AreasConfig,
) -> tuple[list[AreaDesign], dict[str, dict[str, str]], list[LinearRelation]]:
    """Each area's declared table design (marts.yaml ``designs``; by its adults in treatment this month),
    per population the cells those designs do not publish (canonical key -> reason), which
    `protect_release` suppresses a priori, and what the published designs tell the attacker: an area's
    adults in treatment lie in its design's size band (`designs.size_bounds`). Every month population
    follows the same area designs."""
    from treatment_marts.disclosure.tables import LinearRelation, cell_key, scoped_key  # noqa: F811
    from treatment_marts.marts.designs import SIZE_POPULATION, a_priori_cells, check_levels, choose_designs, size_bounds

    designs = marts_config.designs
    if not designs:
        return [], {}, []
    check_levels(designs, levels)
    size = clients.get(SIZE_POPULATION)
    if size is None:  # no in-treatment marts: no size to choose by, every area stays at the full design
        return [], {}, []
    adults = size["area"].astype(str).value_counts().to_dict()
    chosen = choose_designs(designs, adults, [a.name for a in scope.areas])
    design_of = {c.area: c.design for c in chosen}
    a_priori: dict[str, dict[str, str]] = {}
    for population, current in tables.items():
        keys: dict[str, str] = {}
        for table in current:
            dims = list(table.dimensions)
            rows = table.frame[a_priori_cells(table.frame, dims, designs, chosen).to_numpy()]
            for period, labels in zip(
                rows["period"].astype(str), rows[dims].astype(str).itertuples(index=False, name=None), strict=True
            ):
                area = labels[dims.index("area")]
                keys[cell_key(period, dict(zip(dims, labels, strict=True)))] = (
                    f"a priori: {'the national rows are' if area == TOTAL else area + ' is'} published at table "
                    f"design {design_of[area]}"
                )
        if keys:
            a_priori[population] = keys
    sized = tables.get(SIZE_POPULATION) or []
    periods = sized[0].frame["period"].astype(str).unique() if sized else []
    relations = [
        LinearRelation(
            ((scoped_key(SIZE_POPULATION, cell_key(period, {"area": area})), 1.0),),
            lower=float("-inf") if lower is None else float(lower),
            upper=float("inf") if upper is None else float(upper),
        )
        for period in periods
        for area, lower, upper in size_bounds(designs, chosen)
    ]
    return chosen, a_priori, relations


def release_audit(
    protected: dict[str, ProtectionResult],
    order: list[str],
    relations: list[LinearRelation],
    replaced: dict[str, list[MartTable]],
    windows: WindowRelease,
    earlier: dict[str, set[str]],
    rules: RulesConfig,
    window_check: AuditResult | None,
) -> AuditResult:
    """The stage's audit of the release (systems ``order``) with every earlier release the attacker holds:
    the release a revision replaces (as published, with the cells it already published) and the releases
    the windows overlap, solved with this release, not reported."""
    from treatment_marts.disclosure.audit import audit, reported
    from treatment_marts.disclosure.tables import scoped_key  # noqa: F811

    released = [t for p in order for t in protected[p].tables]
    scopes: list[str | None] = [p for p in order for _ in protected[p].tables]
    logs = [protected[p].log for p in order]
    true_counts = pd.concat(logs, ignore_index=True) if logs else None
    if window_check is not None and not replaced:
        # protect_windows' last round audited this very system (the same tables, relations, floors and
        # rule; only a revision adds the release it replaces): its verdicts on this release's cells are the
        # stage's audit, not solved twice (it was half the March close).
        return reported(window_check, order, true_counts)
    held, held_scopes, public, zero_held = _as_published(replaced, relations)
    overlapping = [(name, t) for name, ts in {**windows.context, **windows.month_context}.items() for t in ts]
    # replace, not a new MartTable: a table keeps what it declares (its national overlap) as context too
    held += [replace(t, frame=t.frame.drop(columns=["true_count"])) for _, t in overlapping]
    held_scopes += [name for name, _ in overlapping]
    return audit(
        released + held,
        k=rules.disclosure.k,
        zeros=rules.disclosure.zeros,
        true_counts=true_counts,
        carried={scoped_key(p, key) for p in order for key in earlier[p]} | zero_held,
        scopes=scopes + held_scopes,
        relations=relations,
        report=range(len(released)),
        public=public,
        small_only=bool(replaced),
    )


def _record_clients(rules: RulesConfig, clients: dict[str, pd.DataFrame]) -> pd.DataFrame | None:
    """The month clients of the record-level product's population (a one-month population only)."""
    population = rules.record_level.population if rules.record_level is not None else None
    return clients.get(population) if population and history_months(population) == 1 else None


def protect_populations(
    settings: Settings,
    period: Period,
    analysis: pd.DataFrame,
    marts_dir: Path,
    rules: RulesConfig,
    areas: AreasConfig,
    levels: dict[str, list[str]],
    marts_config: MartsConfig,
    scope: AreasConfig,
) -> ProtectedPopulations:
    """Build every population's marts, suppress them against one attacker who holds the whole release
    (each population's linked tables, and the relations between populations), audit the release as one
    system, write the marts."""
    from treatment_marts.disclosure.audit import DisclosureAuditFailed
    from treatment_marts.disclosure.protect import PopulationNotProtected, protect_release
    from treatment_marts.disclosure.tables import ProtectionError  # noqa: F811

    carried = suppressed_in_current_release(settings, period, marts_config)
    out = ProtectedPopulations()
    populations = marts_config.by_population()
    tables, clients, sources = month_populations(
        settings, period, analysis, rules, areas, levels, scope, populations, out.not_built
    )
    out.record_clients = _record_clients(rules, clients)
    windows = release_windows(settings, period, analysis, tables, rules, areas, levels, marts_config, scope)
    out.not_built.update(windows.not_built)
    out.windows = windows.summary()
    designs, a_priori, design_relations = release_designs(marts_config, tables, clients, levels, scope)
    out.designs = [d.to_dict() for d in designs]
    populations = dict(populations)
    # A window of one month (the year to date in April) joins its month population's system; longer windows
    # are protected after the month marts, with those (and every earlier release they overlap) as context.
    multi = {name: extra for name, extra in windows.tables.items() if name not in tables}
    for name, extra in windows.tables.items():
        if name not in multi:
            tables[name] = tables[name] + extra
            populations[name] = populations[name] + windows.definitions[name]
    populations.update({name: windows.definitions[name] for name in multi})
    # carried forward per system: the keys withheld by the current release's marts of that system
    earlier = {
        name: set().union(*(carried.get(d.scope, carried.get(None, set())) for d in populations[name]))
        for name in [*tables, *multi]
    }
    bounded = _completion_bounds(settings, tables, sources, period, marts_config, levels, populations, out)
    month_relations = population_relations(tables, clients) + design_relations
    # A revision is protected together with the release it replaces (docs/disclosure.md, "Across releases"):
    # the attacker holds both, and each area's cells moved by at most r between them.
    replaced = earlier_release_context(settings, period, tables)
    month_relations += revision_context_relations(tables, replaced)
    month_context = {**windows.month_context, **replaced}

    def protect_months(extra: list[LinearRelation]) -> dict[str, ProtectionResult]:
        return protect_release(
            tables,
            relations=month_relations + windows.month_relations + extra,
            k=rules.disclosure.k,
            zeros=rules.disclosure.zeros,
            carried={name: earlier[name] for name in tables},
            cleanup_audits=rules.disclosure.cleanup_audits,
            context=month_context or None,
            complements=rules.disclosure.complements,
            small_only=bool(replaced),
            a_priori={name: keys for name, keys in a_priori.items() if name in tables},
        )

    try:
        try:
            protected = protect_months(bounded)
        except PopulationNotProtected:
            if not bounded:
                raise
            # The exits its window months published can pin a small completions cell whatever this release
            # hides (a cell bounded by 4 exits, split 1 and 3): the mart is left out, never the release.
            _leave_out_completions(
                tables,
                populations,
                out,
                "cannot be protected against the successful exits its window months published "
                "(a group of 1-3 would follow); not published for this period",
            )
            replaced.pop(f"{EARLIER_SCOPE}{COMPLETIONS}", None)
            month_context.pop(f"{EARLIER_SCOPE}{COMPLETIONS}", None)
            month_relations = (
                population_relations(tables, clients) + design_relations + revision_context_relations(tables, replaced)
            )
            bounded = []
            protected = protect_months([])
        window_check = None
        if multi:
            window_results, window_check = protect_windows(
                multi, windows, tables, protected, rules, earlier, month_relations + bounded
            )
            protected.update(window_results)
    except PopulationNotProtected as exc:
        named = [exc.population] if exc.population in populations else list(tables)
        withheld = sum(len(earlier[p]) for p in named)
        revision = (
            f"; this is a revision: {withheld} cell(s) the current release withholds must stay withheld, so "
            "a corrected file that changes small groups can leave no safe pattern -- publish the correction "
            "with the next period, or ask IG to withdraw the current release first (docs/runbook.md)"
            if withheld
            else "; publish coarser categories (rules.yaml) or fewer dimensions for this population (marts.yaml)"
        )
        names = ", ".join(d.name for p in named for d in populations[p])
        subject = f"population {exc.population}" if exc.population in populations else "the release's populations"
        raise ProtectionError(f"{subject} (marts {names}) cannot be protected: {exc.reason}{revision}") from None
    order = [*tables, *multi]
    relations = month_relations + bounded + windows.month_relations + windows.relations
    result = release_audit(protected, order, relations, replaced, windows, earlier, rules, window_check)
    out.intervals.append(result.intervals)
    if not result.passed:
        raise DisclosureAuditFailed(result)
    out.revision = revision_audit(result.intervals, rules.disclosure.k) if replaced else None
    for population in order:
        percent_of = {d.name: d.percent_of for d in populations[population]}
        for table in protected[population].tables:
            assert_k_safe(table.frame, table.name, rules.disclosure.k)
            frame = table.frame
            percent = percent_of[table.name]
            if percent:
                frame = add_percentages(frame, list(table.dimensions), percent)
            frame.to_parquet(marts_dir / f"{table.name}.parquet", index=False)
            out.marts.append(table.name)
        out.logs.append(protected[population].log.assign(population=population))
        out.losses.append(protected[population].information_loss)
    return out


def build_derived_marts(
    settings: Settings,
    period: Period,
    marts_dir: Path,
    rules: RulesConfig,
    areas: AreasConfig,
    marts_config: MartsConfig,
    scope: AreasConfig,
) -> list[str]:
    """Marts computed from published (suppressed) marts only, e.g. unmet need: no new disclosure.

    In a partial release the national estimate is not compared with the national count (it would overstate
    unmet need by the areas left out): the Total rows carry no estimate.
    """
    partial = len(scope.areas) < len(areas.areas)
    built = []
    for definition in marts_config.derived():
        source_path = marts_dir / f"{definition.derived_from}.parquet"
        if definition.window != "month" and not source_path.exists():
            continue  # its window is not built at this period (the manifest names the source as not built)
        source = pd.read_parquet(source_path)
        groups = list(definition.prevalence_groups or {})
        estimates = load_prevalence(settings.config_dir / "reference" / str(definition.reference), areas, groups)
        if partial:
            estimates = [e for e in estimates if e.area != TOTAL]
        frame = build_unmet_need(source, definition, estimates, rules, scope, period)
        assert_k_safe(frame, definition.name, rules.disclosure.k)
        frame.to_parquet(marts_dir / f"{definition.name}.parquet", index=False)
        built.append(definition.name)
    by_name = {m.name: m for m in marts_config.marts}
    for definition in marts_config.completion_rates():  # two published marts of one window, side by side
        exits, base = by_name[str(definition.derived_from)], by_name[str(definition.denominator_from)]
        sources = [marts_dir / f"{m.name}.parquet" for m in (exits, base)]
        if not all(path.exists() for path in sources):
            continue  # its window is not built at this period (the manifest names the sources as not built)
        frame = build_completion_rate(
            pd.read_parquet(sources[0]),
            pd.read_parquet(sources[1]),
            str(period),
            exits_dimensions=exits.dimensions,
            in_treatment_dimensions=base.dimensions,
        )
        assert_k_safe(frame, definition.name, rules.disclosure.k)
        frame.to_parquet(marts_dir / f"{definition.name}.parquet", index=False)
        built.append(definition.name)
    for definition in marts_config.trends():  # each closed financial year's published cells side by side
        from treatment_marts.pipeline.windows import build_trend

        source_path = marts_dir / f"{definition.derived_from}.parquet"
        trend = (
            build_trend(settings, period, definition, pd.read_parquet(source_path)) if source_path.exists() else None
        )
        if trend is not None:
            assert_k_safe(trend, definition.name, rules.disclosure.k)
            trend.to_parquet(marts_dir / f"{definition.name}.parquet", index=False)
            built.append(definition.name)
    return built


def revision_audit(intervals: pd.DataFrame, k: int) -> dict[str, Any]:
    """What the audit of a revision against the release it replaces accepted under the sensitive-cell rule
    (docs/disclosure.md, "A revision is protected as a difference"): withheld cells the attacker holding
    both releases pins at a value above k. None is a group of 1..k, but the reviewer sees how many there are."""
    # The audit's intervals always carry these columns (Int64 bounds; upper missing when unbounded).
    already_public = intervals["reason"].eq("published in the earlier release")
    pinned = (intervals["lower"].eq(intervals["upper"]) & intervals["upper"].gt(k) & ~already_public).fillna(False)
    return {
        "rule": f"sensitive cells: no withheld cell provably 0..{k}; complementary cells pinned above {k} accepted",
        "cells_pinned_above_k": int(pinned.sum()),
        "marts_with_pinned_cells": sorted(intervals.loc[pinned, "mart"].astype(str).unique().tolist()),
    }


def _attach_audit(log: pd.DataFrame, intervals: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("mart", "period", "cell") if c in log.columns and c in intervals.columns]
    bounds = intervals[keys + ["lower", "upper"]].rename(columns={"lower": "audit_lower", "upper": "audit_upper"})
    return log.merge(bounds, on=keys, how="left")


def write_restricted_records(staged: Path, run_id: RunId, populations: ProtectedPopulations) -> tuple[int, int]:
    """The suppression log (with each cell's audit interval), the audit intervals and the information
    loss, in the staged folder; returns (suppressed cells, cells the audit checked)."""
    log = pd.concat(populations.logs, ignore_index=True) if populations.logs else pd.DataFrame()
    audit_intervals = pd.concat(populations.intervals, ignore_index=True) if populations.intervals else pd.DataFrame()
    if not log.empty and not audit_intervals.empty:
        log = _attach_audit(log, audit_intervals)
    log.insert(0, "run_id", str(run_id))
    log.to_parquet(staged / "suppression_log.parquet", index=False)
    audit_intervals.to_parquet(staged / "audit_intervals.parquet", index=False)
    info_loss = pd.concat(populations.losses, ignore_index=True) if populations.losses else pd.DataFrame()
    info_loss.to_parquet(staged / "information_loss.parquet", index=False)
    return int(len(log)), int(len(audit_intervals))


def write_stage_manifest(
    settings: Settings,
    staged: Path,
    *,
    period: Period,
    run_id: RunId,
    rules: RulesConfig,
    landed_paths: list[str],
    recoded: RecodeResult,
    marts: list[str],
    not_built: dict[str, str],
    suppressed_cells: int,
    cells_checked: int,
    left_out: list[str],
    designs: list[dict[str, str]] | None = None,
    revision: dict[str, Any] | None = None,
) -> None:
    """``run_manifest.json``: inputs (checksums), rule-set hash, K, marts and the audit result; for a
    revision, the rule it was audited under against the release it replaces (restricted: not a public fact)."""
    landed_manifest = read_json(staged / "landed.json") if (staged / "landed.json").exists() else {}
    accepted_names = {Path(p).name for p in landed_paths}  # accepted = landed name
    manifest = {
        "run_id": str(run_id),
        "period": str(period),
        "package_version": __version__,
        "ruleset_sha256": ruleset_hash(settings.config_dir),
        "k": rules.disclosure.k,
        "zeros": rules.disclosure.zeros,
        "inputs": [
            {"source": item["source"], "sha256": item["sha256"], "rows": item["rows"]}
            for item in landed_manifest.get("landed", [])
            if Path(item["landed_path"]).name in accepted_names
        ],
        "episodes_in": recoded.episodes_in,
        "excluded_no_consent": recoded.excluded_no_consent,
        "marts": marts,
        "marts_not_built": not_built,
        "partial": bool(left_out),
        "areas_left_out": left_out,
        # each area's declared table design and why, then the national rows' (marts/designs.py)
        "area_designs": list(designs or []),
        "suppressed_cells": suppressed_cells,
        "audit": {"cells_checked": cells_checked, "disclosed": 0},
        "revision_audit": revision,
        "protected_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json(staged / "run_manifest.json", manifest)


def protect(settings: Settings, period: Period, run_id: RunId, landed_paths: list[str]) -> ProtectResult:
    """Recode, build every mart, suppress (primary + secondary) and audit; stage the release in the restricted zone."""
    period, run_id = checked(period, run_id)
    from treatment_marts.disclosure.record_level import write_record_level

    rules = load_rules(settings.config_dir)
    areas = load_areas(settings.config_dir)
    recoded = recode(combined_extract(landed_paths), rules, areas, pseudonym_key=pseudonym_key(settings))
    # An area with no episode at all (absent from a combined file) is left out, never published as zeros.
    left_out = sorted(set(areas_left_out(settings, run_id, areas)) | set(areas_without_episodes(recoded.frame, areas)))
    refuse_a_change_of_areas(settings, period, areas, left_out)
    scope = in_release(areas, left_out)
    levels = dimension_levels(rules, scope)
    marts_config = load_marts(settings.config_dir, set(levels))
    analysis = as_dimensions(_within(recoded.frame, scope) if left_out else recoded.frame, levels)

    staged = run_dir(settings, run_id)
    marts_dir = staged / "marts"
    make_private_dirs(marts_dir, top=settings.restricted_dir)

    populations = protect_populations(settings, period, analysis, marts_dir, rules, areas, levels, marts_config, scope)
    marts = populations.marts + build_derived_marts(settings, period, marts_dir, rules, areas, marts_config, scope)
    suppressed_cells, cells_checked = write_restricted_records(staged, run_id, populations)
    write_json(staged / WINDOWS_FILE, populations.windows)
    # the history windows are built from; only a month that was protected replaces it (a refused revision does not)
    store_month(settings, period, recoded.frame)
    # The optional record-level product (rules.yaml record_level): restricted, K-anonymous, with its loss report.
    record_level = write_record_level(settings, period, run_id, analysis, rules, clients=populations.record_clients)
    populations.record_clients = None
    if record_level:
        write_json(staged / "record_level.json", record_level)
    write_stage_manifest(
        settings,
        staged,
        period=period,
        run_id=run_id,
        rules=rules,
        landed_paths=landed_paths,
        recoded=recoded,
        marts=marts,
        not_built=populations.not_built,
        suppressed_cells=suppressed_cells,
        cells_checked=cells_checked,
        left_out=left_out,
        designs=populations.designs,
        revision=populations.revision,
    )
    return ProtectResult(
        period=period, run_id=run_id, staged_dir=staged, marts=marts, suppressed_cells=suppressed_cells
    )
