"""Typed model of marts.yaml, validated on load (unknown population or dimension fails with the mart named)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from treatment_marts.core.config import SQL_IDENTIFIER, SUBSTANCE_GROUPS, ConfigError, load_validated
from treatment_marts.marts.designs import Design, check_designs
from treatment_marts.marts.windows import WINDOWED_POPULATIONS, Window, window_scope

REFERENCE_CHARACTERISTICS = ("sex", "age_band", "ethnicity_group")
"""What a reference-population mart can break the adult population down by (one per mart, beside area)."""


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
    # clients: protected with its population; unmet_need / location: derived after suppression from a published
    # clients mart; reference_population: a reference file only (no client data, not subject to K3)
    measure: Literal["clients", "unmet_need", "location", "reference_population", "trend", "completion_rate"]
    percent_of: str | None = None
    caveats: list[str] = []
    # measure unmet_need only: a mart derived after suppression from a published clients mart
    derived_from: str | None = None
    reference: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+\.csv$")
    prevalence_groups: dict[str, list[str]] | None = None
    # measure completion_rate only: the published in-treatment mart of the same window whose area x substance
    # cells (sex = Total) are the denominator of the successful completions in ``derived_from`` (an exits mart)
    denominator_from: str | None = None
    # the period the mart counts over (marts/windows.py): one month, or distinct clients over a window ending
    # with the release's month; a derived mart has its source's window
    window: Window = "month"

    @property
    def scope(self) -> str:
        """The system of linked tables the mart is protected in: its population, per window."""
        return window_scope(self.population, self.window)

    @model_validator(mode="after")
    def _distinct_dimensions(self) -> MartDefinition:
        if len(set(self.dimensions)) != len(self.dimensions):
            raise ValueError(f"mart {self.name}: a dimension is listed twice")
        if self.window != "month" and (
            self.population not in WINDOWED_POPULATIONS
            or self.measure not in ("clients", "unmet_need", "trend", "completion_rate")
        ):
            raise ValueError(
                f"mart {self.name}: window {self.window} needs a population of {list(WINDOWED_POPULATIONS)} "
                "and measure clients, unmet_need, trend or completion_rate"
            )
        if self.denominator_from is not None and self.measure != "completion_rate":
            raise ValueError(f"mart {self.name}: denominator_from is for completion_rate marts only")
        if self.percent_of is not None and self.percent_of not in self.dimensions:
            raise ValueError(f"mart {self.name}: percent_of {self.percent_of!r} is not one of its dimensions")
        {
            "unmet_need": self._check_unmet_need,
            "location": self._check_location,
            "reference_population": self._check_reference_population,
            "trend": self._check_trend,
            "completion_rate": self._check_completion_rate,
        }.get(self.measure, self._check_clients)()
        return self

    def _check_clients(self) -> None:
        if any(v is not None for v in (self.derived_from, self.reference, self.prevalence_groups)):
            raise ValueError(
                f"mart {self.name}: derived_from, reference and prevalence_groups are for derived marts only "
                "(measure unmet_need, location or reference_population)"
            )

    def _check_unmet_need(self) -> None:
        derived = (self.derived_from, self.reference, self.prevalence_groups)
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

    def _check_completion_rate(self) -> None:
        if (
            self.derived_from is None
            or self.denominator_from is None
            or self.reference
            or self.prevalence_groups
            or self.percent_of
            or self.dimensions != ["area", "substance_group"]
        ):
            raise ValueError(
                f"mart {self.name}: a completion_rate mart has dimensions [area, substance_group], derived_from (an "
                "exits mart by area, substance_group and discharge_group) and denominator_from (an in-treatment mart "
                "by area and substance_group) of its window; no percent_of, reference or prevalence_groups"
            )

    def _check_location(self) -> None:
        if self.derived_from is None or self.reference or self.prevalence_groups or "location" not in self.dimensions:
            raise ValueError(
                f"mart {self.name}: a location mart needs derived_from (a clients mart with an area dimension) and "
                "the source's dimensions with area replaced by location; no reference or prevalence_groups"
            )

    def _check_trend(self) -> None:
        if (
            self.derived_from is None
            or self.reference
            or self.prevalence_groups
            or self.window != "financial_year"
            or self.dimensions[0] != "financial_year"
        ):
            raise ValueError(
                f"mart {self.name}: a trend mart has window financial_year, derived_from (a financial_year clients "
                "mart) and dimensions [financial_year, <the source's dimensions>]; no reference or prevalence_groups"
            )

    def _check_reference_population(self) -> None:
        if self.reference is None or self.derived_from or self.prevalence_groups:
            raise ValueError(f"mart {self.name}: a reference_population mart needs a reference file only")
        if (
            len(self.dimensions) != 2
            or self.dimensions[0] != "area"
            or self.dimensions[1] not in REFERENCE_CHARACTERISTICS
            or self.percent_of != self.dimensions[1]
        ):
            raise ValueError(
                f"mart {self.name}: a reference_population mart has dimensions [area, <one of "
                f"{list(REFERENCE_CHARACTERISTICS)}>] and percent_of that characteristic"
            )


class MartsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    publication: Publication | None = None
    populations: dict[str, Population]
    marts: list[MartDefinition]
    # declared table designs per area, finest first (marts/designs.py); none: every area at full design
    designs: list[Design] = []

    @model_validator(mode="after")
    def _consistent(self) -> MartsConfig:
        check_designs(self.designs)
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
                if source.window != mart.window:
                    raise ValueError(
                        f"mart {mart.name}: window {mart.window} differs from its source's ({source.window})"
                    )
            if mart.measure == "completion_rate":
                self._check_rate_sources(mart)
        return self

    def _check_rate_sources(self, mart: MartDefinition) -> None:
        by_name = {m.name: m for m in self.marts}
        exits, base = by_name[str(mart.derived_from)], by_name.get(str(mart.denominator_from))
        if exits.population != "exits" or not {"area", "substance_group", "discharge_group"} <= set(exits.dimensions):
            raise ValueError(
                f"mart {mart.name}: derived_from must be an exits mart by area, substance_group and discharge_group"
            )
        if (
            base is None
            or base.measure != "clients"
            or base.population != "in_treatment"
            or base.window != mart.window
            or not {"area", "substance_group"} <= set(base.dimensions)
        ):
            raise ValueError(
                f"mart {mart.name}: denominator_from must name an in_treatment clients mart by area and "
                f"substance_group of window {mart.window}"
            )

    def by_population(self) -> dict[str, list[MartDefinition]]:
        """Month marts of one population share margins: they are protected together as linked tables."""
        grouped: dict[str, list[MartDefinition]] = {}
        for mart in self.marts:
            if mart.measure != "clients" or mart.window != "month":
                continue
            grouped.setdefault(mart.population, []).append(mart)
        return grouped

    def by_window(self) -> dict[str, list[MartDefinition]]:
        """Window marts by scope (population and window, e.g. ``in_treatment.rolling_12``): the marts of one
        scope share margins, like a month population's (pipeline/windows.py)."""
        grouped: dict[str, list[MartDefinition]] = {}
        for mart in self.marts:
            if mart.measure == "clients" and mart.window != "month":
                grouped.setdefault(mart.scope, []).append(mart)
        return grouped

    def derived(self) -> list[MartDefinition]:
        """Unmet-need marts: computed by the protect stage from its protected marts (no new disclosure)."""
        return [m for m in self.marts if m.measure == "unmet_need"]

    def completion_rates(self) -> list[MartDefinition]:
        """Successful completions as a share of those in treatment: from two published marts of one window."""
        return [m for m in self.marts if m.measure == "completion_rate"]

    def trends(self) -> list[MartDefinition]:
        """Trend marts: each closed financial year's published cells side by side (pipeline/windows.build_trend)."""
        return [m for m in self.marts if m.measure == "trend"]

    def built_at_publish(self) -> list[MartDefinition]:
        """Location marts (from the published clients marts) and reference-population marts (from a
        reference file): built when the release is published, adding nothing the release does not show."""
        return [m for m in self.marts if m.measure in ("location", "reference_population")]


