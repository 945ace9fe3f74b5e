"""Spreadsheets to the GSS standard for releasing statistics: an XLSX written with ONS's `gptables` and an
ODS copy (the open format GSS recommends) with the same sheets, cells and note numbers.

Structure (both formats): a cover sheet (title, period, source, contact, the suppression rule and the
shorthand), a table of contents, a numbered notes sheet, then one table per sheet with its title in A1 and
the numbers of the notes that apply appended to it (``[note 3]``). Numbers are stored as numbers; a cell
without a number holds the GSS shorthand instead (``[c]`` confidential, ``[z]`` not applicable, ``[x]`` not
available), never an empty cell. The XLSX marks each table as an Excel table and carries a document title
and language (en-GB), which screen readers announce.

Notes are numbered here, once, in order of first reference (cover order, then sheet order), and the rendered
``[note n]`` text is given to both writers, so the two files cannot disagree.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

LANGUAGE = "en-GB"
CONTENTS = "Contents"
NOTES = "Notes"
COVER = "Cover"


@dataclass(frozen=True)
class Note:
    key: str
    text: str


@dataclass(frozen=True)
class Sheet:
    """One table on its own sheet. ``frame`` is presentable: headers in words, numbers or shorthand text."""

    name: str  # the tab, <= 31 characters
    table_name: str  # the Excel table's name (an identifier)
    title: str
    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)  # keys of the notes that apply, in order


@dataclass(frozen=True)
class Cover:
    """The cover sheet: gptables' three sections, under the same headings in both formats."""

    title: str
    intro: list[str]  # what the workbook is: period, areas, release
    about: list[str]  # source, unit, the suppression rule and the shorthand
    contact: list[str]
    subject: str = ""

    def rows(self) -> list[str]:
        return [
            self.title,
            "Introductory information",
            *self.intro,
            "About these data",
            *self.about,
            "Contact",
            *self.contact,
        ]


@dataclass(frozen=True)
class Book:
    cover: Cover
    sheets: list[Sheet]
    notes: list[Note]

    def numbered_notes(self) -> list[Note]:
        """Every note once, in order of first reference; notes no table refers to come last."""
        order = [key for sheet in self.sheets for key in sheet.notes]
        keys = list(dict.fromkeys([*order, *(n.key for n in self.notes)]))
        by_key = {n.key: n for n in self.notes}
        unknown = sorted(set(keys) - set(by_key))
        if unknown:
            raise ValueError(f"sheets refer to notes that are not defined: {unknown}")
        return [by_key[k] for k in keys]

    def titles(self) -> dict[str, str]:
        """Sheet name -> its title with the note numbers appended (``Title [note 1][note 4]``)."""
        number = {n.key: i for i, n in enumerate(self.numbered_notes(), start=1)}
        return {
            s.name: s.title + ("" if not s.notes else " " + "".join(f"[note {number[k]}]" for k in s.notes))
            for s in self.sheets
        }

    def check(self) -> None:
        names = [s.name.casefold() for s in self.sheets] + [COVER.casefold(), CONTENTS.casefold(), NOTES.casefold()]
        if len(set(names)) != len(names):
            raise ValueError("sheet names must be unique (Excel compares them case-blind)")
        for sheet in self.sheets:
            if len(sheet.name) > 31:
                raise ValueError(f"sheet name {sheet.name!r} is longer than Excel's 31 characters")
            if sheet.frame.isna().any().any():
                raise ValueError(f"sheet {sheet.name!r}: an empty cell; give the GSS shorthand instead")


INSTRUCTIONS = (
    "This worksheet contains one table. Some cells refer to notes, which can be found on the Notes worksheet. "
    "Cells without a number hold a shorthand: [c] confidential, [z] not applicable, [x] not available."
)


def _gptables() -> Any:
    """Imported on use: the publish stage only, never at DAG parse time."""
    import gptables  # type: ignore[import-untyped]

    return gptables


