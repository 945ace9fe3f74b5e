"""Mart definitions (marts.yaml) and the builder that turns the analysis frame into long tables with margins."""

from treatment_marts.marts.builder import TOTAL, build_mart, dimension_levels
from treatment_marts.marts.definitions import MartDefinition, MartsConfig, load_marts
from treatment_marts.marts.populations import select_population

__all__ = [
    "TOTAL",
    "MartDefinition",
    "MartsConfig",
    "build_mart",
    "dimension_levels",
    "load_marts",
    "select_population",
]
