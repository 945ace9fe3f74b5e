"""Fault points for the kill tests: a hard exit at a named point, as a killed worker would die.

`TREATMENT_MARTS_FAULT` names one or more points (comma-separated); unset, every call is a no-op. The
publish points are where a crash must leave whole releases (publish/release.py); the stage points are the
DAG's task boundaries (pipeline/run.py). Tests: tests/publish/test_release.py, tests/pipeline/test_stages_faults.py.
"""

from __future__ import annotations

import os

ENV_FAULT = "TREATMENT_MARTS_FAULT"
# Stage boundaries of stages.run_period (the DAG's task boundaries).
STAGE_FAULT_POINTS = ("stage:after_land", "stage:after_validate", "stage:after_protect")
FAULT_POINTS = (
    "publish:after_staging",  # all Parquet staged, nothing committed
    "publish:after_restricted_warehouse",  # restricted log written (own DB: committed; shared server: uncommitted)
    "publish:in_warehouse_transaction",  # every row written, COMMIT not issued
    "publish:after_warehouse",  # warehouse committed, no Parquet link swapped
    "publish:mid_parquet_swap",  # first mart's link swapped, the others not
    "publish:after_parquet_swap",  # every mart swapped, suppression log link and release manifest not
)


def fault_point(point: str) -> None:
    """Hard-exit (no cleanup, no rollback) when `point` is named in TREATMENT_MARTS_FAULT."""
    wanted = os.environ.get(ENV_FAULT)
    if wanted and point in {p.strip() for p in wanted.split(",")}:
        os._exit(137)
