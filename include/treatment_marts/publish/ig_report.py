"""The IG report: the pages an IG reviewer reads to sign a release off, beside the restricted log.

Written from the review figures (`pipeline.review`) into the run's restricted ``review/`` folder before the
approval gate, so the reviewer decides on evidence: a summary page (areas left out first, the audit verdict,
what is withheld per mart, per area and per group beside what primary suppression alone would withhold,
what validation let through, what changed since the previous release), then detail pages (every mart by
area; every validation caveat) and the suppression log as CSV. The pages hold counts of cells only; the
CSV holds true values of suppressed cells, which is why the folder is restricted. Publishing re-renders the
summary page with where and when the release went (`add_publication`).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from treatment_marts.core.files import write_private
from treatment_marts.core.ids import RunId
from treatment_marts.core.settings import Settings

REVIEW_DIR = "review"
SUMMARY_FILE = "summary.json"
PUBLICATION_FILE = "publication.json"
SUPPRESSION_LOG_CSV = "suppression_log.csv"
INDEX_PAGE = "index.html"
MARTS_PAGE = "marts.html"
VALIDATION_PAGE = "validation.html"
REPORT_FILES = (INDEX_PAGE, MARTS_PAGE, VALIDATION_PAGE, SUPPRESSION_LOG_CSV)
"""Every file of a report a reader may open (the governance plugin serves these names only)."""

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:72rem;color:#1b1b1b}
table{border-collapse:collapse;margin:.6rem 0 1.2rem}th,td{border:1px solid #ccc;padding:.25rem .55rem;text-align:left}
td.n,th.n{text-align:right}th{background:#f0f0f0}.ok{color:#0a6b2b;font-weight:600}.bad{color:#a00;font-weight:600}
.warn{color:#8a5a00;font-weight:600}.box{border:2px solid #a00;padding:.4rem 1rem;margin:1rem 0}
.groups{display:flex;flex-wrap:wrap;gap:1.5rem}.groups section{flex:1 1 30rem}
code{background:#f6f6f6;padding:0 .2rem}nav a{margin-right:1rem}
"""


def report_dir(settings: Settings, run_id: str) -> Path:
    """The run's restricted review folder (inside its run record, beside the staged release)."""
    return settings.restricted_dir / "runs" / RunId.sanitise(run_id) / REVIEW_DIR


def report_path(settings: Settings, period: str, run_id: str) -> Path:
    """The summary page of a run's IG report (`period` kept for callers that address reports by period)."""
    return report_dir(settings, run_id) / INDEX_PAGE


def _e(value: Any) -> str:
    return html.escape("" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value))


