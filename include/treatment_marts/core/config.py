"""Declarative configuration (areas, rules, marts) loaded from YAML and validated on load.

A new area, band scheme, threshold or mart is a YAML change; a mistake in it (an unmapped code, a band
gap, an unknown dimension) fails here with the file and the field named, before any data is touched.
"""

from __future__ import annotations

import hashlib
import logging
import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator, model_validator

from treatment_marts.contract import ExtractContract, load_contract

# Names that become SQL column names (dimensions): checked here on load, quoted by SQLAlchemy on use.
SQL_IDENTIFIER = r"^[a-z][a-z0-9_]{0,62}$"
# Area, location and region labels become published values and export file names: plain words only
# (no path separators, no leading formula character, no control characters).
PLACE_LABEL = r"^[A-Za-z][A-Za-z0-9 '&(),.]*(?:-[A-Za-z0-9 '&(),.]+)*$"

SUBSTANCE_GROUPS = (
    "opiate_not_crack",
    "opiate_and_crack",
    "crack_not_opiate",
    "non_opiate_only",
    "non_opiate_and_alcohol",
    "alcohol_only",
)


log = logging.getLogger(__name__)

# Numbers in configuration are strict: pydantic's lax mode reads `k: true` as 1, `k: "3"` as 3 and `3.0`
# as 3, so a careless edit would silently change a disclosure rule. An integer takes an integer only; a
# real number takes an integer or a float, never a bool or a string.
StrictNumber = Annotated[float, Field(strict=True)]
# Below this K a release needs an explicit, logged override in rules.yaml (disclosure.k_floor_override).
K_FLOOR = 3


