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
import math
import re
import time
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
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
    buffer = io.BytesIO()  # in memory: xlsxwriter's default stages every part in a temporary file
    with warnings.catch_warnings():
        # gptables 2.0.2 uses pandas APIs that pandas 3 deprecates (FutureWarning/DeprecationWarning) and warns
        # about notes it did not number itself: we number them (Book.numbered_notes), so both are noise here.
        warnings.simplefilter("ignore")
        workbook = gpt.produce_workbook(
            filename=buffer,
            sheets=sheets,
            cover=cover,
            contentsheet_label=CONTENTS,
            notes_table=notes_table,
            notesheet_label=NOTES,
            # Text is data, never a formula or a link (labels are also neutralised before they get here).
            workbook_options={
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "strings_to_numbers": False,
                "in_memory": True,
            },
        )
        workbook.set_properties(
            {"title": book.cover.title, "subject": book.cover.subject, "author": "treatment-marts", "keywords": "GSS"}
        )
        workbook.close()
    path.write_bytes(_with_language(buffer.getvalue(), LANGUAGE))


# The date and mode xlsxwriter gives a part it stages in a temporary file; in memory it gives 1980-01-01
# and no mode. The parts keep the former ones, so a workbook is the same file as before, byte for byte.
_XLSX_PART_DATE = (1980, 1, 31, 0, 0, 0)
_XLSX_PART_MODE = 0o100600 << 16


def _with_language(xlsx: bytes, language: str) -> bytes:
    """Add ``dc:language`` to docProps/core.xml (xlsxwriter has no option for it), rewriting the zip."""
    with zipfile.ZipFile(io.BytesIO(xlsx)) as source:
        entries = [(info, source.read(info.filename)) for info in source.infolist()]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in entries:
            info.date_time, info.external_attr = _XLSX_PART_DATE, _XLSX_PART_MODE
            if info.filename == "docProps/core.xml" and b"<dc:language>" not in data:
                data = data.replace(
                    b"</cp:coreProperties>", f"<dc:language>{language}</dc:language></cp:coreProperties>".encode()
                )
            target.writestr(info, data)
    return buffer.getvalue()


# --- ODS ------------------------------------------------------------------------------------------------
#
# The ODS copy is serialised here rather than through pandas' odf writer (odfpy): that built a DOM node per
# cell and walked it twice to save, about half of all export time (0.9 s a workbook against ~0.03 s). The
# document is exactly what pandas 3 + odfpy 1.4.1 wrote (tests/publish/test_workbook.py compares the two
# member by member): the same members in the same order, the same elements, attributes and escaping, and
# odfpy's generator string, so a published ODS is unchanged. One difference: odfpy declared, in styles.xml
# and content.xml, only the namespaces it had met so far in the process (fewer in the first workbook a
# process wrote); every workbook now declares all ten, as odfpy's later ones did.

ODS_MIMETYPE = "application/vnd.oasis.opendocument.spreadsheet"
ODF_GENERATOR = "ODFPY/1.4.1"  # the meta:generator of the files this writer reproduces
_ZIP_PERMISSIONS = 0o100644 << 16  # -rw-r--r--, as odfpy set it
_PROLOGUE = "<?xml version='1.0' encoding='UTF-8'?>\n"
_NAMESPACES = "".join(
    f' xmlns:{prefix}="{uri}"'
    for prefix, uri in (
        ("office", "urn:oasis:names:tc:opendocument:xmlns:office:1.0"),
        ("text", "urn:oasis:names:tc:opendocument:xmlns:text:1.0"),
        ("meta", "urn:oasis:names:tc:opendocument:xmlns:meta:1.0"),
        ("table", "urn:oasis:names:tc:opendocument:xmlns:table:1.0"),
        ("dc", "http://purl.org/dc/elements/1.1/"),
        ("manifest", "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"),
        ("chart", "urn:oasis:names:tc:opendocument:xmlns:chart:1.0"),
        ("draw", "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0"),
        ("presentation", "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0"),
        ("style", "urn:oasis:names:tc:opendocument:xmlns:style:1.0"),
    )
)
# Characters XML 1.0 cannot hold or discourages: written as U+FFFD (odfpy's rule).
_UNREPRESENTABLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff"
    + "".join(f"{chr(plane * 0x10000 + 0xFFFE)}-{chr(plane * 0x10000 + 0xFFFF)}" for plane in range(1, 17))
    + "]"
)


