"""Analyst exports: GSS [c] markers, a notes sheet, and no formula injection."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from openpyxl import load_workbook

from treatment_marts.exports import NATIONAL, neutralise_formula, write_exports
from treatment_marts.settings import Settings


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
    for hostile in ("=HYPERLINK(\"http://x\")", "+1", "-2+3", "@SUM(A1)", "\tcmd"):
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
    assert book.sheetnames == ["notes", "in_treatment_sex_area"]
    notes = [row[1] for row in book["notes"].iter_rows(min_row=2, values_only=True)]
    assert any("[c] = confidential" in str(text) for text in notes)
    rows = list(book["in_treatment_sex_area"].iter_rows(min_row=2, values_only=True))
    areas = {row[1] for row in rows}
    assert areas == {"Exborough", NATIONAL}  # the area beside the national comparator, nothing else
    for row in rows:
        for cell in row:
            assert not (isinstance(cell, str) and cell.startswith(("=", "+", "@")))


def test_rewriting_a_period_replaces_it_whole(tmp_path: Path) -> None:
    settings = Settings.from_env(data_root=tmp_path)
    args = dict(period="2024-03", titles={}, caveats={}, areas=[], manifest={"run_id": "r1", "k": 3})
    write_exports(settings, marts={"a": mart(), "b": mart()}, **args)
    target = write_exports(settings, marts={"a": mart()}, **args)
    assert sorted(p.name for p in (target / "csv").iterdir()) == ["a.csv"]
    assert not list(target.parent.glob(".*"))
