"""An analyst's view of a generated month's release (issue 17, "done when"): every mart reads as one
dataset in pandas, pyarrow and DuckDB and in SQL; GSS codes sit beside area names in marts, warehouse and
exports; one margin label; the workbooks keep the GSS structure; and every seed table the marts can
express is rebuilt from the published marts alone, equal to the client-level truth wherever it is
published (a withheld cell is null, never a guess)."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook

from treatment_marts.core.config import load_areas, load_rules
from treatment_marts.core.labels import TOTAL
from treatment_marts.core.settings import Settings
from treatment_marts.deidentify.pseudonymise import pseudonym_key
from treatment_marts.deidentify.recode import recode
from treatment_marts.marts import load_marts, select_population
from treatment_marts.marts.populations import national_clients
from treatment_marts.marts.seed_tables import SEED000, SEED004, Column, SeedTable, ethnicity_vs_population, seed_table
from treatment_marts.ops.synth import generate_extract, write_extract
from treatment_marts.pipeline.run import run_period
from treatment_marts.publish.warehouse import read_table

PERIOD = "2024-03"
SHORTHAND = {"[c]", "[z]", "[x]"}
AREAS = ["Exborough", "Northton", "Southmoor", "Westfield"]
# Seed 000 Table 5 (crack cohort x disability) is the seed's own K3 boundary (cells of 3-5 people): in a month
# this size every location cell of it is withheld, so only its Total can be checked.
SPARSE = {"T5"}


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict[str, pd.DataFrame], pd.DataFrame]:
    """A generated month through the real pipeline (8,000 clients in the two named sites and two large
    Other areas, so the seed cohorts are big enough to be published below the Total); the published marts
    read back, and the client-level frame (restricted: the test's truth, never published) recoded as the
    pipeline did. The other configured areas sent nothing, so the release leaves them out (absent, not zeros)."""
    frame = generate_extract(PERIOD, clients=8000, areas=AREAS, seed=3)
    path = write_extract(frame, tmp_path_factory.mktemp("inbox") / "extract.csv")
    settings = Settings.from_env(data_root=tmp_path_factory.mktemp("data"))
    run_period(settings, PERIOD, path, run_id="analyst_run")
    manifest = json.loads((settings.public_dir / "releases" / f"period={PERIOD}" / "manifest.json").read_text())
    marts = {name: pd.read_parquet(settings.public_dir / "marts" / name) for name in manifest["marts"]}
    rules, areas = load_rules(settings.config_dir), load_areas(settings.config_dir)
    consented = frame[frame["consent"] == "Y"]
    recoded = recode(consented, rules, areas, pseudonym_key=pseudonym_key(settings)).frame
    return settings, marts, recoded


def _areas_in_release(settings: Settings) -> list[str]:
    manifest = json.loads((settings.public_dir / "releases" / f"period={PERIOD}" / "manifest.json").read_text())
    assert manifest["partial"] and set(manifest["areas_left_out"]).isdisjoint(AREAS)
    return [a.name for a in load_areas(settings.config_dir).areas if a.name not in manifest["areas_left_out"]]


# --- reading every period -----------------------------------------------------------------------------


def test_every_configured_mart_is_published(release: tuple[Settings, dict, pd.DataFrame]) -> None:
    settings, marts, _ = release
    catalogue = load_marts(settings.config_dir).marts
    windows = {m.name for m in catalogue if m.window != "month"}  # a first month has no history for them
    assert {m.name for m in catalogue} - set(marts) - windows == {"completions_representation_area_substance"}


def test_every_mart_reads_as_one_dataset_in_pandas_pyarrow_duckdb_and_sql(
    release: tuple[Settings, dict, pd.DataFrame],
) -> None:
    settings, marts, _ = release
    for name, frame in marts.items():
        root = settings.public_dir / "marts" / name
        single = pd.read_parquet(root / f"period={PERIOD}" / "data.parquet")
        assert len(frame) == len(single) > 0, name
        assert pq.read_table(root).num_rows == len(single), name
        got = duckdb.sql(f"SELECT count(*), min(period) FROM read_parquet('{root}/period=*/data.parquet')").fetchall()[
            0
        ]
        assert got == (len(single), PERIOD), name
        assert len(read_table(settings.warehouse_url, name, where_period=PERIOD)) == len(single), name


# --- GSS codes and one margin label ---------------------------------------------------------------------


def test_gss_codes_sit_beside_area_names_in_marts_warehouse_and_exports(
    release: tuple[Settings, dict, pd.DataFrame],
) -> None:
    settings, marts, _ = release
    codes = {a.name: a.code for a in load_areas(settings.config_dir).areas}
    exports = settings.public_dir / "exports" / f"period={PERIOD}"
    with_area = [name for name, frame in marts.items() if "area" in frame.columns]
    assert len(with_area) >= 20
    for name in with_area:
        frame = marts[name]
        assert list(frame.columns).index("area_code") == list(frame.columns).index("area") + 1, name
        areas = frame[frame["area"] != TOTAL]
        assert (areas["area_code"] == areas["area"].map(codes)).all(), name
        assert frame.loc[frame["area"] == TOTAL, "area_code"].isna().all(), name
        warehouse = read_table(settings.warehouse_url, name, where_period=PERIOD)
        assert set(zip(warehouse["area"], warehouse["area_code"].fillna(""), strict=True)) <= {
            *codes.items(),
            (TOTAL, ""),
        }, name
        csv = pd.read_csv(exports / "csv" / f"{name}.csv", dtype=str, keep_default_na=False)
        assert set(csv.loc[csv["area"] == "Exborough", "area_code"]) == {codes["Exborough"]}, name


def test_one_margin_label_in_every_output(release: tuple[Settings, dict, pd.DataFrame]) -> None:
    settings, marts, _ = release
    exports = settings.public_dir / "exports" / f"period={PERIOD}"
    for path in (exports / "csv").glob("*.csv"):
        assert "England (all areas)" not in path.read_text(), path.name
    book = load_workbook(exports / f"Exborough_{PERIOD}.xlsx")
    for sheet in book.worksheets:
        for row in sheet.iter_rows(values_only=True):
            assert not any(isinstance(v, str) and "England (all areas)" in v for v in row), sheet.title
    assert all((frame.astype(str) == TOTAL).any().any() for frame in marts.values())


# --- the workbooks of a generated month ------------------------------------------------------------------


def test_every_area_workbook_has_the_gss_structure_and_numeric_cells(
    release: tuple[Settings, dict, pd.DataFrame],
) -> None:
    settings, marts, _ = release
    catalogue = load_marts(settings.config_dir)
    sheets = {m.name: m.sheet for m in catalogue.marts}
    exports = settings.public_dir / "exports" / f"period={PERIOD}"
    books = sorted(exports.glob("*.xlsx"))
    assert len(books) == len(_areas_in_release(settings)) == len(AREAS)
    assert {p.with_suffix(".ods").name for p in books} == {p.name for p in exports.glob("*.ods")}
    book = load_workbook(exports / f"Exborough_{PERIOD}.xlsx")
    assert book.sheetnames[:3] == ["Cover", "Contents", "Notes"]
    assert sorted(book.sheetnames[3:]) == sorted(sheets[name] for name in marts)
    assert book.properties.language == "en-GB" and "Exborough" in book.properties.title
    numbers = 0
    for name in book.sheetnames[1:]:
        sheet = book[name]
        (table,) = sheet.tables.values()
        assert isinstance(sheet["A1"].value, str) and sheet["A1"].value, name
        rows = [tuple(c.value for c in row) for row in sheet[table.ref]]
        header = rows[0]
        for column in ("Number of people", "Percentage", "Estimated number in need"):
            if column not in header:
                continue
            i = header.index(column)
            for row in rows[1:]:
                assert isinstance(row[i], int | float) or row[i] in SHORTHAND, (name, row)
                numbers += isinstance(row[i], int | float)
    assert numbers > 1000
    ods = pd.read_excel(exports / f"Exborough_{PERIOD}.ods", engine="odf", sheet_name=None, header=None)
    assert list(ods) == book.sheetnames
    assert ods["Unmet need"].iloc[0, 0] == book["Unmet need"]["A1"].value
    for path in books:  # every area's workbook and its ODS copy open with the same structure
        other = load_workbook(path)
        area = path.stem.removesuffix(f"_{PERIOD}").replace("_", " ")
        assert other.sheetnames == book.sheetnames and area in other.properties.title, path.name
        assert all(len(other[name].tables) == 1 for name in other.sheetnames[1:]), path.name
        copy = pd.read_excel(path.with_suffix(".ods"), engine="odf", sheet_name=None, header=None)
        assert list(copy) == other.sheetnames, path.name
        assert [copy[n].iloc[0, 0] for n in other.sheetnames] == [other[n]["A1"].value for n in other.sheetnames]


# --- seed tables from the published marts -------------------------------------------------------------


def _truth(clients: pd.DataFrame, table: SeedTable, places: list[str]) -> pd.DataFrame:
    """The same table counted from the client-level population (what the published query must equal):
    a place counts the clients it treats, the Total each person once (issue 18), and the location "Other"
    is the Total less the named sites (marts/location.py)."""

    def counted(here: pd.DataFrame, column: Column) -> tuple[int, int]:
        in_cohort = here[here["substance_group_key"].isin(table.cohort)]
        if column.dimension == "substance_group":
            chosen = in_cohort[in_cohort["substance_group_key"].isin(column.levels)]
        else:
            values = in_cohort[column.dimension]
            if values.dtype == bool:
                values = values.map({True: "Yes", False: "No"})
            chosen = in_cohort[values.astype(str).isin(column.levels)]
        return len(chosen), len(in_cohort)

    named = [p for p in places if p not in (TOTAL, "Other")]
    out = []
    for name, column in table.columns.items():
        for place in places:
            if place in (TOTAL, "Other") and table.by == "location":
                count, base = counted(national_clients(clients), column)
                if place == "Other":
                    for site in named:
                        site_count, site_base = counted(clients[clients["location"].astype(str) == site], column)
                        count, base = count - site_count, base - site_base
            elif place == TOTAL:
                count, base = counted(national_clients(clients), column)
            else:
                count, base = counted(clients[clients[table.by].astype(str) == place], column)
            out.append({table.by: place, "column": name, "true_count": count, "true_base": base})
    return pd.DataFrame(out)


def _check_seed_table(release: tuple[Settings, dict, pd.DataFrame], table: SeedTable) -> pd.DataFrame:
    settings, marts, recoded = release
    labels = load_rules(settings.config_dir).substances.group_labels
    published = seed_table(marts, table, labels)
    clients = select_population(recoded, "in_treatment", PERIOD)
    truth = _truth(clients, table, list(dict.fromkeys(published[table.by])))
    both = published.merge(truth, on=[table.by, "column"], how="left", validate="1:1")
    shown = both[both["count"].notna()]
    assert (shown["count"] == shown["true_count"]).all(), shown[shown["count"] != shown["true_count"]]
    based = both[both["base"].notna()]
    assert (based["base"] == based["true_base"]).all()
    exact = shown[shown["base"].notna() & (shown["base"] > 0)]
    assert ((exact["percent"] - 100 * exact["true_count"] / exact["true_base"]).abs() < 1e-9).all()
    places = set(published[table.by])
    assert {"Exborough", "Northton", TOTAL} <= places
    assert shown[table.by].eq(TOTAL).any(), f"{table.key}: the Total row is published"
    if table.key not in SPARSE:
        assert shown[table.by].ne(TOTAL).any(), f"{table.key}: nothing published below the Total"
    return both


@pytest.mark.parametrize("key", list(SEED000))
def test_seed000_table_rebuilt_from_published_location_marts(
    release: tuple[Settings, dict, pd.DataFrame], key: str
) -> None:
    both = _check_seed_table(release, SEED000[key])
    assert set(both["location"]) == {"Exborough", "Northton", "Other", TOTAL}


def test_seed004_fig9_drug_categories_rebuilt_from_published_marts(
    release: tuple[Settings, dict, pd.DataFrame],
) -> None:
    both = _check_seed_table(release, SEED004["Fig9"])
    assert set(both["area"]) == {*_areas_in_release(release[0]), TOTAL}


def test_seed004_fig8_time_in_treatment_of_exits(release: tuple[Settings, dict, pd.DataFrame]) -> None:
    """Fig 8: share of exits by length of time in treatment, per area: the published mart as it is."""
    settings, marts, recoded = release
    mart = marts["exits_time_in_treatment_area"]
    exits = select_population(recoded, "exits", PERIOD)
    for area in ("Westfield", TOTAL):
        rows = mart[(mart["area"] == area) & (mart["time_in_treatment"] != TOTAL) & mart["count"].notna()]
        here = exits if area == TOTAL else exits[exits["area"] == area]
        truth = here["time_in_treatment"].astype(str).value_counts()
        assert len(rows) > 0
        for _, row in rows.iterrows():
            assert row["count"] == truth.get(row["time_in_treatment"], 0)
            assert abs(row["percent"] - round(100 * row["count"] / len(here), 1)) < 1e-9


def test_seed004_fig6_fig11_ethnicity_of_new_presentations_against_the_population(
    release: tuple[Settings, dict, pd.DataFrame],
) -> None:
    """Figs 6 / 11: new presentations' ethnic profile beside the local population's shares (reference mart)."""
    settings, marts, recoded = release
    joined = ethnicity_vs_population(
        marts["new_presentations_ethnicity_area"], marts["reference_population_ethnicity_area"]
    )
    assert set(joined["area"]) == {*_areas_in_release(settings), TOTAL}
    new = select_population(recoded, "new_presentations", PERIOD)
    total = joined[joined["area"] == TOTAL].set_index("ethnicity_group")
    truth = new["ethnicity_group"].astype(str).value_counts()
    shown = total[total["presentations"].notna()]
    assert len(shown) >= 2
    for group, row in shown.iterrows():
        assert row["presentations"] == truth.get(group, 0)
    assert total["population_percent"].notna().all()  # reference data is never suppressed
    assert abs(total["population_percent"].sum() - 100) < 0.5
    white = total.loc["White"]
    assert white["difference_points"] == round(white["presentations_percent"] - white["population_percent"], 1)


def test_reference_population_marts_are_labelled_synthetic(release: tuple[Settings, dict, pd.DataFrame]) -> None:
    _, marts, _ = release
    characteristic = {
        "reference_population_sex_area": "sex",
        "reference_population_age_area": "age_band",
        "reference_population_ethnicity_area": "ethnicity_group",
    }
    adults = set()
    for name, column in characteristic.items():
        frame = marts[name]
        assert frame["reference_source"].str.startswith("SYNTHETIC").all(), name
        total = frame[(frame["area"] == "Exborough") & (frame[column] == TOTAL)]
        assert total["percent"].tolist() == [100.0], name
        adults.add(int(total["count"].iloc[0]))
    assert len(adults) == 1  # every characteristic sums to the same adult population
