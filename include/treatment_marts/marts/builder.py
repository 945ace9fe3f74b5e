"""Build a mart: a long table of distinct-client counts over the full cube of its dimensions, with margins.

Every level of every dimension is listed (zeros included) so that suppression and the audit see the whole
table an analyst sees; margins are sums of the cells they total, so additivity holds along every dimension
but one: the national ``Total`` of ``area`` counts each person once (the rows `populations.NATIONAL`
marks), while each area counts the clients it treats, so a client open in two areas is in both areas'
rows and once in the national row. Along ``area`` a line's cells sum to between the national cell and it
plus D (`populations.national_overlap`); the table says so (disclosure MartTable.overlap), and the audit
holds that form.
"""

from __future__ import annotations

from itertools import product

import numpy as np
import pandas as pd

from treatment_marts.core.columns import as_categorical
from treatment_marts.core.config import SUBSTANCE_GROUPS, AreasConfig, RulesConfig
from treatment_marts.core.labels import TOTAL
from treatment_marts.marts.definitions import MartDefinition
from treatment_marts.marts.populations import NATIONAL, REPRESENTATION_LEVELS, national_clients


class MartBuildError(ValueError):
    """The analysis frame holds a category the configuration does not declare."""


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def dimension_levels(rules: RulesConfig, areas: AreasConfig) -> dict[str, list[str]]:
    """Every publishable dimension and its ordered levels, all taken from configuration."""
    levels: dict[str, list[str]] = {
        "area": [a.name for a in areas.areas],
        "location": _unique([a.location for a in areas.areas]),
        "region": _unique([a.region for a in areas.areas]),
        "substance_group": [rules.substances.group_labels[g] for g in SUBSTANCE_GROUPS],
        "nationality_group": _unique([rules.nationality.labels[k] for k in ("british", "other", "unknown")]),
    }
    for name, scheme in rules.age_bands.schemes.items():
        levels["age_band" if name == rules.age_bands.default else f"age_band_{name}"] = scheme.labels
    for target, rule in rules.collapses.items():
        levels[target] = _unique([*rule.groups, rule.missing])
    levels["time_in_treatment"] = list(rules.time_in_treatment.bands)
    for flag in rules.disability_flags:
        levels[f"disability_{flag}"] = ["Yes", "No"]
    levels["representation"] = list(REPRESENTATION_LEVELS)
    return levels


def _declared(column: pd.Series, dim: str, declared: list[str], mart: str) -> pd.Categorical:
    """The column as a categorical over its declared levels; refuses nulls and undeclared categories."""
    if column.dtype == bool:
        column = column.map({True: "Yes", False: "No"})
    coded = as_categorical(column, declared)
    missing = int((coded.codes == -1).sum())
    undeclared = coded.codes >= len(declared)
    if missing or undeclared.any():
        unknown = sorted(str(c) for c in coded.categories[np.unique(coded.codes[undeclared])])
        raise MartBuildError(
            f"mart {mart}: dimension {dim} has {missing} null value(s) and undeclared categories {unknown}; "
            "declare them in include/config/rules.yaml"
        )
    return coded.set_categories(declared)  # only declared levels are used: codes unchanged


def _cube(clients: pd.DataFrame, dims: list[str], levels: dict[str, list[str]], mart: str) -> pd.Series:
    """Clients per cell over the full cube of ``dims`` (zeros included), indexed by the cell's labels."""
    if not dims:
        return pd.Series([len(clients)], index=pd.Index([0]))
    frame = pd.DataFrame({dim: _declared(clients[dim], dim, levels[dim], mart) for dim in dims})
    # Categorical keys with the declared levels: the group-by lists every cell of the cube (zeros included)
    # in configured order, and works on integer codes rather than strings (a national month is ~1M clients).
    # With observed=False and sort=True the groups are the cartesian product of the categories, in order.
    counts = frame.groupby(dims, observed=False, sort=True).size().to_numpy()
    full = pd.MultiIndex.from_product([levels[d] for d in dims], names=dims)
    if len(counts) != len(full):
        raise AssertionError(f"mart {mart}: {len(counts)} groups for a cube of {len(full)} cells")
    return pd.Series(counts, index=full)


def _margin(cells: pd.Series, keep: list[str]) -> pd.DataFrame:
    if keep:
        return cells.groupby(level=keep, observed=True).sum().reset_index(name="count")
    return pd.DataFrame({"count": [int(cells.sum())]})


def build_mart(clients: pd.DataFrame, mart: MartDefinition, period: str, levels: dict[str, list[str]]) -> pd.DataFrame:
    """Count clients per cell over the full cube of ``mart.dimensions`` and add every margin.

    With `populations.NATIONAL` in ``clients`` (one row per client of an area), the cells of an area count
    every row of it and the national ``Total`` rows count the marked rows only: a person once nationally.
    A mart without ``area`` is national: the marked rows only."""
    dims = list(mart.dimensions)
    # The marked rows of the mart's own columns only: `_cube` reads nothing else, and a row take of every
    # column of the population (~30) for each of its marts was most of the build of a national month.
    national = national_clients(clients[[*dims, NATIONAL]]) if NATIONAL in clients.columns else clients
    by_area = "area" in dims and len(national) < len(clients)
    cells = _cube(clients if "area" in dims else national, dims, levels, mart.name)
    national_cells = _cube(national, [d for d in dims if d != "area"], levels, mart.name) if by_area else None

    pieces = []
    for totalled in product((False, True), repeat=len(dims)):
        keep = [d for d, t in zip(dims, totalled, strict=False) if not t]
        nationwide = by_area and "area" not in keep
        piece = _margin(national_cells, keep) if nationwide and national_cells is not None else _margin(cells, keep)
        for dim, t in zip(dims, totalled, strict=False):
            if t:
                piece[dim] = TOTAL
        pieces.append(piece[dims + ["count"]])
    table = pd.concat(pieces, ignore_index=True)

    # Deterministic order: configured level order, Total last, along each dimension.
    for dim in dims:
        table[dim] = pd.Categorical(table[dim], categories=[*levels[dim], TOTAL], ordered=True)
    table = table.sort_values(dims, kind="stable").reset_index(drop=True)
    for dim in dims:
        table[dim] = table[dim].astype("string")
    table.insert(0, "period", pd.array([period] * len(table), dtype="string"))
    table["count"] = table["count"].astype("Int64")
    table["status"] = pd.array([pd.NA] * len(table), dtype="string")
    return table
