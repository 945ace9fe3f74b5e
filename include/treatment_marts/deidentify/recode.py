"""Recode a typed extract into the non-identifying analysis frame that marts are built from.

This is where identifiers stop: date of birth becomes an age band, the attributor becomes a keyed
pseudonym, postcode and initials are dropped. Every grouping comes from rules.yaml, so information
governance can review the collapses without reading code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from treatment_marts.contract import load_contract
from treatment_marts.core.config import AgeBandScheme, AreasConfig, RulesConfig
from treatment_marts.deidentify.pseudonymise import pseudonymise

# Non-identifying extract columns carried through unchanged for marts and derived measures.
CARRIED_COLUMNS = (
    "period",
    "agency_code",
    "episode_id",
    "referral_date",
    "triage_date",
    "discharge_date",
    "discharge_reason",
    "injecting_status",
    "employment_status",
    "parental_status",
    "intervention",
    "setting",
    "previously_treated",
    "mental_health_need",
)


class RecodeError(ValueError):
    """The extract is valid against the contract but cannot be recoded with the configured rules."""


@dataclass(frozen=True)
class RecodeResult:
    frame: pd.DataFrame
    episodes_in: int
    excluded_no_consent: int


def age_in_years(born: pd.Series, on: pd.Series) -> pd.Series:
    """Completed years between two date columns (vectorised; null where either is null)."""
    years = on.dt.year - born.dt.year
    before_birthday = (on.dt.month < born.dt.month) | ((on.dt.month == born.dt.month) & (on.dt.day < born.dt.day))
    return (years - before_birthday.astype("Int64")).astype("Int64")


def age_band(age: pd.Series, scheme: AgeBandScheme) -> pd.Series:
    """Label each age with its band; ages below the first band are left null (not adults)."""
    edges = [lo for lo, _ in scheme.bands] + [scheme.top_code, np.inf]
    bands = pd.cut(age.astype("float"), bins=edges, right=False, labels=scheme.labels)
    return bands.astype("string")


def collapse(series: pd.Series, mapping: dict[str, str], missing: str) -> pd.Series:
    """Map codes to their group (``missing`` for blanks and unmapped codes). Maps each distinct code once
    and takes the result by position: a per-row dict lookup on Arrow strings cost ~0.2 s a column."""
    codes, distinct = pd.factorize(series)
    labels = pd.array([mapping.get(value) for value in distinct], dtype="string")
    mapped = labels.take(codes, allow_fill=True) if len(labels) else pd.array([pd.NA] * len(series), dtype="string")
    return pd.Series(mapped, index=series.index, name=series.name).fillna(missing)


def substance_group(frame: pd.DataFrame, rules: RulesConfig) -> pd.Series:
    """The NDTMS ViewIt hierarchy over drug_1..3, with seed 000's crack split (rules.yaml `substances`)."""
    s = rules.substances
    drugs = frame[["drug_1", "drug_2", "drug_3"]]
    cited = drugs.notna() & ~drugs.isin(s.no_drug_codes)
    opiate = (drugs.isin(s.opiate_codes) & cited).any(axis=1)
    crack = (drugs.isin(s.crack_codes) & cited).any(axis=1)
    alcohol = (drugs.isin(s.alcohol_codes) & cited).any(axis=1)
    other_drug = (cited & ~drugs.isin(s.opiate_codes + s.crack_codes + s.alcohol_codes)).any(axis=1)
    group = np.select(
        [opiate & crack, opiate, crack, other_drug & alcohol, other_drug, alcohol],
        [
            "opiate_and_crack",
            "opiate_not_crack",
            "crack_not_opiate",
            "non_opiate_and_alcohol",
            "non_opiate_only",
            "alcohol_only",
        ],
        default="",
    )
    return pd.Series(group, index=frame.index, dtype="string").replace("", pd.NA)


def time_in_treatment_band(start: pd.Series, end: pd.Series, rules: RulesConfig) -> pd.Series:
    """Band of (discharge - triage) for discharged episodes; null while the episode is open."""
    months = (end - start).dt.days / 30.4375
    labels = list(rules.time_in_treatment.bands)
    edges = [*rules.time_in_treatment.bands.values(), np.inf]
    return pd.cut(months, bins=edges, right=False, labels=labels).astype("string")


