"""Careless input (issue 18 items 5, 7, 8): wrong numbers are never accepted, malformed files get a message that
names the file and the likely cause (never a value), a failed landing leaves nothing behind, and restricted
folders are private from creation."""

from __future__ import annotations

import os
import resource
import signal
import stat
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from test_land import CONTRACT, minimal_frame, write_csv

from treatment_marts.core.settings import Settings
from treatment_marts.ingest.land import ExtractError, land_extract, read_extract

PERIOD = "2024-03"
MARKERS = ("CANARYREF01", "QZ0Q 0", "1931-02-29", "1931-02-28")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env(data_root=tmp_path / "data")


def assert_no_marker(message: str) -> None:
    for marker in MARKERS:
        assert marker not in message, f"{marker!r} leaked into: {message}"


# --- item 5: wrong numbers accepted with exit 0 ------------------------------------------------------


def test_a_parquet_date_with_a_time_of_day_keeps_its_date(tmp_path: Path) -> None:
    """A discharge at 14:30 on the month's last day is still a discharge on that day (228 -> 218 otherwise)."""
    frame = minimal_frame()
    native = frame.copy()
    for col in CONTRACT.columns:
        if col.type == "date":
            native[col.name] = pd.to_datetime(native[col.name]).astype("datetime64[us]")
    native["discharge_date"] = pd.Series(
        [pd.Timestamp("2024-03-31 14:30"), pd.Timestamp("2024-03-31 23:59:59"), pd.Timestamp("2024-03-30")]
    ).astype("datetime64[us]")
    native.to_parquet(tmp_path / "times.parquet", index=False)
    typed = read_extract(tmp_path / "times.parquet")
    assert typed["discharge_date"].tolist() == [pd.Timestamp("2024-03-31")] * 2 + [pd.Timestamp("2024-03-30")]
    assert str(typed["discharge_date"].dtype) == "datetime64[ms]"


def test_timezone_aware_parquet_dates_are_refused_clearly(tmp_path: Path) -> None:
    frame = minimal_frame()
    frame["triage_date"] = pd.to_datetime(frame["triage_date"]).dt.tz_localize("Europe/London")
    frame.to_parquet(tmp_path / "tz.parquet", index=False)
    with pytest.raises(ExtractError, match=r"(?s)tz\.parquet: .*triage_date.*time zone") as err:
        read_extract(tmp_path / "tz.parquet")
    assert "Europe/London" in str(err.value) or "timezone" in str(err.value)


@pytest.mark.parametrize(
    ("column", "placeholder"),
    [
        (column, placeholder)
        for column in ("nationality", "sex", "consent", "religion")
        for placeholder in ("NULL", "N/A", "-", "null", "n/a", "NA", "#N/A", "None", "nan")
        if not (column == "religion" and placeholder == "None")  # NONE is a religion code: next test
    ],
)
def test_placeholder_text_in_a_coded_column_is_refused_not_counted_as_a_code(
    tmp_path: Path, placeholder: str, column: str
) -> None:
    """'NULL' in nationality was counted as 'Not British' with a warning only."""
    frame = minimal_frame(rows=4)
    frame.loc[[1, 3], column] = placeholder
    with pytest.raises(ExtractError) as err:
        read_extract(write_csv(frame, tmp_path / "nulls.csv"))
    message = str(err.value)
    assert f"column {column}: 2 value(s)" in message and "rows 3, 5" in message
    assert "placeholder" in message and "leave the cell empty" in message


def test_a_real_code_that_looks_like_a_placeholder_is_kept(tmp_path: Path) -> None:
    frame = minimal_frame()
    frame["religion"] = "NONE"  # a code of the religion list, not a missing value
    assert read_extract(write_csv(frame, tmp_path / "none.csv"))["religion"].tolist() == ["NONE"] * 3


@pytest.mark.parametrize("value", ["99999999999999999999", "9223372036854775808", "-99999999999999999999"])
def test_an_integer_too_large_for_64_bits_is_refused_not_wrapped(tmp_path: Path, value: str) -> None:
    frame = minimal_frame()
    frame.loc[1, "alcohol_units"] = value
    with pytest.raises(ExtractError, match="column alcohol_units: 1 value.*too large"):
        read_extract(write_csv(frame, tmp_path / "big.csv"))