def load_marts(config_dir: Path, known_dimensions: set[str] | None = None) -> MartsConfig:
    path = config_dir / "marts.yaml"
    config: MartsConfig = load_validated(MartsConfig, path)
    if known_dimensions is not None:
        for mart in config.marts:
            exempt = {"prevalence_group"} if mart.prevalence_groups else set()
            exempt |= {"financial_year"} if mart.measure == "trend" else set()
            unknown = sorted(set(mart.dimensions) - known_dimensions - exempt)
            if unknown:
                raise ConfigError(
                    f"{path}: mart {mart.name}: unknown dimension(s) {unknown}; known: {sorted(known_dimensions)}"
                )
    names = {m.name: m for m in config.marts}
    for mart in config.marts:
        if mart.measure != "location":
            continue
        source = names[str(mart.derived_from)]
        expected = ["location" if d == "area" else d for d in source.dimensions]
        if "area" not in source.dimensions or mart.dimensions != expected:
            raise ConfigError(
                f"{path}: mart {mart.name}: a location mart has its source's dimensions with area replaced by "
                f"location: {expected if 'area' in source.dimensions else 'the source has no area dimension'}"
            )
    for mart in config.trends():
        if mart.dimensions[1:] != names[str(mart.derived_from)].dimensions:
            raise ConfigError(
                f"{path}: mart {mart.name}: a trend mart's dimensions are [financial_year, *its source's]"
            )
    for mart in config.derived():
        if not {"area", "substance_group"} <= set(names[str(mart.derived_from)].dimensions):
            raise ConfigError(
                f"{path}: mart {mart.name}: derived_from {mart.derived_from} lacks the area and substance_group dimensions"
            )
    return config
