"""What the governance page shows: one line per pipeline run, gathered from the files the stages write.

IG staff should not have to read task logs to know, for each monthly run, whether the extract passed
validation, how much the disclosure control hid, whether the independent audit passed, whether the release
was approved and published, and where the (restricted) IG report is. Everything here is read from the data
root (no Airflow import, no database), so the page works while the scheduler or warehouse is down:

* ``restricted/runs/<run_id>/``: ``landed.json``, ``validation.json``, ``run_manifest.json`` (written by
  protect only after the audit passed), the staged ``marts/*.parquet`` and ``suppression_log.parquet``;
  an approval record, if the IG approval gate wrote one (:func:`read_approval`, tolerant of absence);
* when the DAG maps land/validate per area: the run's ``plan.json`` (its units) and ``areas.json`` (areas
  left out), and one folder per area ``restricted/runs/<run_id>.<unit>/`` holding that area's
  ``validation.json``; those area folders are folded into their run, not listed as runs;
* ``public/releases/period=P/manifest.json`` and ``public/marts/<mart>/period=P/_manifest.json``: which run
  is the period's current publication.

The listing is an aggregate: counts of *cells* (never of people in a cell), percentages, verdicts, column
names of failed rules. It never carries a suppressed value, a validation row count or any identifier; the
linked IG report, which does hold true values, is served only by :func:`ig_report_file` to signed-in users.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from treatment_marts.core.ids import InvalidIdentifier, Period, RunId, area_run_id
from treatment_marts.core.settings import Settings

log = logging.getLogger(__name__)


def _valid_ids(period: str, run_id: str) -> bool:
    """Both parts of a run's address in their safe form (core.ids), so neither can name another folder."""
    try:
        Period.parse(period)
        RunId.parse(run_id)
    except InvalidIdentifier:
        return False
    return True


URL_PREFIX = "/governance"  # where plugins/governance_plugin.py mounts the page on the API server


def report_url(period: str, run_id: str, page: str = "") -> str:
    """The IG report's address on the API server (a folder URL, so the pages' relative links work)."""
    return f"{URL_PREFIX}/report/{period}/{run_id}/{page}"


def data_docs_dir(settings: Settings) -> Path:
    """GX's local Data Docs site (file-backed context under the restricted zone, made offline at validation)."""
    return settings.gx_dir / "gx" / "uncommitted" / "data_docs" / "local_site"


# Where the IG approval gate may record a decision (first found wins). The gate writes one of these into
# the run's restricted folder; the key names read are those of Airflow's HITL response.
APPROVAL_FILES = ("approval.json", "run_record.json")


@dataclass(frozen=True)
class MartSuppression:
    """Suppression of one mart in one run: cell counts only."""

    mart: str
    cells: int
    suppressed: int
    primary: int
    secondary: int

    @property
    def percent_hidden(self) -> float:
        return round(100.0 * self.suppressed / self.cells, 1) if self.cells else 0.0


@dataclass(frozen=True)
class Approval:
    """The IG decision on a run: ``approved``, ``rejected`` or ``pending``; who and when, never the why
    (the free-text reason stays in the restricted run record)."""

    decision: str
    by: str | None = None
    at: str | None = None


@dataclass(frozen=True)
class RunView:
    """One line of the governance page."""

    run_id: str
    period: str
    started_at: str | None
    validation: str  # passed | passed with warnings | failed | not run
    validation_issues: tuple[str, ...] = ()  # "severity: rule on column" of failed rules, no counts
    audit: str = "not run"  # passed | not completed | not run
    marts: tuple[MartSuppression, ...] = field(default_factory=tuple)
    publication: str = "not published"  # current | superseded | not published
    areas_left_out: tuple[str, ...] = ()  # "unit (stage)" of areas a per-area run did not protect
    approval: Approval | None = None
    has_ig_report: bool = False
    data_docs: tuple[str, ...] = ()  # the run's validation pages, relative to the Data Docs site

    @property
    def cells(self) -> int:
        return sum(m.cells for m in self.marts)

    @property
    def suppressed(self) -> int:
        return sum(m.suppressed for m in self.marts)

    @property
    def percent_hidden(self) -> float:
        return round(100.0 * self.suppressed / self.cells, 1) if self.cells else 0.0


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file, or None if it is absent or unreadable (the page must not fail on one run)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("governance view: cannot read %s (%s)", path.name, type(exc).__name__)
        return None
    return data if isinstance(data, dict) else None