def write_xlsx(book: Book, path: Path) -> None:
    """The workbook through gptables (cover, contents, notes, one Excel table per sheet), then its language."""
    gpt = _gptables()
    book.check()
    titles = book.titles()
    sheets = {
        s.name: gpt.GPTable(
            table=s.frame.astype(object),
            table_name=s.table_name,
            title=titles[s.name],
            instructions=INSTRUCTIONS,
            index_columns={2: 0},
        )
        for s in book.sheets
    }
    cover = gpt.Cover(
        cover_label=COVER,
        title=book.cover.title,
        intro=list(book.cover.intro),
        about=list(book.cover.about),
        contact=list(book.cover.contact),
    )
    notes = book.numbered_notes()
    notes_table = pd.DataFrame({"key": [n.key for n in notes], "Note text": [n.text for n in notes]})
    with warnings.catch_warnings():
        # gptables 2.0.2 uses pandas APIs that pandas 3 deprecates (FutureWarning/DeprecationWarning) and warns
        # about notes it did not number itself: we number them (Book.numbered_notes), so both are noise here.
        warnings.simplefilter("ignore")
        workbook = gpt.produce_workbook(
            filename=str(path),
            sheets=sheets,
            cover=cover,
            contentsheet_label=CONTENTS,
            notes_table=notes_table,
            notesheet_label=NOTES,
            # Text is data, never a formula or a link (labels are also neutralised before they get here).
            workbook_options={"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False},
        )
        workbook.set_properties(
            {"title": book.cover.title, "subject": book.cover.subject, "author": "treatment-marts", "keywords": "GSS"}
        )
        workbook.close()
    _set_language(path, LANGUAGE)


def _set_language(path: Path, language: str) -> None:
    """Add ``dc:language`` to docProps/core.xml (xlsxwriter has no option for it), rewriting the zip."""
    with zipfile.ZipFile(path) as source:
        entries = [(info, source.read(info.filename)) for info in source.infolist()]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in entries:
            if info.filename == "docProps/core.xml" and b"<dc:language>" not in data:
                data = data.replace(
                    b"</cp:coreProperties>", f"<dc:language>{language}</dc:language></cp:coreProperties>".encode()
                )
            target.writestr(info, data)
    path.write_bytes(buffer.getvalue())


def _lines(rows: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({"text": list(rows)})


def write_ods(book: Book, path: Path) -> None:
    """The same workbook as OpenDocument (pandas' odf writer): same sheets, titles in A1, cells and notes."""
    from odf import dc  # type: ignore[import-untyped]

    book.check()
    titles = book.titles()
    notes = book.numbered_notes()
    contents = pd.DataFrame({"Sheet name": [s.name for s in book.sheets], "Table description": list(titles.values())})
    notes_frame = pd.DataFrame({"Note number": range(1, len(notes) + 1), "Note text": [n.text for n in notes]})
    with pd.ExcelWriter(path, engine="odf") as writer:
        _lines(book.cover.rows()).to_excel(writer, sheet_name=COVER, index=False, header=False)
        for name, preface, table in (
            (CONTENTS, ["Table of contents", "This worksheet contains one table."], contents),
            (NOTES, ["Notes", "This worksheet contains one table."], notes_frame),
            *((s.name, [titles[s.name], INSTRUCTIONS], s.frame) for s in book.sheets),
        ):
            _lines(preface).to_excel(writer, sheet_name=name, index=False, header=False)
            # pandas' odf writer appends `startrow` empty rows after a sheet's existing rows (it cannot seek),
            # so startrow=0 puts the header right under the preface: row 3, as in the XLSX.
            table.to_excel(writer, sheet_name=name, index=False, startrow=0)
        meta = writer.book.meta
        meta.addElement(dc.Title(text=book.cover.title))
        meta.addElement(dc.Subject(text=book.cover.subject))
        meta.addElement(dc.Language(text=LANGUAGE))
