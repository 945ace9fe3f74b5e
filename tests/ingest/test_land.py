"""Reading, typing and landing extracts: every bad input gets a message that names the problem, and the raw file is kept."""

from __future__ import annotations

import stat
from pathlib import Path

import pandas as pd
import pytest

from treatment_marts.contract import load_contract
from treatment_marts.core.settings import Settings
from treatment_marts.ingest.land import ExtractError, land_extract, read_extract, read_landed

CONTRACT = load_contract()
SAMPLE_STRINGS = {
    "period": "2024-03",
    "agency_code": "N0852",
    "client_ref": "CLIENTREF1",
    "episode_id": "EP-1",
    "first_initial": "Q",
    "surname_initial": "X",
    "partial_postcode": "EX1 4",
    "dat_code": "A12B",
    "la_code": "E08900001",
    "nationality": "GBR",
}


def minimal_frame(rows: int = 3) -> pd.DataFrame:
    """A small frame whose every value is type-valid for the contract (content rules are GX's job)."""
    data: dict[str, list[object]] = {}
    for col in CONTRACT.columns:
        if col.type == "string":
            value: object = SAMPLE_STRINGS[col.name]
        elif col.type == "code":
            value = next(iter(col.codes or {}))
        elif col.type == "flag":
            value = "Y"
        elif col.type == "date":
            value = "1980-05-17" if col.name == "date_of_birth" else "2024-03-01"
        else:
            value = str(col.min or 0)
        data[col.name] = [value] * rows
    frame = pd.DataFrame(data)
    frame["episode_id"] = [f"EP-{i}" for i in range(rows)]
    return frame


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env(data_root=tmp_path / "data")


def write_csv(frame: pd.DataFrame, path: Path, **kwargs: object) -> Path:
    frame.to_csv(path, index=False, **kwargs)
    return path


def test_csv_is_typed_against_the_contract(tmp_path: Path) -> None:
    typed = read_extract(write_csv(minimal_frame(), tmp_path / "extract.csv"))
    assert list(typed.columns) == CONTRACT.column_names
    assert str(typed["date_of_birth"].dtype) == "datetime64[ms]"
    assert str(typed["children_living_with"].dtype) == "Int64"
    assert str(typed["sex"].dtype) == "string"
    assert typed.loc[0, "triage_date"] == pd.Timestamp("2024-03-01")


def test_xlsx_and_parquet_read_the_same_as_csv(tmp_path: Path) -> None:
    frame = minimal_frame()
    from_csv = read_extract(write_csv(frame, tmp_path / "e.csv"))
    frame.to_excel(tmp_path / "e.xlsx", index=False, sheet_name="extract")
    frame.to_parquet(tmp_path / "e.parquet", index=False)
    pd.testing.assert_frame_equal(read_extract(tmp_path / "e.xlsx"), from_csv)
    pd.testing.assert_frame_equal(read_extract(tmp_path / "e.parquet"), from_csv)


def test_natively_typed_parquet_reads_the_same_as_csv(tmp_path: Path) -> None:
    """Parquet with real integer and timestamp columns skips the text round trip, to the same typed frame."""
    frame = minimal_frame()
    from_csv = read_extract(write_csv(frame, tmp_path / "e.csv"))
    native = frame.copy()
    for col in CONTRACT.columns:
        if col.type == "integer":
            native[col.name] = native[col.name].astype("int64")
        elif col.type == "date":
            native[col.name] = pd.to_datetime(native[col.name]).astype("datetime64[us]")
    native.loc[1, "children_living_with"] = None  # a null in an integer column: pandas makes it float
    native.to_parquet(tmp_path / "native.parquet", index=False)
    expected = from_csv.copy()
    expected.loc[1, "children_living_with"] = pd.NA
    pd.testing.assert_frame_equal(read_extract(tmp_path / "native.parquet"), expected)


@pytest.mark.parametrize("value", ["0x10", "٣", "5.5", "two"])
def test_integer_text_is_parsed_as_plain_decimal_digits_only(tmp_path: Path, value: str) -> None:
    frame = minimal_frame()
    frame.loc[1, "children_living_with"] = value
    with pytest.raises(ExtractError, match="column children_living_with: 1 value"):
        read_extract(write_csv(frame, tmp_path / "e.csv"))


def test_integer_text_with_sign_spaces_or_a_zero_fraction_is_accepted(tmp_path: Path) -> None:
    frame = minimal_frame(rows=4)
    frame["children_living_with"] = ["-0", " 2 ", "+1", "3.0"]
    typed = read_extract(write_csv(frame, tmp_path / "e.csv"))
    assert typed["children_living_with"].tolist() == [0, 2, 1, 3]


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = write_csv(minimal_frame(), tmp_path / "bom.csv", encoding="utf-8-sig")
    assert len(read_extract(path)) == 3


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.csv", b"", "empty"),
        ("blank.csv", b"\n\n  \n", "empty"),
        ("semicolon.csv", b"period;agency_code\n2024-03;N0852\n", "semicolon-delimited"),
        ("cp1252.csv", "period,agency_code\n2024-03,Caf\u00e9\n".encode("cp1252"), "not UTF-8"),
        ("notes.txt", b"period\n", "unsupported file type"),
    ],
)
def test_unreadable_files_fail_clearly(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ExtractError, match=expected):
        read_extract(path)


