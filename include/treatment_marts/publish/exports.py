"""Analyst exports: one CSV per mart, and per area and period one workbook (XLSX and an ODS copy) to the
GSS standard for releasing statistics in spreadsheets (publish/workbook.py: cover, contents, numbered
notes, one table per sheet, numbers as numbers with [c]/[z]/[x] shorthand).

The margin label is `Total` everywhere (marts, warehouse, CSV, workbooks): one label that every output
and the disclosure code share, and true in a partial release (it covers the areas in the release, which
"England" would not be). Every text cell is neutralised against spreadsheet formula injection
before it is written, whatever its origin.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from treatment_marts.core.labels import TOTAL
from treatment_marts.core.settings import Settings
from treatment_marts.publish.workbook import Book, Cover, Note, Sheet, write_ods, write_xlsx

# OWASP CSV-injection prefixes, their full-width forms (some spreadsheet locales fold them to ASCII) and
# the line breaks/tabs a cell may start with.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
NATIONAL = TOTAL  # the national comparator's label in exports: the one margin label (was "England (all areas)")


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


def percent_shorthand(frame: pd.DataFrame, marker: str, percent_of: str | None) -> list[str]:
    """Per row, what a withheld ``percent`` shows: [z] when its base (the row with ``percent_of`` = Total
    and the other dimensions equal) is zero, else ``marker`` (its count or its base is suppressed).

    Without ``percent_of`` a zero count stands in for a zero base (a zero base implies a zero count)."""
    if percent_of is None or percent_of not in frame.columns:
        return ["[z]" if z else marker for z in frame["count"].eq(0).fillna(False)]
    others = [c for c in frame.columns if c not in {percent_of, "count", "status", "percent", "period"}]
    others = [c for c in others if not pd.api.types.is_float_dtype(frame[c]) and c != "area_code"]
    bases = frame[frame[percent_of] == TOTAL][others + ["count"]].rename(columns={"count": "_base"})
    merged = frame[others].merge(bases, on=others, how="left") if others else frame.assign(_base=bases["_base"].iloc[0])
    return ["[z]" if z else marker for z in merged["_base"].eq(0).fillna(False)]


def _presentable(frame: pd.DataFrame, marker: str, percent_of: str | None = None) -> pd.DataFrame:
    """Counts as text with the suppression marker in place; labels neutralised; `status` dropped."""
    out = frame.drop(columns=["status"]).copy()
    suppressed = frame["status"].eq("c").fillna(False)
    out["count"] = frame["count"].astype("string").mask(suppressed, marker)
    if "percent" in out.columns:
        # A withheld percentage is either confidential (its count or base is suppressed: [c]) or
        # not applicable (a zero base: GSS [z]); a zero base implies a zero count.
        missing = frame["percent"].isna().to_numpy()
        fill = percent_shorthand(frame, marker, percent_of)
        text = frame["percent"].astype("string")
        out["percent"] = pd.array([f if m else v for v, m, f in zip(text, missing, fill, strict=True)], dtype="string")
    for column in out.columns:
        # Every non-numeric column (string, object, categorical labels...) goes through the guard.
        if not (pd.api.types.is_numeric_dtype(out[column]) or pd.api.types.is_bool_dtype(out[column])):
            out[column] = out[column].astype(object).map(neutralise_formula)
    return out


HEADERS = {
    "area": "Area",
    "area_code": "Area code",
    "location": "Location",
    "count": "Number of people",
    "percent": "Percentage",
    "in_treatment": "Adults in treatment",
    "estimate": "Estimated number in need",
    "estimate_lower": "Estimated number in need, lower bound",
    "estimate_upper": "Estimated number in need, upper bound",
    "unmet_need_percent": "Unmet need (percentage)",
    "unmet_need_lower": "Unmet need at the lower estimate (percentage)",
    "unmet_need_upper": "Unmet need at the upper estimate (percentage)",
    "estimate_year": "Estimate year",
    "estimate_source": "Estimate source",
}


def header(column: str) -> str:
    """A column heading in words (GSS: no snake_case in a table meant for people)."""
    return HEADERS.get(column, column.replace("_", " ").capitalize())


def _number(value: object) -> object:
    """numpy/pandas scalars as Python int or float, so every writer stores a number, not text."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def table_cells(frame: pd.DataFrame, marker: str, percent_of: str | None = None) -> pd.DataFrame:
    """A mart as workbook cells: numbers as numbers, GSS shorthand where there is none, labels neutralised.

    ``count`` withheld: ``marker`` ([c]). ``percent`` withheld: see :func:`percent_shorthand`. Other figures missing: the marker on a suppressed row,
    else [x] (not available, e.g. no prevalence estimate). ``area_code`` of a Total row: [z] (not an area).
    ``period`` and ``status`` are left out: the workbook is one period, and the shorthand replaces status.
    """
    suppressed = frame["status"].eq("c").fillna(False).to_numpy()
    out = pd.DataFrame(index=frame.index)
    for column in frame.columns:
        if column in ("status", "period"):
            continue
        series = frame[column]
        missing = series.isna().to_numpy()
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            if column == "percent":
                fill = percent_shorthand(frame, marker, percent_of)
            elif column == "count":
                fill = [marker] * len(series)
            else:
                fill = [marker if s else "[x]" for s in suppressed]
            values = [_number(v) for v in series.astype(object)]
        else:
            fill = ["[z]" if column == "area_code" else "[x]"] * len(series)
            values = [neutralise_formula(v) for v in series.astype(object)]
        out[column] = pd.Series([f if m else v for v, m, f in zip(values, missing, fill, strict=True)], dtype=object)
    return out.rename(columns=header)


