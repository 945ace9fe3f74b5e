"""What each task of the monthly DAG does, without Airflow: a RunContext (and the upstream task's XCom)
in, a JSON-able dict (the task's XCom) out.

The DAG file only wires these to Airflow (context, retries, pools, the approval gate). XCom carries
periods, run ids, area names, paths and counts, never data.
"""

from __future__ import annotations

import logging
from typing import Any

from treatment_marts.ops.dag_support import RunContext, extract_location, ig_reviewers

log = logging.getLogger(__name__)


def plan(run: RunContext, extract_param: str | None) -> list[dict[str, Any]]:
    """The period's units (one per area file, or one combined file)."""
    from treatment_marts.pipeline.areas import plan_areas

    location = extract_location(run.settings, run.period, extract_param)
    return [u.to_dict() for u in plan_areas(run.settings, run.period, run.run_id, location)]


def land_unit(run: RunContext, unit: dict[str, Any]) -> dict[str, Any]:
    from treatment_marts.pipeline.areas import AreaUnit, land_area

    return land_area(run.settings, run.period, run.run_id, AreaUnit.from_dict(unit)).to_dict()


def validate_unit(run: RunContext, landed: dict[str, Any]) -> dict[str, Any]:
    from treatment_marts.pipeline.areas import AreaLanded, validate_area

    return validate_area(run.settings, run.period, run.run_id, AreaLanded.from_dict(landed)).to_dict()


def protect_accepted(run: RunContext, expected_areas: list[str] | None, gate: bool = False) -> dict[str, Any]:
    """Gather the areas that passed (from the run's plan), protect them, and write the IG review evidence
    (report, approval summary, log CSV) before the gate, whose body links the report."""
    from treatment_marts.governance.runs_page import report_url
    from treatment_marts.pipeline.areas import accept_areas
    from treatment_marts.pipeline.record import period_lock
    from treatment_marts.pipeline.review import write_review
    from treatment_marts.pipeline.run import protect_logged
    from treatment_marts.pipeline.summary import approval_markdown, disclosure_summary

    with period_lock(run.settings, run.period):  # no other run of the month protects or publishes meanwhile
        accepted = accept_areas(run.settings, run.period, run.run_id, expected_areas=expected_areas)
        result = protect_logged(run.settings, run.period, run.run_id, accepted.landed_paths)
    log.info(
        "protect %s: %d area(s) in the release (%s), %d left out",
        run.period,
        len(accepted.included),
        ", ".join(accepted.included),
        len(accepted.excluded),
    )
    review = write_review(run.settings, run.period, run.run_id, result.staged_dir, accepted.excluded, gate=gate)
    summary = disclosure_summary(review.summary)
    url = report_url(str(run.period), str(run.run_id))
    return {
        **result.to_dict(),
        "included": list(accepted.included),
        "excluded": [e.to_dict() for e in accepted.excluded],
        "ig_report": str(review.report),
        "ig_report_url": url,
        "approval_body": approval_markdown(summary, url),
    }


def publish_protected(run: RunContext, protected: dict[str, Any]) -> dict[str, Any]:
    """Publish the staged release `protect_accepted` described; the asset event's extra and the XCom."""
    from treatment_marts.pipeline.protect import ProtectResult
    from treatment_marts.pipeline.publish import publish
    from treatment_marts.pipeline.record import period_lock

    staged = ProtectResult.from_dict(protected)
    with period_lock(run.settings, staged.period):
        result = publish(run.settings, staged.period, staged.run_id, staged.staged_dir)
    return {
        "period": str(result.period),
        "run_id": str(result.run_id),
        "marts": sorted(result.marts),
        "excluded": protected["excluded"],
        "suppression_log": str(result.suppression_log),
        "ig_report": str(result.ig_report),
    }


def asset_event_extra(published: dict[str, Any]) -> dict[str, Any]:
    """What consumers of the public-marts asset learn about a release (no data)."""
    return {
        "period": published["period"],
        "run_id": published["run_id"],
        "marts": published["marts"],
        "areas_left_out": sorted(e["unit"] for e in published["excluded"]),
    }


def left_out_message(published: dict[str, Any]) -> str | None:
    """Why the run must end failed (areas left out of a published release), or None."""
    excluded = published["excluded"]
    if not excluded:
        return None
    return f"published {published['period']} without {len(excluded)} area(s): " + "; ".join(
        f"{e['unit']} ({e['stage']}: {e['reason'][:300]})" for e in excluded
    )


def record_ig_decision(
    run: RunContext, event: dict[str, Any], reject: str, triggered_by: str | None = None
) -> str | None:
    """Record the HITL response (who, when, why) in the run record; the reason publication must not go
    ahead, or None when an IG reviewer approved.

    Separation of duties, checked here whatever the UI allowed: the user who triggered the run cannot
    approve it, and when `TREATMENT_MARTS_IG_REVIEWERS` names the reviewers only they can. A rejection needs
    no more than a click, but is recorded with its reason (or that none was given); each of these ends the
    run failed, so a refused release never looks green.
    """
    from treatment_marts.pipeline.summary import record_approval

    user = event.get("responded_by_user") or {}
    by = str(user.get("name") or user.get("id") or "unknown")
    comment = str((event.get("params_input") or {}).get("comment") or "")
    # No decision arrived (the response timeout passed, or the resume carried an error): never approval.
    answered = "error" not in event and bool(event.get("chosen_options"))
    chosen = (
        str(event["chosen_options"][0])
        if answered
        else f"no decision ({event.get('error_type') or 'no option chosen'})"
    )
    reviewers = ig_reviewers()
    problem = None
    if not answered:
        problem = f"no IG decision on the release of {run.period} ({chosen}): nothing published"
    elif chosen == reject:
        problem = f"IG reviewer {by} rejected the release of {run.period}: {comment or 'no reason given'}"
    elif triggered_by and by == triggered_by:
        problem = f"{by} triggered this run and cannot approve it (separation of duties): nothing published"
    elif reviewers and by not in reviewers:
        problem = f"{by} is not an IG reviewer (TREATMENT_MARTS_IG_REVIEWERS) and cannot approve: nothing published"
    refused = problem is not None and answered and chosen != reject  # an approval this user may not give
    record_approval(
        run.settings,
        run.run_id,
        decision=f"refused approval by {by}" if refused else chosen,
        by=by,
        at=str(event.get("responded_at")),
        comment=comment if answered else "",
    )
    return problem