def _mtime_iso(path: Path) -> str | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
    except OSError:
        return None


def _validation(summary: dict[str, Any] | None) -> tuple[str, tuple[str, ...]]:
    """Outcome of the GX suite and month-over-month checks, and the failed rules (names only, no counts)."""
    if summary is None:
        return "not run", ()
    issues: list[str] = []
    blocking = False
    for source in summary.get("expectations", []):
        for row in source.get("results", []):
            if row.get("success", True):
                continue
            severity = str(row.get("severity", "blocking"))
            blocking |= severity == "blocking"
            issues.append(f"{severity}: {row.get('type', 'rule')} on {row.get('column', '?')}")
    for finding in summary.get("month_over_month", []):
        if finding.get("status") != "flag":
            continue
        severity = str(finding.get("severity", "warning"))
        blocking |= severity == "blocking"
        issues.append(f"{severity}: month-over-month {finding.get('check', 'check')} ({finding.get('area', '?')})")
    unique = tuple(dict.fromkeys(issues))
    if blocking:
        return "failed", unique
    return ("passed with warnings" if unique else "passed"), unique


def _area_folders(run_folder: Path) -> dict[str, Path]:
    """unit -> folder of each area of a per-area run (from its plan.json); {} for a single-unit run."""
    plan = _read_json(run_folder / "plan.json")
    if not plan:
        return {}
    folders = {}
    for unit in plan.get("units", []):
        name = unit.get("unit") if isinstance(unit, dict) else unit
        if name:
            folders[str(name)] = run_folder.parent / area_run_id(RunId.sanitise(run_folder.name), str(name))
    return folders


def _area_validation(areas: dict[str, Path]) -> tuple[str, tuple[str, ...]]:
    """A per-area run's validation: each area's outcome; the run failed validation where an area did."""
    outcomes = {unit: _validation(_read_json(folder / "validation.json")) for unit, folder in areas.items()}
    ran = {unit: o for unit, o in outcomes.items() if o[0] != "not run"}
    if not ran:
        return "not run", ()
    issues = tuple(f"{issue} [{unit}]" for unit, (_, unit_issues) in ran.items() for issue in unit_issues)
    failed = [unit for unit, (outcome, _) in ran.items() if outcome == "failed"]
    if failed:
        return ("failed" if len(failed) == len(areas) else f"failed for {len(failed)} of {len(areas)} area(s)"), issues
    return ("passed with warnings" if issues else "passed"), issues


