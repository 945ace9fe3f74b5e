"""Build a mart: a long table of distinct-client counts over the full cube of its dimensions, with margins.

Every level of every dimension is listed (zeros included) so that suppression and the audit see the whole
table an analyst sees; margins are sums of the cells they total, so additivity holds along every dimension.
"""

from __future__ import annotations

from itertools import product

import numpy as np
import pandas as pd

from treatment_marts.core.columns import as_categorical
from treatment_marts.core.config import SUBSTANCE_GROUPS, AreasConfig, RulesConfig
from treatment_marts.core.labels import TOTAL
from treatment_marts.marts.definitions import MartDefinition
from treatment_marts.marts.populations import REPRESENTATION_LEVELS


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


def build_mart(clients: pd.DataFrame, mart: MartDefinition, period: str, levels: dict[str, list[str]]) -> pd.DataFrame:
    """Count clients per cell over the full cube of ``mart.dimensions`` and add every margin."""
    dims = list(mart.dimensions)
    frame = pd.DataFrame({dim: _declared(clients[dim], dim, levels[dim], mart.name) for dim in dims})
    # Categorical keys with the declared levels: the group-by lists every cell of the cube (zeros included)
    # in configured order, and works on integer codes rather than strings (a national month is ~1M clients).
    # With observed=False and sort=True the groups are the cartesian product of the categories, in order.
    counts = frame.groupby(dims, observed=False, sort=True).size().to_numpy()
    full = pd.MultiIndex.from_product([levels[d] for d in dims], names=dims)
    if len(counts) != len(full):
        raise AssertionError(f"mart {mart.name}: {len(counts)} groups for a cube of {len(full)} cells")
    cells = pd.Series(counts, index=full)

    pieces = []
    for totalled in product((False, True), repeat=len(dims)):
        keep = [d for d, t in zip(dims, totalled, strict=False) if not t]
        if keep:
            piece = cells.groupby(level=keep, observed=True).sum().reset_index(name="count")
        else:
            piece = pd.DataFrame({"count": [int(cells.sum())]})
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
