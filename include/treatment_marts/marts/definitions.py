"""Typed model of marts.yaml, validated on load (unknown population or dimension fails with the mart named)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from treatment_marts.core.config import SQL_IDENTIFIER, SUBSTANCE_GROUPS, ConfigError, load_validated


class Population(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    description: str


SHEET_NAME = r"^[A-Za-z0-9][A-Za-z0-9 ,()&'-]{0,30}$"
"""A spreadsheet tab name: at most 31 characters (Excel's limit), none of ``[]:*?/\\``, so it is never cut."""


class Publication(BaseModel):
    """What every workbook's cover sheet says about the release as a whole (GSS: title, source, contact)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    title: str = Field(min_length=1)
    source: str = Field(min_length=1)
    contact: str = Field(min_length=1)


class MartDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=SQL_IDENTIFIER)
    title: str
    # the mart's tab in the workbooks; without it the tab is "Table <n>"
    sheet: str | None = Field(default=None, pattern=SHEET_NAME)
    population: str
    dimensions: list[Annotated[str, Field(pattern=SQL_IDENTIFIER)]] = Field(min_length=1, max_length=4)
    measure: Literal["clients", "unmet_need"]
    percent_of: str | None = None
    caveats: list[str] = []
    # measure unmet_need only: a mart derived after suppression from a published clients mart
    derived_from: str | None = None
    reference: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+\.csv$")
    prevalence_groups: dict[str, list[str]] | None = None

    @model_validator(mode="after")
    def _distinct_dimensions(self) -> MartDefinition:
        if len(set(self.dimensions)) != len(self.dimensions):
            raise ValueError(f"mart {self.name}: a dimension is listed twice")
        if self.percent_of is not None and self.percent_of not in self.dimensions:
            raise ValueError(f"mart {self.name}: percent_of {self.percent_of!r} is not one of its dimensions")
        derived = (self.derived_from, self.reference, self.prevalence_groups)
        if self.measure == "unmet_need":
            if None in derived or self.dimensions != ["area", "prevalence_group"] or self.percent_of:
                raise ValueError(
                    f"mart {self.name}: an unmet_need mart has dimensions [area, prevalence_group], no percent_of, "
                    "and needs derived_from, reference and prevalence_groups"
                )
            for group, members in (self.prevalence_groups or {}).items():
                unknown = sorted(set(members) - set(SUBSTANCE_GROUPS))
                if not members or unknown:
                    raise ValueError(
                        f"mart {self.name}: prevalence group {group!r} needs substance groups of {list(SUBSTANCE_GROUPS)}, got {unknown or 'none'}"
                    )
        elif any(v is not None for v in derived):
            raise ValueError(
                f"mart {self.name}: derived_from, reference and prevalence_groups are for measure unmet_need only"
            )
        return self


class MartsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    publication: Publication | None = None
    populations: dict[str, Population]
    marts: list[MartDefinition]

    @model_validator(mode="after")
    def _consistent(self) -> MartsConfig:
        names = [m.name for m in self.marts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate mart names: {dupes}")
        sheets = [m.sheet.casefold() for m in self.marts if m.sheet]  # Excel compares tab names case-blind
        if len(set(sheets)) != len(sheets):
            raise ValueError(f"duplicate sheet names: {sorted({s for s in sheets if sheets.count(s) > 1})}")
        for mart in self.marts:
            if mart.population not in self.populations:
                raise ValueError(
                    f"mart {mart.name}: unknown population {mart.population!r}; known: {sorted(self.populations)}"
                )
            if mart.derived_from is not None:
                source = next((m for m in self.marts if m.name == mart.derived_from), None)
                if source is None or source.measure != "clients":
                    raise ValueError(f"mart {mart.name}: derived_from must name a clients mart")
        return self

    def by_population(self) -> dict[str, list[MartDefinition]]:
        """Marts of one population share margins: they are protected together as linked tables."""
        grouped: dict[str, list[MartDefinition]] = {}
        for mart in self.marts:
            if mart.derived_from is not None:
                continue
            grouped.setdefault(mart.population, []).append(mart)
        return grouped

    def derived(self) -> list[MartDefinition]:
        """Marts computed after suppression from published marts (they add no new disclosure risk)."""
        return [m for m in self.marts if m.derived_from is not None]


def load_marts(config_dir: Path, known_dimensions: set[str] | None = None) -> MartsConfig:
    path = config_dir / "marts.yaml"
    config: MartsConfig = load_validated(MartsConfig, path)
    if known_dimensions is not None:
        for mart in config.marts:
            unknown = sorted(
                set(mart.dimensions) - known_dimensions - ({"prevalence_group"} if mart.prevalence_groups else set())
            )
            if unknown:
                raise ConfigError(
                    f"{path}: mart {mart.name}: unknown dimension(s) {unknown}; known: {sorted(known_dimensions)}"
                )
    names = {m.name: m for m in config.marts}
    for mart in config.derived():
        if not {"area", "substance_group"} <= set(names[str(mart.derived_from)].dimensions):
            raise ConfigError(
                f"{path}: mart {mart.name}: derived_from {mart.derived_from} lacks the area and substance_group dimensions"
            )
    return config