@pytest.mark.parametrize("value", ["1e3", "1E3", "1.0e1", "inf", "nan", "1_000", "1,000", "0b1", "12."])
def test_an_integer_column_takes_digits_only(tmp_path: Path, value: str) -> None:
    frame = minimal_frame()
    frame.loc[1, "alcohol_units"] = value
    with pytest.raises(ExtractError, match="column alcohol_units: 1 value"):
        read_extract(write_csv(frame, tmp_path / "exp.csv"))


def test_xlsx_formulas_without_saved_values_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "formulas.xlsx"
    minimal_frame().to_excel(path, index=False)
    book = openpyxl.load_workbook(path)
    sheet = book.active
    column = CONTRACT.column_names.index("alcohol_units") + 1
    sheet.cell(row=2, column=column, value="=1+1")  # openpyxl saves no cached value, as a generator would
    book.save(path)
    with pytest.raises(ExtractError, match="formulas without saved values: open and save it in Excel, or export CSV"):
        read_extract(path)


# --- item 7: unclear messages on malformed files -----------------------------------------------------


def marked_frame(rows: int = 3) -> pd.DataFrame:
    frame = minimal_frame(rows)
    frame["client_ref"] = "CANARYREF01"
    frame["partial_postcode"] = "QZ0Q 0"
    frame["date_of_birth"] = "1931-02-28"
    return frame


def test_a_headerless_csv_says_the_first_row_is_data_without_printing_it(tmp_path: Path) -> None:
    path = tmp_path / "noheader.csv"
    marked_frame().to_csv(path, index=False, header=False)
    with pytest.raises(ExtractError, match=r"noheader\.csv: the first row is data, not a header") as err:
        read_extract(path)
    assert_no_marker(str(err.value))
    assert "2024-03" not in str(err.value) and "duplicated" not in str(err.value)


def test_a_header_row_with_a_few_unknown_names_still_names_them(tmp_path: Path) -> None:
    frame = minimal_frame().rename(columns={"sex": "gender"})
    with pytest.raises(ExtractError, match="missing column.*sex.*unknown column.*gender"):
        read_extract(write_csv(frame, tmp_path / "typo.csv"))


def test_trailing_empty_columns_are_ignored(tmp_path: Path) -> None:
    """Spreadsheet exports often end every line with empty cells: no data, nothing to refuse."""
    path = write_csv(minimal_frame(), tmp_path / "trailing.csv")
    path.write_text("".join(line + ",,\n" for line in path.read_text().splitlines()))
    typed = read_extract(path)
    assert list(typed.columns) == CONTRACT.column_names and len(typed) == 3


def test_an_unnamed_column_holding_data_is_named_by_position(tmp_path: Path) -> None:
    frame = marked_frame()
    frame[""] = "CANARYREF01"
    with pytest.raises(ExtractError, match=rf"column position {len(CONTRACT.columns) + 1} has no header name") as err:
        read_extract(write_csv(frame, tmp_path / "unnamed.csv"))
    assert_no_marker(str(err.value))
    assert "duplicated" not in str(err.value)


def test_an_xlsx_title_row_above_the_header_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "title.xlsx"
    marked_frame().to_excel(path, index=False, startrow=1)
    book = openpyxl.load_workbook(path)
    sheet = book.active
    sheet["A1"] = "Monthly treatment extract, March 2024"
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=10)
    book.save(path)
    with pytest.raises(ExtractError, match=r"title\.xlsx: the first row is not the header") as err:
        read_extract(path)
    message = str(err.value)
    assert "nan" not in message and "Monthly treatment extract" not in message and "title row" in message
    assert_no_marker(message)


