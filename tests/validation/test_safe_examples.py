"""Issue 18 item 2: with swapped or mislabelled columns, the failing values of a code column are identifiers.
Marker identifiers in *every* column must reach no summary, exception, log line or GX artefact; a value is
quoted only when it is provably a code of one of the contract's closed lists."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pandas as pd
import pytest

from treatment_marts.contract import load_contract
from treatment_marts.core.safety import code_examples
from treatment_marts.core.settings import Settings
from treatment_marts.ops.synth import generate_extract
from treatment_marts.validation.gx_runner import ValidationFailed, validate_extract

PERIOD = "2024-03"
CONTRACT = load_contract()
# Planted marker identifiers: a client reference, initials, a postcode, a date of birth.
TEXT_MARKERS = ("CANARYREF01", "QZ0Q 0", "QX", "1931-02-28")
DOB_MARKER = pd.Timestamp("1931-02-28")
INT_MARKER = 19310228
NEEDLES = ("CANARYREF01", "QZ0Q 0", "'QX'", "1931-02-28", "19310228", "28/02/1931")


@pytest.fixture(scope="module")
def good() -> pd.DataFrame:
    return generate_extract(PERIOD, clients=600, areas=["Northton"], seed=18)


def with_markers_everywhere(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column of a few rows holds a marker of the column's type (as a careless export would)."""
    out = frame.copy()
    rows = out.index[: 4 * len(TEXT_MARKERS)]
    for col in CONTRACT.columns:
        if col.type == "date":
            out.loc[rows, col.name] = DOB_MARKER
        elif col.type == "integer":
            out.loc[rows, col.name] = INT_MARKER
        else:
            out.loc[rows, col.name] = [TEXT_MARKERS[i % len(TEXT_MARKERS)] for i in range(len(rows))]
    return out


def test_markers_in_every_column_reach_no_summary_log_exception_or_gx_artefact(
    good: pd.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.from_env(data_root=tmp_path)
    with caplog.at_level(logging.DEBUG):
        report = validate_extract(
            with_markers_everywhere(good), period=PERIOD, settings=settings, run_id="leak", source="leak.csv"
        )
    assert not report.success
    texts = {"summary": report.summary_text(), "log": caplog.text}
    with pytest.raises(ValidationFailed) as err:
        report.raise_for_blocking()
    texts["exception"] = str(err.value)
    for path in settings.gx_dir.rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_bytes().decode("utf-8", "ignore")
    assert len(texts) > 6
    for where, text in texts.items():
        for needle in NEEDLES:
            assert needle not in text, f"{needle!r} leaked into {where}"
    assert "sex uses the contract's code list" in texts["summary"]  # the failures are still reported
    for folder in (settings.restricted_dir, settings.gx_dir):  # a fresh data root: private from creation
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_swapped_code_columns_still_show_the_codes_that_reveal_the_swap(good: pd.DataFrame, tmp_path: Path) -> None:
    settings = Settings.from_env(data_root=tmp_path)
    swapped = good.rename(columns={"religion": "referral_source", "referral_source": "religion"})
    report = validate_extract(swapped, period=PERIOD, settings=settings, run_id="swap", source="swap.csv")
    text = report.summary_text()
    assert "religion uses the contract's code list" in text
    religion_line = next(line for line in text.splitlines() if "religion uses" in line)
    assert "(e.g. '" in religion_line  # referral codes such as 'SELF' or 'GP' under religion


@pytest.mark.parametrize(
    ("values", "shown"),
    [
        (["CHRISTIAN", "SELF", "1000"], ["'CHRISTIAN'", "'SELF'", "'1000'"]),
        (["CANARYREF01", "QZ0Q 0", "1931-02-28", "QX", "Q"], []),  # not codes of any list: withheld
        (["M", "F", "A"], []),  # one character: could be an initial
        (["SELF", "SELF", "GP", "PRISON", "HOSP"], ["'SELF'", "'GP'", "'PRISON'"]),  # distinct, at most three
    ],
)
def test_only_closed_list_codes_are_quoted(values: list[str], shown: list[str]) -> None:
    assert code_examples(values) == shown
