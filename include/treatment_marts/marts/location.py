"""Location marts: seed 000's location collapse (named sites vs Other) from the *published* area marts.

A location table protected beside its area table would be a second level of the same hierarchy (Other =
the sum of the Other areas), which the linked-table suppressor does not model: a suppressed small area
could be differenced out of "Other". So location marts are derived after suppression, as unmet need is:

* a named site's cell is the sum of the published cells of its area(s);
* "Other" is the published ``Total`` minus the named sites, the seed's complement ("the rest of
  England"), which uses the large margins and never a small suppressed area. The national Total counts a
  client once however many areas treat them (issue 18), so "Other" is the clients counted nationally who
  are not counted at a named site: a client at a named site and at an Other area counts at the site only
  (and one at two named sites is subtracted twice, so "Other" is exact only when no client is at two);
* a cell needing a withheld value is withheld (status ``c``), and a derived count of 1 to k is withheld
  too, so the K3 rule holds literally (the value is arithmetic on published cells either way).

Every figure is a function of published cells only, so the mart reveals nothing the release does not.
"""

from __future__ import annotations

import pandas as pd

from treatment_marts.core.config import AreasConfig
from treatment_marts.core.labels import TOTAL
from treatment_marts.marts.definitions import MartDefinition
from treatment_marts.marts.rates import add_percentages

OTHER = "Other"


def build_location_mart(published: pd.DataFrame, mart: MartDefinition, areas: AreasConfig, k: int) -> pd.DataFrame:
    """The location version of a published area mart (``areas`` = the areas in the release)."""
    others = [d for d in mart.dimensions if d != "location"]
    source = published.copy()
    source["count"] = source["count"].astype("Int64")
    cells = source.set_index(["area", *others])["count"] if others else source.set_index("area")["count"]
    combos = (
        source.loc[source["area"] == TOTAL, others].drop_duplicates().itertuples(index=False, name=None)
        if others
        else [()]
    )
    sites: dict[str, list[str]] = {}
    for area in areas.areas:
        sites.setdefault(area.location, []).append(area.name)
    named = [a for loc, names in sites.items() if loc != OTHER for a in names]
    rows = []
    for combo in combos:

        def cell(area: str, combo: tuple = combo) -> int | None:
            value = cells.get((area, *combo)) if others else cells.get(area)
            return None if value is None or pd.isna(value) else int(value)

        for location, members in [*sites.items(), (TOTAL, [TOTAL])]:
            if location == OTHER:
                total, subtract = cell(TOTAL), [cell(a) for a in named]
                parts = [total, *subtract]
                value = None if None in parts else int(total or 0) - sum(int(v or 0) for v in subtract)
            else:
                parts = [cell(a) for a in members]
                value = None if None in parts else sum(int(v or 0) for v in parts)
            rows.append({"location": location, **dict(zip(others, combo, strict=True)), "count": value})
    frame = pd.DataFrame(rows)
    frame["count"] = pd.array(frame["count"].tolist(), dtype="Int64")
    small = (frame["count"] >= 1) & (frame["count"] <= k)
    frame.loc[small.fillna(False), "count"] = pd.NA
    frame = frame[list(mart.dimensions) + ["count"]]
    for dim in mart.dimensions:
        frame[dim] = frame[dim].astype("string")
    frame.insert(0, "period", pd.array([str(published["period"].iloc[0])] * len(frame), dtype="string"))
    frame["status"] = pd.array(["c" if pd.isna(c) else pd.NA for c in frame["count"]], dtype="string")
    if mart.percent_of:
        frame = add_percentages(frame, list(mart.dimensions), mart.percent_of)
    return frame.reset_index(drop=True)
