"""The IG review evidence, on real runs: written after protect and before anything is published, with the
withheld cells counted in the marts themselves, loss per area and group, what validation let through and
what changed since the previous release."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from treatment_marts.core.settings import Settings
from treatment_marts.ops.synth import generate_extract, write_extract
from treatment_marts.pipeline.land import land
from treatment_marts.pipeline.protect import protect
from treatment_marts.pipeline.publish import publish
from treatment_marts.pipeline.review import GROUPS, read_review, write_review
from treatment_marts.pipeline.run import run_period
from treatment_marts.pipeline.summary import approval_markdown, disclosure_summary
from treatment_marts.pipeline.validate import validate
from treatment_marts.publish.ig_report import REPORT_FILES, SUPPRESSION_LOG_CSV

AREAS = ["Northton", "Southmoor"]


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """February published; March protected and reviewed (a few modality starts before triage: a warning-level
    rule), not yet published; then March published, and re-run (a revision) reviewed against that release."""
    settings = Settings.from_env(data_root=tmp_path_factory.mktemp("data"))
    inbox = tmp_path_factory.mktemp("inbox")
    feb = generate_extract("2024-02", clients=2000, areas=AREAS, seed=7)
    run_period(settings, "2024-02", write_extract(feb, inbox / "feb.csv"), run_id="feb_run")
    march = generate_extract("2024-03", clients=2000, areas=AREAS, seed=8)
    rows = march.index[march["modality_start"].notna() & march["triage_date"].notna()][:6]
    march.loc[rows, "modality_start"] = march.loc[rows, "triage_date"] - pd.Timedelta(days=2)
    path = write_extract(march, inbox / "mar.csv")
    landed = land(settings, "2024-03", path, "mar_run")
    validated = validate(settings, "2024-03", "mar_run", landed.landed_paths)
    protected = protect(settings, "2024-03", "mar_run", validated.accepted_paths)
    public_before = sorted(p.name for p in (settings.public_dir / "releases").glob("period=*"))
    evidence = write_review(settings, "2024-03", "mar_run", protected.staged_dir)
    pages_before = {name: (evidence.folder / name).exists() for name in REPORT_FILES}
    published = publish(settings, "2024-03", "mar_run", protected.staged_dir)
    revision = run_period(settings, "2024-03", path, run_id="mar_run_2")
    return {
        "settings": settings,
        "evidence": evidence,
        "protected": protected,
        "public_before": public_before,
        "pages_before": pages_before,
        "published": published,
        "revision": revision,
        "extracts": pd.concat([feb, march], ignore_index=True),
    }


def test_the_evidence_is_written_before_anything_is_published(staged: dict) -> None:
    assert staged["public_before"] == ["period=2024-02"], "March was not published when its review was written"
    assert all(staged["pages_before"].values()), staged["pages_before"]
    evidence = staged["evidence"]
    assert evidence.folder.is_relative_to(staged["settings"].restricted_dir)
    assert evidence.folder.parent == Path(staged["protected"].staged_dir)
    assert read_review(staged["protected"].staged_dir) == json.loads(json.dumps(evidence.summary))


def test_withheld_cells_are_counted_in_every_mart_derived_ones_included(staged: dict) -> None:
    figures = staged["evidence"].summary
    marts = Path(staged["protected"].staged_dir) / "marts"
    log = pd.read_parquet(Path(staged["protected"].staged_dir) / "suppression_log.parquet")
    by_mart = {m["mart"]: m for m in figures["marts"]}
    assert set(by_mart) == {p.stem for p in marts.glob("*.parquet")}
    for name, row in by_mart.items():
        status = pd.read_parquet(marts / f"{name}.parquet")["status"]
        assert row["withheld"] == int(status.eq("c").sum()) and row["cells"] == len(status)
        assert row["primary"] + row["secondary"] + row["derived"] == row["withheld"]
    unmet = by_mart["unmet_need_area_substance"]
    assert unmet["withheld"] > 0 and unmet["derived"] == unmet["withheld"], "no log rows, still withheld"
    assert figures["totals"]["withheld"] == sum(m["withheld"] for m in figures["marts"]) > len(log)
    summary = disclosure_summary(figures)
    assert summary.suppressed_cells == figures["totals"]["withheld"]
    assert {
        "mart": "unmet_need_area_substance",
        "cells": unmet["cells"],
        "suppressed": unmet["withheld"],
    } in summary.marts


def test_loss_per_area_and_group_sits_beside_primary_suppression_alone(staged: dict) -> None:
    figures = staged["evidence"].summary
    log = pd.read_parquet(Path(staged["protected"].staged_dir) / "suppression_log.parquet")
    assert set(figures["groups"]) == set(GROUPS.values())
    areas = {row["value"]: row for row in figures["groups"]["Area"]}
    assert set(AREAS) <= set(areas)
    assert sum(r["withheld"] for r in areas.values()) == figures["totals"]["withheld"]
    assert sum(r["primary_alone"] for r in areas.values()) == int((log["suppression"] == "primary").sum())
    for label in ("Sex", "Ethnic group", "Religion"):
        rows = figures["groups"][label]
        assert rows and all(0 <= r["primary_alone"] <= r["withheld"] <= r["cells"] for r in rows), label
    assert any(r["withheld"] > r["primary_alone"] for r in figures["groups"]["Ethnic group"]), "secondary's cost"


def test_the_summary_lists_what_validation_let_through(staged: dict) -> None:
    checked = staged["evidence"].summary["validation"]
    assert {
        "area": "",
        "rule": "modality_start is on or after triage_date",
        "column": "modality_start, triage_date",
    } in (checked["warnings"])
    body = approval_markdown(disclosure_summary(staged["evidence"].summary), "/governance/report/2024-03/mar_run/")
    assert "Validation let through: " in body and "modality_start is on or after triage_date" in body
    assert body.index("Areas left out") < body.index("Open the IG report") < body.index("| mart |")


def test_changes_are_against_the_previous_month_then_the_release_a_revision_replaces(staged: dict) -> None:
    first = staged["evidence"].summary["changes"]
    assert first["against"] == {"period": "2024-02", "run_id": "feb_run"}
    assert all("newly_withheld" not in row for row in first["marts"]), "another month: no cell-by-cell match"
    revision = staged["revision"].review.summary["changes"]
    assert revision["against"] == {"period": "2024-03", "run_id": "mar_run"}
    rows = {row["mart"]: row for row in revision["marts"]}
    before = pd.read_parquet(
        staged["settings"].public_dir / "marts" / "in_treatment_substance_area_sex" / "period=2024-03"
    )
    assert rows["in_treatment_substance_area_sex"]["before"] == int((before["status"] == "c").sum())
    assert all("newly_withheld" in row and "newly_published" in row for row in rows.values())
    assert sum(row["newly_published"] for row in rows.values()) == 0, "a revision keeps withheld cells withheld"


def test_the_report_is_small_pii_free_and_publishing_only_adds_where_and_when(staged: dict) -> None:
    folder = staged["evidence"].folder
    pages = {name: (folder / name).read_text() for name in REPORT_FILES if name.endswith(".html")}
    assert sum(len(text) for text in pages.values()) < 150_000
    index = pages["index.html"]
    assert index.index('id="areas-left-out"') < index.index('id="audit"') < index.index('id="loss-by-mart"')
    for table in ("group-area", "group-sex", "group-ethnic-group", "group-religion", "changes"):
        assert f'id="{table}"' in index, table
    assert "Published at" in index and str(staged["published"].manifest) in index
    assert Path(staged["published"].ig_report) == folder / "index.html"
    frame = staged["extracts"]
    dobs = frame["date_of_birth"].dropna()
    needles = set(frame["client_ref"].dropna().astype(str)) | set(frame["partial_postcode"].dropna().astype(str))
    needles |= set(dobs.dt.strftime("%Y-%m-%d"))
    text = "".join(pages.values()) + (folder / "summary.json").read_text()
    assert not [n for n in needles if n in text]
    log = pd.read_csv(folder / SUPPRESSION_LOG_CSV)
    assert len(log) == len(pd.read_parquet(Path(staged["protected"].staged_dir) / "suppression_log.parquet"))
    assert oct((folder / SUPPRESSION_LOG_CSV).stat().st_mode & 0o777) == oct(0o600)