def test_a_trailing_comma_on_data_rows_only_is_named_not_nine_type_errors(tmp_path: Path) -> None:
    path = write_csv(marked_frame(), tmp_path / "ragged.csv")
    header, *rows = path.read_text().splitlines()
    path.write_text("\n".join([header, *(row + "," for row in rows)]) + "\n")
    with pytest.raises(ExtractError) as err:
        read_extract(path)
    message = str(err.value)
    assert "ragged.csv: every data row has 1 field more than the header" in message
    assert "trailing comma" in message and "do not match the contract types" not in message
    assert_no_marker(message)


# --- item 7: failures at landing ---------------------------------------------------------------------


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_a_data_root_where_a_folder_cannot_be_created_is_an_extract_error(settings: Settings, tmp_path: Path) -> None:
    settings.data_root.mkdir(parents=True)
    settings.raw_dir.write_text("not a folder")  # raw/ cannot be created (as on a read-only mount)
    source = write_csv(marked_frame(), tmp_path / "extract.csv")
    with pytest.raises(ExtractError, match=r"extract\.csv: cannot write to .*raw") as err:
        land_extract(settings, PERIOD, source, "ro")
    assert "Errno" in str(err.value) or "Not a directory" in str(err.value)
    assert leftovers(settings.data_root) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_data_root_is_an_extract_error(settings: Settings, tmp_path: Path) -> None:
    settings.data_root.mkdir(parents=True)
    settings.data_root.chmod(0o500)
    source = write_csv(marked_frame(), tmp_path / "extract.csv")
    try:
        with pytest.raises(ExtractError, match=r"cannot write to"):
            land_extract(settings, PERIOD, source, "ro")
    finally:
        settings.data_root.chmod(0o700)


def _with_file_size_limit(limit: int, call):
    """Run ``call`` with writes beyond ``limit`` bytes failing (EFBIG), as a full disk fails a write."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        return call()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_full_disk_at_landing_leaves_no_partial_file_in_raw(settings: Settings, tmp_path: Path) -> None:
    source = write_csv(minimal_frame(rows=400), tmp_path / "extract.csv")
    assert source.stat().st_size > 8192
    settings.raw_dir.mkdir(parents=True)

    def land() -> None:
        with pytest.raises(ExtractError, match=r"extract\.csv: cannot write to .*raw.*disk full") as err:
            land_extract(settings, PERIOD, source, "full")
        assert_no_marker(str(err.value))

    _with_file_size_limit(4096, land)
    assert leftovers(settings.data_root) == []
    assert [p for p in settings.raw_dir.rglob("*") if p.is_file()] == []


def test_a_full_disk_writing_the_landed_parquet_leaves_no_temporary_file(settings: Settings, tmp_path: Path) -> None:
    source = write_csv(minimal_frame(rows=3), tmp_path / "extract.csv")
    from treatment_marts.ingest.land import land_raw

    land_raw(settings, PERIOD, source)  # the raw copy is in place; the typed Parquet is what fails

    def land() -> None:
        with pytest.raises(ExtractError, match=r"cannot write to .*landed"):
            land_extract(settings, PERIOD, source, "full")

    _with_file_size_limit(1024, land)
    assert leftovers(settings.data_root) == []


# --- item 8: restricted folders are private from creation --------------------------------------------


def test_a_failed_first_landing_leaves_every_restricted_folder_owner_only(settings: Settings, tmp_path: Path) -> None:
    """The first run on a fresh data root fails at typing: raw/ and restricted/ must not be left 0755."""
    frame = minimal_frame()
    frame.loc[1, "alcohol_units"] = "1e3"
    source = write_csv(frame, tmp_path / "bad.csv")
    with pytest.raises(ExtractError):
        land_extract(settings, PERIOD, source, "first")
    good = write_csv(minimal_frame(), tmp_path / "good.csv")
    land_extract(settings, PERIOD, good, "second")
    for top in (settings.raw_dir, settings.restricted_dir):
        folders = [top, *(p for p in top.rglob("*") if p.is_dir())]
        assert len(folders) >= 2
        for folder in folders:
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for path in settings.restricted_dir.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


# --- item 2 at landing: no identifier quoted as an "example" -----------------------------------------


def test_markers_in_every_column_reach_no_typing_message_or_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every column of some rows holds a marker identifier (a shifted or mislabelled export)."""
    frame = minimal_frame(rows=8)
    markers = ["CANARYREF01", "QZ0Q 0", "1931-02-28", "28/02/1931"]
    for name in CONTRACT.column_names:
        frame.loc[4:, name] = markers
    with caplog.at_level("DEBUG"), pytest.raises(ExtractError) as err:
        read_extract(write_csv(frame, tmp_path / "markers.csv"))
    for text in (str(err.value), caplog.text):
        for marker in (*markers, "QZ0Q"):
            assert marker not in text
    message = str(err.value)
    assert "column triage_date: 3 value(s) are not ISO dates" in message and "99/99/9999" in message
    assert "column alcohol_units: 4 value(s) are not whole numbers" in message and "[values not shown]" in message


