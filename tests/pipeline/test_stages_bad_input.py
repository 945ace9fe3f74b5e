"""The bad-input catalogue, end to end: each bad month fails with a message naming the problem, the raw
file is kept, and no public output or public warehouse table changes (the previous release stays)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from treatment_marts.contract import load_contract
from treatment_marts.core.settings import Settings
from treatment_marts.ops.synth import generate_extract, write_extract
from treatment_marts.pipeline.run import run_period

PERIOD = "2024-03"
CONTRACT = load_contract()


@pytest.fixture(scope="module")
def good() -> pd.DataFrame:
    return generate_extract(PERIOD, clients=1200, areas=["Exborough", "Northton", "Little Haven"], seed=11)


@pytest.fixture(scope="module")
def released(good: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings.from_env(data_root=tmp_path_factory.mktemp("data"))
    run_period(
        settings, PERIOD, write_extract(good, tmp_path_factory.mktemp("inbox") / "extract.csv"), run_id="good_run"
    )
    return settings


def _public_state(settings: Settings) -> dict[str, str]:
    """Digest of every public file and every public warehouse table (what analysts can see)."""
    from treatment_marts.publish.warehouse import read_table, table_names

    state = {
        str(p.relative_to(settings.public_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(settings.public_dir.rglob("*"))
        if p.is_file()
    }
    for table in sorted(table_names(settings.warehouse_url)):
        frame = read_table(settings.warehouse_url, table)
        state[f"warehouse:{table}"] = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
    return state


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    return write_extract(frame, path)


def _text(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _header_only(good: pd.DataFrame, path: Path) -> Path:
    return _text(path, ",".join(CONTRACT.column_names) + "\n")


def _semicolons(good: pd.DataFrame, path: Path) -> Path:
    return _text(path, _csv(good.head(50), path).read_text().replace(",", ";"))


def _cp1252(good: pd.DataFrame, path: Path) -> Path:
    text = _csv(good.head(50), path).read_text().replace("2024-03,", "2024-03,\u00e9", 1)
    return _text(path, text, "cp1252")


def _several_sheets(good: pd.DataFrame, path: Path) -> Path:
    path = path.with_suffix(".xlsx")
    with pd.ExcelWriter(path) as writer:
        good.head(20).to_excel(writer, sheet_name="March", index=False)
        good.head(20).to_excel(writer, sheet_name="April", index=False)
    return path


def _duplicated_column(good: pd.DataFrame, path: Path) -> Path:
    lines = _csv(good.head(50), path).read_text().splitlines()
    return _text(path, "\n".join([lines[0] + ",sex"] + [line + ",M" for line in lines[1:]]) + "\n")


def _truncated(good: pd.DataFrame, path: Path) -> Path:
    text = _csv(good, path).read_text()
    return _text(path, text[: text.rfind("\n", 0, len(text) // 2) + 10])  # cut ten characters into a row


def _mixed_dates(good: pd.DataFrame, path: Path) -> Path:
    text = _csv(good, path).read_text().splitlines()
    header = text[0].split(",")
    column = header.index("referral_date")
    for i in (5, 9, 40):
        cells = text[i].split(",")
        if cells[column]:
            year, month, day = cells[column].split("-")
            cells[column] = f"{day}/{month}/{year}"
        text[i] = ",".join(cells)
    return _text(path, "\n".join(text) + "\n")


def _frame(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[pd.DataFrame, Path], Path]:
    return lambda good, path: _csv(change(good.copy()), path)


def _duplicate_records(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame, frame.head(4)], ignore_index=True)


def _wrong_period(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(period="2024-02")


def _wrong_area(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[frame.index[:30], "la_code"] = "E06999999"
    return frame


def _wrong_types(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.astype({"children_living_with": "string"})
    frame.loc[frame.index[[3, 7]], "children_living_with"] = "two"
    return frame


CATALOGUE = {
    "empty file": (lambda good, path: _text(path, ""), ["empty"]),
    "header only": (_header_only, ["no data rows"]),
    "wrong delimiter": (_semicolons, ["semicolon"]),
    "cp1252 encoding": (_cp1252, ["not UTF-8"]),
    "xlsx with several sheets": (_several_sheets, ["2 sheets", "extract"]),
    "duplicated column": (_duplicated_column, ["duplicated column", "sex"]),
    "unknown extra column": (
        _frame(lambda f: f.assign(favourite_colour="blue")),
        ["unknown column", "favourite_colour"],
    ),
    "missing mandatory column": (_frame(lambda f: f.drop(columns=["drug_1"])), ["missing column", "drug_1"]),
    "wrong types": (_frame(_wrong_types), ["children_living_with", "2 value(s)", "whole numbers"]),
    "mixed date formats": (_mixed_dates, ["referral_date", "ISO dates"]),
    "duplicate records": (_frame(_duplicate_records), ["agency_code, episode_id", "8"]),
    "wrong period": (_frame(_wrong_period), ["period", "run's period"]),
    "wrong area": (_frame(_wrong_area), ["la_code"]),
    "truncated file": (_truncated, ["truncated"]),
}


@pytest.mark.parametrize("case", sorted(CATALOGUE))
def test_bad_input_fails_clearly_keeps_raw_and_changes_no_public_output(
    case: str, good: pd.DataFrame, released: Settings, tmp_path: Path
) -> None:
    from treatment_marts.cli import known_errors

    make, expected = CATALOGUE[case]
    path = make(good, tmp_path / f"bad_{case.replace(' ', '_')}.csv")
    before = _public_state(released)

    with pytest.raises(known_errors()) as err:
        run_period(released, PERIOD, path, run_id=f"bad_{case.replace(' ', '_')}")

    message = str(err.value)
    for needle in expected:
        assert needle in message, f"{case}: {needle!r} not in {message!r}"
    assert _public_state(released) == before, f"{case}: a public output changed"
    assert list((released.raw_dir / f"period={PERIOD}").glob(f"{path.stem}.*")), f"{case}: the raw file was not kept"
    identifiers = {str(v) for column in ("client_ref", "partial_postcode") for v in good[column].dropna().head(200)}
    assert not {v for v in identifiers if v in message}, f"{case}: an identifier is in the message"
