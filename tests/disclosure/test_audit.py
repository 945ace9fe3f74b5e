"""The attacker's verdict-only mode (used by the suppressor on every round) decides exactly as the full
interval computation: a cell is disclosed in one if and only if it is disclosed in the other."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from treatment_marts.disclosure.audit import AttackModel
from treatment_marts.disclosure.optimal_gap import cube_table


@pytest.mark.parametrize("seed", range(12))
def test_verdict_only_discloses_exactly_the_cells_the_full_intervals_disclose(seed: int) -> None:
    rng = np.random.default_rng(seed)
    inner = np.where(rng.random((4, 5)) < 0.3, rng.integers(1, 4, (4, 5)), rng.integers(4, 40, (4, 5)))
    model = AttackModel([cube_table(inner)])
    truth = model.cells.groupby("key")["value"].first().astype(float)
    hidden = pd.Series(rng.random(len(truth)) < 0.35, index=truth.index)
    published = truth.where(~hidden)
    exact = model.intervals(published, k=3, zeros="show", reference=truth).set_index("key")
    verdict = model.intervals(published, k=3, zeros="show", reference=truth, verdict_only=True).set_index("key")
    assert hidden.sum() > 0
    pd.testing.assert_series_equal(verdict["disclosed"], exact["disclosed"])
    # a cell judged safe without its own LP reports a feasible value, never more than the true maximum
    assert (verdict["upper"] <= exact["upper"] + 1e-6).all()
    assert (verdict.loc[verdict["disclosed"], "upper"] == exact.loc[exact["disclosed"], "upper"]).all()