def test_header_only_file(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text(",".join(CONTRACT.column_names) + "\n")
    with pytest.raises(ExtractError, match="header but no data rows"):
        read_extract(path)


def test_missing_and_unknown_columns_are_named(tmp_path: Path) -> None:
    frame = minimal_frame().drop(columns=["sex", "drug_1"]).assign(favourite_colour="blue")
    with pytest.raises(ExtractError) as err:
        read_extract(write_csv(frame, tmp_path / "cols.csv"))
    message = str(err.value)
    assert "missing column(s): sex, drug_1" in message
    assert "unknown column(s) not in the extract contract: favourite_colour" in message


def test_duplicated_columns_are_rejected(tmp_path: Path) -> None:
    frame = minimal_frame()
    header = ",".join(CONTRACT.column_names + ["sex"])
    lines = [header] + [",".join(map(str, row)) + ",M" for row in frame.itertuples(index=False)]
    path = tmp_path / "dupe.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ExtractError, match="duplicated column.*sex"):
        read_extract(path)


def test_mixed_date_formats_and_bad_integers_are_reported_by_column_and_row(tmp_path: Path) -> None:
    frame = minimal_frame(rows=4)
    frame.loc[1, "triage_date"] = "01/03/2024"
    frame.loc[3, "triage_date"] = "2024-3-1"
    frame.loc[2, "children_living_with"] = "two"
    with pytest.raises(ExtractError) as err:
        read_extract(write_csv(frame, tmp_path / "types.csv"))
    message = str(err.value)
    assert "2 column(s) do not match" in message
    assert "column triage_date: 2 value(s) are not ISO dates" in message and "rows 3, 5" in message
    assert "column children_living_with: 1 value(s) are not whole numbers (rows 4)" in message


def test_identifying_values_never_appear_in_errors(tmp_path: Path) -> None:
    frame = minimal_frame()
    frame.loc[0, "date_of_birth"] = "17/05/1980"
    with pytest.raises(ExtractError) as err:
        read_extract(write_csv(frame, tmp_path / "pii.csv"))
    message = str(err.value)
    assert "column date_of_birth" in message and "values withheld" in message
    assert "17/05/1980" not in message and "CLIENTREF1" not in message


def test_several_sheets_without_an_extract_sheet(tmp_path: Path) -> None:
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path) as writer:
        minimal_frame().to_excel(writer, sheet_name="March", index=False)
        minimal_frame().to_excel(writer, sheet_name="Notes", index=False)
    with pytest.raises(ExtractError, match="2 sheets and none is named 'extract'"):
        read_extract(path)


def test_truncated_csv_fails_clearly(tmp_path: Path) -> None:
    path = write_csv(minimal_frame(), tmp_path / "trunc.csv")
    text = path.read_text()
    path.write_text(text[: text.rindex("\n", 0, len(text) - 1)] + '\n2024-03,"N08')
    with pytest.raises(ExtractError, match="malformed or truncated|do not match|not"):
        read_extract(path)


def test_landing_keeps_an_immutable_raw_copy_and_is_idempotent(settings: Settings, tmp_path: Path) -> None:
    source = write_csv(minimal_frame(), tmp_path / "extract.csv")
    first = land_extract(settings, "2024-03", source, "run1")
    second = land_extract(settings, "2024-03", source, "run2")
    assert first.raw_path == second.raw_path and first.landed_path == second.landed_path
    raw = Path(first.raw_path)
    assert raw.read_bytes() == source.read_bytes()
    assert stat.S_IMODE(raw.stat().st_mode) == 0o400
    assert stat.S_IMODE(Path(first.landed_path).stat().st_mode) == 0o600
    assert Path(first.landed_path).is_relative_to(settings.restricted_dir)
    pd.testing.assert_frame_equal(read_landed(first.landed_path), read_extract(source))


def test_a_bad_file_is_still_kept_in_the_raw_zone(settings: Settings, tmp_path: Path) -> None:
    source = write_csv(minimal_frame().drop(columns=["sex"]), tmp_path / "bad.csv")
    with pytest.raises(ExtractError):
        land_extract(settings, "2024-03", source, "run1")
    kept = list((settings.raw_dir / "period=2024-03").glob("bad.*.csv"))
    assert len(kept) == 1 and kept[0].read_bytes() == source.read_bytes()


def test_period_must_be_well_formed(settings: Settings, tmp_path: Path) -> None:
    source = write_csv(minimal_frame(), tmp_path / "extract.csv")
    with pytest.raises(ExtractError, match="YYYY-MM"):
        land_extract(settings, "2024-13", source, "run1")
