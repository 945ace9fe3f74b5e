"""Reference check against seed 000 Table 1: a synthetic month built to the published counts, read back
through the published marts, must give the published percentages.

Why a calibration step: the generator draws a stationary, Poisson-noisy population whose in-month mix
drifts from the configured `substance_mix` (durations differ by group, clients re-present, 1% withhold
consent), so a raw generated month lands up to about 3.5 points away from Table 1 (measured: Northton opiate-not-crack 44% against 47%). A *reference dataset* keeps, from a
generated month, exactly the published number of clients per location and cohort (the verified
allocation of the domain notes §5.1); everything else about those clients (episodes, dates, attributes)
is the generator's. The check then runs the real pipeline over it and compares rounded percentages.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from treatment_marts.core.config import SUBSTANCE_GROUPS, AreasConfig, load_validated
from treatment_marts.marts.builder import TOTAL
from treatment_marts.marts.populations import select_population

REFERENCE_FILE = Path("reference") / "seed000_table1.yaml"


def round_half_up(value: float) -> int:
    """Round as the seed publishes (half up), not Python's banker's rounding."""
    return int(Decimal(str(value)).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


class ReferenceRow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    published_percent: list[int] = Field(min_length=1)
    counts: list[int] = Field(min_length=1)


class Table1Reference(BaseModel):
    """Seed 000 Table 1: published percentages by location and one integer allocation reproducing them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    source: str = Field(min_length=1)
    cohorts: list[str] = Field(min_length=1)
    rows: dict[str, ReferenceRow]

    @model_validator(mode="after")
    def _consistent(self) -> Table1Reference:
        unknown = sorted(set(self.cohorts) - set(SUBSTANCE_GROUPS))
        if unknown:
            raise ValueError(f"unknown cohorts {unknown}; expected some of {list(SUBSTANCE_GROUPS)}")
        for location, row in self.rows.items():
            if not (len(row.counts) == len(row.published_percent) == len(self.cohorts)):
                raise ValueError(f"row {location}: needs one count and one percentage per cohort")
            total = sum(row.counts)
            got = [round_half_up(100 * c / total) for c in row.counts]
            if got != row.published_percent:
                raise ValueError(
                    f"row {location}: counts {row.counts} round to {got}, not the published {row.published_percent}"
                )
        return self

    def targets(self) -> dict[tuple[str, str], int]:
        """(location, substance group key) -> number of clients the reference dataset holds."""
        return {
            (loc, group): n
            for loc, row in self.rows.items()
            for group, n in zip(self.cohorts, row.counts, strict=False)
        }


def load_table1(config_dir: Path) -> Table1Reference:
    return load_validated(Table1Reference, config_dir / REFERENCE_FILE)


class ReferenceBuildError(ValueError):
    """The generated month has too few clients in a cell to draw the reference dataset from."""


def calibrate_extract(
    extract: pd.DataFrame, recoded: pd.DataFrame, period: str, reference: Table1Reference
) -> pd.DataFrame:
    """Rows of ``extract`` whose clients make the in-treatment population match ``reference`` exactly.

    ``recoded`` is ``recode(extract).frame`` (same pseudonym key the pipeline will use). Per (location,
    cohort) the first N clients by pseudonymous key are kept (deterministic, unrelated to any attribute);
    clients outside the four cohorts are all kept, so the check also proves they leave the denominator.
    Every episode of a kept client is kept, so the pipeline picks the same latest episode again; people
    in treatment in two areas are left out (issue 18: they count once nationally).
    """
    clients = select_population(recoded, "in_treatment", period)
    if "person_key" in clients.columns:
        # A person in treatment in two areas counts in both areas and once nationally, so "Other" (national
        # minus named sites) would not count them where the allocation does: the reference keeps only
        # people of one area, for whom every definition agrees.
        areas_of = clients.groupby("person_key", observed=True)["area"].transform("nunique")
        clients = clients[(areas_of == 1).to_numpy()]
    keep: list[pd.Series] = [clients.loc[~clients["substance_group_key"].isin(reference.cohorts), "client_key"]]
    for (location, group), wanted in reference.targets().items():
        pool = clients[(clients["location"] == location) & (clients["substance_group_key"] == group)]
        if len(pool) < wanted:
            raise ReferenceBuildError(
                f"{location} / {group}: the generated month has {len(pool)} clients, the reference needs {wanted}; "
                "generate a larger month (clients=...)"
            )
        keep.append(pool["client_key"].sort_values(kind="stable").iloc[:wanted])
    chosen = set(pd.concat(keep).astype(str))
    episodes = recoded.loc[recoded["client_key"].astype(str).isin(chosen), ["agency_code", "episode_id"]]
    wanted_rows = pd.MultiIndex.from_frame(episodes.astype(str))
    rows = pd.MultiIndex.from_frame(extract[["agency_code", "episode_id"]].astype(str))
    return extract[rows.isin(wanted_rows) & (extract["consent"] == "Y").fillna(False).to_numpy()].reset_index(drop=True)


def table1_from_mart(
    mart: pd.DataFrame, areas: AreasConfig, reference: Table1Reference, labels: dict[str, str]
) -> pd.DataFrame:
    """Table 1 from a *published* area x substance group (x sex) mart: counts and percentages by location.

    Named sites are their area's row; "Other" is the national Total minus the named sites (the seed's
    complement), which uses only large published margins, never a suppressed small area. The national
    Total counts a client in two areas once (issue 18), so "Other" is the clients counted nationally and
    not at a named site, as in marts/location.py. A location with a suppressed count needed here comes out
    as null rather than a guess.
    """
    rows = mart
    for dim in [
        c for c in mart.columns if c not in {"period", "area", "substance_group", "count", "status", "percent"}
    ]:
        rows = rows[rows[dim] == TOTAL]
    counts = rows.set_index(["area", "substance_group"])["count"]
    named = {a.location for a in areas.areas if a.location != "Other"}
    out = []
    for location in reference.rows:
        values = []
        for group in reference.cohorts:
            label = labels[group]
            if location in named:
                sites = [a.name for a in areas.areas if a.location == location]
                parts = [counts.get((s, label)) for s in sites]
            else:
                others = [a.name for a in areas.areas if a.location in named]
                total = counts.get((TOTAL, label))
                parts = [total] + [
                    -counts.get((s, label)) if pd.notna(counts.get((s, label))) else pd.NA for s in others
                ]
            values.append(pd.NA if any(pd.isna(p) for p in parts) else int(sum(parts)))
        base = sum(values) if not any(pd.isna(v) for v in values) else pd.NA
        for group, value in zip(reference.cohorts, values, strict=False):
            percent = pd.NA if pd.isna(value) or pd.isna(base) or base == 0 else 100 * value / base
            out.append({"location": location, "cohort": group, "count": value, "base": base, "percent": percent})
    return pd.DataFrame(out)
