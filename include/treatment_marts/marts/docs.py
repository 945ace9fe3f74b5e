"""Generate docs/marts.md, the analysts' data dictionary, from marts.yaml and rules.yaml.

`python -m treatment_marts.marts.docs` rewrites it; `--check` exits 1 when it is stale (a test runs that).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from treatment_marts.core.config import load_areas, load_rules
from treatment_marts.core.settings import REPO_DIR
from treatment_marts.marts.builder import TOTAL, dimension_levels
from treatment_marts.marts.definitions import MartDefinition, MartsConfig, load_marts
from treatment_marts.marts.seed_tables import SEED000, SEED004
from treatment_marts.marts.windows import WINDOW_TITLES

DOC_PATH = REPO_DIR / "docs" / "marts.md"

DIMENSION_NOTES = {
    "area": "Upper-tier local authority of treatment (areas.yaml); `Total` = all areas (the national comparator).",
    "substance_group": "Derived from drug_1..3 by the NDTMS hierarchy with seed 000's crack split (rules.yaml `substances`).",
    "age_band": "Age at episode start (triage date) in the default age-band scheme.",
    "time_in_treatment": "Discharge date minus triage date, for exits.",
    "representation": "For successful completions in the completion window: whether a new episode started (triage) within 6 months after the discharge (boundary included).",
    "location": "Seed 000's location collapse (areas.yaml `location`): each named site, and `Other` = every other area in the release (Total minus the named sites); location marts are derived from the published area marts.",
    "financial_year": "April to March (`2024/25`), in trend marts: the year whose March release published the row.",
    "prevalence_group": "Groups of the prevalence estimates (unmet-need marts); each counts the adults in treatment in the substance groups listed with its mart. Groups overlap.",
}


NOTES = [
    "## Definitions and checks",
    "",
    "### Windows",
    "",
    "A mart's `window` (marts.yaml) is the period it counts over, ending with the release's month: `month`",
    "(default), `rolling_12` (the 12 months ending with it, as NDTMS's monthly reports count), `fy_to_date` (April",
    "to the month), `financial_year` (April to March, built at the March period only: the March data close the",
    "year and are run in April) and `pooled_3y` (36 months, at the March period). Counts are distinct clients over",
    "the window, each by their latest episode in it: in treatment = an episode open at any time in the window; new",
    "presentations / exits = a triage / discharge date in it. A window is built only when every month it covers",
    "has an accepted month in the restricted history (otherwise `marts_not_built` in the manifest names the months",
    "missing). The `period` column is the release's month (the window's last month). Windows covering the same",
    "months (at March: the year, the year to date and the rolling 12 months) are one set of linked tables, so a",
    "cell they share has one value and one status. Protection across releases: docs/disclosure.md.",
    "",
    "### Unmet need (penetration)",
    "",
    "`unmet_need_area_substance` puts the *published* in-treatment counts (sex = Total of",
    "`in_treatment_substance_area_sex`, after suppression) beside prevalence estimates from",
    "`include/config/reference/prevalence.csv` (area, prevalence group, estimate with lower/upper bounds, age base,",
    "year, source, `synthetic` yes/no; validated on load: known areas and groups, lower <= estimate <= upper, one row",
    "per pair, and a synthetic row's source must start with `SYNTHETIC`). Unmet need = 1 - in treatment / estimate.",
    "A group's count is a sum of published cells; if any of them is suppressed the count and every unmet-need",
    "figure of that row are withheld (`c`), so the mart reveals nothing the counts do not. **The shipped estimates",
    "are synthetic test figures**; for a real needs assessment replace the file with the OHID estimates (which are",
    "annual, ages 15-64, for a financial year) and read the caveats.",
    "",
    "### Successful completions not re-presenting within 6 months",
    "",
    "A monthly extract holds only the episodes open in its month, so a completion six months ago is not in it. The",
    "pipeline keeps every accepted extract (restricted zone, retention 24 months), and the pseudonymous client key",
    "(keyed hash of initials, date of birth, sex and area) is stable across months, so the measure is computed from",
    "the **twelve accepted extracts ending with the release month M**:",
    "",
    "- completions: adults whose latest *successful* discharge (codes 80-82) with no other episode of theirs still",
    "  open on that day (a journey exit, not a transfer) fell in months M-11 to M-6;",
    "- re-presented: a new episode started (triage date) after that discharge and no later than six calendar months",
    "  after it (boundary included); otherwise 'Did not re-present'. Every completion is followed for the full six",
    "  months by the end of M.",
    "",
    "`percent` is the share of completions that did not re-present. The PHOF C19a-c indicators divide the same",
    "numerator by all adults in treatment in the period, over a 12-month completion window: use",
    "`in_treatment_substance_area_sex` for that denominator. Until twelve months have been accepted the mart is",
    "not built and the release manifest lists it under `marts_not_built` with the missing months. A client who",
    "re-presents in another area is not linked (the key includes the area).",
    "",
    "### Reference check (seed 000 Table 1)",
    "",
    "`tests/marts/test_reference_check.py` draws from a generated month a reference dataset with exactly the verified",
    "Table 1 allocation of the domain notes (`include/config/reference/seed000_table1.yaml`: Exborough 365/709/122/831,",
    "Northton 976/457/93/550, Other 76,000/76,000/8,000/125,112 at 1:100), runs the real stages over it and reads",
    "Table 1 back from the published `in_treatment_substance_area_sex`: Other = Total minus the named sites; the",
    "denominator is the four cohorts only. Tolerance: the rounded (half-up) percentage must equal the published whole",
    "percentage, i.e. lie within 0.5 points (the seed's rows sum to 99-101, so sums are never compared). The mart",
    "protected alone, as seed 000 published Table 1, reproduces all twelve figures. In the full catalogue the 14",
    "in-treatment marts are protected together, and secondary suppression can withhold a Table 1 cell that the single",
    "table publishes (which cells depends on the whole dataset; the test requires at least 6 of 12); every published",
    "cell is exact and every withheld one is `c` with its true value in the restricted log. The generator alone does",
    "not land within rounding (measured for 2024-03 and 2025-01: up to 3.4 points off, e.g. Northton opiate-not-crack 44% against 47%), hence the calibration.",
    "",
    "### Young people",
    "",
    "There are no young people's marts. The extract contract is the NDTMS *adult* core data set: it has no",
    "young people's service, setting or YP-specific fields (education, care status, exploitation), and NDTMS",
    "defines young people in treatment by the service (under 18s, and 18-24s in young people's services), not by",
    "age. Age bands start at 18 and a client under 18 has no age band (marts using age then fail by name). Young",
    "people's marts need the YP data set as a second contract.",
    "",
]


EXAMPLE_PERIOD = "2024-03"


def _examples(mart: MartDefinition) -> list[str]:
    """An SQL and a pandas query an analyst can paste: the first area (or location) beside Total, the
    dimension `percent` shares out (else the next one) in full, any further dimension at Total."""
    place = "location" if "location" in mart.dimensions else "area"
    free = (
        [mart.percent_of]
        if mart.percent_of and mart.percent_of != place
        else [d for d in mart.dimensions if d != place][:1]
    )
    held = [d for d in mart.dimensions if d != place and d not in free]
    show = [place, *(["area_code"] if place == "area" else []), *free, "count"]
    show += ["percent"] if mart.percent_of or mart.measure == "completion_rate" else []
    show += ["unmet_need_percent"] if mart.measure == "unmet_need" else []
    first = "Exborough"
    where = [f"period = '{EXAMPLE_PERIOD}'", f"{place} IN ('{first}', '{TOTAL}')", *(f"{d} = '{TOTAL}'" for d in held)]
    masks = [f"(m['{place}'].isin(['{first}', '{TOTAL}']))", *(f"(m['{d}'] == '{TOTAL}')" for d in held)]
    return [
        "```sql",
        f"SELECT {', '.join(show)}",
        f"FROM {mart.name}",
        "WHERE " + " AND ".join(where),
        f"ORDER BY {', '.join([place, *free])};",
        "```",
        "",
        "```python",
        f"m = pd.read_parquet('data/public/marts/{mart.name}/', filters=[('period', '==', '{EXAMPLE_PERIOD}')])",
        f"m[{' & '.join(masks)}][{show!r}]",
        "```",
    ]


def _designs_section(config: MartsConfig) -> list[str]:
    """The declared table designs per area (marts/designs.py): what a very small area is published at."""
    if not config.designs:
        return []
    lines = [
        "",
        "## Table designs per area",
        "",
        "Each area is published at a declared *design* (`designs` in marts.yaml): the coarsest design whose size "
        "limit is above the area's adults in treatment in the month, else the full design. At a coarser design "
        "the area's cells in a merged category are withheld (`c`) a priori in the fine marts, and the national "
        f"(`{TOTAL}`) rows follow the coarsest design in use, because a national cell minus the other areas would "
        "otherwise be the small area's withheld cell. A true zero is still published. The merged group's count "
        "follows from the published margins (the area's adults less its categories that are not merged). The release manifest "
        "(`area_designs`), the workbook notes and the IG report name each area's design and why.",
        "",
        "| design | areas with fewer adults in treatment than | categories merged (withheld a priori) | description |",
        "|---|---|---|---|",
    ]
    for design in config.designs:
        merged = "; ".join(
            f"{dim}: {label} = {' + '.join(members)}"
            for dim, groups in design.collapse.items()
            for label, members in groups.items()
        )
        size = str(design.below_adults) if design.below_adults is not None else "(every other area)"
        lines.append(f"| `{design.name}` | {size} | {merged or 'nothing'} | {design.description} |")
    return lines


def render_marts_doc(config_dir: Path) -> str:
    rules = load_rules(config_dir)
    areas = load_areas(config_dir)
    levels = dimension_levels(rules, areas)
    config = load_marts(config_dir, set(levels))
    for mart in config.derived():
        levels["prevalence_group"] = list(mart.prevalence_groups or {})
    levels["financial_year"] = ["2023/24", "2024/25", "..."]  # trend marts: every closed year of the history
    used = sorted({d for m in config.marts for d in m.dimensions})
    k = rules.disclosure.k
    lines = [
        "# Mart catalogue and data dictionary",
        "",
        "Generated from `include/config/marts.yaml` and `include/config/rules.yaml` by",
        "`python -m treatment_marts.marts.docs`; do not edit by hand (a test fails when this file is stale).",
        "",
        "## Reading a mart",
        "",
        "Every mart is a long table, one row per cell, in Parquet under `public/marts/<name>/period=YYYY-MM/`",
        "and as the warehouse table `<name>` (PostgreSQL schema `marts`):",
        "",
        "| column | meaning |",
        "|---|---|",
        "| `period` | the month, `YYYY-MM` |",
        "| dimension columns | a category, or `Total` on margin rows (every combination of margins is present) |",
        "| `area_code` | (marts with `area`) the area's GSS code from areas.yaml, beside its name, for joins to ONS / Fingertips / census data; null on `Total` rows (not an area). An attribute of the area, not a dimension: added after suppression |",
        f"| `count` | distinct adults; **null when suppressed** (counts of 1 to {k} individuals, and complementary cells) |",
        "| `status` | `c` when the cell is suppressed (GSS convention), else null; it never says why |",
        "| `percent` | (some marts) the cell's share of its margin along one dimension, from published counts only; null when its count or base is suppressed |",
        "| `estimate`, `estimate_lower`, `estimate_upper` | (unmet-need marts) the prevalence estimate and its interval, from the reference file |",
        "| `unmet_need_percent`, `unmet_need_lower`, `unmet_need_upper` | (unmet-need marts) 100 x (1 - count / estimate), at the estimate and at its lower and upper bound; null when the count is suppressed or there is no estimate |",
        "| `estimate_year`, `estimate_source` | (unmet-need marts) the estimate's year and source, as given in the reference file |",
        "| `reference_year`, `reference_source` | (reference-population marts) the reference file's year and source |",
        "",
        f"**One margin label: `{TOTAL}`**, in every mart, warehouse table, CSV file and workbook. It is the label the",
        "disclosure code keys margins on, it reads the same in every output, and it stays true in a partial release,",
        f"where the area `{TOTAL}` covers the areas in the release and not all of England (the workbooks used to",
        'say "England (all areas)", which that would contradict). The cover and notes of every workbook say what it covers.',
        "",
        f"**A client in two areas.** Each area counts the clients it treats; the area `{TOTAL}` counts each client once",
        "(by their latest episode over all areas, as NDTMS counts a client once nationally). So a client open in two",
        f"areas is in both areas' rows and once in `{TOTAL}`, and the areas can add up to more than `{TOTAL}`. Every other",
        f"`{TOTAL}` is the exact sum of its categories.",
        "",
        "### Reading every period",
        "",
        "The `period=YYYY-MM` folders are Hive partitions, so the mart folder reads as one dataset. Old versions kept",
        "under `.releases/` (and `_manifest.json`) are skipped by pandas, pyarrow and the DuckDB glob below.",
        "",
        "```python",
        "import pandas as pd",
        "mart = pd.read_parquet('data/public/marts/in_treatment_substance_area_sex/')            # every period",
        "march = pd.read_parquet('data/public/marts/in_treatment_substance_area_sex/',",
        "                        filters=[('period', '==', '2024-03')])                          # one, pruned",
        "mart['period'] = mart['period'].astype('string')   # read as a categorical (the partition type)",
        "",
        "import pyarrow.parquet as pq, pyarrow.dataset as ds",
        "table = pq.read_table('data/public/marts/in_treatment_substance_area_sex/')",
        "dataset = ds.dataset('data/public/marts/in_treatment_substance_area_sex/')  # no partitioning= needed",
        "```",
        "",
        "```sql",
        "-- DuckDB: glob the period folders (not '**', which would also match old versions under .releases/)",
        "SELECT period, sum(count) FROM read_parquet('data/public/marts/in_treatment_substance_area_sex/period=*/data.parquet')",
        "WHERE area = 'Total' AND substance_group = 'Total' AND sex = 'Total' GROUP BY period ORDER BY period;",
        "-- The warehouse (SQLite data/warehouse.db, or PostgreSQL schema marts) holds every period in one table",
        "SELECT period, count FROM in_treatment_substance_area_sex",
        "WHERE area = 'Total' AND substance_group = 'Total' AND sex = 'Total' ORDER BY period;",
        "```",
        "",
        "Each file also carries its `period` column, so one `period=.../data.parquet` read on its own is complete.",
        "",
        f"Unit of count: distinct clients, each counted once per mart by their latest episode in the population "
        f"(once per area that treats them, and once in the national `{TOTAL}`). "
        f"Zeros are {'published' if rules.disclosure.zeros == 'show' else 'suppressed like 1 to k'}.",
        "",
        "## Populations",
        "",
        "| population | definition |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | {pop.description} |" for name, pop in config.populations.items()]
    lines += _designs_section(config)
    lines += ["", "## Marts", ""]
    for mart in config.marts:
        lines += [
            f"### `{mart.name}`",
            "",
            f"{mart.title}.",
            "",
            f"- Population: `{mart.population}`",
            *(
                [f"- Window: `{mart.window}`, {WINDOW_TITLES[mart.window]} (see Windows)"]
                if mart.window != "month"
                else []
            ),
            f"- Dimensions: {', '.join(f'`{d}`' for d in mart.dimensions)}",
            f"- Measure: {mart.measure}"
            + (f"; `percent` = share of the `{mart.percent_of}` margin" if mart.percent_of else ""),
        ]
        if mart.measure == "location":
            lines.append(
                f"- Derived after suppression from the published `{mart.derived_from}`: a named site is its area's "
                "cell, Other = Total minus the named sites; withheld (`c`) when a cell it needs is withheld"
            )
        elif mart.measure == "reference_population":
            lines.append(
                f"- From the reference file `include/config/reference/{mart.reference}` (not client data, not "
                "suppressed): `count` = adults in the population, `percent` = share of the area's adults"
            )
        elif mart.measure == "completion_rate":
            lines.append(
                f"- Derived after suppression from the published `{mart.derived_from}` (discharge_group = "
                f"Successful completion) over `{mart.denominator_from}` (sex = Total): `count` = successful "
                "completions, `in_treatment` = adults in treatment, `percent` = their ratio; a row is withheld "
                "whole (`c`) where either cell is"
            )
        elif mart.measure == "trend":
            lines.append(
                f"- Each closed financial year's `{mart.derived_from}` as its March release published it (cells and "
                "suppression unchanged), `financial_year` first; built at the March period; no `Total` year"
            )
        elif mart.derived_from:
            lines.append(
                f"- Derived after suppression from the published `{mart.derived_from}` (sex = Total) and the "
                f"reference file `include/config/reference/{mart.reference}`"
            )
            lines += [
                f"- `{group}` = adults in treatment in: {', '.join(rules.substances.group_labels[m] for m in members)}"
                for group, members in (mart.prevalence_groups or {}).items()
            ]
        lines += [f"- Caveat: {c}" for c in mart.caveats]
        lines += ["", *_examples(mart), ""]
    lines += NOTES
    lines += ["## Dimensions", ""]
    for dim in used:
        note = DIMENSION_NOTES.get(dim, "")
        lines += [f"### `{dim}`", ""] + ([note, ""] if note else [])
        lines += [f"Levels: {', '.join(f'`{v}`' for v in levels[dim])}, and `{TOTAL}`.", ""]
    lines += [
        "## Example queries",
        "",
        "Every mart above has its own SQL and pandas example (`import pandas as pd` first). Across marts:",
        "",
        "```sql",
        "-- Numbers in treatment by month (trend), all areas, with the GSS code for joins to ONS / Fingertips data",
        "SELECT period, area, area_code, count FROM in_treatment_substance_area_sex",
        "WHERE substance_group = 'Total' AND sex = 'Total' ORDER BY period, area;",
        "",
        "-- Seed 004 Figs 6 / 11: ethnic profile of new presentations against the local adult population",
        "SELECT n.area, n.ethnicity_group, n.count, n.percent AS presentations_percent,",
        "       p.percent AS population_percent, n.percent - p.percent AS difference_points",
        "FROM new_presentations_ethnicity_area n",
        "JOIN reference_population_ethnicity_area p USING (area, ethnicity_group)",
        "WHERE n.period = '2024-03' AND p.period = '2024-03' AND n.ethnicity_group <> 'Total'",
        "ORDER BY n.area, n.ethnicity_group;",
        "```",
        "",
        "## Seed tables",
        "",
        "`treatment_marts.marts.seed_tables` holds seed 000 Tables 1-9 and the seed 004 figures the marts express as",
        "queries over the published marts (`seed_table(marts, SEED000['T4'], group_labels)`); a cell is a sum of",
        "published cells and null when any of them is withheld. `tests/marts/test_published_release.py` rebuilds each",
        "from a generated month's published marts and checks it against the client-level truth.",
        "",
        "| seed table | published marts | query |",
        "|---|---|---|",
        *[
            f"| {t.title} | {', '.join(sorted({f'`{c.mart}`' for c in t.columns.values()}))} | "
            f"{t.by} x {', '.join(t.columns)}; cohort {' + '.join(t.cohort)} |"
            for t in [*SEED000.values(), *SEED004.values()]
        ],
        "| Seed 004 Fig 8: exits by length of time in treatment | `exits_time_in_treatment_area` | `percent` by `time_in_treatment`, as published |",
        "| Seed 004 Figs 6 / 11: ethnicity of new presentations vs population | `new_presentations_ethnicity_area`, `reference_population_ethnicity_area` | join on (area, ethnicity_group): `ethnicity_vs_population` |",
        "",
        "Not expressible from these marts: seed 004 Figs 5, 7, 10, 13, 14 cross age or referral with sex *and* a",
        "substance cohort (a four-way table most of whose cells would be suppressed), Fig 12 / 16 need multi-response",
        "substances and outcome reviews the extract does not carry, and the seed figures the domain notes list as",
        "inconsistent (section 6.2) are not oracles. Seed percentages themselves are reproduced for Table 1 by the",
        "calibrated reference check above; the generator is not calibrated to Tables 2-9.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/marts.md is stale")
    args = parser.parse_args(argv)
    text = render_marts_doc(REPO_DIR / "include" / "config")
    if args.check:
        if not DOC_PATH.exists() or DOC_PATH.read_text() != text:
            print(f"{DOC_PATH} is stale: run `python -m treatment_marts.marts.docs`", file=sys.stderr)
            return 1
        return 0
    DOC_PATH.write_text(text)
    print(f"wrote {DOC_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
