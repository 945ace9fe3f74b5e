"""Generate the Great Expectations suite (GX Core 1.x JSON) from the extract contract.

The generated JSON is committed under expectations/ and reviewed like code; validate.py runs the
committed file, and a test fails when it no longer matches what the contract generates.

Cross-field rules GX cannot express directly are checked on *derived columns* that validate.py adds to
the batch before validation (listed in DERIVED_COLUMNS); they hold booleans or an age, never identifiers.
"""

from __future__ import annotations

from typing import Any

from treatment_marts.contract.model import ExtractContract

EARLIEST_DATE = "2005-01-01T00:00:00"  # a datetime, not a date: GX compares it with datetime64 columns
EARLIEST_BIRTH = "1900-01-01T00:00:00"
DERIVED_COLUMNS = {
    "_age_at_triage": "completed years from date_of_birth to triage_date",
    "_discharge_consistent": "discharge_reason is present exactly when discharge_date is present",
    "_drugs_distinct": "drug_2 differs from drug_1 (and drug_3 from both) where cited",
    "_route_consistent": "route 1 (inject) only with injecting_status C or P",
}
BLOCKING = "blocking"
WARNING = "warning"


def _expectation(kind: str, kwargs: dict[str, Any], severity: str, rule: str) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs, "meta": {"severity": severity, "rule": rule}}


def build_suite(contract: ExtractContract) -> dict[str, Any]:
    """The suite as a JSON-able dict (name, expectations, meta)."""
    e: list[dict[str, Any]] = []
    e.append(
        _expectation(
            "expect_table_columns_to_match_set",
            {"column_set": contract.column_names + list(DERIVED_COLUMNS), "exact_match": True},
            BLOCKING,
            "the file has exactly the contract's columns",
        )
    )
    e.append(_expectation("expect_table_row_count_to_be_between", {"min_value": 1}, BLOCKING, "the file has data rows"))
    e.append(
        _expectation(
            "expect_compound_columns_to_be_unique",
            {"column_list": list(contract.record_key)},
            BLOCKING,
            f"one row per episode: ({', '.join(contract.record_key)}) is unique",
        )
    )
    e.append(
        _expectation(
            "expect_column_values_to_be_in_set",
            {"column": "period", "value_set": {"$PARAMETER": "period_values"}},
            BLOCKING,
            "every row is for the run's period",
        )
    )
    for col in contract.columns:
        severity = BLOCKING if col.required != "optional" or col.type in ("code", "flag", "date") else WARNING
        if col.required == "always":
            e.append(
                _expectation(
                    "expect_column_values_to_not_be_null",
                    {"column": col.name},
                    BLOCKING,
                    f"{col.name} is always present",
                )
            )
        elif col.required == "when_consented":
            e.append(
                _expectation(
                    "expect_column_values_to_not_be_null",
                    {"column": col.name, "row_condition": 'consent=="Y"', "condition_parser": "pandas"},
                    BLOCKING,
                    f"{col.name} is present when the client consented",
                )
            )
        if col.allowed_values is not None:
            e.append(
                _expectation(
                    "expect_column_values_to_be_in_set",
                    {"column": col.name, "value_set": col.allowed_values},
                    BLOCKING,
                    f"{col.name} uses the contract's code list",
                )
            )
        if col.pattern:
            e.append(
                _expectation(
                    "expect_column_values_to_match_regex",
                    {"column": col.name, "regex": col.pattern},
                    severity,
                    f"{col.name} matches {col.pattern}",
                )
            )
        if col.type == "integer":
            e.append(
                _expectation(
                    "expect_column_values_to_be_between",
                    {"column": col.name, "min_value": col.min, "max_value": col.max},
                    severity,
                    f"{col.name} is between {col.min} and {col.max}",
                )
            )
        if col.type == "date":
            earliest = EARLIEST_BIRTH if col.name == "date_of_birth" else EARLIEST_DATE
            e.append(
                _expectation(
                    "expect_column_values_to_be_between",
                    {"column": col.name, "min_value": earliest, "max_value": {"$PARAMETER": "period_end"}},
                    BLOCKING,
                    f"{col.name} is not before {earliest[:10]} and not after the end of the period",
                )
            )
    # Cross-field rules.
    for later, earlier in (
        ("triage_date", "referral_date"),
        ("discharge_date", "triage_date"),
        ("modality_start", "triage_date"),
        ("care_plan_date", "triage_date"),
    ):
        e.append(
            _expectation(
                "expect_column_pair_values_a_to_be_greater_than_b",
                {"column_A": later, "column_B": earlier, "or_equal": True, "ignore_row_if": "either_value_is_missing"},
                BLOCKING if later in ("triage_date", "discharge_date") else WARNING,
                f"{later} is on or after {earlier}",
            )
        )
    e.append(
        _expectation(
            "expect_column_values_to_be_between",
            {"column": "_age_at_triage", "min_value": 18, "max_value": 110},
            BLOCKING,
            "age at triage (from date_of_birth) is 18 to 110: an adult extract",
        )
    )
    for derived in ("_discharge_consistent", "_drugs_distinct", "_route_consistent"):
        e.append(
            _expectation(
                "expect_column_values_to_be_in_set",
                {"column": derived, "value_set": [True]},
                BLOCKING if derived != "_route_consistent" else WARNING,
                DERIVED_COLUMNS[derived],
            )
        )
    return {
        "name": contract.name,
        "expectations": e,
        "meta": {
            "generated_from": f"contract {contract.name} v{contract.version}",
            "regenerate_with": "python -m treatment_marts.contract.generate",
            "derived_columns": DERIVED_COLUMNS,
        },
    }