def _mart_suppression(run_folder: Path) -> tuple[MartSuppression, ...]:
    """Cells and suppressed cells per staged mart; primary/secondary split from the suppression log."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    kinds: dict[tuple[str, str], int] = {}
    log_path = run_folder / "suppression_log.parquet"
    if log_path.exists() and {"mart", "suppression"} <= set(pq.read_schema(log_path).names):
        table = pq.read_table(log_path, columns=["mart", "suppression"])  # never the true values
        for mart, kind in zip(table.column("mart").to_pylist(), table.column("suppression").to_pylist(), strict=True):
            kinds[(str(mart), str(kind))] = kinds.get((str(mart), str(kind)), 0) + 1
    result = []
    for path in sorted((run_folder / "marts").glob("*.parquet")):
        status = pq.read_table(path, columns=["status"]).column("status")
        suppressed = int(pc.sum(pc.equal(status, "c")).as_py() or 0)
        result.append(
            MartSuppression(
                mart=path.stem,
                cells=len(status),
                suppressed=suppressed,
                primary=kinds.get((path.stem, "primary"), 0),
                secondary=kinds.get((path.stem, "secondary"), 0),
            )
        )
    return tuple(result)


def read_approval(run_folder: Path) -> Approval | None:
    """The IG approval gate's decision for a run, or None when the gate did not run (or is not enabled).

    Tolerant by design: the record may be ``approval.json`` or an ``approval`` object inside
    ``run_record.json``; the decision may be under ``decision``, ``status``, ``outcome`` or HITL's
    ``chosen_options``; the reviewer under ``by``, ``reviewer``, ``responded_by`` or ``user``.
    """
    for name in APPROVAL_FILES:
        record = _read_json(run_folder / name)
        if record is None:
            continue
        if isinstance(record.get("approval"), dict):
            record = record["approval"]
        raw = record.get("decision") or record.get("status") or record.get("outcome") or record.get("chosen_options")
        if isinstance(raw, list):
            raw = raw[0] if raw else None
        if raw is None and isinstance(record.get("approved"), bool):
            raw = "approved" if record["approved"] else "rejected"
        if raw is None:
            continue
        text = str(raw).strip().lower()
        decision = "approved" if text.startswith("approv") else "rejected" if text.startswith("reject") else text[:40]
        by = record.get("by") or record.get("reviewer") or record.get("responded_by") or record.get("user")
        if isinstance(by, dict):  # HITL: {"id": ..., "name": ...}
            by = by.get("name") or by.get("id")
        at = record.get("at") or record.get("responded_at") or record.get("decided_at")
        return Approval(decision=decision, by=str(by)[:80] if by else None, at=str(at)[:40] if at else None)
    return None


def _current_releases(settings: Settings) -> dict[str, str]:
    """period -> run id of the release every reader sees now (public/releases/period=P/manifest.json)."""
    current = {}
    for path in sorted((settings.public_dir / "releases").glob("period=*/manifest.json")):
        manifest = _read_json(path)
        if manifest and manifest.get("run_id"):
            current[path.parent.name.removeprefix("period=")] = str(manifest["run_id"])
    return current


def _was_published(settings: Settings, period: str, run_id: str, marts: tuple[MartSuppression, ...]) -> bool:
    """True if a release folder of this run exists for the period (the last few releases are kept)."""
    for mart in marts[:1]:
        folder = settings.public_dir / "marts" / mart.mart / ".releases" / f"period={period}"
        if any(folder.glob(f"{run_id}.*/_manifest.json")):
            return True
    return False


def ig_report_file(settings: Settings, period: str, run_id: str, page: str = "index.html") -> Path | None:
    """A file of the run's IG report (summary page by default; `publish.ig_report.REPORT_FILES` only), or
    None. The ids are checked against strict patterns and the page against a fixed list, so a crafted URL
    can never name another file. Reports written before the review step (``restricted/reports``) still open."""
    from treatment_marts.publish.ig_report import INDEX_PAGE, REPORT_FILES, report_dir

    if not _valid_ids(period, run_id) or page not in REPORT_FILES:
        return None
    manifest = _read_json(settings.restricted_dir / "runs" / run_id / "run_manifest.json") or {}
    if manifest.get("period") not in (None, period):
        return None
    path = report_dir(settings, run_id) / page
    if path.is_file():
        return path
    legacy = settings.restricted_dir / "reports" / f"period={period}" / f"ig_report_{run_id}.html"
    return legacy if page == INDEX_PAGE and legacy.is_file() else None


def data_docs_pages(settings: Settings, run_id: str, areas: dict[str, Path]) -> tuple[str, ...]:
    """The run's (or its areas') GX validation pages in the Data Docs site, relative to the site folder.
    GX names a validation's folder after its run name, which validation sets to ``<run id>-<file>``."""
    root = data_docs_dir(settings) / "validations"
    if not root.is_dir():
        return ()
    prefixes = tuple(f"{name}-" for name in (run_id, *(folder.name for folder in areas.values())))
    pages = [
        page.relative_to(data_docs_dir(settings)).as_posix()
        for suite in root.iterdir()
        if suite.is_dir()
        for run in suite.iterdir()
        if run.name.startswith(prefixes)
        for page in run.rglob("*.html")
    ]
    return tuple(sorted(pages))


