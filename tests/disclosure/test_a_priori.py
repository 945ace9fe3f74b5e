"""A-priori suppressed cells (protect ``a_priori``): withheld whatever their count, protected like primary
cells, never published again by the clean-up, and the audit recovers none of them. This is how a small
area's table design withholds its fine cells (marts/designs.py)."""

from __future__ import annotations

import json
from itertools import product

import numpy as np
import pandas as pd

from treatment_marts.core.labels import TOTAL
from treatment_marts.disclosure.audit import audit
from treatment_marts.disclosure.protect import protect
from treatment_marts.disclosure.tables import MartTable, cell_key

PERIOD = "2024-03"
AREAS = ["Big", "Other", "Small"]
SUBSTANCES = ["Opiate", "Crack", "Alcohol"]


def area_by_substance(counts: np.ndarray) -> MartTable:
    """area x substance with every margin (the area Total is the sum: no client is in two areas here)."""
    rows = []
    for area, substance in product([*AREAS, TOTAL], [*SUBSTANCES, TOTAL]):
        i = slice(None) if area == TOTAL else AREAS.index(area)
        j = slice(None) if substance == TOTAL else SUBSTANCES.index(substance)
        rows.append({"period": PERIOD, "area": area, "substance_group": substance, "count": int(counts[i, j].sum())})
    frame = pd.DataFrame(rows).astype({"count": "Int64"})
    frame["status"] = pd.array([None] * len(frame), dtype="string")
    return MartTable("t", ("area", "substance_group"), frame)


def key(area: str, substance: str) -> str:
    return cell_key(PERIOD, {"area": area, "substance_group": substance})


COUNTS = np.array([[120, 80, 90], [60, 40, 70], [9, 6, 12]])
# the small area's and the national opiate and crack cells, as a design merging them would withhold them
DESIGN = {key(a, s): f"a priori: {a} design" for a in ("Small", TOTAL) for s in ("Opiate", "Crack")}


def test_a_priori_cells_are_withheld_though_no_cell_is_small_and_the_audit_recovers_none() -> None:
    table = area_by_substance(COUNTS)
    assert protect([table]).log.empty  # nothing is 1..3: without the design nothing is withheld
    result = protect([table], a_priori=DESIGN)
    out = result.tables[0].frame.set_index(["area", "substance_group"])
    for area in ("Small", TOTAL):
        for substance in ("Opiate", "Crack"):
            assert pd.isna(out.loc[(area, substance), "count"]) and out.loc[(area, substance), "status"] == "c"
    assert out.loc[("Small", "Alcohol"), "count"] == 12 and out.loc[("Big", "Opiate"), "count"] == 120
    # two withheld cells in every line they touch: no complement in another area was needed
    assert set(result.log["key"]) == set(DESIGN)
    assert (result.log["suppression"] == "secondary").all()  # above k: withheld by design, not by K3
    assert set(result.log["rule"]) == {"a priori: Small design", "a priori: Total design"}
    check = audit(result.tables, k=3, zeros="show")
    assert check.passed
    small = check.intervals[check.intervals["cell"].map(lambda c: json.loads(c)["area"] == "Small")]
    assert (small["upper"] > small["lower"]).all() and (small["upper"] > 3).all()


def test_an_a_priori_cell_with_a_small_count_stays_primary_and_is_protected() -> None:
    counts = COUNTS.copy()
    counts[2] = [2, 6, 12]  # the small area's opiate cell is itself a group of 2
    result = protect([area_by_substance(counts)], a_priori=DESIGN)
    log = result.log.set_index("key")
    assert log.loc[key("Small", "Opiate"), "suppression"] == "primary"
    assert log.loc[key("Small", "Opiate"), "rule"] == "count<=3"
    assert audit(result.tables, k=3, zeros="show").passed


def test_a_zero_in_a_merged_category_is_not_named_a_priori_by_the_caller_and_stays_published() -> None:
    counts = COUNTS.copy()
    counts[2] = [0, 6, 12]
    design = {k: r for k, r in DESIGN.items() if k != key("Small", "Opiate")}  # designs.a_priori_cells skips zeros
    result = protect([area_by_substance(counts)], a_priori=design)
    out = result.tables[0].frame.set_index(["area", "substance_group"])
    assert out.loc[("Small", "Opiate"), "count"] == 0
    assert audit(result.tables, k=3, zeros="show").passed