def _table(rows: list[dict[str, Any]], columns: dict[str, str], table_id: str = "") -> str:
    """A table of `rows` with `columns` (key -> heading); numbers right-aligned."""
    if not rows:
        return "<p>None.</p>"
    numeric = {k for k in columns if all(isinstance(r.get(k), int | float) or r.get(k) is None for r in rows)}
    head = "".join(f'<th class="{"n" if k in numeric else ""}">{_e(v)}</th>' for k, v in columns.items())
    body = "".join(
        "<tr>" + "".join(f'<td class="{"n" if k in numeric else ""}">{_e(r.get(k))}</td>' for k in columns) + "</tr>"
        for r in rows
    )
    ident = f' id="{_e(table_id)}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _page(figures: dict[str, Any], title: str, content: str) -> str:
    nav = (
        f'<nav><a href="{INDEX_PAGE}">Summary</a><a href="{MARTS_PAGE}">Every mart by area</a>'
        f'<a href="{VALIDATION_PAGE}">Validation</a><a href="{SUPPRESSION_LOG_CSV}" download>Suppression log (CSV)</a></nav>'
    )
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{_e(title)}: IG report {_e(figures["period"])} {_e(figures["run_id"])}</title><style>{_STYLE}</style></head><body>
<p><strong>RESTRICTED</strong>: for IG review. Counts are of table cells; the suppression log holds true values.</p>
{nav}<h1>{_e(title)}, period {_e(figures["period"])}</h1><p>Run <code>{_e(figures["run_id"])}</code>; K = {_e(figures["k"])}
(counts 1..{_e(figures["k"])} are withheld, marker <code>{_e(figures.get("marker"))}</code>).</p>
{content}</body></html>"""


def _left_out(figures: dict[str, Any]) -> str:
    left_out = figures["areas_left_out"]
    if not left_out:
        return '<section id="areas-left-out"><h2>Areas left out</h2><p class="ok">None: every area is in the release.</p></section>'
    return (
        '<section id="areas-left-out" class="box"><h2>Areas left out</h2>'
        f'<p class="bad">{len(left_out)} area(s) are not in this release (no row in any mart, never a zero); '
        "the run ends failed after publishing the others.</p>"
        + _table(left_out, {"unit": "area", "stage": "lost at", "reason": "why"})
        + "</section>"
    )


def _designs(figures: dict[str, Any]) -> str:
    """Each area's declared table design and why (marts/designs.py): the cost of a coarser design is in
    the loss tables below, beside what primary suppression alone would withhold."""
    rows = list(figures.get("area_designs") or [])
    if not rows:
        return ""
    return (
        "<h2>Table design per area</h2><p>A very small area is published at a coarser design: its cells in the "
        "merged categories are withheld a priori, and so are the national rows' (the national rows follow the "
        "coarsest design in use, so no withheld cell is the national figure less the other areas).</p>"
        + _table(rows, {"area": "area", "design": "design", "reason": "why"}, "area-designs")
    )


def _verdict(figures: dict[str, Any]) -> str:
    audit, k = figures["audit"], figures["k"]
    if not audit["passed"]:
        return (
            f'<p class="bad" id="audit">Disclosure audit FAILED for {audit["disclosed"]} cell(s): do not approve.</p>'
        )
    revision = audit.get("revision")
    attacker, found = (
        (" holding this revision and the release it replaces", f"none within 1..{k}")
        if revision
        else ("", f"none recoverable exactly or within 1..{k}")
    )
    passed = (
        f'<p class="ok" id="audit">Disclosure audit passed: {audit["cells_checked"]} suppressed cell(s) checked '
        f"by an independent attacker model{attacker}; {found}.</p>"
    )
    return passed + (_revision_audit(revision, k) if revision else "")


def _revision_audit(revision: dict[str, Any], k: int) -> str:
    """What the audit of a revision against the release it replaces accepted (pipeline/protect.revision_audit)."""
    pinned = int(revision.get("cells_pinned_above_k", 0))
    marts = ", ".join(revision.get("marts_with_pinned_cells") or []) or "none"
    return (
        f'<p class="{"warn" if pinned else "ok"}" id="revision-audit">This is a revision, audited against the '
        f"release it replaces under the sensitive-cell rule: {pinned} withheld complementary cell(s) can be "
        f"recovered exactly by someone holding both releases, each above {k} (marts: {_e(marts)}). "
        "No group of 1..k follows; reject if those values must stay unknown (docs/disclosure.md).</p>"
    )


def _validation_summary(figures: dict[str, Any]) -> str:
    checked = figures["validation"]
    items = []
    if checked["warnings"]:
        items.append(f"{len(checked['warnings'])} warning-level expectation failure(s)")
    if checked["quarantined_rows"]:
        items.append(f"{checked['quarantined_rows']} row(s) set aside in quarantine")
    if checked["month_over_month"]:
        items.append(f"{len(checked['month_over_month'])} month-over-month flag(s)")
    if not items:
        return '<p class="ok" id="validation">Validation let nothing through with a caveat.</p>'
    listed = "".join(
        f"<li>{_e(w['area'] + ': ' if w['area'] else '')}{_e(w['rule'])} (<code>{_e(w['column'])}</code>)</li>"
        for w in checked["warnings"][:8]
    ) + "".join(f"<li>{_e(f['message'])}</li>" for f in checked["month_over_month"][:8])
    return (
        f'<p class="warn" id="validation">Validation passed with caveats: {_e("; ".join(items))} '
        f'(<a href="{VALIDATION_PAGE}">details</a>).</p><ul>{listed}</ul>'
    )


_GROUP_COLUMNS = {
    "value": "group",
    "cells": "cells",
    "withheld": "withheld",
    "percent_withheld": "% withheld",
    "primary_alone": "primary alone",
    "percent_primary_alone": "% primary alone",
}


def _changes(figures: dict[str, Any]) -> str:
    changes = figures["changes"]
    if not changes["against"]:
        return "<p>No earlier release of this period or of the previous month to compare with.</p>"
    against = changes["against"]
    same = against["period"] == figures["period"]
    intro = (
        f"<p>Against the current release of {_e(against['period'])} (run <code>{_e(against['run_id'])}</code>), "
        + ("which this run would replace." if same else "the previous month.")
        + "</p>"
    )
    columns = {"mart": "mart", "before": "withheld before", "now": "withheld now"}
    if same:
        columns |= {"newly_withheld": "newly withheld", "newly_published": "newly published"}
    columns["note"] = "note"
    rows = [r for r in changes["marts"] if r.get("before") != r.get("now") or r.get("newly_withheld") or r.get("note")]
    unchanged = len(changes["marts"]) - len(rows)
    return intro + _table(rows, columns, "changes") + (f"<p>{unchanged} mart(s) unchanged.</p>" if unchanged else "")


def _record_level(summary: dict[str, Any] | None) -> str:
    if not summary:
        return "<p>No record-level extract is configured (rules.yaml <code>record_level</code>).</p>"
    if summary.get("withheld"):
        return f"<p>No record-level extract this period: {_e(summary.get('reason'))}.</p>"
    text = (
        f"<p>{_e(summary['records_out'])} of {_e(summary['records_in'])} records released, K{_e(summary['k'])} over "
        f"{_e(', '.join(summary['quasi_identifiers']))} by local suppression: {_e(summary['values_suppressed'])} "
        f"value(s) suppressed in {_e(summary['records_touched'])} record(s), {_e(summary['records_dropped'])} "
        f"dropped. Naive K{_e(summary['k'])} deletion would have dropped {_e(summary['naive_deleted'])}.</p>"
    )
    loss = summary.get("loss_report")
    if loss and Path(loss).is_file():
        frame = pd.read_csv(loss)
        text += _table(frame.to_dict("records"), {c: c for c in frame.columns})
    return text


def _publication(published: dict[str, Any] | None, gate: bool = True) -> str:
    if not published:
        waiting = "waiting for the IG decision" if gate else "staged, not yet published"
        return f'<p id="publication" class="warn">Not published: {waiting}.</p>'
    return (
        f'<p id="publication" class="ok">Published at {_e(published.get("published_at"))}: '
        f"{_e(len(published.get('marts', [])))} mart(s); public manifest <code>{_e(published.get('manifest'))}</code>; "
        f"exports <code>{_e(published.get('exports'))}</code>.</p>"
    )


def render_summary_page(figures: dict[str, Any], published: dict[str, Any] | None = None) -> str:
    totals = figures["totals"]
    groups = "".join(
        f'<section class="group" data-group="{_e(label)}"><h3>Per {_e(label.lower())}</h3>'
        + _table(rows, _GROUP_COLUMNS, f"group-{label.lower().replace(' ', '-')}")
        + "</section>"
        for label, rows in figures["groups"].items()
        if rows
    )
    content = f"""{_left_out(figures)}
