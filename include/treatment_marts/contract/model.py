"""Typed model of ``extract_contract.yaml``, validated on load so a typo in the contract fails loudly."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CONTRACT_PATH = Path(__file__).with_name("extract_contract.yaml")

ColumnType = Literal["string", "code", "date", "integer", "flag"]
Requirement = Literal["always", "when_consented", "optional"]
FLAG_CODES = {"Y": "Yes", "N": "No"}


class Column(BaseModel):
    """One column of the extract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    ndtms: str | None
    group: str
    type: ColumnType
    required: Requirement
    identifying: bool
    description: str
    codes: dict[str, str] | None = None
    pattern: str | None = None
    min: int | None = None
    max: int | None = None

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            re.compile(value)
        return value

    @model_validator(mode="after")
    def _type_specific_fields(self) -> Column:
        if self.type == "code" and not self.codes:
            raise ValueError(f"column {self.name}: type code needs a codes list")
        if self.type != "code" and self.codes:
            raise ValueError(f"column {self.name}: only type code takes codes")
        if self.type != "integer" and (self.min is not None or self.max is not None):
            raise ValueError(f"column {self.name}: only type integer takes min/max")
        if self.type != "string" and self.pattern:
            raise ValueError(f"column {self.name}: only type string takes a pattern")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"column {self.name}: min > max")
        return self

    @property
    def allowed_values(self) -> list[str] | None:
        """Permitted codes for code and flag columns (None for free types)."""
        if self.type == "code":
            return list(self.codes or {})
        if self.type == "flag":
            return list(FLAG_CODES)
        return None


class ExtractContract(BaseModel):
    """The whole extract contract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str
    grain: str
    record_key: list[str]
    columns: list[Column]

    @model_validator(mode="after")
    def _consistent(self) -> ExtractContract:
        names = [c.name for c in self.columns]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate column names in contract: {duplicates}")
        missing = [k for k in self.record_key if k not in names]
        if missing:
            raise ValueError(f"record_key names unknown columns: {missing}")
        return self

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def identifying_columns(self) -> list[str]:
        """Direct identifiers: never leave the restricted zone, never printed."""
        return [c.name for c in self.columns if c.identifying]

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def columns_of_type(self, *types: ColumnType) -> list[Column]:
        return [c for c in self.columns if c.type in types]


@lru_cache(maxsize=4)
def load_contract(path: Path | str = CONTRACT_PATH) -> ExtractContract:
    """Load and validate the contract (cached: it is read by every stage)."""
    with open(path, encoding="utf-8") as handle:
        return ExtractContract.model_validate(yaml.safe_load(handle))
