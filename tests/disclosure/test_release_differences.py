"""Revisions and late areas protected as differences (issue 13, "What to build" 3).

The attacker keeps the release a revision replaces: its published cells are constants, the cells of an
area whose input did not change are the same variables in both releases, and a changed area's cells
moved by at most r (the attacker knows "how few records changed"). Carrying suppression forward protects
the cells hidden before; these cases show it does not protect the difference, and that protecting the
revision together with the earlier release does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_suppress import cube

from treatment_marts.core.labels import TOTAL
from treatment_marts.disclosure.audit import AuditResult, audit
from treatment_marts.disclosure.protect import ProtectionResult, protect, protect_release
from treatment_marts.disclosure.relations import published_through, revision_relations, table_keys
from treatment_marts.disclosure.tables import MartTable, scoped_key

EARLIER = "earlier:in_treatment"
DIMS = {"area": ["A", "B", "C"], "sex": ["F", "M", "X"]}
COUNTS = np.array([[11, 6, 10], [3, 14, 2], [4, 10, 1]])


def as_held(result: ProtectionResult, source: list[MartTable]) -> list[MartTable]:
    """The earlier release as the pipeline holds it: published tables plus the true count of each cell."""
    return [
        MartTable(t.name, t.dimensions, t.frame.assign(true_count=s.frame["count"].astype("Int64")))
        for t, s in zip(result.tables, source, strict=True)
    ]


def both_releases_audit(revision: list[MartTable], held: list[MartTable], truth: list[MartTable]) -> AuditResult:
    """The attacker holding both releases (the audit with the earlier release as context), who knows how
    far each area's cells moved (from the revision's ``truth``). A cell is disclosed when the attacker
    proves it 0..k; a complementary cell pinned above k reveals no small group (``small_only``, the rule
    for a revision against the release it replaces: the strict one found no pattern at pipeline scale)."""
    relations = revision_relations("in_treatment", truth, EARLIER, held)
    public_tables = [MartTable(t.name, t.dimensions, t.frame.drop(columns=["true_count"])) for t in held]
    shown = [MartTable(t.name, t.dimensions, t.frame[t.frame["count"].notna()]) for t in public_tables]
    public = published_through(relations, {scoped_key(EARLIER, key) for key in table_keys(shown)})
    # The cells the earlier release hid stay hidden (carried forward) even if now zero: the attacker, who
    # holds that release, knows which they are and only that they are >= 0.
    withheld = [MartTable(t.name, t.dimensions, t.frame[t.frame["count"].isna()]) for t in public_tables]
    carried = {scoped_key("in_treatment", key) for key in table_keys(withheld)}
    return audit(
        revision + public_tables,
        carried=carried,
        scopes=["in_treatment"] * len(revision) + [EARLIER] * len(held),
        relations=relations,
        report=range(len(revision)),
        public=public,
        small_only=True,
    )


def revise(old_counts: np.ndarray, new_counts: np.ndarray, old_dims: dict, new_dims: dict):
    old, new = cube("m", old_dims, old_counts), cube("m", new_dims, new_counts)
    first = protect([old])
    held = as_held(first, [old])
    carried = set(first.log["key"])
    carry_forward_only = protect([new], carried=carried).tables
    relations = revision_relations("in_treatment", [new], EARLIER, held)
    joint = protect_release(
        {"in_treatment": [new]},
        relations=relations,
        carried={"in_treatment": carried},
        context={EARLIER: held},
        small_only=True,  # the revision rule against the release it replaces (docs/disclosure.md)
    )["in_treatment"]
    return first, held, carry_forward_only, joint, [new]


def differenced(revision: MartTable, earlier: MartTable, area: str) -> dict[str, int]:
    """The late-area attack of issue 13: the other areas' inputs did not change (their checksums are
    public), so a hidden cell of the late ``area`` is new national minus old national wherever both
    releases publish the national cell."""
    new = revision.frame.set_index(["area", "sex"])["count"]
    old = earlier.frame.set_index(["area", "sex"])["count"]
    return {
        sex: int(new[(TOTAL, sex)] - old[(TOTAL, sex)])
        for sex in [*DIMS["sex"], TOTAL]
        if pd.isna(new[(area, sex)]) and not pd.isna(new[(TOTAL, sex)]) and not pd.isna(old[(TOTAL, sex)])
    }


def test_a_late_area_cannot_be_read_off_national_minus_national() -> None:
    """First release without area C (late); the revision adds it, A and B unchanged. With suppression only
    carried forward, every hidden cell of C is national(new) - national(old); protected with the
    earlier release, none is."""
    old_dims = {"area": ["A", "B"], "sex": DIMS["sex"]}
    first, held, carry_forward_only, joint, truth = revise(COUNTS[:2], COUNTS, old_dims, DIMS)
    assert differenced(carry_forward_only[0], first.tables[0], "C") == {"F": 4, "X": 1}
    assert not both_releases_audit(carry_forward_only, held, truth).passed
    assert both_releases_audit(joint.tables, held, truth).passed
    # what national minus national still gives is no small group (a complementary cell above k)
    assert all(value > 3 for value in differenced(joint.tables[0], first.tables[0], "C").values())
    late = joint.tables[0].frame
    assert late.loc[late["area"].eq("C") & late["count"].isna(), "sex"].tolist()  # C's small cells stay hidden


@pytest.mark.parametrize("case", ["one client removed", "one client moved"])
def test_a_revision_changing_one_client_does_not_reveal_its_area(case: str) -> None:
    """Area B loses one client (or one moves from F to M in B): B's cells move by at most one, which the
    attacker may know. Carried forward only, B's hidden cells come out at 1..3 or exact; protected with
    the earlier release, no hidden cell does."""
    new_counts = COUNTS.copy()
    new_counts[1, 0] -= 1
    if case == "one client moved":
        new_counts[1, 1] += 1
    _, held, carry_forward_only, joint, truth = revise(COUNTS, new_counts, DIMS, DIMS)
    before = both_releases_audit(carry_forward_only, held, truth).intervals
    leaked = before[before["disclosed"]]
    assert set(leaked["cell"].map(lambda c: c.split('"area": "')[1][0])) == {"B"}
    after = both_releases_audit(joint.tables, held, truth)
    assert after.passed
    # what was hidden before stays hidden (carried forward), and the unchanged areas hide nothing new
    # that the earlier release published
    old = held[0].frame.set_index(["area", "sex"])["count"]
    new = joint.tables[0].frame.set_index(["area", "sex"])["count"]
    assert new[old.isna()].isna().all()


def test_an_unchanged_revision_needs_nothing_more() -> None:
    first, held, carry_forward_only, joint, truth = revise(COUNTS, COUNTS, DIMS, DIMS)
    pd.testing.assert_frame_equal(joint.tables[0].frame, first.tables[0].frame)
    assert both_releases_audit(joint.tables, held, truth).passed
