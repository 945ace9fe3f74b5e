"""The suite and the extract spec are generated from the contract; they fail here when they drift apart."""

from __future__ import annotations

import json

from treatment_marts.contract import load_contract
from treatment_marts.contract.generate import artefacts, main
from treatment_marts.contract.suite import build_suite


def test_committed_suite_and_spec_are_current() -> None:
    for path, text in artefacts().items():
        assert path.read_text() == text, f"{path.name} is stale: run `python -m treatment_marts.contract.generate`"
    assert main(["--check"]) == 0


def test_every_column_is_checked_and_code_lists_match() -> None:
    contract = load_contract()
    suite = build_suite(contract)
    columns = {e["kwargs"].get("column") for e in suite["expectations"]}
    assert set(contract.column_names) <= columns
    sets = {
        e["kwargs"]["column"]: e["kwargs"]["value_set"]
        for e in suite["expectations"]
        if e["type"] == "expect_column_values_to_be_in_set" and isinstance(e["kwargs"]["value_set"], list)
    }
    for col in contract.columns:
        if col.allowed_values is not None:
            assert sets[col.name] == col.allowed_values
    assert all(e["meta"]["severity"] in {"blocking", "warning"} for e in suite["expectations"])


def test_suite_json_is_what_gx_reads() -> None:
    from treatment_marts.core.settings import REPO_DIR

    spec = json.loads((REPO_DIR / "expectations" / "ndtms_adult_monthly_extract.json").read_text())
    assert spec["name"] == "ndtms_adult_monthly_extract" and len(spec["expectations"]) > 90
