"""Public metadata carries no count of people: only provenance, rules and counts of cells.

Regression for the attack on the release manifest: `Little_Haven.csv rows: 3` capped an area at 3 clients
and pinned 58 suppressed cells; `episodes_in` and `excluded_no_consent` did the same for a small extract.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from treatment_marts.core.settings import Settings
from treatment_marts.ops.synth import generate_extract, write_extract
from treatment_marts.pipeline.run import run_period
from treatment_marts.publish.public_facts import public_facts

PERIOD = "2024-03"
# Integers a public manifest may hold, by path: configuration and counts of cells or table rows.
ALLOWED_INTEGERS = ("k", "suppressed_cells", "audit.cells_checked", "audit.disclosed", "rows.*", "parquet.options.*")


def _integers(node: object, path: str = "") -> list[tuple[str, int]]:
    if isinstance(node, bool):
        return []
    if isinstance(node, int):
        return [(path, node)]
    if isinstance(node, dict):
        return [i for k, v in node.items() for i in _integers(v, f"{path}.{k}" if path else str(k))]
    if isinstance(node, list):
        return [i for v in node for i in _integers(v, f"{path}[]")]
    return []


def _allowed(path: str) -> bool:
    return any(path == a or (a.endswith(".*") and path.startswith(a[:-1])) for a in ALLOWED_INTEGERS)


def test_public_facts_drop_every_count_of_people() -> None:
    manifest = {
        "run_id": "r",
        "period": PERIOD,
        "k": 3,
        "inputs": [{"source": "Little_Haven.csv", "sha256": "a" * 64, "rows": 3}],
        "episodes_in": 5,
        "excluded_no_consent": 2,
        "a_fact_added_later": 7,
        "suppressed_cells": 12,
    }
    facts = public_facts(manifest)
    assert facts["inputs"] == [{"source": "Little_Haven.csv", "sha256": "a" * 64}]
    assert not {"episodes_in", "excluded_no_consent", "a_fact_added_later"} & set(facts)
    assert [path for path, _ in _integers(facts) if not _allowed(path)] == []


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    base = tmp_path_factory.mktemp("facts")
    settings = Settings.from_env(data_root=base / "data")
    frame = generate_extract(PERIOD, clients=2000, areas=["Northton", "Southmoor"], seed=5)
    run_period(settings, PERIOD, write_extract(frame, base / "inbox" / "extract.csv"), run_id="facts_1")
    return settings


def test_no_public_manifest_or_warehouse_row_carries_a_count_of_people(published: Settings) -> None:
    public = published.public_dir
    manifests = [public / "releases" / f"period={PERIOD}" / "manifest.json"]
    manifests += sorted((public / "marts").glob(f"*/period={PERIOD}/_manifest.json"))
    assert len(manifests) > 10
    documents = {str(p.relative_to(public)): json.loads(p.read_text()) for p in manifests}
    engine = sa.create_engine(published.warehouse_url)
    with engine.connect() as conn:
        rows = pd.read_sql("select manifest from releases", conn)
    engine.dispose()
    documents |= {f"warehouse releases row {i}": json.loads(m) for i, m in enumerate(rows["manifest"])}
    for name, document in documents.items():
        leaked = [(path, value) for path, value in _integers(document) if not _allowed(path)]
        assert leaked == [], f"{name} publishes counts: {leaked}"
        assert "episodes_in" not in json.dumps(document) and "excluded_no_consent" not in json.dumps(document)
    restricted = json.loads((published.restricted_dir / "runs" / "facts_1" / "run_manifest.json").read_text())
    assert restricted["episodes_in"] > 0 and restricted["inputs"][0]["rows"] > 0  # kept where IG can see them


def test_the_suppression_log_manifest_is_restricted(published: Settings) -> None:
    logs = list((published.restricted_dir / "suppression_log" / ".releases").rglob("_manifest.json"))
    assert logs and all(p.stat().st_mode & 0o077 == 0 for p in logs)
    assert not any(Path(p).is_relative_to(published.public_dir) for p in logs)