class ConfigError(ValueError):
    """A configuration file is invalid; the message names the file and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- areas.yaml ---------------------------------------------------------------------------------------


class Area(_Strict):
    code: str = Field(pattern=r"^E(0[6-9]|10)\d{6}$")
    name: str = Field(pattern=PLACE_LABEL, max_length=64)
    location: str = Field(pattern=PLACE_LABEL, max_length=64)
    region: str = Field(pattern=PLACE_LABEL, max_length=64)
    clients: StrictInt = Field(gt=0)
    substance_mix: dict[str, StrictNumber]

    @field_validator("substance_mix")
    @classmethod
    def _mix_is_a_distribution(cls, mix: dict[str, float]) -> dict[str, float]:
        unknown = set(mix) - set(SUBSTANCE_GROUPS)
        if unknown:
            raise ValueError(f"unknown substance groups {sorted(unknown)}; expected {list(SUBSTANCE_GROUPS)}")
        if abs(sum(mix.values()) - 1.0) > 0.01:
            raise ValueError(f"substance_mix sums to {sum(mix.values()):.3f}, not 1")
        return mix


class AreasConfig(_Strict):
    areas: list[Area]

    @model_validator(mode="after")
    def _unique(self) -> AreasConfig:
        for attr in ("code", "name"):
            values = [getattr(a, attr) for a in self.areas]
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"duplicate area {attr}s: {dupes}")
        return self

    def by_code(self) -> dict[str, Area]:
        return {a.code: a for a in self.areas}

    def by_name(self, name: str) -> Area:
        for area in self.areas:
            if area.name == name:
                return area
        raise KeyError(f"unknown area {name!r}; known: {[a.name for a in self.areas]}")


# --- rules.yaml ---------------------------------------------------------------------------------------


class DisclosureRules(_Strict):
    k: StrictInt = Field(ge=1, le=20, description="counts 1..k are suppressed")
    k_floor_override: str | None = Field(
        default=None, description=f"why k may be below {K_FLOOR}; required for such a k, logged on load"
    )
    zeros: Literal["show", "suppress"]
    count_unit: Literal["clients"]
    suppressed_marker: str
    cleanup_audits: StrictInt = Field(
        default=20,
        ge=0,
        le=10_000,
        description="clean-up of redundant secondary suppressions: audits per set of linked tables (0: off)",
    )
    complements: Literal["greedy", "optimal"] = Field(
        default="greedy",
        description="complementary choice: greedy line by line, or start from the minimum-cost pattern of "
        "every small table (a HiGHS MIP, disclosure/optimal.py); the greedy repair, audit and clean-up follow",
    )

    @model_validator(mode="after")
    def _k_floor(self) -> DisclosureRules:
        if self.k_floor_override is not None and not self.k_floor_override.strip():
            raise ValueError("disclosure.k_floor_override must give the reason (who approved a lower k, and why)")
        if self.k < K_FLOOR and self.k_floor_override is None:
            raise ValueError(
                f"disclosure.k = {self.k} is below the floor of {K_FLOOR}: counts of {self.k + 1} to {K_FLOOR} "
                f'would be published. If that is intended, add disclosure.k_floor_override: "<reason>" '
                "(logged on every load)"
            )
        return self


class AgeBandScheme(_Strict):
    description: str
    bands: list[tuple[StrictInt, StrictInt]]
    top_code: StrictInt

    @model_validator(mode="after")
    def _contiguous(self) -> AgeBandScheme:
        previous_hi: int | None = None
        for lo, hi in self.bands:
            if lo > hi:
                raise ValueError(f"band {lo}-{hi} is empty")
            if previous_hi is not None and lo != previous_hi + 1:
                raise ValueError(f"bands are not contiguous at {lo} (previous band ends at {previous_hi})")
            previous_hi = hi
        if previous_hi is not None and self.top_code != previous_hi + 1:
            raise ValueError(f"top_code {self.top_code} does not follow the last band ({previous_hi})")
        return self

    @property
    def labels(self) -> list[str]:
        return [f"{lo}-{hi}" for lo, hi in self.bands] + [f"{self.top_code}+"]


class AgeBands(_Strict):
    default: str
    schemes: dict[str, AgeBandScheme]

    @model_validator(mode="after")
    def _default_exists(self) -> AgeBands:
        if self.default not in self.schemes:
            raise ValueError(f"default scheme {self.default!r} is not one of {sorted(self.schemes)}")
        return self


class Collapse(_Strict):
    source: str
    groups: dict[str, list[str]]
    missing: str

    @cached_property
    def mapping(self) -> dict[str, str]:
        """code -> group label."""
        return {code: label for label, codes in self.groups.items() for code in codes}


class NationalityRule(_Strict):
    british: list[str]
    unknown: list[str]
    labels: dict[Literal["british", "other", "unknown"], str]


class SubstanceRules(_Strict):
    opiate_codes: list[str]
    crack_codes: list[str]
    alcohol_codes: list[str]
    no_drug_codes: list[str]
    group_labels: dict[str, str]

    @field_validator("group_labels")
    @classmethod
    def _all_groups_labelled(cls, labels: dict[str, str]) -> dict[str, str]:
        if set(labels) != set(SUBSTANCE_GROUPS):
            raise ValueError(f"group_labels must name exactly {list(SUBSTANCE_GROUPS)}")
        return labels


class TimeInTreatment(_Strict):
    bands: dict[str, StrictNumber]

    @field_validator("bands")
    @classmethod
    def _ascending_from_zero(cls, bands: dict[str, float]) -> dict[str, float]:
        bounds = list(bands.values())
        if (
            not bounds
            or bounds[0] != 0
            or any(lower >= upper for lower, upper in zip(bounds, bounds[1:], strict=False))
        ):
            raise ValueError("time_in_treatment bands must start at 0 and increase strictly")
        return bands


# Columns of the recoded frame that single a person out or link records across releases: never part of a
# record-level product, whatever the configuration says (contract identifying columns are refused too).
NEVER_IN_RECORD_LEVEL = (
    "client_key",
    "person_key",
    "episode_id",
    "agency_code",
    "age",
    "referral_date",
    "triage_date",
    "discharge_date",
    "substance_group_key",
)
# Recoded columns that do not come from a rules.yaml section (recode.py derives them from areas.yaml etc.).
_FIXED_RECODED = ("area", "location", "region", "nationality_group", "substance_group", "time_in_treatment")


class RecordLevel(_Strict):
    """The optional record-level extract (treatment_marts.disclosure.record_level): K-anonymous by local suppression."""

    population: Literal["in_treatment", "new_presentations", "exits"]
    quasi_identifiers: list[str] = Field(min_length=1, description="most important first")
    carry: list[str] = Field(default_factory=list)
    suppressed_value: str = Field(min_length=1)
    max_suppressed_per_record: StrictInt | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> RecordLevel:
        for name, values in (("quasi_identifiers", self.quasi_identifiers), ("carry", self.carry)):
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:
                raise ValueError(f"record_level.{name} lists {twice} more than once")
        both = sorted(set(self.quasi_identifiers) & set(self.carry))
        if both:
            raise ValueError(f"record_level: {both} are both quasi-identifiers and carried; list each once")
        forbidden = sorted(set(self.columns) & set(NEVER_IN_RECORD_LEVEL))
        if forbidden:
            raise ValueError(
                f"record_level: {forbidden} identify or link a person and can never be in the record-level product"
            )
        if self.max_suppressed_per_record is not None and self.max_suppressed_per_record > len(self.quasi_identifiers):
            raise ValueError(
                f"record_level.max_suppressed_per_record ({self.max_suppressed_per_record}) exceeds the number of "
                f"quasi-identifiers ({len(self.quasi_identifiers)})"
            )
        return self

    @property
    def columns(self) -> list[str]:
        """The product's attribute columns, quasi-identifiers first."""
        return [*self.quasi_identifiers, *self.carry]