def _month(period: str) -> str:
    return pd.Timestamp(f"{period}-01").strftime("%B %Y")


UNIT = (
    "Unit: distinct adults (clients), each counted once by their latest episode in the period: once in each area "
    "that treats them, and once in the Total. A client in treatment in two areas is in both areas' figures, so the "
    "areas can add up to more than the Total."
)
SUPPRESSION = (
    "Suppression (K3 rule): counts of {k} or fewer individuals are suppressed (primary suppression), and further "
    "cells are suppressed (secondary suppression) so that suppressed values cannot be worked out from totals or "
    "other tables. A suppressed cell shows {marker} (confidential), and so does a percentage of a suppressed count "
    "or base."
)
SHORTHAND = (
    "Shorthand used instead of a number: {marker} = confidential (suppressed); [z] = not applicable (a percentage "
    "of a zero total, or the area code of a Total row); [x] = not available (for example no prevalence estimate)."
)
TOTAL_NOTE = (
    f"'{TOTAL}' is the margin label in every table, CSV file, Parquet mart and warehouse table: the sum over "
    "every category of that column. For the area it is every area in the release (the national comparator), "
    "counting each adult once: an adult in treatment in two areas is in both areas and once in the Total, so the "
    "areas can add up to more than it. It has no area code."
)
PERCENT_NOTE = (
    "Percentage: the cell's share of its total along one column (the row where that column is Total), "
    "computed from the published counts after suppression."
)
SMALL = "Figures based on small numbers should be interpreted with caution; they are not a measure of need."
DESIGNS = (
    "Table designs: {designs}. An area at a coarser design has its cells in the merged categories withheld "
    f"([c]), and so does '{TOTAL}' (otherwise '{TOTAL}' less the other areas would give them); the merged "
    "group's count follows from the area's totals. See docs/marts.md, 'Table designs per area'."
)
PARTIAL = (
    "Partial release: not available in this release: {areas} (extract not received or not accepted). These "
    f"areas have no rows in any table, and every total, including '{TOTAL}', covers only the areas in the "
    "release, so it is lower than the national figure."
)
DEFAULT_PUBLICATION = {
    "title": "Adults in drug and alcohol treatment",
    "source": "Monthly client-level adult drug and alcohol treatment extracts (NDTMS-style), treatment-marts pipeline",
    "contact": "The team that runs treatment-marts for this data root",
}


@dataclass(frozen=True)
class ExportText:
    """What the exports say about each mart and the release (from marts.yaml and the run manifest)."""

    period: str
    titles: dict[str, str]
    caveats: dict[str, list[str]]
    sheets: dict[str, str]
    percent_of: dict[str, str]
    manifest: dict
    marker: str
    publication: dict[str, str]


def design_note(manifest: dict) -> str | None:
    """The note naming each area's table design and why (marts/designs.py), when any area is not at the
    full design; None otherwise."""
    designs = list(manifest.get("area_designs") or [])
    if len({d["design"] for d in designs}) <= 1:
        return None
    named = "; ".join(f"{d['area']}: {d['design']} ({d['reason']})" for d in designs)
    return DESIGNS.format(designs=named)


def _notes(text: ExportText, marts: dict[str, pd.DataFrame]) -> tuple[list[Note], dict[str, str]]:
    """The workbook's notes (a caveat shared by marts is one note) and caveat text -> note key."""
    left_out = list(text.manifest.get("areas_left_out") or [])
    designs = design_note(text.manifest)
    notes = [
        Note("unit", UNIT),
        Note("suppression", SUPPRESSION.format(marker=text.marker, k=text.manifest.get("k", 3))),
        Note("total", TOTAL_NOTE),
        *([Note("partial", PARTIAL.format(areas=", ".join(left_out)))] if left_out else []),
        *([Note("design", designs)] if designs else []),
        Note("percent", PERCENT_NOTE),
        Note("small", SMALL),
    ]
    keys: dict[str, str] = {}
    for name in marts:
        for caveat in text.caveats.get(name, []):
            keys.setdefault(caveat, f"caveat{len(keys) + 1}")
    notes += [Note(key, caveat) for caveat, key in keys.items()]
    return [Note(n.key, str(neutralise_formula(n.text))) for n in notes], keys


def mart_cells(marts: dict[str, pd.DataFrame], text: ExportText) -> dict[str, pd.DataFrame]:
    """:func:`table_cells` of every whole mart, computed once for all the area workbooks.

    An area's sheet is the rows of its mart cells where the area is itself or Total (:func:`area_rows`):
    every figure's shorthand depends only on its own row and its percentage base, and a base row has the
    same area as the row (or is the Total area), so it is in the same area's rows."""
    return {
        name: table_cells(frame.reset_index(drop=True), text.marker, text.percent_of.get(name))
        for name, frame in marts.items()
    }


