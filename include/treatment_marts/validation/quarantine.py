"""Quarantine: set aside the rows that break blocking row-level rules instead of failing the whole extract.

Why: one provider's typo in a handful of records should not hold back a month for every analyst, but a
systematically broken export must still stop the run. So quarantine is opt-in (validation.yaml) and bounded
by a ceiling: above it the batch fails as a whole. Table-level rules (columns, row count) never quarantine.

Which rows are set aside comes from the plain-pandas evaluator of the same committed suite
(plain_checks.py), because the PII-safe GX run deliberately keeps no row indices; a test keeps the two
evaluators' counts equal. The quarantined rows hold identifiers, so they are written owner-only to the
quarantine zone, with the rule(s) each row broke, and never echoed in logs or messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from treatment_marts.core.files import make_private_dirs, private_top, write_private
from treatment_marts.validation.plain_checks import ROW_LEVEL, PlainResult, failing_rows


class QuarantineRules(BaseModel):
    """`quarantine:` of validation.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: StrictBool = False  # strict: `enabled: "false"` or `1` is a mistake, not a switch
    # More than this share of an extract's rows quarantined fails the run: a systematic fault, not a typo.
    max_share: float = Field(default=0.02, ge=0, le=1, strict=True)


class QuarantineCeilingExceeded(Exception):
    """Too many rows break row-level rules for quarantine to be the right answer; nothing goes on."""


@dataclass
class QuarantineOutcome:
    source: str
    rows_in: int
    rows_quarantined: int
    by_rule: dict[str, int] = field(default_factory=dict)
    path: Path | None = None

    @property
    def share(self) -> float:
        return self.rows_quarantined / self.rows_in if self.rows_in else 0.0

    def summary_text(self) -> str:
        if not self.rows_quarantined:
            return f"quarantine of {self.source}: no rows set aside"
        rules = "; ".join(
            f"{rule}: {count}" for rule, count in sorted(self.by_rule.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        return (
            f"quarantine of {self.source}: {self.rows_quarantined} of {self.rows_in} rows ({self.share:.2%}) set aside "
            f"for breaking blocking row-level rules ({rules})"
        )

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "rows_in": self.rows_in,
            "rows_quarantined": self.rows_quarantined,
            "share": round(self.share, 6),
            "by_rule": self.by_rule,
            "path": str(self.path) if self.path else None,
        }


def split(
    frame: pd.DataFrame, results: list[PlainResult], *, source: str, rules: QuarantineRules
) -> tuple[pd.DataFrame, pd.DataFrame, QuarantineOutcome]:
    """(accepted rows, quarantined rows with a ``failed_rules`` column, outcome); raise above the ceiling."""
    bad = failing_rows(results, severity="blocking")
    by_rule = {
        r.rule: int(r.unexpected_count or 0)
        for r in results
        if r.severity == "blocking" and r.type in ROW_LEVEL and not r.success
    }
    outcome = QuarantineOutcome(source=source, rows_in=len(frame), rows_quarantined=len(bad), by_rule=by_rule)
    if outcome.rows_quarantined and outcome.share > rules.max_share:
        raise QuarantineCeilingExceeded(
            f"{outcome.summary_text().replace(' set aside', ' would be set aside')}: above the quarantine ceiling of "
            f"{rules.max_share:.2%} (validation.yaml quarantine.max_share), so the whole extract is refused; "
            "fix the export at source and resend it"
        )
    quarantined = frame.loc[bad.index].assign(failed_rules=bad["failed_rules"])
    accepted = frame.drop(index=bad.index)
    return accepted, quarantined, outcome


def write_quarantine(quarantined: pd.DataFrame, directory: Path, source: str) -> Path:
    """Owner-only Parquet of the set-aside rows (they hold identifiers) in the quarantine zone."""
    import io

    make_private_dirs(directory, top=private_top(directory))  # owner-only from the quarantine zone down
    path = directory / f"{Path(source).stem}.quarantined.parquet"
    buffer = io.BytesIO()
    quarantined.reset_index(drop=True).to_parquet(buffer, index=False)
    write_private(path, buffer.getvalue())
    return path