class RulesConfig(_Strict):
    disclosure: DisclosureRules
    age_bands: AgeBands
    collapses: dict[str, Collapse]
    nationality: NationalityRule
    substances: SubstanceRules
    disability_flags: dict[str, list[str]]
    time_in_treatment: TimeInTreatment
    record_level: RecordLevel | None = None

    @property
    def recoded_attributes(self) -> list[str]:
        """Non-identifying attribute columns recode.py derives from these rules (and areas.yaml)."""
        bands = [
            "age_band" if name == self.age_bands.default else f"age_band_{name}" for name in self.age_bands.schemes
        ]
        flags = [f"disability_{flag}" for flag in self.disability_flags]
        return [*_FIXED_RECODED, *bands, *self.collapses, *flags]

    @field_validator("collapses", "disability_flags")
    @classmethod
    def _names_are_identifiers(cls, mapping: dict) -> dict:
        bad = [name for name in mapping if not re.fullmatch(SQL_IDENTIFIER, name)]
        if bad:
            raise ValueError(
                f"{[name[:40] for name in bad]} cannot be column names: use lower_snake_case matching {SQL_IDENTIFIER}"
            )
        return mapping

    def check_against(self, contract: ExtractContract) -> None:
        """Every collapse covers every code of its source column exactly once; the record-level product names
        only recoded, non-identifying attributes."""
        names = set(contract.column_names)
        for target, collapse in self.collapses.items():
            if collapse.source not in names:
                raise ValueError(f"collapse {target}: source column {collapse.source!r} is not in the contract")
            allowed = contract.column(collapse.source).allowed_values or []
            listed = [code for codes in collapse.groups.values() for code in codes]
            twice = sorted({c for c in listed if listed.count(c) > 1})
            unmapped = sorted(set(allowed) - set(listed))
            unknown = sorted(set(listed) - set(allowed))
            if twice or unmapped or unknown:
                raise ValueError(
                    f"collapse {target} (from {collapse.source}): "
                    f"codes mapped twice {twice}, unmapped {unmapped}, not in contract {unknown}"
                )
        disability_codes = set(contract.column("disability_1").allowed_values or [])
        for flag, codes in self.disability_flags.items():
            unknown = sorted(set(codes) - disability_codes)
            if unknown:
                raise ValueError(f"disability_flags.{flag}: codes not in the contract's disability list {unknown}")
        drug_codes = set(contract.column("drug_1").allowed_values or [])
        s = self.substances
        for field_name in ("opiate_codes", "crack_codes", "alcohol_codes", "no_drug_codes"):
            unknown = sorted(set(getattr(s, field_name)) - drug_codes)
            if unknown:
                raise ValueError(f"substances.{field_name}: codes not in the contract's drug list {unknown}")
        if self.record_level is not None:
            columns = self.record_level.columns
            identifying = [c for c in columns if c in contract.identifying_columns]
            if identifying:
                raise ValueError(
                    f"record_level: {identifying} are identifying extract columns and can never be carried"
                )
            unknown = [c for c in columns if c not in self.recoded_attributes]
            if unknown:
                raise ValueError(
                    f"record_level: {unknown} are not recoded attributes; choose from {sorted(self.recoded_attributes)}"
                )


# --- loading ------------------------------------------------------------------------------------------


def _load_yaml(path: Path) -> object:
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc


Model = TypeVar("Model", bound=BaseModel)


def load_validated(model: type[Model], path: Path) -> Model:
    try:
        return model.model_validate(_load_yaml(path))
    except ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def load_areas(config_dir: Path) -> AreasConfig:
    return load_validated(AreasConfig, config_dir / "areas.yaml")


def load_rules(config_dir: Path, contract: ExtractContract | None = None) -> RulesConfig:
    path = config_dir / "rules.yaml"
    rules = load_validated(RulesConfig, path)
    try:
        rules.check_against(contract or load_contract())
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if rules.disclosure.k < K_FLOOR:
        log.warning(
            "%s: disclosure.k = %d is below the floor of %d (counts of %d to %d are published); override: %s",
            path,
            rules.disclosure.k,
            K_FLOOR,
            rules.disclosure.k + 1,
            K_FLOOR,
            rules.disclosure.k_floor_override,
        )
    return rules


def ruleset_hash(config_dir: Path) -> str:
    """SHA-256 over the rule files, recorded in every manifest so a release names the rules it was made with."""
    digest = hashlib.sha256()
    for name in ("rules.yaml", "marts.yaml", "areas.yaml", *_referenced_data(config_dir)):
        path = config_dir / name
        if path.exists():
            digest.update(name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _referenced_data(config_dir: Path) -> list[str]:
    """Reference files marts.yaml reads (e.g. reference/prevalence.csv): they change published figures too."""
    path = config_dir / "marts.yaml"
    if not path.exists():
        return []
    loaded = yaml.safe_load(path.read_text()) or {}
    marts = loaded.get("marts", []) if isinstance(loaded, dict) else []
    names = {m["reference"] for m in marts if isinstance(m, dict) and isinstance(m.get("reference"), str)}
    return sorted(f"reference/{name}" for name in names)
