"""Fuzzing the readers (hypothesis): whatever the bytes, ``read_extract`` returns a typed frame or raises
``ExtractError``: never another exception, never a hang. Examples are bounded so the file runs in well under
a minute; ``derandomize`` keeps CI reproducible (a failure prints the shrunk input)."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_land import minimal_frame

from treatment_marts.contract import load_contract
from treatment_marts.ingest.land import ExtractError, read_extract

CONTRACT = load_contract()
FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PER_EXAMPLE_S = 10.0  # generous for a loaded 2-core machine; a hang would blow far past it

pytestmark = pytest.mark.timeout(240)


def _valid_bytes(suffix: str) -> bytes:
    frame = minimal_frame(3)
    buffer = io.BytesIO()
    if suffix == ".csv":
        return frame.to_csv(index=False).encode()
    if suffix == ".xlsx":
        frame.to_excel(buffer, index=False)
    else:
        frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


VALID = {suffix: _valid_bytes(suffix) for suffix in (".csv", ".xlsx", ".parquet")}


def check_reader(tmp_path: Path, suffix: str, data: bytes) -> None:
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    started = time.perf_counter()
    try:
        frame = read_extract(path, CONTRACT)
    except ExtractError as exc:
        assert str(exc), "an ExtractError must say what is wrong"
    else:
        assert list(frame.columns) == CONTRACT.column_names and len(frame) > 0
        for column in CONTRACT.columns:
            dtype = frame[column.name].dtype
            expected = {"date": "datetime64[ms]", "integer": "Int64"}.get(column.type, "string")
            assert str(dtype) == expected or (expected == "string" and isinstance(dtype, pd.StringDtype)), (
                column.name,
                dtype,
            )
    assert time.perf_counter() - started < PER_EXAMPLE_S


mutation = st.tuples(
    st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]),
    st.floats(0, 1),
    st.binary(min_size=1, max_size=8),
)


def mutate(data: bytes, mutations: list[tuple[str, float, bytes]]) -> bytes:
    out = bytearray(data)
    for op, where, payload in mutations:
        at = min(int(where * len(out)), max(len(out) - 1, 0))
        if op == "flip" and out:
            out[at] ^= payload[0] or 1
        elif op == "insert":
            out[at:at] = payload
        elif op == "delete":
            del out[at : at + len(payload)]
        elif op == "truncate":
            del out[at:]
        elif op == "duplicate":
            out[at:at] = out[max(at - 64, 0) : at] * (1 + payload[0] % 4)
    return bytes(out)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".parquet"])
def test_random_bytes(tmp_path: Path, suffix: str) -> None:
    @FUZZ
    @given(st.binary(max_size=4096))
    def run(data: bytes) -> None:
        check_reader(tmp_path, suffix, data)

    run()


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".parquet"])
def test_mutated_valid_files(tmp_path: Path, suffix: str) -> None:
    @FUZZ
    @given(st.lists(mutation, min_size=1, max_size=6))
    def run(mutations: list[tuple[str, float, bytes]]) -> None:
        check_reader(tmp_path, suffix, mutate(VALID[suffix], mutations))

    run()


csv_cell = st.one_of(
    st.text(max_size=12),
    st.sampled_from(['"', '""', '"a,b"', "\r", "\n", "\r\n", ",", "=1+1", "-", "\x00", "\ufeff", "NaN", "1e999", "-0"]),
)


def test_structured_csv_rows(tmp_path: Path) -> None:
    """Valid header, then rows of hostile cells (quotes, line breaks, NUL, BOMs, formulas, wrong widths)."""
    header = ",".join(CONTRACT.column_names)

    @settings(FUZZ, max_examples=20)
    @given(st.lists(st.lists(csv_cell, min_size=0, max_size=len(CONTRACT.column_names) + 2), min_size=1, max_size=4))
    def run(rows: list[list[str]]) -> None:
        text = header + "\n" + "\n".join(",".join(row) for row in rows) + "\n"
        check_reader(tmp_path, ".csv", text.encode("utf-8", "surrogatepass"))

    run()


def test_mutated_sheet_xml_inside_a_valid_zip(tmp_path: Path) -> None:
    """Past the zip checks, into openpyxl: a well-formed archive whose sheet XML is mutated."""
    with zipfile.ZipFile(io.BytesIO(VALID[".xlsx"])) as archive:
        parts = {info.filename: archive.read(info.filename) for info in archive.infolist()}

    xml_token = st.sampled_from(
        [
            b"<",
            b">",
            b"&",
            b"&amp",
            b"</c>",
            b"<c r='A9' t='n'><v>x</v></c>",
            b"<!DOCTYPE x>",
            b"\xff\xfe",
            b'"',
            b"<row r='0'>",
            b't="s"',
        ]
    )
    xml_mutation = st.tuples(
        st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]),
        st.floats(0, 1),
        st.one_of(st.binary(min_size=1, max_size=8), xml_token),
    )
    members = ["xl/worksheets/sheet1.xml"] * 4 + sorted(parts)

    @settings(FUZZ, max_examples=30)
    @given(st.sampled_from(members), st.lists(xml_mutation, min_size=1, max_size=4))
    def run(member: str, mutations: list[tuple[str, float, bytes]]) -> None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in parts.items():
                archive.writestr(name, mutate(data, mutations) if name == member else data)
        check_reader(tmp_path, ".xlsx", buffer.getvalue())

    run()