def area_rows(frame: pd.DataFrame, cells: pd.DataFrame, area: str) -> pd.DataFrame:
    """The cells of ``frame``'s rows for ``area`` and the national comparator (all rows without areas)."""
    if "area" not in frame.columns:
        return cells
    keep = frame["area"].isin([area, TOTAL]).fillna(False).to_numpy(dtype=bool)
    return cells[keep].reset_index(drop=True)


def area_book(
    area: str, marts: dict[str, pd.DataFrame], text: ExportText, cells: dict[str, pd.DataFrame] | None = None
) -> Book:
    """The workbook of one area: its rows beside Total in every mart, with cover and numbered notes.

    ``cells`` is :func:`mart_cells` of ``marts`` (computed here when not given)."""
    cells = cells if cells is not None else mart_cells(marts, text)
    notes, caveat_keys = _notes(text, marts)
    left_out = list(text.manifest.get("areas_left_out") or [])
    month = _month(text.period)
    sheets = []
    for number, (name, frame) in enumerate(marts.items(), start=1):
        refs = ["unit", "suppression", "total", *(["partial"] if left_out else [])]
        refs += ["design"] if design_note(text.manifest) and "area" in frame.columns else []
        refs += ["percent"] if "percent" in frame.columns else []
        refs += [caveat_keys[c] for c in text.caveats.get(name, [])]
        title = text.titles.get(name) or name.replace("_", " ").capitalize()
        scope = f"{area} and Total" if "area" in frame.columns else "by location"
        sheets.append(
            Sheet(
                name=text.sheets.get(name) or f"Table {number}",
                table_name=name,
                title=str(neutralise_formula(f"{title}, {scope}, {month}")),
                frame=area_rows(frame, cells[name], area),
                notes=refs,
            )
        )
    manifest, marker = text.manifest, text.marker
    release = f"Release: run {manifest.get('run_id', '')}, rule set {str(manifest.get('ruleset_sha256', ''))[:12]}."
    about = [
        f"Source: {text.publication['source']}.",
        UNIT,
        SUPPRESSION.format(marker=marker, k=manifest.get("k", 3)),
        SHORTHAND.format(marker=marker),
        TOTAL_NOTE,
        *([PARTIAL.format(areas=", ".join(left_out))] if left_out else []),
        "Every area's rows are also in the CSV files beside this workbook, and in the Parquet marts and the warehouse.",
    ]
    cover = Cover(
        title=str(neutralise_formula(f"{text.publication['title']}: {area}, {month}")),
        subject=f"Disclosure-controlled tables of adults in drug and alcohol treatment, {area}, {text.period}",
        intro=[
            f"Tables for {area} beside the national comparator, {TOTAL} (every area in this release), for "
            f"{month} (period {text.period}).",
            "One table per worksheet: the Contents worksheet lists them, the Notes worksheet numbers the notes.",
            release,
        ],
        about=about,
        contact=[text.publication["contact"]],
    )
    neutral = Cover(
        title=cover.title,
        subject=cover.subject,
        intro=[str(neutralise_formula(t)) for t in cover.intro],
        about=[str(neutralise_formula(t)) for t in cover.about],
        contact=[str(neutralise_formula(t)) for t in cover.contact],
    )
    return Book(cover=neutral, sheets=sheets, notes=notes)


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
    sheets: dict[str, str] | None = None,
    publication: dict[str, str] | None = None,
    percent_of: dict[str, str] | None = None,
) -> None:
    """Write the exports of a period into ``folder`` (empty): ``csv/<mart>.csv`` and, per area,
    ``<area>_<P>.xlsx`` with its ``<area>_<P>.ods`` copy (layout: publish/workbook.py)."""
    (folder / "csv").mkdir(parents=True)
    for name, frame in marts.items():
        _presentable(frame, marker, (percent_of or {}).get(name)).to_csv(folder / "csv" / f"{name}.csv", index=False)
    text = ExportText(
        period=period,
        titles=titles,
        caveats=caveats,
        sheets=sheets or {},
        percent_of=percent_of or {},
        manifest=manifest,
        marker=marker,
        publication={**DEFAULT_PUBLICATION, **(publication or {})},
    )
    cells = mart_cells(marts, text)
    for area in areas:
        book = area_book(area, marts, text, cells)
        safe_area = "".join(ch if ch.isalnum() else "_" for ch in area)
        write_xlsx(book, folder / f"{safe_area}_{period}.xlsx")
        write_ods(book, folder / f"{safe_area}_{period}.ods")


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
    sheets: dict[str, str] | None = None,
    publication: dict[str, str] | None = None,
    percent_of: dict[str, str] | None = None,
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
            sheets=sheets,
            publication=publication,
            percent_of=percent_of,
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    target = root / f"period={period}"
    swap_link(target, folder)
    prune(folder.parent, folder.resolve())
    return target