<h2>Decision facts</h2>{_verdict(figures)}
<p id="totals"><strong>{totals["withheld"]} of {totals["cells"]} cells withheld ({totals["percent_withheld"]}%)</strong>
across {totals["marts"]} marts; primary suppression alone would withhold {totals["primary"]} ({
        totals["percent_primary"]
    }%),
the rest is secondary (complementary) suppression and derived marts withheld with their inputs.</p>
{_validation_summary(figures)}{_publication(published, bool(figures.get("gate", True)))}{_designs(figures)}
<h2>Information loss per mart</h2>{
        _table(
            figures["marts"],
            {
                "mart": "mart",
                "cells": "cells",
                "withheld": "withheld",
                "primary": "primary",
                "secondary": "secondary",
                "derived": "derived",
                "percent_withheld": "% withheld",
            },
            "loss-by-mart",
        )
    }
<h2>Information loss per area and per group</h2>
<p>Cells withheld beside the cells primary suppression alone would withhold, over every mart with the column.</p>
<div class="groups">{groups}</div>
<h2>What changed since the previous release</h2>{_changes(figures)}
<h2>Record-level extract</h2>{_record_level(figures.get("record_level"))}
<h2>Rules</h2><ul><li>K{figures["k"]}: a published group of 1..{figures["k"]} people is withheld (primary suppression);
complementary cells are withheld so that no withheld value can be recovered from totals or linked tables (secondary
suppression); the audit checks the finished pattern.</li><li>Zeros: {_e(figures.get("zeros"))}.</li>
<li>Rule-set hash <code>{_e(figures.get("ruleset_sha256"))}</code>; package {_e(figures.get("package_version"))};
protected at {_e(figures.get("protected_at"))}.</li></ul>"""
    return _page(figures, "IG review summary", content)


def render_marts_page(figures: dict[str, Any]) -> str:
    grid = pd.DataFrame(figures["mart_areas"])
    if grid.empty:
        table = "<p>None.</p>"
    else:
        cells = grid.assign(text=grid["withheld"].astype(str) + " / " + grid["cells"].astype(str))
        pivot = cells.pivot(index="mart", columns="area", values="text").fillna("").reset_index()
        table = _table(pivot.to_dict("records"), {c: c for c in pivot.columns}, "mart-by-area")
    not_built = [{"mart": k, "why": v} for k, v in (figures.get("marts_not_built") or {}).items()]
    content = (
        "<h2>Cells withheld per mart and area (withheld / cells)</h2>"
        + table
        + "<h2>Marts not built this period</h2>"
        + _table(not_built, {"mart": "mart", "why": "why"})
        + "<h2>Inputs</h2>"
        + _table(figures.get("inputs", []), {"source": "file", "sha256": "sha256 (first 16)"})
    )
    return _page(figures, "Every mart by area", content)


def render_validation_page(figures: dict[str, Any]) -> str:
    checked = figures["validation"]
    content = (
        "<h2>Warning-level expectation failures</h2>"
        + _table(checked["warnings"], {"area": "area", "rule": "rule", "column": "column"}, "warnings")
        + "<h2>Month-over-month flags</h2>"
        + _table(checked["month_over_month"], {"area": "area", "status": "status", "message": "finding"})
        + "<h2>Rows set aside in quarantine</h2>"
        + _table(checked["quarantine"], {"area": "area", "source": "file", "rows": "rows"})
    )
    return _page(figures, "What validation let through", content)


def write_report_pages(folder: Path, figures: dict[str, Any], published: dict[str, Any] | None = None) -> Path:
    """Write the report's pages into `folder`; returns the summary page."""
    pages = {
        INDEX_PAGE: render_summary_page(figures, published),
        MARTS_PAGE: render_marts_page(figures),
        VALIDATION_PAGE: render_validation_page(figures),
    }
    for name, text in pages.items():
        write_private(folder / name, text.encode("utf-8"))
    return folder / INDEX_PAGE


def add_publication(folder: Path, published: dict[str, Any]) -> Path:
    """What publishing adds to the report (where and when), recorded and shown on the summary page."""
    figures = json.loads((folder / SUMMARY_FILE).read_text(encoding="utf-8"))
    write_private(folder / PUBLICATION_FILE, json.dumps(published, indent=2, sort_keys=True).encode("utf-8"))
    target = folder / INDEX_PAGE
    write_private(target, render_summary_page(figures, published).encode("utf-8"))
    return target
