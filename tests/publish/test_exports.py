"""Analyst exports: GSS [c] markers, one margin label, and no formula injection (structure of the workbooks:
test_workbook.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from treatment_marts.core.labels import TOTAL
from treatment_marts.core.settings import Settings
from treatment_marts.publish.exports import neutralise_formula, write_exports


def table_rows(sheet: Worksheet) -> list[tuple]:
    """The rows of the sheet's one Excel table, header first (located by the table's range, not guessed)."""
    (table,) = sheet.tables.values()
    return [tuple(cell.value for cell in row) for row in sheet[table.ref]]


def mart() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "period": ["2024-03"] * 6,
            "area": ["Exborough", "Exborough", "Northton", "Northton", "Total", "Total"],
            "sex": ["Male", "Total", "Male", "Total", "Male", "Total"],
            "count": pd.array([None, 12, 7, 7, 19, 19], dtype="Int64"),
            "status": pd.array(["c", None, None, None, None, None], dtype="string"),
            "percent": pd.array([None, 100.0, 100.0, 100.0, 100.0, 100.0], dtype="Float64"),
        }
    )


def test_formula_prefixes_are_neutralised() -> None:
    for hostile in ('=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "\tcmd"):
        assert neutralise_formula(hostile) == "'" + hostile
    assert neutralise_formula("18-24") == "18-24" and neutralise_formula(5) == 5


def test_exports_mark_suppressed_cells_and_carry_notes(tmp_path: Path) -> None:
    settings = Settings.from_env(data_root=tmp_path)
    frame = mart()
    frame.loc[2, "area"] = "=cmd|' /C calc'!A0"  # a hostile label must not reach a spreadsheet as a formula
    target = write_exports(
        settings,
        period="2024-03",
        marts={"in_treatment_sex_area": frame},
        titles={"in_treatment_sex_area": "Adults in treatment by sex and area"},
        caveats={"in_treatment_sex_area": ["A caveat."]},
        areas=["Exborough"],
        manifest={"run_id": "r1", "ruleset_sha256": "ab" * 32, "k": 3},
    )
    csv = pd.read_csv(target / "csv" / "in_treatment_sex_area.csv", dtype=str)
    assert csv.loc[0, "count"] == "[c]" and csv.loc[0, "percent"] == "[c]"
    assert "status" not in csv.columns
    assert csv.loc[2, "area"].startswith("'=")

    book = load_workbook(target / "Exborough_2024-03.xlsx")
    assert book.sheetnames == ["Cover", "Contents", "Notes", "Table 1"]  # no tab name given: numbered
    notes = [row[1] for row in table_rows(book["Notes"])[1:]]
    assert any("suppressed" in str(text) and "[c] (confidential)" in str(text) for text in notes)
    assert "A caveat." in notes
    sheet = book["Table 1"]
    assert sheet["A1"].value.startswith("Adults in treatment by sex and area, Exborough and Total, March 2024 [note")
    rows = table_rows(sheet)
    assert rows[0] == ("Area", "Sex", "Number of people", "Percentage")
    areas = {row[0] for row in rows[1:]}
    assert areas == {"Exborough", TOTAL}  # the area beside the national comparator, one margin label
    for row in rows:
        for cell in row:
            assert not (isinstance(cell, str) and cell.startswith(("=", "+", "@")))


def test_rewriting_a_period_replaces_it_whole(tmp_path: Path) -> None:
    settings = Settings.from_env(data_root=tmp_path)
    args = dict(period="2024-03", titles={}, caveats={}, areas=[], manifest={"run_id": "r1", "k": 3})
    write_exports(settings, marts={"a": mart(), "b": mart()}, **args)
    target = write_exports(settings, marts={"a": mart()}, **args)
    assert sorted(p.name for p in (target / "csv").iterdir()) == ["a.csv"]
    assert target.is_symlink(), "swapped whole: the period's link moves to the new version"
    assert not list(target.parent.glob(".period=*")), "no staging folder left behind"


# --- formula injection: every variant, every column type, both formats ----------------------------------

HOSTILE = [
    "x\r=1+1",
    "Total\n@SUM(A1)",
    '=HYPERLINK("http://x","y")',
    "+1+1",
    "-2+3",
    "@SUM(A1)",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
    " =1+1",
    "  @x",
    "\uff1d1+1",
    "\uff0bcmd",
    "\uff0d1",
    "\uff20SUM(1)",
    "=cmd|' /C calc'!A0",
]


def test_every_formula_variant_is_neutralised() -> None:
    for hostile in HOSTILE[2:]:
        flat = hostile.replace("\r", " ").replace("\n", " ")
        assert neutralise_formula(hostile) == "'" + flat, repr(hostile)
    # A line break inside a label would start a new CSV row (pandas leaves a bare CR unquoted).
    assert neutralise_formula("Male\r=1+1") == "Male =1+1" and neutralise_formula("a\r\n@b") == "a @b"
    for benign in ("18-24", "Total", "Not stated", "'already", "65+", "a=b", 5, None, 1.5):
        assert neutralise_formula(benign) == benign


def _starts_like_a_formula(cell: object) -> bool:
    return isinstance(cell, str) and (
        cell.startswith(("=", "+", "-", "@", "\t", "\r", "\n"))
        or cell.lstrip(" ").startswith(("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20"))
    )


def test_no_export_cell_starts_like_a_formula_whatever_the_column_type(tmp_path: Path) -> None:
    """Labels as string, object and categorical columns, titles, caveats and the area name: all inert."""
    settings = Settings.from_env(data_root=tmp_path)
    rows = len(HOSTILE) + 1
    frame = pd.DataFrame(
        {
            "period": ["2024-03"] * rows,
            "area": pd.Categorical(["Exborough"] * (rows - 1) + ["Total"]),
            "label_text": pd.array([*HOSTILE, "Total"], dtype="string"),
            "label_object": pd.Series([*HOSTILE, "Total"], dtype=object),
            "label_category": pd.Categorical([*HOSTILE, "Total"]),
            "count": pd.array([10] * rows, dtype="Int64"),
            "status": pd.array([None] * rows, dtype="string"),
        }
    )
    target = write_exports(
        settings,
        period="2024-03",
        marts={"m": frame},
        titles={"m": "=title()"},
        caveats={"m": ["-caveat", "@caveat"]},
        areas=["Exborough"],
        manifest={"run_id": "=run", "ruleset_sha256": "ab" * 32, "k": 3},
    )
    import csv

    with open(target / "csv" / "m.csv", newline="") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert sum(cell.startswith("'") for cell in cells) == 3 * (len(HOSTILE) - 2)  # two are inert once flattened
    assert len(cells) == 6 * (len(HOSTILE) + 2)  # header + rows: no embedded line break split a row
    assert not [cell for cell in cells if _starts_like_a_formula(cell)]
    book = load_workbook(target / "Exborough_2024-03.xlsx")
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate)  # openpyxl writes "=..." as a formula
                assert not _starts_like_a_formula(cell.value), (sheet.title, cell.coordinate, cell.value)
