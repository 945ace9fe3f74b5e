"""The completions mart is protected against the exits of its window months (issue 13).

Every successful completion counted in `completions_followed_up` is a successful exit of one month of its
completion window, and those months' releases published the exits by reason. An attacker adds them up and
bounds each completions cell (area x substance group) from above; protected alone, the completions mart
gave cells away that way. The release audit and the suppressor now hold that bound, built from what the
earlier releases published (withheld exits at the upper end of their audit interval).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from treatment_marts.core.config import load_areas, load_rules
from treatment_marts.core.settings import Settings
from treatment_marts.deidentify.recode import recode
from treatment_marts.disclosure.audit import audit
from treatment_marts.disclosure.protect import protect_release
from treatment_marts.disclosure.relations import upper_bound_relations
from treatment_marts.disclosure.tables import MartTable, table_cell
from treatment_marts.marts import build_mart, dimension_levels, load_marts, select_population
from treatment_marts.marts.completion_bounds import (
    completion_bound_slack,
    published_exit_bounds,
    true_exit_sums,
    window_months,
)
from treatment_marts.marts.definitions import MartDefinition
from treatment_marts.marts.populations import NOT_REPRESENTED, REPRESENTED, SUCCESS
from treatment_marts.ops.synth import generate_history
from treatment_marts.pipeline.protect import COMPLETIONS, EarlierReleaseUnreadable, as_dimensions, published_exits

PERIOD = "2024-12"  # completions January-June 2024, followed up to December


def exits_month(month: str, success: dict[tuple[str, str], float | None], upper: float = 9.0) -> pd.DataFrame:
    """A published exits-by-reason mart of one month: successful exits per (area, substance), None withheld."""
    rows = []
    for (area, substance), count in success.items():
        rows.append(
            {
                "period": month,
                "area": area,
                "substance_group": substance,
                "discharge_group": SUCCESS,
                "count": count,
                "upper": upper if count is None else count,
            }
        )
    frame = pd.DataFrame(rows)
    frame["count"] = frame["count"].astype("Float64")
    frame["upper"] = frame["upper"].astype("Float64")
    return frame


def test_window_months_are_the_six_completion_months() -> None:
    assert window_months(PERIOD) == [f"2024-0{m}" for m in range(1, 7)]


def test_the_bound_sums_published_exits_and_withheld_ones_at_their_audit_upper() -> None:
    published = {m: exits_month(m, {("A", "Alcohol only"): 4.0, ("A", "Total"): 4.0}) for m in window_months(PERIOD)}
    published["2024-03"] = exits_month("2024-03", {("A", "Alcohol only"): None, ("A", "Total"): 6.0}, upper=7.0)
    bounds = published_exit_bounds(published, PERIOD).set_index(["area", "substance_group"])["bound"]
    assert bounds[("A", "Alcohol only")] == 4 * 5 + 7  # five published months of 4, one withheld, at most 7
    assert bounds[("A", "Total")] == 4 * 5 + 6


def test_a_month_without_a_release_gives_no_bound_and_nor_does_a_withheld_cell_without_an_interval() -> None:
    published: dict[str, pd.DataFrame | None] = {
        m: exits_month(m, {("A", "Alcohol only"): 4.0}) for m in window_months(PERIOD)
    }
    published["2024-02"] = None
    assert published_exit_bounds(published, PERIOD).empty
    published["2024-02"] = exits_month("2024-02", {("A", "Alcohol only"): None}, upper=float("nan"))
    published["2024-02"]["upper"] = pd.array([pd.NA], dtype="Float64")
    assert published_exit_bounds(published, PERIOD).empty


LEVELS = {
    "area": ["A", "B", "C"],
    "substance_group": ["S1", "S2", "S3"],
    "representation": [NOT_REPRESENTED, REPRESENTED],
}
# (did not re-present, re-presented) per area x substance: small cells, as in a small area's half year
CUBE = [[10, 6], [5, 2], [3, 0], [0, 0], [1, 10], [6, 15], [5, 6], [15, 8], [6, 5]]


def completions_table() -> MartTable:
    definition = MartDefinition(
        name="completions_representation_area_substance",
        title="Completions",
        population=COMPLETIONS,
        dimensions=["area", "substance_group", "representation"],
        measure="clients",
    )
    rows = []
    cells = iter(CUBE)
    for area in LEVELS["area"]:
        for substance in LEVELS["substance_group"]:
            for representation, n in zip(LEVELS["representation"], next(cells), strict=True):
                rows += [(area, substance, representation)] * n
    clients = pd.DataFrame(rows, columns=list(LEVELS))
    frame = build_mart(clients, definition, PERIOD, LEVELS)
    return MartTable(name=definition.name, dimensions=tuple(definition.dimensions), frame=frame)


def exit_bounds(table: MartTable) -> list:
    """The window's exits as the attacker adds them up: every completion was a published successful exit
    (a cell of 4 or more in its month), except small ones, withheld and known only to be at most 6 more."""
    frame = table.frame
    totals = frame[frame["representation"] == "Total"]
    return upper_bound_relations(
        COMPLETIONS,
        PERIOD,
        [
            ({"area": a, "substance_group": s}, float(c if c == 0 or c >= 4 else c + 6))
            for a, s, c in totals[["area", "substance_group", "count"]].itertuples(index=False, name=None)
        ],
    )


def test_protected_alone_the_completions_mart_gives_cells_away_to_the_window_exits() -> None:
    table = completions_table()
    alone = protect_release({COMPLETIONS: [table]}, k=3)[COMPLETIONS]
    scopes = [COMPLETIONS]
    assert audit(alone.tables, k=3, true_counts=alone.log, scopes=scopes).passed  # safe on its own ...
    attacked = audit(alone.tables, k=3, true_counts=alone.log, scopes=scopes, relations=exit_bounds(table))
    assert not attacked.passed  # ... but not to an attacker who holds the exits of the window months
    assert int(attacked.intervals["disclosed"].sum()) > 0


def test_protected_with_the_exit_bound_no_cell_is_disclosed() -> None:
    table = completions_table()
    relations = exit_bounds(table)
    protected = protect_release({COMPLETIONS: [table]}, k=3, relations=relations)[COMPLETIONS]
    result = audit(protected.tables, k=3, true_counts=protected.log, scopes=[COMPLETIONS], relations=relations)
    assert result.passed, result.intervals[result.intervals["disclosed"]]


@pytest.fixture(scope="module")
def history() -> tuple[pd.DataFrame, dict, MartDefinition, MartDefinition]:
    settings = Settings.from_env(data_root="/nonexistent")
    rules, areas = load_rules(settings.config_dir), load_areas(settings.config_dir)
    levels = dimension_levels(rules, areas)
    marts = load_marts(settings.config_dir, set(levels))
    frames = [
        as_dimensions(recode(frame, rules, areas, pseudonym_key="completions-test").frame, levels)
        for _, frame in generate_history("2024-01", 12, clients=600, areas=["Northton", "Eastcliff"], seed=3)
    ]
    exits = next(d for d in marts.marts if d.name == "exits_reason_area_substance")
    completions = next(d for d in marts.marts if d.population == COMPLETIONS)
    return pd.concat(frames, ignore_index=True), levels, exits, completions


def test_the_relation_holds_for_the_true_counts_of_a_generated_year(history) -> None:
    frame, levels, exits, completions = history
    clients = select_population(frame, COMPLETIONS, PERIOD)
    table = build_mart(clients, completions, PERIOD, levels)
    truth = true_exit_sums(frame, PERIOD, exits, levels)
    slack = completion_bound_slack(table, truth)
    totals = table[table["representation"] == "Total"].merge(truth, on=["area", "substance_group"])
    assert len(totals) == len(table[table["representation"] == "Total"])
    assert (totals["count"].astype(float) <= totals["bound"] + slack).all()
    assert totals["count"].sum() > 0 and slack <= 2  # completions were counted, nearly all as their exits


def test_published_exits_reads_the_public_mart_and_the_withheld_cells_audit_upper(tmp_path) -> None:
    settings = Settings.from_env(data_root=tmp_path / "data")
    mart, month = "exits_reason_area_substance", "2024-02"
    public = settings.public_dir / "marts" / mart / f"period={month}"
    public.mkdir(parents=True)
    frame = exits_month(month, {("A", "Alcohol only"): None, ("A", "Total"): 12.0}).drop(columns="upper")
    frame.astype({"count": "Int64"}).to_parquet(public / "data.parquet", index=False)
    # no manifest, no log: the withheld cell's interval is unknown, so the bound cannot be modelled -- refused
    # (an attacker who bounds the cell from that month's release would be stronger than the modelled one)
    with pytest.raises(EarlierReleaseUnreadable, match="withholds 1 cell"):
        published_exits(settings, mart, month)
    # the log of the run the month's public manifest names (not the period's suppression-log link)
    releases = settings.public_dir / "releases" / f"period={month}"
    releases.mkdir(parents=True)
    (releases / "manifest.json").write_text(json.dumps({"run_id": "month_run", "marts": [mart]}))
    log_dir = settings.restricted_dir / "runs" / "month_run"
    log_dir.mkdir(parents=True)
    cell = table_cell({"area": "A", "substance_group": "Alcohol only", "discharge_group": SUCCESS})
    other = table_cell({"area": "B", "substance_group": "Alcohol only", "discharge_group": SUCCESS})
    log = pd.DataFrame({"mart": [mart], "cell": [other], "audit_upper": [5.0]})
    log.to_parquet(log_dir / "suppression_log.parquet")
    with pytest.raises(EarlierReleaseUnreadable, match="no protection interval"):
        published_exits(settings, mart, month)  # the log of the run has no interval for this cell
    log.assign(cell=[cell]).to_parquet(log_dir / "suppression_log.parquet")
    assert published_exits(settings, mart, month)["upper"].tolist() == [5.0, 12.0]
    assert published_exits(settings, mart, "2024-03") is None
