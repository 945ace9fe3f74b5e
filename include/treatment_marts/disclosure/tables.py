"""The table model of aggregate protection: linked mart tables, their cells and the keys that link them.

Vocabulary follows tau-argus / sdcTable. A *cell* is one row of a mart. Tables of the same population are
*linked*: a cell that two tables both publish (e.g. {area=X, sex=Total} in area x sex and
{area=X, substance=Total} in area x substance) is one variable, identified by its *canonical key*: the
period and the non-Total dimensions with their labels. Every other module of the disclosure core speaks
in these terms, so they live below all of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from treatment_marts.core.labels import TOTAL

Zeros = Literal["show", "suppress"]  # whether a zero count is published or primary-suppressed


@dataclass(frozen=True)
class MartTable:
    """One published table in mart format: period, dimension columns, count (Int64), status."""

    name: str
    dimensions: tuple[str, ...]
    frame: pd.DataFrame


class ProtectionError(RuntimeError):
    """The tables cannot be protected (inconsistent linked tables, or no safe suppression pattern found)."""


def cell_key(period: str, labels: dict[str, str]) -> str:
    """Canonical key of a cell: its period and non-Total dimension labels, independent of the table."""
    inner = {d: v for d, v in sorted(labels.items()) if v != TOTAL}
    return json.dumps({"period": period, **inner}, sort_keys=True, ensure_ascii=False)


def table_cell(labels: dict[str, str]) -> str:
    """Stable JSON of a cell within its table (every dimension, Totals included)."""
    return json.dumps(labels, sort_keys=True, ensure_ascii=False)
