"""The marts a release adds when it is published: location marts (from its protected clients marts) and
reference-population marts (from a reference file). Neither reads client data, so neither needs the
suppressor: they are built from what the release already shows, or from published aggregates."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from treatment_marts.core.config import AreasConfig, RulesConfig, load_areas
from treatment_marts.marts.builder import dimension_levels
from treatment_marts.marts.definitions import MartsConfig
from treatment_marts.marts.location import build_location_mart
from treatment_marts.marts.reference_population import build_reference_population, load_population


def build_publish_marts(
    marts: dict[str, pd.DataFrame],
    catalogue: MartsConfig,
    rules: RulesConfig,
    scope: AreasConfig,
    config_dir: Path,
    period: str,
) -> dict[str, pd.DataFrame]:
    """Every location and reference-population mart of the catalogue whose source is in the release
    (``marts``: the protected marts; ``scope``: the areas in the release)."""
    levels = dimension_levels(rules, scope)
    out: dict[str, pd.DataFrame] = {}
    for mart in catalogue.built_at_publish():
        if mart.measure == "location":
            source = marts.get(str(mart.derived_from))
            if source is not None:
                out[mart.name] = build_location_mart(source, mart, scope, rules.disclosure.k)
        else:
            # validated against every configured area; a partial release keeps the rows of its own areas
            in_scope = {a.name for a in scope.areas}
            every = load_population(config_dir / "reference" / str(mart.reference), load_areas(config_dir), levels)
            rows = [row for row in every if row.area in in_scope]
            out[mart.name] = build_reference_population(rows, mart, scope, period)
    return out