def run_view(settings: Settings, run_folder: Path, current: dict[str, str] | None = None) -> RunView | None:
    """The governance line of one run folder, or None if the folder holds no recognisable run."""
    run_id = run_folder.name
    landed = _read_json(run_folder / "landed.json")
    manifest = _read_json(run_folder / "run_manifest.json")
    period = str((manifest or landed or {}).get("period", ""))
    if not _valid_ids(period, run_id):
        return None
    areas = _area_folders(run_folder)
    if areas and not (run_folder / "validation.json").exists():
        validation, issues = _area_validation(areas)
    else:
        validation, issues = _validation(_read_json(run_folder / "validation.json"))
    left_out = tuple(
        f"{e.get('unit', '?')} ({e.get('stage', '?')})"
        for e in ((_read_json(run_folder / "areas.json") or {}).get("excluded") or [])
        if isinstance(e, dict)
    )
    marts = _mart_suppression(run_folder) if manifest else ()
    if manifest:
        audit = "passed" if int((manifest.get("audit") or {}).get("disclosed", 0)) == 0 else "failed"
    else:
        audit = "not run" if validation in ("failed", "not run") else "not completed"
    has_report = ig_report_file(settings, period, run_id) is not None
    approval = read_approval(run_folder)
    current = _current_releases(settings) if current is None else current
    if current.get(period) == run_id:
        publication = "current"
    elif manifest and _was_published(settings, period, run_id, marts):
        publication = "superseded"
    else:
        publication = "not published"
    review = _read_json(run_folder / "review" / "summary.json") or {}
    if approval is None and review.get("gate") and publication == "not published":
        approval = Approval(decision="awaiting IG decision")  # evidence written for a gate not answered yet
    return RunView(
        run_id=run_id,
        period=period,
        started_at=_mtime_iso(run_folder / "landed.json") or _mtime_iso(run_folder),
        validation=validation,
        validation_issues=issues,
        audit=audit,
        marts=marts,
        publication=publication,
        approval=approval,
        areas_left_out=left_out,
        has_ig_report=has_report,
        data_docs=data_docs_pages(settings, run_id, areas),
    )


def list_runs(settings: Settings) -> list[RunView]:
    """Every run under ``restricted/runs``, newest period first, then newest run first."""
    runs_root = settings.restricted_dir / "runs"
    current = _current_releases(settings)
    folders = sorted(p for p in runs_root.glob("*") if p.is_dir()) if runs_root.is_dir() else []
    area_folders = {f for folder in folders for f in _area_folders(folder).values()}
    views = []
    for folder in folders:
        if folder in area_folders:
            continue
        try:
            view = run_view(settings, folder, current)
        except Exception as exc:  # one damaged run folder must not hide every other run
            log.warning("governance view: skipping run folder %s (%s)", folder.name, type(exc).__name__)
            continue
        if view is not None:
            views.append(view)
    views.sort(key=lambda v: (v.period, v.started_at or "", v.run_id), reverse=True)
    return views


