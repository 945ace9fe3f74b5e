"""Declared table designs per area (issue 14 lever 3): a very small area is published at a coarser design.

An area of about 60 adults published in area x substance x characteristic tables costs more than its own
cells: its small substance margins are hidden, each hidden margin sits in the national line "areas of this
substance", so a large area's margin is hidden as its complement, and that margin cascades through every
linked table (docs/disclosure.md). A *design* names, per dimension, groups of categories that an area at
that design publishes only merged (e.g. the six substance groups as the NDTMS four).

Differencing decides how a design is applied. The national (area = Total) rows are sums over every area,
so a small area's unpublished category is national minus the other areas unless the national cell is
unpublished too. Hence the national rows follow the coarsest design any area of the release uses, and the
cells a design does not publish are *a-priori* suppressed (tau-argus's a-priori unsafe cells): the
suppressor protects them like primary cells and the independent audit attacks them like any withheld
cell, with every other table and relation of the release. A true zero is still published (rules.yaml
``zeros: show``), so the attacker's floor for a withheld cell stays the usual one.

Which design an area takes is declared too: the coarsest design whose ``below_adults`` is above the area's
adults in treatment in the month (the ``in_treatment`` population), else the first (full) design.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from treatment_marts.core.config import ConfigError
from treatment_marts.core.labels import TOTAL

SIZE_POPULATION = "in_treatment"  # the population whose adults per area choose the design


class Design(BaseModel):
    """One table design: the category groups it publishes merged, per dimension, and which areas take it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=1)
    # areas with fewer adults in treatment in the month than this take the design (the first design: none)
    below_adults: int | None = Field(default=None, gt=0)
    # dimension -> merged label -> the categories it merges (at least two); categories not named stay as they are
    collapse: dict[str, dict[str, list[str]]] = {}

    @model_validator(mode="after")
    def _groups(self) -> Design:
        for dim, groups in self.collapse.items():
            seen: list[str] = []
            for label, members in groups.items():
                if len(set(members)) < 2 or len(set(members)) != len(members):
                    raise ValueError(f"design {self.name}: {dim} group {label!r} needs two or more distinct categories")
                seen += members
            twice = sorted({m for m in seen if seen.count(m) > 1})
            if twice:
                raise ValueError(f"design {self.name}: {dim} categories in two groups: {twice}")
        return self

    def merged(self, dim: str) -> set[str]:
        """The categories of ``dim`` this design publishes only merged."""
        return {m for members in self.collapse.get(dim, {}).values() for m in members}

    def group_of(self, dim: str, category: str) -> str | None:
        """The merged label ``category`` is published under at this design, or None (published as it is)."""
        return next((label for label, members in self.collapse.get(dim, {}).items() if category in members), None)


def check_designs(designs: Sequence[Design]) -> None:
    """Finest first: the first design is the full one (no size, no collapse); each later one has a smaller
    ``below_adults`` than the one before and is at least as coarse (every group of a finer design lies in
    one group of it), so the national rows, at the coarsest design in use, are coarser than every area's."""
    if not designs:
        return
    names = [d.name for d in designs]
    if len(set(names)) != len(names):
        raise ValueError(f"designs: duplicate names {sorted({n for n in names if names.count(n) > 1})}")
    first, *rest = designs
    if first.below_adults is not None or first.collapse:
        raise ValueError(f"designs: the first design ({first.name}) is the full one: no below_adults, no collapse")
    for finer, coarser in zip(designs, rest, strict=False):
        if coarser.below_adults is None or (
            finer.below_adults is not None and coarser.below_adults >= finer.below_adults
        ):
            raise ValueError(
                f"designs: {coarser.name} needs below_adults smaller than {finer.name}'s (designs run finest to coarsest)"
            )
        for dim, groups in finer.collapse.items():
            for label, members in groups.items():
                if len({coarser.group_of(dim, m) for m in members}) != 1 or coarser.group_of(dim, members[0]) is None:
                    raise ValueError(
                        f"designs: {coarser.name} does not keep {finer.name}'s {dim} group {label!r} in one group"
                    )


def check_levels(designs: Sequence[Design], levels: Mapping[str, list[str]]) -> None:
    """Every collapsed dimension and category is declared (rules.yaml / areas.yaml); a typo would
    silently publish the category it meant to merge."""
    for design in designs:
        for dim, groups in design.collapse.items():
            if dim == "area" or dim not in levels:
                raise ConfigError(f"design {design.name}: cannot collapse dimension {dim!r}")
            unknown = sorted(design.merged(dim) - set(levels[dim]))
            if unknown:
                raise ConfigError(f"design {design.name}: {dim} has no categories {unknown}; known: {levels[dim]}")
            clash = sorted(set(groups) & set(levels[dim]))
            if clash:
                raise ConfigError(f"design {design.name}: merged label(s) {clash} are already {dim} categories")


@dataclass(frozen=True)
class AreaDesign:
    """The design an area is published at, and why (JSON-able for the manifest and the IG report)."""

    area: str
    design: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def choose_designs(designs: Sequence[Design], adults: Mapping[str, int], areas: Sequence[str]) -> list[AreaDesign]:
    """Each area's design (in ``areas`` order), then the national rows' (area ``Total``): the coarsest in use."""
    if not designs:
        return []
    chosen: list[AreaDesign] = []
    for area in areas:
        n = int(adults.get(area, 0))
        fits = [d for d in designs[1:] if d.below_adults is not None and n < d.below_adults]
        if fits:
            design = fits[-1]
            chosen.append(AreaDesign(area, design.name, f"fewer than {design.below_adults} adults in treatment"))
        else:
            chosen.append(AreaDesign(area, designs[0].name, "every category published"))
    order = [d.name for d in designs]
    coarsest = max((order.index(c.design) for c in chosen), default=0)
    national = (
        "every area at the full design"
        if coarsest == 0
        else f"the coarsest design of an area in the release ({order[coarsest]}), so no area's merged "
        "categories are national minus the other areas"
    )
    chosen.append(AreaDesign(TOTAL, order[coarsest], national))
    return chosen


def a_priori_cells(
    frame: pd.DataFrame, dimensions: Sequence[str], designs: Sequence[Design], chosen: Sequence[AreaDesign]
) -> pd.Series:
    """Rows of one mart (``frame``, before protection) its areas' designs do not publish: an area's (or the
    national row's) non-zero cells in a category its design publishes only merged. A boolean mask."""
    by_name = {d.name: d for d in designs}
    hidden = pd.Series(False, index=frame.index)
    if "area" not in dimensions:
        return hidden
    area = frame["area"].astype(str)
    for choice in chosen:
        design = by_name[choice.design]
        for dim in (d for d in dimensions if d in design.collapse):
            hidden |= area.eq(choice.area) & frame[dim].astype(str).isin(design.merged(dim))
    return hidden & frame["count"].fillna(0).gt(0)


def size_bounds(designs: Sequence[Design], chosen: Sequence[AreaDesign]) -> list[tuple[str, int | None, int | None]]:
    """What naming each area's design tells a reader: (area, lower, upper) on its adults in treatment,
    from its design's ``below_adults`` (upper, exclusive) and the next coarser design's (lower). The audit
    holds these bounds (pipeline/protect.release_designs), so they cannot pin a withheld area total."""
    order = [d.name for d in designs]
    bounds = []
    for choice in (c for c in chosen if c.area != TOTAL):
        i = order.index(choice.design)
        upper = designs[i].below_adults
        lower = designs[i + 1].below_adults if i + 1 < len(designs) else None
        if upper is not None or lower is not None:
            bounds.append((choice.area, lower, upper - 1 if upper is not None else None))
    return bounds
