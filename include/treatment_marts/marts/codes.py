"""Area codes beside area names: an attribute of the area, added to a mart after protection.

Analysts join marts to ONS, Fingertips or census tables by GSS code, not by name. The code is a pure
function of the ``area`` label (areas.yaml), so it adds no information and is not a dimension: it is added
to the protected frames at publish time, after suppression and the audit, which key cells on the
dimension labels only and never see it. ``Total`` (every area in the release, each client once) is not an area and
has no code.
"""

from __future__ import annotations

import pandas as pd

from treatment_marts.core.config import AreasConfig
from treatment_marts.core.labels import TOTAL

AREA_CODE = "area_code"
"""Column holding the area's GSS-style code, placed right after ``area``."""


def with_area_codes(frame: pd.DataFrame, areas: AreasConfig) -> pd.DataFrame:
    """The mart with ``area_code`` after ``area`` (null on ``Total`` rows); unchanged without ``area``.

    An area label that areas.yaml does not know would get a null code silently; refuse it instead.
    """
    if "area" not in frame.columns or AREA_CODE in frame.columns:
        return frame
    codes = {a.name: a.code for a in areas.areas}
    labels = frame["area"].astype("string")
    unknown = sorted(set(labels.dropna()) - set(codes) - {TOTAL})
    if unknown:
        raise ValueError(f"areas {unknown} are not in areas.yaml; cannot give their GSS code")
    out = frame.copy()
    out.insert(list(out.columns).index("area") + 1, AREA_CODE, labels.map(codes).astype("string"))
    return out