# --- rendering ------------------------------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Disclosure governance: pipeline runs</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1b1b1b}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #ccc;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f0f0f0}.ok{color:#0a6b2b;font-weight:600}.bad{color:#a00;font-weight:600}.warn{color:#8a5a00;font-weight:600}
.muted{color:#666}table.marts{width:auto;font-size:.9em}table.marts td,table.marts th{border-color:#e0e0e0;padding:.15rem .4rem}
details summary{cursor:pointer}
</style></head><body>
<h1>Disclosure governance: pipeline runs</h1>
<p class="muted"><a id="data-docs" href="{{ data_docs_url('index.html') }}">GX Data Docs (every validation)</a></p>
<p class="muted">Counts are of table <em>cells</em>, never of people. The IG report of a run is RESTRICTED
(it holds the true values of suppressed cells): open it only for review, never forward it.</p>
{% if not runs %}<p id="no-runs">No pipeline run found under the data root.</p>{% else %}
<table id="runs"><thead><tr><th>Period</th><th>Run id</th><th>Areas left out</th><th>Validation</th><th>Suppression</th>
<th>Audit</th><th>Approval</th><th>Publication</th><th>IG report</th></tr></thead><tbody>
{% for run in runs %}
<tr class="run" data-run-id="{{ run.run_id }}" data-period="{{ run.period }}">
<td class="period">{{ run.period }}</td>
<td class="run-id"><code>{{ run.run_id }}</code>{% if run.started_at %}<br><span class="muted">{{ run.started_at }}</span>{% endif %}</td>
<td class="left-out">{% if run.areas_left_out %}<span class="bad areas-left-out">{{ run.areas_left_out|join(', ') }}</span>{% else %}<span class="muted">none</span>{% endif %}</td>
<td class="validation"><span class="{{ 'ok' if run.validation == 'passed' else 'bad' if run.validation.startswith('failed') else 'warn' if run.validation == 'passed with warnings' else 'muted' }}">{{ run.validation }}</span>
{% if run.data_docs %}<br>{% for page in run.data_docs %}<a class="data-docs" href="{{ data_docs_url(page) }}">Data Docs{% if run.data_docs|length > 1 %} {{ loop.index }}{% endif %}</a> {% endfor %}{% endif %}
{% if run.validation_issues %}<details><summary>{{ run.validation_issues|length }} rule(s)</summary><ul>{% for issue in run.validation_issues %}<li>{{ issue }}</li>{% endfor %}</ul></details>{% endif %}</td>
<td class="suppression">{% if run.marts %}<span class="total">{{ run.suppressed }} of {{ run.cells }} cells suppressed ({{ '%.1f' % run.percent_hidden }}%)</span>
<details><summary>{{ run.marts|length }} mart(s)</summary><table class="marts"><thead><tr><th>mart</th><th>cells</th><th>suppressed</th><th>primary</th><th>secondary</th><th>% hidden</th></tr></thead><tbody>
{% for m in run.marts %}<tr class="mart" data-mart="{{ m.mart }}"><td>{{ m.mart }}</td><td>{{ m.cells }}</td><td>{{ m.suppressed }}</td><td>{{ m.primary }}</td><td>{{ m.secondary }}</td><td>{{ '%.1f' % m.percent_hidden }}%</td></tr>{% endfor %}
</tbody></table></details>{% else %}<span class="muted">n/a</span>{% endif %}</td>
<td class="audit"><span class="{{ 'ok' if run.audit == 'passed' else 'bad' if run.audit == 'failed' else 'muted' }}">{{ run.audit }}</span></td>
<td class="approval">{% if run.approval %}<span class="{{ 'ok' if run.approval.decision == 'approved' else 'bad' if run.approval.decision == 'rejected' else 'warn' }}">{{ run.approval.decision }}</span>{% if run.approval.by %}<br><span class="muted">by {{ run.approval.by }}</span>{% endif %}{% if run.approval.at %}<br><span class="muted">{{ run.approval.at }}</span>{% endif %}{% else %}<span class="muted">no gate record</span>{% endif %}</td>
<td class="publication">{{ run.publication }}</td>
<td class="ig-report">{% if run.has_ig_report %}<a class="report" href="{{ report_url(run) }}">IG report</a><br><a class="log-csv" href="{{ report_url(run) }}suppression_log.csv" download>suppression log (CSV)</a>{% else %}<span class="muted">none</span>{% endif %}</td>
</tr>
{% endfor %}
</tbody></table>{% endif %}
</body></html>
"""


def render_runs_page(runs: list[RunView], report_url: Any, data_docs_url: Any = None) -> str:
    """The governance page (server-rendered, autoescaped). ``report_url(run)`` gives the IG report's folder
    URL (ending in ``/``), ``data_docs_url(page)`` a Data Docs page's URL."""
    from jinja2 import Environment

    template = Environment(autoescape=True).from_string(_PAGE)
    return template.render(
        runs=runs, report_url=report_url, data_docs_url=data_docs_url or (lambda page: f"data-docs/{page}")
    )
