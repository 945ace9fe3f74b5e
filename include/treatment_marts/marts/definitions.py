"""Typed model of marts.yaml, validated on load (unknown population or dimension fails with the mart named)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from treatment_marts.config import SQL_IDENTIFIER, ConfigError, _validated


class Population(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    description: str


class MartDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=SQL_IDENTIFIER)
    title: str
    population: str
    dimensions: list[Annotated[str, Field(pattern=SQL_IDENTIFIER)]] = Field(min_length=1, max_length=4)
    measure: Literal["clients"]
    percent_of: str | None = None
    caveats: list[str] = []

    @model_validator(mode="after")
    def _distinct_dimensions(self) -> MartDefinition:
        if len(set(self.dimensions)) != len(self.dimensions):
            raise ValueError(f"mart {self.name}: a dimension is listed twice")
        if self.percent_of is not None and self.percent_of not in self.dimensions:
            raise ValueError(f"mart {self.name}: percent_of {self.percent_of!r} is not one of its dimensions")
        return self


class MartsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    populations: dict[str, Population]
    marts: list[MartDefinition]

    @model_validator(mode="after")
    def _consistent(self) -> MartsConfig:
        names = [m.name for m in self.marts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate mart names: {dupes}")
        for mart in self.marts:
            if mart.population not in self.populations:
                raise ValueError(f"mart {mart.name}: unknown population {mart.population!r}; known: {sorted(self.populations)}")
        return self

    def by_population(self) -> dict[str, list[MartDefinition]]:
        """Marts of one population share margins: they are protected together as linked tables."""
        grouped: dict[str, list[MartDefinition]] = {}
        for mart in self.marts:
            grouped.setdefault(mart.population, []).append(mart)
        return grouped


def load_marts(config_dir: Path, known_dimensions: set[str] | None = None) -> MartsConfig:
    path = config_dir / "marts.yaml"
    config: MartsConfig = _validated(MartsConfig, path)
    if known_dimensions is not None:
        for mart in config.marts:
            unknown = sorted(set(mart.dimensions) - known_dimensions)
            if unknown:
                raise ConfigError(f"{path}: mart {mart.name}: unknown dimension(s) {unknown}; known: {sorted(known_dimensions)}")
    return config
