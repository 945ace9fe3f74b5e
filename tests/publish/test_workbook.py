"""Workbooks to the GSS spreadsheet standard: opened back (XLSX with openpyxl, ODS with pandas' odf
reader), they have a cover, contents, numbered notes and one table per sheet with its title in A1, numbers
stored as numbers and the [c]/[z]/[x] shorthand where there is none."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from treatment_marts.core.labels import TOTAL
from treatment_marts.publish.exports import write_export_files
from treatment_marts.publish.workbook import CONTENTS, COVER, INSTRUCTIONS, NOTES, Book, Cover, Note, Sheet, write_ods

PERIOD = "2024-03"
SHORTHAND = {"[c]", "[z]", "[x]"}


def _sex_mart() -> pd.DataFrame:
    """Area x sex: one suppressed pair, a zero cell whose base is suppressed, a zero base (Northton)."""
    rows = [
        ("Exborough", "E08900001", "Female", None, "c", None),
        ("Exborough", "E08900001", "Male", 0, None, None),  # zero, but its base is suppressed: [c]
        ("Exborough", "E08900001", "Total", None, "c", None),
        ("Northton", "E06900002", "Female", 0, None, None),  # zero base: [z]
        ("Northton", "E06900002", "Male", 0, None, None),
        ("Northton", "E06900002", "Total", 0, None, None),
        ("Total", None, "Female", 30, None, 60.0),
        ("Total", None, "Male", 20, None, 40.0),
        ("Total", None, "Total", 50, None, 100.0),
    ]
    frame = pd.DataFrame(rows, columns=["area", "area_code", "sex", "count", "status", "percent"])
    frame.insert(0, "period", PERIOD)
    return frame.astype(
        {
            "period": "string",
            "area": "string",
            "area_code": "string",
            "sex": "string",
            "count": "Int64",
            "status": "string",
            "percent": "Float64",
        }
    )


def _unmet_mart() -> pd.DataFrame:
    """Unmet-need style: float figures that are missing because there is no estimate ([x])."""
    frame = pd.DataFrame(
        {
            "period": [PERIOD] * 2,
            "area": ["Exborough", "Total"],
            "area_code": ["E08900001", None],
            "prevalence_group": ["Opiates", "Opiates"],
            "count": pd.array([120, 900], dtype="Int64"),
            "status": pd.array([None, None], dtype="string"),
            "estimate": pd.array([1800.0, None], dtype="Float64"),
            "unmet_need_percent": pd.array([93.3, None], dtype="Float64"),
        }
    ).astype({"period": "string", "area": "string", "area_code": "string", "prevalence_group": "string"})
    return frame


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("exports") / "out"
    write_export_files(
        folder,
        period=PERIOD,
        marts={
            "in_treatment_disability_learning_area_substance": _sex_mart(),
            "unmet_need_area_substance": _unmet_mart(),
        },
        titles={
            "in_treatment_disability_learning_area_substance": "Adults in treatment by sex and area",
            "unmet_need_area_substance": "Estimated unmet need",
        },
        caveats={
            "in_treatment_disability_learning_area_substance": ["Shared caveat.", "Own caveat."],
            "unmet_need_area_substance": ["Shared caveat."],
        },
        areas=["Exborough", "Northton"],
        manifest={"run_id": "r1", "ruleset_sha256": "ab" * 32, "k": 3},
        sheets={"in_treatment_disability_learning_area_substance": "Learning disability"},
        percent_of={"in_treatment_disability_learning_area_substance": "sex"},
        publication={"title": "Adults in treatment", "source": "Test source", "contact": "test@example.org"},
    )
    return folder


def _table(sheet: Worksheet) -> list[tuple]:
    (table,) = sheet.tables.values()
    return [tuple(cell.value for cell in row) for row in sheet[table.ref]]


def test_xlsx_has_cover_contents_notes_then_one_table_per_sheet(exports: Path) -> None:
    book = load_workbook(exports / f"Exborough_{PERIOD}.xlsx")
    # Meaningful tab names, never cut at 31 characters; a mart without one gets "Table n".
    assert book.sheetnames == ["Cover", "Contents", "Notes", "Learning disability", "Table 2"]
    assert book.properties.title == f"Adults in treatment: Exborough, March {PERIOD[:4]}"
    assert book.properties.language == "en-GB"
    cover = [row[0] for row in book["Cover"].iter_rows(values_only=True) if row[0]]
    assert cover[0] == book.properties.title  # title in A1
    text = " ".join(cover)
    for needed in ("Test source", "test@example.org", "3 or fewer individuals", "[c] = confidential", "[z]", "[x]"):
        assert needed in text, needed
    contents = _table(book["Contents"])
    assert [row[0] for row in contents[1:]] == ["Learning disability", "Table 2"]
    for name in book.sheetnames[1:]:
        sheet = book[name]
        assert len(sheet.tables) == 1, name  # one Excel table per sheet
        assert isinstance(sheet["A1"].value, str) and sheet["A1"].value, name


def test_notes_are_numbered_and_every_table_refers_to_its_own(exports: Path) -> None:
    book = load_workbook(exports / f"Exborough_{PERIOD}.xlsx")
    notes = _table(book["Notes"])
    assert notes[0] == ("Note number", "Note text")
    numbers = [row[0] for row in notes[1:]]
    assert numbers == list(range(1, len(numbers) + 1))
    by_text = {row[1]: row[0] for row in notes[1:]}
    assert list(by_text).count("Shared caveat.") == 1  # one note, referred to by both tables
    learning, unmet = book["Learning disability"]["A1"].value, book["Table 2"]["A1"].value
    shared, own = by_text["Shared caveat."], by_text["Own caveat."]
    assert f"[note {shared}]" in learning and f"[note {own}]" in learning
    assert f"[note {shared}]" in unmet and f"[note {own}]" not in unmet
    assert learning.startswith("Adults in treatment by sex and area, Exborough and Total, March 2024 [note 1]")


def test_numbers_are_numbers_and_missing_values_are_shorthand(exports: Path) -> None:
    book = load_workbook(exports / f"Exborough_{PERIOD}.xlsx")
    rows = _table(book["Learning disability"])
    assert rows[0] == ("Area", "Area code", "Sex", "Number of people", "Percentage")
    body = {(r[0], r[2]): r for r in rows[1:]}
    assert set(r[0] for r in rows[1:]) == {"Exborough", TOTAL}  # the area beside Total, no other area
    assert body[("Exborough", "Female")][3:] == ("[c]", "[c]")
    assert body[("Exborough", "Male")][3:] == (0, "[c]")  # a zero of a suppressed base stays confidential
    assert body[(TOTAL, "Female")][1:] == ("[z]", "Female", 30, 60)  # Total has no area code
    for row in rows[1:]:
        for value in row[3:]:
            assert isinstance(value, int | float) or value in SHORTHAND, row
    sheet = book["Learning disability"]
    (table,) = sheet.tables.values()
    first_data_row = sheet[table.ref][1]
    assert first_data_row[1].data_type == "s" and sheet[table.ref][-1][3].data_type == "n"
    unmet = {r[0]: r for r in _table(book["Table 2"])[1:]}
    assert unmet["Exborough"][3:] == (120, 1800, 93.3) and unmet[TOTAL][3:] == (900, "[x]", "[x]")


def test_zero_base_percentage_is_not_applicable(exports: Path) -> None:
    rows = _table(load_workbook(exports / f"Northton_{PERIOD}.xlsx")["Learning disability"])
    northton = [r for r in rows[1:] if r[0] == "Northton"]
    assert northton and all(r[3:] == (0, "[z]") for r in northton)


def test_ods_copy_has_the_same_sheets_and_cells(exports: Path) -> None:
    xlsx = load_workbook(exports / f"Exborough_{PERIOD}.xlsx")
    ods = pd.read_excel(exports / f"Exborough_{PERIOD}.ods", engine="odf", sheet_name=None, header=None)
    assert list(ods) == xlsx.sheetnames
    for name in ("Notes", "Learning disability", "Table 2"):
        sheet = ods[name]
        assert sheet.iloc[0, 0] == xlsx[name]["A1"].value  # same title (and note numbers) in A1
        header = 2  # row 3, under the title and the instructions, as in the XLSX
        got = [tuple(v for v in row if not pd.isna(v)) for row in sheet.iloc[header:].itertuples(index=False)]
        want = [tuple(v for v in row if v is not None) for row in _table(xlsx[name])]
        assert got == want, name
    numbers = ods["Learning disability"].iloc[3:, 3]
    assert all(isinstance(v, int | float) or v in SHORTHAND for v in numbers)
    assert any(isinstance(v, int | float) for v in numbers)


def _ods_through_pandas(book: Book, path: Path) -> None:
    """The ODS copy as pandas' odf writer (odfpy) wrote it before publish/workbook.py serialised it itself:
    the reference the fast writer must reproduce."""
    from odf import dc

    titles = book.titles()
    notes = book.numbered_notes()
    contents = pd.DataFrame({"Sheet name": [s.name for s in book.sheets], "Table description": list(titles.values())})
    notes_frame = pd.DataFrame({"Note number": range(1, len(notes) + 1), "Note text": [n.text for n in notes]})
    with pd.ExcelWriter(path, engine="odf") as writer:
        pd.DataFrame({"text": book.cover.rows()}).to_excel(writer, sheet_name=COVER, index=False, header=False)
        for name, preface, table in (
            (CONTENTS, ["Table of contents", "This worksheet contains one table."], contents),
            (NOTES, ["Notes", "This worksheet contains one table."], notes_frame),
            *((s.name, [titles[s.name], INSTRUCTIONS], s.frame) for s in book.sheets),
        ):
            pd.DataFrame({"text": preface}).to_excel(writer, sheet_name=name, index=False, header=False)
            table.to_excel(writer, sheet_name=name, index=False, startrow=0)
        writer.book.meta.addElement(dc.Title(text=book.cover.title))
        writer.book.meta.addElement(dc.Subject(text=book.cover.subject))
        writer.book.meta.addElement(dc.Language(text="en-GB"))


NAMESPACE = re.compile(rb' xmlns:[a-z]+="[^"]*"')


def _members(path: Path) -> list[tuple[str, int, int, bytes]]:
    """Each member's name, compression, mode and bytes, without namespace declarations: odfpy declares
    the namespaces it has met so far in the process (more after other ODS work, e.g. reading one back)."""
    with zipfile.ZipFile(path) as archive:
        return [
            (i.filename, i.compress_type, i.external_attr, NAMESPACE.sub(b"", archive.read(i)))
            for i in archive.infolist()
        ]


def test_ods_writer_writes_what_pandas_odf_writer_wrote(tmp_path: Path) -> None:
    """Same members, order, compression and bytes as pandas + odfpy, on awkward cells: markup characters,
    both quote kinds, line breaks, control characters, zeros, negative, fractional and large numbers, booleans,
    infinity and an empty text (a workbook has no missing cells: Book.check)."""
    awkward = pd.DataFrame(
        {
            "Area": ["A & B <x>", 'say "hi"', 'it\'s "both"', "two\nlines", "\nlead", "bell\x07", "", "Total"],
            "Number of people": [0, 1, -2, 3.5, 0.0, 1e-7, 2**40, float("inf")],
            "Flag": [True, False, True, False, True, False, False, True],
            "Percentage": [12.25, "[c]", "[z]", 100.0, 7, "[x]", 1e20, -0.5],
        }
    )
    book = Book(
        cover=Cover(title="T & <t>", intro=["i"], about=['a "b"'], contact=["c"], subject=""),
        sheets=[
            Sheet(name="Sheet 'one'", table_name="one", title="One", frame=awkward.astype(object), notes=["n1"]),
            Sheet(name="Two", table_name="two", title="Two", frame=awkward[["Area"]], notes=["n1", "n2"]),
        ],
        notes=[Note("n1", "first & only"), Note("n2", "second")],
    )
    reference, written = tmp_path / "reference.ods", tmp_path / "written.ods"
    _ods_through_pandas(book, reference)
    write_ods(book, written)
    assert _members(written) == _members(reference)
    with zipfile.ZipFile(written) as archive:  # every workbook declares the same ten namespaces
        declared = {len(NAMESPACE.findall(archive.read(name))) for name in archive.namelist()[1:]}
    assert declared == {10}
    read_back = pd.read_excel(written, engine="odf", sheet_name="Sheet 'one'", header=None)
    assert read_back.iloc[3, 0] == "A & B <x>" and read_back.iloc[6, 0] == "two\nlines"
