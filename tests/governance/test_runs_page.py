"""The governance listing, on real runs of the pipeline: two published periods, a re-run, a failed extract."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from treatment_marts.core.settings import Settings
from treatment_marts.governance.runs_page import (
    Approval,
    ig_report_file,
    list_runs,
    read_approval,
    render_runs_page,
)
from treatment_marts.ops.synth import generate_extract, write_extract
from treatment_marts.pipeline.record import run_dir
from treatment_marts.pipeline.run import run_period

AREAS = ["Northton", "Southmoor"]  # two areas keep four real runs quick


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, pd.DataFrame]:
    """2024-02 published, 2024-03 published twice (the first run superseded), then a bad 2024-03 extract."""
    from treatment_marts.validation.gx_runner import ValidationFailed

    inbox = tmp_path_factory.mktemp("inbox")
    settings = Settings.from_env(data_root=tmp_path_factory.mktemp("data"))
    frames = []
    for period, run_ids in (("2024-02", ["feb_run"]), ("2024-03", ["mar_run_1", "mar_run_2"])):
        frame = generate_extract(period, clients=2000, areas=AREAS, seed=7)
        frames.append(frame)
        path = write_extract(frame, inbox / f"{period}.csv")
        for run_id in run_ids:
            run_period(settings, period, path, run_id=run_id)
    bad = frames[-1].copy()
    bad.loc[bad.index[:5], "sex"] = "X"
    with pytest.raises(ValidationFailed):
        run_period(settings, "2024-03", write_extract(bad, inbox / "bad.csv"), run_id="mar_bad")
    return settings, pd.concat(frames, ignore_index=True)


def test_every_run_is_listed_newest_period_first(history: tuple[Settings, pd.DataFrame]) -> None:
    runs = list_runs(history[0])
    assert [r.period for r in runs] == ["2024-03", "2024-03", "2024-03", "2024-02"]
    assert {r.run_id for r in runs} == {"feb_run", "mar_run_1", "mar_run_2", "mar_bad"}
    by_id = {r.run_id: r for r in runs}
    assert by_id["feb_run"].publication == "current" and by_id["mar_run_2"].publication == "current"
    assert by_id["mar_run_1"].publication == "superseded"
    assert by_id["mar_bad"].publication == "not published"


def test_suppression_summary_matches_the_published_marts(history: tuple[Settings, pd.DataFrame]) -> None:
    settings, _ = history
    feb = next(r for r in list_runs(settings) if r.run_id == "feb_run")
    assert feb.validation in ("passed", "passed with warnings") and feb.audit == "passed" and feb.has_ig_report
    assert len(feb.marts) > 3
    for mart in feb.marts:
        public = pd.read_parquet(settings.public_dir / "marts" / mart.mart / "period=2024-02")
        assert mart.cells == len(public)
        assert mart.suppressed == int((public["status"] == "c").sum())
        if mart.mart.startswith("unmet_need"):  # derived after suppression: withheld with its counts, no log rows
            assert mart.primary + mart.secondary == 0
        else:
            assert mart.primary + mart.secondary == mart.suppressed
        assert mart.percent_hidden == round(100 * mart.suppressed / mart.cells, 1)
    assert feb.suppressed > 0 and 0 < feb.percent_hidden < 100
    assert feb.data_docs and all(p.startswith("validations/") and "/feb_run-" in p for p in feb.data_docs)
    manifest = json.loads((run_dir(settings, "feb_run") / "run_manifest.json").read_text())
    logged = sum(m.suppressed for m in feb.marts if not m.mart.startswith("unmet_need"))
    assert logged == manifest["suppressed_cells"]


def test_a_failed_extract_shows_the_rule_and_column_but_no_counts(history: tuple[Settings, pd.DataFrame]) -> None:
    bad = next(r for r in list_runs(history[0]) if r.run_id == "mar_bad")
    assert bad.validation == "failed" and bad.audit == "not run" and not bad.marts and not bad.has_ig_report
    assert any(issue.startswith("blocking:") and issue.endswith("on sex") for issue in bad.validation_issues)
    assert not any(ch.isdigit() for issue in bad.validation_issues for ch in issue.split(" on ")[-1])


def test_the_page_lists_runs_without_any_identifier(history: tuple[Settings, pd.DataFrame]) -> None:
    settings, frame = history
    page = render_runs_page(list_runs(settings), report_url=lambda run: f"report/{run.period}/{run.run_id}/")
    for run_id in ("feb_run", "mar_run_1", "mar_run_2", "mar_bad"):
        assert f'data-run-id="{run_id}"' in page
    assert 'href="report/2024-02/feb_run/"' in page and "report/2024-03/mar_bad" not in page
    assert 'href="report/2024-02/feb_run/suppression_log.csv"' in page, "the log is downloadable as CSV"
    assert 'id="data-docs" href="data-docs/index.html"' in page
    needles = set(frame["client_ref"].dropna().astype(str)) | set(frame["partial_postcode"].dropna().astype(str))
    dobs = frame["date_of_birth"].dropna()
    needles |= set(dobs.dt.strftime("%Y-%m-%d")) | set(dobs.dt.strftime("%d/%m/%Y"))
    assert not [n for n in needles if n in page]
    assert "true_count" not in page and "audit_lower" not in page


def test_the_page_escapes_what_it_shows() -> None:
    from treatment_marts.governance.runs_page import RunView

    run = RunView(
        run_id="r1",
        period="2024-01",
        started_at=None,
        validation="failed",
        validation_issues=("blocking: <script>alert(1)</script> on x",),
        approval=Approval(decision="rejected", by="<b>x</b>"),
    )
    page = render_runs_page([run], report_url=lambda r: "#")
    assert "<script>alert" not in page and "&lt;script&gt;" in page and "&lt;b&gt;x&lt;/b&gt;" in page


@pytest.mark.parametrize(
    ("name", "record", "expected"),
    [
        (
            "approval.json",
            {"decision": "Approve", "by": "ig.reviewer", "at": "2024-04-02T10:00:00+00:00", "reason": "ok"},
            Approval("approved", "ig.reviewer", "2024-04-02T10:00:00+00:00"),
        ),
        (
            "approval.json",
            {"chosen_options": ["Reject"], "responded_by": {"id": "7", "name": "ig.lead"}},
            Approval("rejected", "ig.lead", None),
        ),
        (
            "run_record.json",
            {"period": "2024-03", "approval": {"status": "rejected", "reviewer": "ig.lead", "reason": "see notes"}},
            Approval("rejected", "ig.lead", None),
        ),
        ("run_record.json", {"approval": {"approved": True, "user": "ig.x"}}, Approval("approved", "ig.x", None)),
        ("approval.json", {"status": "pending"}, Approval("pending", None, None)),
    ],
)
def test_approval_records_are_read_whatever_their_shape(
    tmp_path: Path, name: str, record: dict, expected: Approval
) -> None:
    (tmp_path / name).write_text(json.dumps(record))
    assert read_approval(tmp_path) == expected


def test_a_missing_or_damaged_approval_record_is_no_record(tmp_path: Path) -> None:
    assert read_approval(tmp_path) is None
    (tmp_path / "approval.json").write_text("{not json")
    assert read_approval(tmp_path) is None
    (tmp_path / "approval.json").write_text(json.dumps({"note": "no decision yet"}))
    assert read_approval(tmp_path) is None


def test_an_approval_record_shows_on_the_run(history: tuple[Settings, pd.DataFrame]) -> None:
    settings, _ = history
    record = run_dir(settings, "mar_run_2") / "approval.json"
    record.write_text(json.dumps({"decision": "approved", "by": "ig.reviewer", "reason": "checked"}))
    try:
        run = next(r for r in list_runs(settings) if r.run_id == "mar_run_2")
        assert run.approval == Approval("approved", "ig.reviewer", None)
        page = render_runs_page([run], report_url=lambda r: "#")
        assert "ig.reviewer" in page and "checked" not in page  # the reason stays in the restricted record
    finally:
        record.unlink()


def test_ig_report_paths_cannot_leave_the_review_folder(history: tuple[Settings, pd.DataFrame]) -> None:
    settings, _ = history
    report = ig_report_file(settings, "2024-02", "feb_run")
    assert report == run_dir(settings, "feb_run") / "review" / "index.html" and report.is_file()
    assert ig_report_file(settings, "2024-02", "feb_run", "suppression_log.csv") is not None
    for page in ("summary.json", "../run_manifest.json", "marts/x.parquet", ""):
        assert ig_report_file(settings, "2024-02", "feb_run", page) is None, page
    assert ig_report_file(settings, "2024-03", "feb_run") is None, "a run's report only under its own period"
    for period, run_id in (
        ("2024-02", "../feb_run"),
        ("../2024-02", "feb_run"),
        ("2024-02", "..%2Ffeb_run"),
        ("2024-13", "feb_run"),
        ("2024-02", ".hidden"),
        ("2024-03", "mar_bad"),
    ):
        assert ig_report_file(settings, period, run_id) is None


def test_an_empty_or_damaged_data_root_lists_what_it_can(
    tmp_path: Path, history: tuple[Settings, pd.DataFrame]
) -> None:
    empty = Settings.from_env(data_root=tmp_path / "nothing")
    assert list_runs(empty) == []
    assert 'id="no-runs"' in render_runs_page([], report_url=lambda r: "#")
    settings = Settings.from_env(data_root=tmp_path / "root")
    junk = settings.restricted_dir / "runs" / "junk"
    junk.mkdir(parents=True)
    (junk / "landed.json").write_text("[1, 2")
    assert list_runs(settings) == []


def test_a_per_area_run_folds_its_area_folders_into_one_line(
    tmp_path: Path, history: tuple[Settings, pd.DataFrame]
) -> None:
    """The DAG's per-area layout (plan.json, areas.json, one `<run_id>.<unit>` folder per area), built from
    real run folders: Northton validated, Southmoor failed validation and was left out."""
    import shutil

    source = history[0].restricted_dir / "runs"
    settings = Settings.from_env(data_root=tmp_path / "root")
    runs = settings.restricted_dir / "runs"
    shutil.copytree(source / "mar_run_2", runs / "dag_run")
    (runs / "dag_run" / "validation.json").unlink()
    (runs / "dag_run" / "plan.json").write_text(
        json.dumps({"period": "2024-03", "units": [{"unit": "Northton"}, {"unit": "Southmoor"}]})
    )
    (runs / "dag_run" / "areas.json").write_text(
        json.dumps(
            {
                "included": ["Northton"],
                "excluded": [{"unit": "Southmoor", "stage": "validate", "reason": "ValidationFailed: ..."}],
            }
        )
    )
    shutil.copytree(source / "mar_run_1", runs / "dag_run.Northton")
    shutil.copytree(source / "mar_bad", runs / "dag_run.Southmoor")
    listed = list_runs(settings)
    assert [r.run_id for r in listed] == ["dag_run"]
    run = listed[0]
    assert run.validation == "failed for 1 of 2 area(s)" and run.areas_left_out == ("Southmoor (validate)",)
    assert any(issue.endswith("on sex [Southmoor]") for issue in run.validation_issues)
    assert run.audit == "passed" and run.marts
    page = render_runs_page(listed, report_url=lambda r: "#")
    assert '<span class="bad areas-left-out">Southmoor (validate)</span>' in page and "ValidationFailed" not in page
    assert page.index("areas-left-out") < page.index('class="validation"'), "areas left out come first"


def test_a_run_waiting_at_the_gate_shows_its_evidence(tmp_path: Path, history: tuple[Settings, pd.DataFrame]) -> None:
    """Protected and reviewed, no decision, not published: the page says so and links the report."""
    import shutil

    settings = Settings.from_env(data_root=tmp_path / "root")
    shutil.copytree(run_dir(history[0], "mar_run_2"), run_dir(settings, "staged"))
    staged = next(r for r in list_runs(settings) if r.run_id == "staged")
    assert staged.approval is None, "no gate holds a release staged without one (e.g. its publish failed)"
    shutil.copytree(run_dir(history[0], "mar_run_2"), run_dir(settings, "waiting"))
    summary = run_dir(settings, "waiting") / "review" / "summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "gate": True}))
    run = next(r for r in list_runs(settings) if r.run_id == "waiting")
    assert run.approval == Approval("awaiting IG decision") and run.publication == "not published"
    assert run.has_ig_report and run.suppressed == sum(m.suppressed for m in run.marts) > 0
