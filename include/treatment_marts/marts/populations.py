"""Populations: who a mart counts in a period, reduced to one row per client of each area.

Counting each client once, by their latest episode in the population, makes every table additive (a
client cannot sit in two cells of one dimension), which is what margins and the suppression audit assume.

A client is identified within an area (the attributor qualified by area, as NDTMS builds journeys per
attributor within DAT), so a client open in two areas is a client of both: each area counts the clients
it treats. Nationally a client is counted once (NDTMS): ``counted_nationally`` marks, per person (the
attributor without the area, ``person_key``), the row of their latest episode over all areas, and the
national ``Total`` of the marts counts only those rows (marts/builder.py). So a national cell is at most
the sum of the areas' cells and at least that sum less D, the clients counted in more than one area
(`national_overlap`), which the pipeline knows and gives to the attacker (issue 18).

Most populations need only the period's extract. `completions_followed_up` (successful completions not
re-presenting within 6 months, the PHOF C19-style measure) needs twelve months of extracts: a monthly
extract holds only the episodes open in its month, so a completion six months ago and the episodes that
followed it are found in the earlier months' accepted extracts, linked by the pseudonymous client key.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

# an episode, as the marts and the window relations match one: the client, the agency and its episode id
EPISODE_KEY = ["client_key", "agency_code", "episode_id"]

SUCCESS = "Successful completion"  # discharge_group label (rules.yaml collapses.discharge_group)
REPRESENTED = "Re-presented within 6 months"
NOT_REPRESENTED = "Did not re-present"
REPRESENTATION_LEVELS = [NOT_REPRESENTED, REPRESENTED]
FOLLOW_UP = pd.DateOffset(months=6)
# Months of extracts, the period's own included, each population is built from.
HISTORY_MONTHS = {"completions_followed_up": 12}
# Populations whose clients are all clients of another population of the same month (the attacker knows the
# definitions, so the audit holds these relations; pipeline/protect.population_relations):
# - a new presentation (triage in the month) is in treatment that month (its discharge, if any, is on or
#   after its triage: a blocking rule of the contract). Each client is counted by their latest episode by
#   triage, and the in-treatment episodes triaged in the month are exactly the new-presentation episodes,
#   so a client's latest in-treatment episode is their latest new presentation: the same cell, always.
# - an exit (discharge in the month) is in treatment that month, but a client who leaves one episode and
#   starts another in the month is counted by the exit in `exits` and by the later episode in
#   `in_treatment`, possibly in another cell; `subset_slack` counts such clients.
SUBSET_OF = {"new_presentations": "in_treatment", "exits": "in_treatment"}
NATIONAL = "counted_nationally"  # bool column of a population: the row that counts the person nationally


def history_months(population: str) -> int:
    return HISTORY_MONTHS.get(population, 1)


def period_bounds(period: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = pd.Timestamp(f"{period}-01")
    return start, start + pd.offsets.MonthEnd(0)


def completion_window(period: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Completions counted in the release for ``period``: the six months before the six-month follow-up
    window that ends with the period (release 2024-12: completions January-June 2024)."""
    start, _ = period_bounds(period)
    return start - pd.DateOffset(months=11), start - pd.DateOffset(months=6) + pd.offsets.MonthEnd(0)


def _episodes_in(frame: pd.DataFrame, population: str, period: str) -> pd.Series:
    return episodes_between(frame, population, *period_bounds(period))


