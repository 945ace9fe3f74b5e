"""Primary suppression: the one statement of the threshold rule (K3: counts of 1..k are hidden).

Written once so the suppressor and the optimal-pattern instrument (optimal_gap.py) cannot drift apart on
what a primary cell is. A zero is primary only when zeros are suppressed (rules.yaml disclosure.zeros):
publishing a zero discloses that nobody has the attribute, which is a policy choice, not a small group.
"""

from __future__ import annotations

import numpy as np

from treatment_marts.disclosure.tables import Zeros


def primary_cells(counts: np.ndarray, k: int, zeros: Zeros) -> np.ndarray:
    """Boolean mask of the cells the threshold rule hides: 1..k, and 0 too when zeros are suppressed."""
    counts = np.asarray(counts)
    return (counts >= 1) & (counts <= k) if zeros == "show" else counts <= k