def _xml_text(text: str) -> str:
    if _UNREPRESENTABLE.search(text):
        text = _UNREPRESENTABLE.sub("\ufffd", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _xml_attribute(value: str) -> str:
    """Escaped and quoted as odfpy did: double quotes, or single ones around a value holding a double quote.
    A carriage return is written as the character reference &#13; (odfpy wrote &#12;, a form feed)."""
    value = _xml_text(value).replace("\n", "&#10;").replace("\r", "&#13;")
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    return '"' + value.replace('"', "&quot;") + '"'


def _paragraph(text: str) -> str:
    """``text:p`` of a string cell; a line break inside it is a ``text:line-break`` (a bare newline would
    be read as a space)."""
    parts = text.split("\n")
    inner = _xml_text(parts[0]) + "".join("<text:line-break/>" + _xml_text(part) for part in parts[1:])
    return f"<text:p>{inner}</text:p>" if inner else "<text:p/>"


def _string_cell(text: str) -> str:
    return f'<table:table-cell office:value-type="string" office:string-value={_xml_attribute(text)}>{_paragraph(text)}</table:table-cell>'


def _number_cell(number: float) -> str:
    shown = str(number)  # a zero is stored as a number with an empty paragraph, as odfpy wrote it
    return f'<table:table-cell office:value-type="float" office:value="{shown}"><text:p>{shown if number else ""}</text:p></table:table-cell>'


def _ods_cell(value: object) -> str:
    """One cell, typed as pandas' writers type it: text as a string, numbers as floats, a missing value
    as an empty string, infinity as the text ``inf``."""
    if isinstance(value, str):
        return _string_cell(value)
    if isinstance(value, bool | np.bool_):
        shown = "true" if value else "false"
        return f'<table:table-cell office:value-type="boolean" office:boolean-value="{shown}"><text:p>{shown.upper()}</text:p></table:table-cell>'
    if value is None or value is pd.NA or value is pd.NaT:
        return _string_cell("")
    if isinstance(value, int | np.integer):
        return _number_cell(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return _string_cell("")
        if math.isinf(number):
            return _string_cell("inf" if number > 0 else "-inf")
        return _number_cell(number)
    raise TypeError(f"an ODS cell holds text, a number or a boolean, not {type(value).__name__}")


def _ods_rows(frame: pd.DataFrame, header: bool) -> list[str]:
    columns = [frame.iloc[:, i].tolist() for i in range(frame.shape[1])]
    rows = ["<table:table-row>" + "".join(_ods_cell(c) for c in frame.columns) + "</table:table-row>"] if header else []
    rows += [
        "<table:table-row>" + "".join(map(_ods_cell, cells)) + "</table:table-row>"
        for cells in zip(*columns, strict=True)
    ]
    return rows


def _ods_table(name: str, parts: Sequence[tuple[pd.DataFrame, bool]]) -> str:
    rows = [row for frame, header in parts for row in _ods_rows(frame, header)]
    opening = f"<table:table table:name={_xml_attribute(name)}"
    return opening + ">" + "".join(rows) + "</table:table>" if rows else opening + "/>"


def _lines(rows: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({"text": list(rows)})


def _meta_element(tag: str, text: str) -> str:
    return f"<{tag}>{_xml_text(text)}</{tag}>" if text else f"<{tag}/>"


def write_ods(book: Book, path: Path) -> None:
    """The same workbook as OpenDocument: same sheets, titles in A1, cells and notes (see above)."""
    book.check()
    titles = book.titles()
    notes = book.numbered_notes()
    contents = pd.DataFrame({"Sheet name": [s.name for s in book.sheets], "Table description": list(titles.values())})
    notes_frame = pd.DataFrame({"Note number": range(1, len(notes) + 1), "Note text": [n.text for n in notes]})
    tables = [_ods_table(COVER, [(_lines(book.cover.rows()), False)])]
    for name, preface, table in (
        (CONTENTS, ["Table of contents", "This worksheet contains one table."], contents),
        (NOTES, ["Notes", "This worksheet contains one table."], notes_frame),
        *((s.name, [titles[s.name], INSTRUCTIONS], s.frame) for s in book.sheets),
    ):
        tables.append(_ods_table(name, [(_lines(preface), False), (table, True)]))
    content = (
        f'{_PROLOGUE}<office:document-content{_NAMESPACES} office:version="1.2"><office:automatic-styles/>'
        f"<office:body><office:spreadsheet>{''.join(tables)}</office:spreadsheet></office:body>"
        "</office:document-content>"
    )
    styles = (
        f'{_PROLOGUE}<office:document-styles{_NAMESPACES} office:version="1.2"><office:styles/>'
        "<office:automatic-styles></office:automatic-styles></office:document-styles>"
    )
    meta = (
        f'{_PROLOGUE}<office:document-meta{_NAMESPACES} office:version="1.2"><office:meta>'
        + _meta_element("dc:title", book.cover.title)
        + _meta_element("dc:subject", book.cover.subject)
        + _meta_element("dc:language", LANGUAGE)
        + f"<meta:generator>{ODF_GENERATOR}</meta:generator></office:meta></office:document-meta>"
    )
    entries = [("styles.xml", styles), ("content.xml", content), ("meta.xml", meta)]
    manifest = (
        f"{_PROLOGUE}<manifest:manifest{_NAMESPACES}>"
        f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{ODS_MIMETYPE}"/>'
        + "".join(
            f'<manifest:file-entry manifest:full-path="{name}" manifest:media-type="text/xml"/>' for name, _ in entries
        )
        + "</manifest:manifest>"
    )
    now = time.localtime()[:6]
    with zipfile.ZipFile(path, "w") as archive:
        for name, data, compression in (
            ("mimetype", ODS_MIMETYPE, zipfile.ZIP_STORED),
            *((name, data, zipfile.ZIP_DEFLATED) for name, data in entries),
            ("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED),
        ):
            info = zipfile.ZipInfo(name, now)
            info.compress_type = compression
            info.external_attr = _ZIP_PERMISSIONS
            archive.writestr(info, data.encode("utf-8"))