def test_a_code_of_another_list_is_still_quoted(tmp_path: Path) -> None:
    frame = minimal_frame()
    frame.loc[1, "children_living_with"] = "CHRISTIAN"  # religion under an integer column: columns shifted
    with pytest.raises(ExtractError, match="column children_living_with: 1 value.*e.g. 'CHRISTIAN'"):
        read_extract(write_csv(frame, tmp_path / "shifted.csv"))


def test_a_parquet_unsigned_integer_beyond_64_bits_signed_is_refused(tmp_path: Path) -> None:
    import numpy as np

    frame = minimal_frame()
    frame["alcohol_units"] = np.array([1, 2, 2**64 - 1], dtype="uint64")
    frame.to_parquet(tmp_path / "u64.parquet", index=False)
    with pytest.raises(ExtractError, match="column alcohol_units: 1 value.*too large"):
        read_extract(tmp_path / "u64.parquet")


def test_a_csv_title_line_above_the_header_is_named_as_such(tmp_path: Path) -> None:
    path = write_csv(marked_frame(), tmp_path / "titled.csv")
    path.write_text("Monthly treatment extract March 2024\n" + path.read_text())
    with pytest.raises(ExtractError, match=r"titled\.csv: the first row is not the header.*title") as err:
        read_extract(path)
    assert "Monthly treatment" not in str(err.value)
    assert_no_marker(str(err.value))


def test_an_upper_case_header_is_a_header_with_a_case_hint_not_data(tmp_path: Path) -> None:
    frame = minimal_frame().rename(columns=str.upper)
    with pytest.raises(ExtractError) as err:
        read_extract(write_csv(frame, tmp_path / "upper.csv"))
    message = str(err.value)
    assert "first row is data" not in message
    assert "missing column(s)" in message and "names are case-sensitive" in message


def test_a_header_of_ndtms_mnemonics_is_named_as_such(tmp_path: Path) -> None:
    mnemonics = {c.name: c.ndtms for c in CONTRACT.columns if c.ndtms}
    frame = minimal_frame().rename(columns=mnemonics)
    with pytest.raises(ExtractError) as err:
        read_extract(write_csv(frame, tmp_path / "ndtms.csv"))
    message = str(err.value)
    assert "first row is data" not in message and "NDTMS mnemonics" in message


def test_a_header_of_other_names_is_not_called_data(tmp_path: Path) -> None:
    frame = minimal_frame()
    frame.columns = [f"field {i}" for i in range(len(frame.columns))]
    with pytest.raises(ExtractError, match="the first row is not a header of this contract") as err:
        read_extract(write_csv(frame, tmp_path / "other.csv"))
    assert "field 3" not in str(err.value)


def test_a_landed_file_whose_manifest_cannot_be_written_is_removed(settings: Settings, tmp_path: Path) -> None:
    source = write_csv(minimal_frame(rows=3), tmp_path / "extract.csv")
    first = land_extract(settings, PERIOD, source, "one")
    landed = Path(first.landed_path)
    manifest = landed.with_suffix(".manifest.json")
    manifest.unlink()
    manifest.mkdir()  # the manifest cannot be replaced: a folder is in its way
    with pytest.raises(ExtractError, match=r"cannot write to .*landed"):
        land_extract(settings, PERIOD, source, "two")
    assert not landed.exists(), "a typed file without its manifest must not stay in landed/"
    assert leftovers(settings.data_root) == []