def _nationality(series: pd.Series, rules: RulesConfig) -> pd.Series:
    rule = rules.nationality
    labels = np.where(
        series.isin(rule.british),
        rule.labels["british"],
        np.where(series.isna() | series.isin(rule.unknown), rule.labels["unknown"], rule.labels["other"]),
    )
    return pd.Series(labels, index=series.index, dtype="string")


def _columns_read(rules: RulesConfig) -> list[str]:
    """The extract columns recode reads, in a stable order (carried, attributor, rules' sources)."""
    wanted = [
        *CARRIED_COLUMNS,
        "first_initial",
        "surname_initial",
        "date_of_birth",
        "sex",
        "la_code",
        "nationality",
        "drug_1",
        "drug_2",
        "drug_3",
        "disability_1",
        "disability_2",
        "disability_3",
        *(rule.source for rule in rules.collapses.values()),
    ]
    return list(dict.fromkeys(wanted))


def recode(frame: pd.DataFrame, rules: RulesConfig, areas: AreasConfig, *, pseudonym_key: str) -> RecodeResult:
    """Typed extract -> analysis frame (one row per consented episode, no identifying column)."""
    # Only the columns read below are copied (a national month is ~1M rows x ~70 columns): filtering the
    # whole extract would hold a second copy of every column, identifiers included, for no use.
    consented = frame.loc[frame["consent"] == "Y", _columns_read(rules)].reset_index(drop=True)
    area_by_code = areas.by_code()
    unknown_codes = sorted(set(consented["la_code"].dropna().unique()) - set(area_by_code))
    if unknown_codes:
        raise RecodeError(
            f"la_code value(s) {unknown_codes} are not configured areas; add them to include/config/areas.yaml "
            "(code, name, location, region) or fix the extract"
        )
    out = pd.DataFrame({name: consented[name] for name in CARRIED_COLUMNS})
    # Attributor within area, as NDTMS counts "individuals": initials + DOB + sex, qualified by area.
    out["client_key"] = pseudonymise(
        [
            consented["first_initial"],
            consented["surname_initial"],
            consented["date_of_birth"].dt.strftime("%Y%m%d"),
            consented["sex"],
            consented["la_code"],
        ],
        pseudonym_key,
    )
    # The same attributor without the area: one person nationally (issue 18). A client open in two areas is
    # counted by each area that treats them and once in the national Total (marts/populations.py).
    out["person_key"] = pseudonymise(
        [
            consented["first_initial"],
            consented["surname_initial"],
            consented["date_of_birth"].dt.strftime("%Y%m%d"),
            consented["sex"],
        ],
        pseudonym_key,
    )
    out["area"] = consented["la_code"].map({c: a.name for c, a in area_by_code.items()}).astype("string")
    out["location"] = consented["la_code"].map({c: a.location for c, a in area_by_code.items()}).astype("string")
    out["region"] = consented["la_code"].map({c: a.region for c, a in area_by_code.items()}).astype("string")

    out["age"] = age_in_years(consented["date_of_birth"], consented["triage_date"])
    for name, scheme in rules.age_bands.schemes.items():
        column = "age_band" if name == rules.age_bands.default else f"age_band_{name}"
        out[column] = age_band(out["age"], scheme)

    for target, rule in rules.collapses.items():
        out[target] = collapse(consented[rule.source], rule.mapping, rule.missing)
    out["nationality_group"] = _nationality(consented["nationality"], rules)

    group_key = substance_group(consented, rules)
    out["substance_group_key"] = group_key
    out["substance_group"] = group_key.map(rules.substances.group_labels).astype("string")

    out["time_in_treatment"] = time_in_treatment_band(consented["triage_date"], consented["discharge_date"], rules)

    disabilities = consented[["disability_1", "disability_2", "disability_3"]]
    for flag, codes in rules.disability_flags.items():
        out[f"disability_{flag}"] = disabilities.isin(codes).any(axis=1)

    contract = load_contract()
    leaked = set(out.columns) & set(contract.identifying_columns)
    if leaked:  # a guard on this module's own output: identifiers must stop here
        raise RecodeError(f"identifying columns would leave recode: {sorted(leaked)}")
    return RecodeResult(frame=out, episodes_in=len(frame), excluded_no_consent=len(frame) - len(consented))
