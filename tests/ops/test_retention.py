"""Retention purges old identifiable extracts, keeps recent ones, and leaves an audit trail."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from treatment_marts.core.settings import REPO_DIR, Settings
from treatment_marts.ops.retention import load_operations, purge_expired


def seed_period(settings: Settings, period: str) -> None:
    raw = settings.raw_dir / f"period={period}"
    raw.mkdir(parents=True)
    (raw / "extract.0123456789ab.csv").write_text("x")
    (raw / "extract.0123456789ab.csv.sha256").write_text("x")
    (raw / "extract.0123456789ab.csv").chmod(0o400)
    landed = settings.restricted_dir / "landed" / f"period={period}"
    landed.mkdir(parents=True)
    (landed / "extract.0123456789ab.parquet").write_text("x")


def test_purge_keeps_the_window_and_audits(tmp_path: Path) -> None:
    settings = Settings.from_env(data_root=tmp_path)
    for period in ("2021-12", "2022-02", "2022-03", "2024-03"):
        seed_period(settings, period)
    entries = purge_expired(settings, current_period="2024-03", raw_months=24)
    assert sorted({e["period"] for e in entries}) == ["2021-12", "2022-02"]
    assert sorted(p.name for p in settings.raw_dir.iterdir()) == ["period=2022-03", "period=2024-03"]
    audit = settings.restricted_dir / "audit" / "retention.jsonl"
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert len(lines) == 4 and {line["zone"] for line in lines} == {"raw", "landed"}
    assert lines[0]["sha256"] == ["0123456789ab"] and lines[0]["files"] == 2
    assert stat.S_IMODE(audit.stat().st_mode) == 0o600


def test_shipped_policy_loads() -> None:
    assert load_operations(REPO_DIR / "include" / "config").retention.raw_months == 24
