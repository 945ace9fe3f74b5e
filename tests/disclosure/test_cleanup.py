"""The clean-up's incremental attacker (cleanup.Certifier) decides as the independent audit's LP does."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_suppress import cube

from treatment_marts.disclosure.cleanup import Certifier, releasable
from treatment_marts.disclosure.lattice import build_lattice
from treatment_marts.disclosure.protect import audit_exposure
from treatment_marts.disclosure.secondary import Exposure, Suppressor, settle
from treatment_marts.disclosure.tables import MartTable, ProtectionError, Zeros


def greedy(tables: list[MartTable], k: int = 3, zeros: Zeros = "show") -> tuple[Suppressor, Exposure]:
    """The suppressor's pattern before any clean-up, and the audit's verdict function on masks."""
    lattice = build_lattice(tables)
    suppressor = Suppressor(lattice, k, zeros)
    suppressor.close_relations()
    exposed = audit_exposure(tables, lattice, k, zeros)
    settle(suppressor, exposed, 200)
    return suppressor, exposed


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(2, 4),
    st.integers(2, 4),
    st.integers(1, 2),
    st.sampled_from(["show", "suppress"]),
    st.lists(st.integers(0, 30), min_size=32, max_size=32),
)
def test_certifier_agrees_with_the_audit_on_every_release(
    n_a: int, n_b: int, n_c: int, zeros: Zeros, values: list[int]
) -> None:
    """Publish the greedy pattern's secondary cells one by one (keeping each the audit accepts): the
    incremental verdict names exactly the cells the independent LP names, as its stored points change."""
    counts = np.array(values[: n_a * n_b * n_c]).reshape(n_a, n_b, n_c)
    dims = {"a": [f"a{i}" for i in range(n_a)], "b": [f"b{i}" for i in range(n_b)], "c": [f"c{i}" for i in range(n_c)]}
    tables = [cube("abc", dims, counts), cube("ab", {"a": dims["a"], "b": dims["b"]}, counts.sum(axis=2))]
    try:
        suppressor, exposed = greedy(tables, zeros=zeros)
    except ProtectionError:
        return
    certifier = Certifier(suppressor.lattice, suppressor.k, suppressor.lower)
    assert certifier.exposed(suppressor.suppressed) == [] == exposed(suppressor.suppressed)
    counts_of = suppressor.lattice.counts
    for cell in releasable(suppressor):
        mask = suppressor.suppressed.copy()
        mask[cell] = False
        verdict = certifier.exposed(mask)
        assert verdict == exposed(mask)
        if not verdict:
            suppressor.suppressed = mask
            continue
        # A swap hides other cells instead: the stored points must cover cells they never moved.
        spare = np.flatnonzero(~mask & (counts_of > 0) & (counts_of != counts_of[cell]))
        if len(spare):
            mask[spare[0]] = True
            assert certifier.exposed(mask) == exposed(mask)


def test_certifier_skips_the_lp_for_cells_its_points_prove_safe() -> None:
    rng = np.random.default_rng(3)
    counts = rng.integers(4, 40, size=(5, 6))
    counts[rng.random((5, 6)) < 0.25] = 2
    table = cube("t", {"a": [f"a{i}" for i in range(5)], "b": [f"b{i}" for i in range(6)]}, counts)
    suppressor, exposed = greedy([table])
    certifier = Certifier(suppressor.lattice, suppressor.k, suppressor.lower)
    certifier.exposed(suppressor.suppressed)
    first = certifier.lp_solves
    assert certifier.exposed(suppressor.suppressed) == []
    assert certifier.lp_solves == first, "an unchanged pattern is proved safe from the stored points alone"
