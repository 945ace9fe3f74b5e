"""The table model of aggregate protection: linked mart tables, their cells and the keys that link them.

Vocabulary follows tau-argus / sdcTable. A *cell* is one row of a mart. Tables of the same population are
*linked*: a cell that two tables both publish (e.g. {area=X, sex=Total} in area x sex and
{area=X, substance=Total} in area x substance) is one variable, identified by its *canonical key*: the
period and the non-Total dimensions with their labels. Every other module of the disclosure core speaks
in these terms, so they live below all of them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from treatment_marts.core.labels import TOTAL

Zeros = Literal["show", "suppress"]  # whether a zero count is published or primary-suppressed


@dataclass(frozen=True)
class MartTable:
    """One published table in mart format: period, dimension columns, count (Int64), status.

    ``overlap``: dimensions whose ``Total`` counts *distinct* clients rather than summing its levels, with
    D, the number of clients counted in more than one level (a client open in two areas is in both areas'
    rows and once in the national ``Total``, issue 18). Along such a dimension a line's members sum to
    between its Total and its Total + D; along every other dimension they sum to it exactly. D is known
    to the pipeline, never published (the attacker is given it, which can only make them stronger)."""

    name: str
    dimensions: tuple[str, ...]
    frame: pd.DataFrame
    overlap: Mapping[str, int] = field(default_factory=dict)


class ProtectionError(RuntimeError):
    """The tables cannot be protected (inconsistent linked tables, or no safe suppression pattern found)."""


def cell_key(period: str, labels: dict[str, str]) -> str:
    """Canonical key of a cell: its period and non-Total dimension labels, independent of the table."""
    inner = {d: v for d, v in sorted(labels.items()) if v != TOTAL}
    return json.dumps({"period": period, **inner}, sort_keys=True, ensure_ascii=False)


def table_cell(labels: dict[str, str]) -> str:
    """Stable JSON of a cell within its table (every dimension, Totals included)."""
    return json.dumps(labels, sort_keys=True, ensure_ascii=False)


def scoped_key(scope: str | None, key: str) -> str:
    """A cell key within one population of a release. Two populations publish cells with the same labels
    (new presentations and in treatment both have {area=X}); they are different variables, so a system
    holding several populations names each cell by its population as well."""
    return key if scope is None else f"{scope}|{key}"


@dataclass(frozen=True)
class LinearRelation:
    """``lower <= sum(coefficient * cell) <= upper`` over cells named by (scoped) key: a relation the
    attacker knows besides the tables' own lines, e.g. a subset population (new presentations of a cell are
    at most the adults in treatment of that cell), or how a revision's cells relate to the earlier
    release's. The true counts satisfy it by construction."""

    terms: tuple[tuple[str, float], ...]
    lower: float = -math.inf
    upper: float = math.inf
