"""Analyst exports: one CSV per mart and one XLSX workbook per area and period, in GSS table style.

Suppressed cells show the GSS shorthand `[c]`; each workbook carries a notes sheet (source, period,
suppression rule, caveats on small numbers). Every text cell is neutralised against spreadsheet formula
injection before it is written, whatever its origin.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pandas as pd

from treatment_marts.core.settings import Settings
from treatment_marts.marts.builder import TOTAL

# OWASP CSV-injection prefixes, their full-width forms (some spreadsheet locales fold them to ASCII) and
# the line breaks/tabs a cell may start with.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
NATIONAL = "England (all areas)"


def neutralise_formula(value: object) -> object:
    """Prefix a text cell that a spreadsheet would evaluate (OWASP CSV injection guidance).

    Line breaks inside a cell become spaces first: pandas does not quote a field holding a bare CR, and a
    CSV reader would start a new row there, so "x\r=cmd" would put "=cmd" at the start of a cell. Leading
    spaces are looked through (" =1+1" is evaluated by some spreadsheets); the value is kept readable, just
    made inert with a leading apostrophe.
    """
    if not isinstance(value, str):
        return value
    if "\r" in value or "\n" in value:
        value = value.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    if value.startswith(FORMULA_PREFIXES) or value.lstrip(" ").startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _presentable(frame: pd.DataFrame, marker: str) -> pd.DataFrame:
    """Counts as text with the suppression marker in place; labels neutralised; `status` dropped."""
    out = frame.drop(columns=["status"]).copy()
    suppressed = frame["status"].eq("c").fillna(False)
    out["count"] = frame["count"].astype("string").mask(suppressed, marker)
    if "percent" in out.columns:
        # A withheld percentage is either confidential (its count or base is suppressed: [c]) or
        # not applicable (a zero base: GSS [z]); a zero base implies a zero count.
        missing = frame["percent"].isna()
        zero_base = missing & frame["count"].eq(0).fillna(False)
        out["percent"] = frame["percent"].astype("string").mask(missing, marker).mask(zero_base, "[z]")
    for column in out.columns:
        # Every non-numeric column (string, object, categorical labels...) goes through the guard.
        if not (pd.api.types.is_numeric_dtype(out[column]) or pd.api.types.is_bool_dtype(out[column])):
            out[column] = out[column].astype(object).map(neutralise_formula)
    return out


def _for_area(frame: pd.DataFrame, area: str) -> pd.DataFrame:
    """The area's rows beside the national comparator (area = Total)."""
    if "area" not in frame.columns:
        return frame
    chosen = frame[frame["area"].isin([area, TOTAL])].copy()
    chosen["area"] = chosen["area"].astype(object).replace({TOTAL: NATIONAL})  # also for categorical labels
    return chosen


def _notes(
    period: str, manifest: dict, titles: dict[str, str], caveats: dict[str, list[str]], marker: str
) -> pd.DataFrame:
    lines = [
        (
            "Source",
            "Monthly client-level adult drug and alcohol treatment extracts (NDTMS-style), treatment-marts pipeline",
        ),
        ("Period", period),
        ("Release", f"run {manifest.get('run_id', '')}, rule set {str(manifest.get('ruleset_sha256', ''))[:12]}"),
        ("Unit", "Distinct adults (clients), each counted once by their latest episode in the period"),
        (
            "Suppression",
            f"{marker} = confidential: counts of {manifest.get('k', 3)} or fewer individuals are suppressed, and further cells "
            "are suppressed so that suppressed values cannot be worked out from totals or other tables.",
        ),
        (
            "Small numbers",
            "Figures based on small numbers should be interpreted with caution; they are not a measure of need.",
        ),
        ("Comparator", f"'{NATIONAL}' is the total over every area in the release."),
    ]
    left_out = list(manifest.get("areas_left_out") or [])
    if left_out:
        lines.append(
            (
                "Partial release",
                f"Not available in this release: {', '.join(left_out)} (extract not received or not accepted). "
                f"These areas have no rows in any table, and every total, including '{NATIONAL}', covers only "
                "the areas in the release, so it is lower than the national figure.",
            )
        )
    for name, title in titles.items():
        for caveat in caveats.get(name, []):
            lines.append((title, caveat))
    return pd.DataFrame(lines, columns=["note", "text"]).map(neutralise_formula)


def write_export_files(
    folder: Path,
    *,
    period: str,
    marts: dict[str, pd.DataFrame],
    titles: dict[str, str],
    caveats: dict[str, list[str]],
    areas: list[str],
    manifest: dict,
    marker: str = "[c]",
) -> None:
    """Write the exports of a period into ``folder`` (empty): ``csv/<mart>.csv`` and ``<area>_<P>.xlsx``."""
    (folder / "csv").mkdir(parents=True)
    for name, frame in marts.items():
        _presentable(frame, marker).to_csv(folder / "csv" / f"{name}.csv", index=False)
    notes = _notes(period, manifest, titles, caveats, marker)
    for area in areas:
        safe_area = "".join(ch if ch.isalnum() else "_" for ch in area)
        with pd.ExcelWriter(folder / f"{safe_area}_{period}.xlsx", engine="openpyxl") as writer:
            notes.to_excel(writer, sheet_name="notes", index=False)
            for name, frame in marts.items():
                sheet = name[:31]  # Excel's sheet-name limit
                _presentable(_for_area(frame, area), marker).to_excel(writer, sheet_name=sheet, index=False)


def write_exports(
    settings: Settings,
    *,
    period: str,
    marts: dict[str, pd.DataFrame],
    titles: dict[str, str],
    caveats: dict[str, list[str]],
    areas: list[str],
    manifest: dict,
    marker: str = "[c]",
) -> Path:
    """Exports on their own (a release stages them with its marts instead: publish_release(exports=...)):
    written into a new version folder, then ``exports/period=YYYY-MM`` is swapped to it whole."""
    from treatment_marts.publish.layout import make_dir, prune, swap_link

    root = settings.public_dir / "exports"
    folder = root / ".releases" / f"period={period}" / f"{manifest.get('run_id', 'run')}.{uuid.uuid4().hex[:12]}"
    make_dir(folder, 0o755)
    try:
        write_export_files(
            folder,
            period=period,
            marts=marts,
            titles=titles,
            caveats=caveats,
            areas=areas,
            manifest=manifest,
            marker=marker,
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    target = root / f"period={period}"
    swap_link(target, folder)
    prune(folder.parent, folder.resolve())
    return target