def episodes_between(frame: pd.DataFrame, population: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """Episodes of ``population`` between two dates (the month definitions, with any bounds: a window's)."""
    triage, discharge = frame["triage_date"], frame["discharge_date"]
    if population == "in_treatment":
        return (triage <= end) & (discharge.isna() | (discharge >= start))
    if population == "new_presentations":
        return (triage >= start) & (triage <= end)
    if population == "exits":
        return discharge.notna() & (discharge >= start) & (discharge <= end)
    raise ValueError(f"unknown population {population!r}")


def distinct_episodes(history: pd.DataFrame) -> pd.DataFrame:
    """Each episode once, as its latest extract describes it (the one that carries its discharge)."""
    ordered = history.sort_values(["period", "agency_code", "episode_id"], kind="stable")
    return ordered.drop_duplicates(["agency_code", "episode_id"], keep="last").reset_index(drop=True)


def completions_followed_up(history: pd.DataFrame, period: str) -> pd.DataFrame:
    """One row per client whose latest successful journey exit fell in ``completion_window(period)``, with
    ``representation``: did a new episode start (triage) after that discharge and within 6 months of it?

    A successful discharge while another episode of the client stays open (a transfer between agencies in
    all but name) is not a journey exit and is not counted. ``history`` holds the recoded episodes of the
    twelve monthly extracts ending with ``period``; six months of follow-up after the latest completion in
    the window end on the period's last day, so every client counted has been followed for the full six.
    """
    episodes = distinct_episodes(history)
    first, last = completion_window(period)
    discharge = episodes["discharge_date"]
    done = episodes[(episodes["discharge_group"] == SUCCESS) & (discharge >= first) & (discharge <= last)].copy()
    done = done.sort_values(["client_key", "discharge_date", "agency_code", "episode_id"], kind="stable")

    others = episodes[["client_key", "agency_code", "episode_id", "triage_date", "discharge_date"]].rename(
        columns={
            "agency_code": "o_agency",
            "episode_id": "o_episode",
            "triage_date": "o_triage",
            "discharge_date": "o_discharge",
        }
    )
    pairs = done[["client_key", "agency_code", "episode_id", "discharge_date"]].merge(others, on="client_key")
    pairs = pairs[(pairs["o_agency"] != pairs["agency_code"]) | (pairs["o_episode"] != pairs["episode_id"])]
    still_open = pairs[
        (pairs["o_triage"] <= pairs["discharge_date"])
        & (pairs["o_discharge"].isna() | (pairs["o_discharge"] > pairs["discharge_date"]))
    ]
    exits = done.merge(still_open[EPISODE_KEY].drop_duplicates(), on=EPISODE_KEY, how="left", indicator=True)
    exits = exits[exits["_merge"] == "left_only"].drop(columns="_merge")
    exits = exits.drop_duplicates("client_key", keep="last")

    back = pairs.merge(exits[EPISODE_KEY], on=EPISODE_KEY)
    back = back[(back["o_triage"] > back["discharge_date"]) & (back["o_triage"] <= back["discharge_date"] + FOLLOW_UP)]
    came_back = exits["client_key"].isin(set(back["client_key"]))
    exits["representation"] = pd.array([REPRESENTED if b else NOT_REPRESENTED for b in came_back], dtype="string")
    exits = exits.reset_index(drop=True)
    return mark_counted_nationally(exits, ["discharge_date", "agency_code", "episode_id"])


def mark_counted_nationally(clients: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """``clients`` (one row per client of an area) with `NATIONAL`: True on each person's last row by
    ``order`` (their latest episode over every area), so the national Total counts each person once. A
    frame without ``person_key`` (no national attributor) counts every row nationally, as before."""
    if "person_key" not in clients.columns:
        return clients.assign(**{NATIONAL: True})
    keys = pd.DataFrame({"person": pd.factorize(clients["person_key"])[0]}, index=clients.index)
    for column in order:
        keys[column] = clients[column]
    ordered = keys.sort_values(list(keys.columns), kind="stable")
    latest = ordered.index[~ordered["person"].duplicated(keep="last").to_numpy()]
    return clients.assign(**{NATIONAL: clients.index.isin(latest)})


def national_clients(clients: pd.DataFrame) -> pd.DataFrame:
    """The rows that count each person once nationally (all rows of a frame without `NATIONAL`)."""
    if NATIONAL not in clients.columns:
        return clients
    return clients[clients[NATIONAL].to_numpy(dtype=bool)]


def national_overlap(clients: pd.DataFrame) -> int:
    """D: how many more clients the areas count than the national Total (a person counted in n areas adds
    n - 1). The sum of the areas' cells of any mart cell exceeds its national cell by 0..D. Known to the
    pipeline, never published (and derivable from published grand totals anyway)."""
    return int(len(clients) - len(national_clients(clients)))


def area_overlap(overlap: int, dimensions: Sequence[str]) -> dict[str, int]:
    """``MartTable.overlap`` of a table of ``dimensions`` over clients of national overlap D: the Total
    counts distinct clients along area only (every other dimension sums exactly)."""
    return {"area": overlap} if overlap > 0 and "area" in dimensions else {}


def subset_slack(subset_clients: pd.DataFrame, superset_clients: pd.DataFrame) -> int:
    """Clients of a subset population not counted by the same episode in the superset (so possibly in
    another cell of it): the slack of `SUBSET_OF`'s cell relations, for the areas' cells and for the
    national cells (each counts a person by one row, `national_clients`), whichever is larger. Known to the
    pipeline, never published."""

    def unmatched(subset: pd.DataFrame, superset: pd.DataFrame) -> int:
        counted = superset[EPISODE_KEY].drop_duplicates()
        matched = subset[EPISODE_KEY].merge(counted, on=EPISODE_KEY, how="left", indicator=True)
        return int((matched["_merge"] == "left_only").sum())

    return max(
        unmatched(subset_clients, superset_clients),
        unmatched(national_clients(subset_clients), national_clients(superset_clients)),
    )


def select_population(frame: pd.DataFrame, population: str, period: str) -> pd.DataFrame:
    """One row per client of an area: their latest episode there (by triage date, then agency and episode
    id) in the population, with `NATIONAL` on each person's latest row over all areas.

    For ``completions_followed_up`` the frame is the twelve months' history (see ``history_months``).
    """
    if population == "completions_followed_up":
        return completions_followed_up(frame, period)
    episodes = frame[_episodes_in(frame, population, period).fillna(False)]
    # Sort and de-duplicate the key columns only, then take the chosen rows of every column once. Clients
    # are grouped by an integer code of their key (hashing ~1M keys is far cheaper than sorting them as
    # strings); which episode is a client's latest does not depend on the order of clients.
    keys = pd.DataFrame(
        {
            "client": pd.factorize(episodes["client_key"])[0],
            "triage_date": episodes["triage_date"],
            "agency_code": episodes["agency_code"],
            "episode_id": episodes["episode_id"],
        },
        index=episodes.index,
    )
    ordered = keys.sort_values(list(keys.columns), kind="stable")
    latest = ordered.index[~ordered["client"].duplicated(keep="last").to_numpy()]
    clients = episodes.loc[latest].reset_index(drop=True)
    return mark_counted_nationally(clients, ["triage_date", "agency_code", "episode_id"])
