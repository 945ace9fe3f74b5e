"""The whole pipeline in-process, in the DAG's order (used by `treatment-marts run` and the benchmark).

As in the DAG, the IG review evidence (`pipeline.review`) is written right after protect, before publish."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from treatment_marts.core.faults import fault_point  # kill-test hook (TREATMENT_MARTS_FAULT), a no-op otherwise
from treatment_marts.core.ids import Period, RunId, checked, new_run_id
from treatment_marts.core.memory import release_memory  # one process for every stage: see memory.py
from treatment_marts.core.settings import Settings
from treatment_marts.pipeline.land import LandResult, land
from treatment_marts.pipeline.protect import ProtectResult, protect
from treatment_marts.pipeline.publish import PublishedRelease, publish
from treatment_marts.pipeline.record import period_lock
from treatment_marts.pipeline.review import ReviewEvidence, write_review
from treatment_marts.pipeline.validate import ValidateResult, validate

log = logging.getLogger(__name__)

STAGES = ("land", "validate", "protect", "publish")

StageHook = Callable[[str], AbstractContextManager[object]]
"""Called with a stage's name (one of STAGES); the context manager it returns wraps that stage (and the
memory release after it), e.g. to time it and sample its RSS (ops.bench)."""


@dataclass(frozen=True)
class PeriodRun:
    land: LandResult
    validate: ValidateResult
    protect: ProtectResult
    publish: PublishedRelease
    review: ReviewEvidence | None = None


def protect_logged(settings: Settings, period: Period, run_id: RunId, landed_paths: list[str]) -> ProtectResult:
    """`protect` with a line before and after: it is the longest stage (recode, marts, suppression, audit)."""
    started = time.monotonic()
    log.info("protect %s: %d accepted file(s): recode, build the marts, suppress, audit", period, len(landed_paths))
    result = protect(settings, period, run_id, landed_paths)
    log.info(
        "protect %s: %d mart(s) staged, %d cell(s) suppressed and audited in %.1fs",
        period,
        len(result.marts),
        result.suppressed_cells,
        time.monotonic() - started,
    )
    return result


def _no_hook(stage: str) -> AbstractContextManager[object]:
    return contextlib.nullcontext()


def run_period(
    settings: Settings,
    period: Period,
    extract_paths: list[str | Path] | str | Path,
    run_id: RunId | None = None,
    *,
    around_stage: StageHook = _no_hook,
) -> PeriodRun:
    """Land, validate, protect (the accepted files) and publish one period, holding the period's lock."""
    period, run_id = checked(period, run_id or new_run_id())
    with period_lock(settings, period):
        return _run_stages(settings, period, extract_paths, run_id, around_stage)


def _run_stages(
    settings: Settings,
    period: Period,
    extract_paths: list[str | Path] | str | Path,
    run_id: RunId,
    around_stage: StageHook,
) -> PeriodRun:
    with around_stage("land"):
        landed = land(settings, period, extract_paths, run_id)
        fault_point("stage:after_land")
        release_memory()
    with around_stage("validate"):
        validated = validate(settings, period, run_id, landed.landed_paths)
        fault_point("stage:after_validate")
        release_memory()
    with around_stage("protect"):
        protected = protect_logged(settings, period, run_id, validated.accepted_paths)
        review = write_review(settings, period, run_id, protected.staged_dir)
        fault_point("stage:after_protect")
        release_memory()
    with around_stage("publish"):
        published = publish(settings, period, run_id, protected.staged_dir)
    return PeriodRun(land=landed, validate=validated, protect=protected, publish=published, review=review)
