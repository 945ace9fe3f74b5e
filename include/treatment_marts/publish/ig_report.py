"""The information-governance view of a run: an HTML report beside the restricted suppression log.

The report is restricted (it names suppressed cells and their audit intervals) and is what an IG reviewer
reads to sign a release off: the rules applied, what was suppressed and why, the information lost, and
the evidence that no suppressed value is recoverable.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from treatment_marts.core.files import write_private
from treatment_marts.core.settings import Settings

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#1b1b1b}
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
th{background:#f0f0f0}.ok{color:#0a6b2b;font-weight:600}.bad{color:#a00;font-weight:600}
code{background:#f6f6f6;padding:0 .2rem}
"""


def _table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p>None.</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape('' if pd.isna(v) else str(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def report_path(settings: Settings, period: str, run_id: str) -> Path:
    return settings.restricted_dir / "reports" / f"period={period}" / f"ig_report_{run_id}.html"


def _record_level_section(summary: dict | None, loss: pd.DataFrame | None) -> str:
    if not summary:
        return "<p>No record-level extract is configured (rules.yaml <code>record_level</code>).</p>"
    if summary.get("withheld"):
        return f"<p>No record-level extract this period: {html.escape(summary['reason'])}.</p>"
    head = (
        f"<p>{summary['records_out']} of {summary['records_in']} records released, K{summary['k']} over "
        f"{html.escape(', '.join(summary['quasi_identifiers']))} by local suppression: "
        f"{summary['values_suppressed']} value(s) suppressed in {summary['records_touched']} record(s), "
        f"{summary['records_dropped']} record(s) dropped. Naive K{summary['k']} deletion would have dropped "
        f"{summary['naive_deleted']} record(s). Loss per group, ours beside naive deletion:</p>"
    )
    return head + (_table(loss) if loss is not None else "")


def render_ig_report(
    manifest: dict,
    log: pd.DataFrame,
    info_loss: pd.DataFrame,
    audit: pd.DataFrame,
    record_level: dict | None = None,
    record_level_loss: pd.DataFrame | None = None,
) -> str:
    disclosed = int(audit["disclosed"].sum()) if "disclosed" in audit.columns else 0
    verdict = (
        f'<p class="ok">Disclosure audit passed: {len(audit)} suppressed cell(s) checked, none recoverable '
        f"exactly or provably within 1..{manifest['k']}.</p>"
        if disclosed == 0
        else f'<p class="bad">Disclosure audit FAILED for {disclosed} cell(s): this release must not be published.</p>'
    )
    by_kind = (
        log.groupby(["mart", "suppression"]).size().unstack(fill_value=0).reset_index()
        if not log.empty and "suppression" in log.columns
        else pd.DataFrame()
    )
    inputs = pd.DataFrame(manifest.get("inputs", []))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>IG report {html.escape(manifest["period"])} {html.escape(manifest["run_id"])}</title><style>{_STYLE}</style></head><body>
<h1>Disclosure-control report, period {html.escape(manifest["period"])}</h1>
<p><strong>RESTRICTED</strong>: contains true values of suppressed cells. Do not publish.</p>
<h2>Rules</h2>
<ul><li>K{manifest["k"]}: any published group of {manifest["k"]} or fewer individuals is suppressed (primary);
complementary cells are suppressed so that no suppressed value can be recovered from totals or linked tables (secondary);
complementary cells the finished pattern no longer needs are published again (clean-up, never a primary or carried-forward cell), and the audit below checks the result.</li>
<li>Zeros: {html.escape(manifest["zeros"])}.</li>
<li>Rule-set hash: <code>{html.escape(manifest["ruleset_sha256"])}</code>; package version {html.escape(manifest["package_version"])}.</li></ul>
<h2>Inputs</h2>{_table(inputs)}
<p>Episodes received: {manifest.get("episodes_in", "n/a")}; excluded for no consent: {manifest.get("excluded_no_consent", "n/a")}.</p>
<h2>Audit (attacker's view)</h2>{verdict}
<h2>Suppressed cells by mart</h2>{_table(by_kind)}
<h2>Information loss</h2>{_table(info_loss)}
<h2>Record-level extract</h2>{_record_level_section(record_level, record_level_loss)}
<h2>Suppression log</h2>{_table(log)}
</body></html>"""


def write_ig_report(settings: Settings, *, period: str, run_id: str, staged_dir: Path) -> Path:
    manifest = json.loads((staged_dir / "run_manifest.json").read_text())
    log = pd.read_parquet(staged_dir / "suppression_log.parquet")
    info_loss = pd.read_parquet(staged_dir / "information_loss.parquet")
    audit = pd.read_parquet(staged_dir / "audit_intervals.parquet")
    record_level = (
        json.loads((staged_dir / "record_level.json").read_text())
        if (staged_dir / "record_level.json").exists()
        else None
    )
    loss = (
        pd.read_csv(record_level["loss_report"])
        if record_level and record_level.get("loss_report") and Path(record_level["loss_report"]).exists()
        else None
    )
    target = report_path(settings, period, run_id)
    write_private(target, render_ig_report(manifest, log, info_loss, audit, record_level, loss).encode("utf-8"))
    return target
