"""Realistic synthetic NDTMS-style monthly extracts, for the demo, the tests and the benchmark.

Design: a stationary population of treatment episodes per area and substance group. Episodes start in
monthly cohorts (Poisson counts seeded by area, group and month); every attribute of an episode or a
client is a pure function of its 64-bit id through a counter-based generator (SplitMix64). So:

* months follow each other: the extract for March and for April share the same clients and episodes,
  with the same identifiers, and an episode discharged in March is absent from May;
* any month can be generated alone, fast and vectorised, without simulating the months before it;
* in-month counts follow Little's law: starts per day = target stock / (mean duration + one month).

Marginal distributions come from the domain notes (ndtms-extract.md §6-7); each is marked there as
confirmed, secondary or assumed. All names, codes and identifiers are synthetic.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from scipy.special import ndtri

from treatment_marts.contract import load_contract
from treatment_marts.core.config import SUBSTANCE_GROUPS, Area, load_areas
from treatment_marts.core.settings import REPO_DIR

EPOCH = pd.Timestamp("2005-01-01")  # no date in an extract is earlier (contract date sanity)
MAX_HISTORY_MONTHS = {  # how far back an episode still open today can have started (duration caps)
    "opiate_not_crack": 180,
    "opiate_and_crack": 180,
    "crack_not_opiate": 60,
    "non_opiate_only": 48,
    "non_opiate_and_alcohol": 48,
    "alcohol_only": 48,
}
# Time in treatment (days): lognormal median and sigma by group ([A] ndtms-extract.md §7.1).
DURATION = {
    "opiate_not_crack": (900.0, 1.1),
    "opiate_and_crack": (800.0, 1.1),
    "crack_not_opiate": (160.0, 0.9),
    "non_opiate_only": (150.0, 0.9),
    "non_opiate_and_alcohol": (180.0, 0.9),
    "alcohol_only": (150.0, 0.9),
}
DURATION_CAP_DAYS = {g: 30.4 * m for g, m in MAX_HISTORY_MONTHS.items()}

# Age bands at episode start (§6.2, 2020-21, row %): 18-19, 20-24, ..., 60-64, 65+.
AGE_EDGES = np.array([18, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 86])
_OPIATE_AGE = [0.2, 1.6, 5.1, 11.85, 19.3, 21.7, 18.2, 12.25, 6.25, 2.35, 1.2]
AGE_BANDS = {
    "opiate_not_crack": _OPIATE_AGE,
    "opiate_and_crack": [0.1, 1.5, 5.3, 13.2, 21.0, 22.2, 17.7, 11.5, 5.2, 1.7, 0.6],
    "crack_not_opiate": [1.2, 6.3, 14.2, 20.1, 19.9, 15.0, 10.7, 7.0, 3.8, 1.2, 0.5],
    "non_opiate_only": [3.8, 11.6, 15.2, 17.6, 16.6, 13.5, 10.1, 6.7, 3.4, 1.2, 0.5],
    "non_opiate_and_alcohol": [2.0, 8.0, 12.0, 16.0, 17.0, 15.0, 12.5, 9.0, 5.5, 2.0, 1.0],
    "alcohol_only": [0.5, 2.5, 5.5, 9.5, 12.5, 14.0, 15.0, 14.0, 11.5, 8.0, 7.0],
}
MALE_SHARE = {
    "opiate_not_crack": 0.72,
    "opiate_and_crack": 0.74,
    "crack_not_opiate": 0.74,
    "non_opiate_only": 0.74,
    "non_opiate_and_alcohol": 0.75,
    "alcohol_only": 0.60,
}
SUCCESS_SHARE = {
    "opiate_not_crack": 0.25,
    "opiate_and_crack": 0.22,
    "crack_not_opiate": 0.55,
    "non_opiate_only": 0.60,
    "non_opiate_and_alcohol": 0.56,
    "alcohol_only": 0.62,
}
OPIATE_GROUPS = ("opiate_not_crack", "opiate_and_crack")


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a bijective, well-mixed hash of uint64 counters."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class _Stream:
    """Uniform variates in [0, 1) as pure functions of (ids, attribute name, seed)."""

    def __init__(self, ids: np.ndarray, seed: int) -> None:
        self.ids = ids.astype(np.uint64)
        self.seed = np.uint64(seed & 0xFFFFFFFF)

    def u(self, name: str) -> np.ndarray:
        salt = np.uint64(int.from_bytes(name.encode()[:8].ljust(8, b"\0"), "little") ^ (hash(len(name)) & 0xFFFF))
        with np.errstate(over="ignore"):
            z = _mix(_mix(self.ids ^ salt) + self.seed * np.uint64(0x632BE59BD9B4E019))
        return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)

    def choice(self, name: str, values: Sequence[str], weights: Sequence[float]) -> np.ndarray:
        cumulative = np.cumsum(np.asarray(weights, dtype=float))
        index = np.searchsorted(cumulative / cumulative[-1], self.u(name), side="right")
        return np.asarray(values, dtype=object)[np.minimum(index, len(values) - 1)]

    def integers(self, name: str, low: int, high: int) -> np.ndarray:
        """Uniform integers in [low, high]."""
        return (low + np.floor(self.u(name) * (high - low + 1))).astype(np.int64)


# --- the population of episodes ---------------------------------------------------------------------


def _uid(area_idx: int, group_idx: int, month_idx: np.ndarray | int, index: np.ndarray) -> np.ndarray:
    return (
        (np.uint64(area_idx) * np.uint64(8) + np.uint64(group_idx)) * np.uint64(4096)
        + np.asarray(month_idx, dtype=np.uint64)
    ) * np.uint64(1 << 24) + index.astype(np.uint64)


def _month_start(month_idx: np.ndarray) -> np.ndarray:
    """Day offset from EPOCH of the first day of month index m (0 = 2005-01)."""
    years, months = np.divmod(np.asarray(month_idx), 12)
    return (pd.to_datetime({"year": 2005 + years, "month": months + 1, "day": 1}) - EPOCH).dt.days.to_numpy()


def _month_index(period: str) -> int:
    stamp = pd.Period(period, freq="M")
    return (stamp.year - 2005) * 12 + stamp.month - 1


@dataclass(frozen=True)
class _Episodes:
    uid: np.ndarray  # episode id
    client_uid: np.ndarray  # the client's original episode id (re-presenters reuse it)
    area_idx: np.ndarray
    group_idx: np.ndarray
    start_day: np.ndarray  # triage date as days since EPOCH
    duration: np.ndarray  # days from triage to discharge


def _start_day(uid: np.ndarray, month_idx: np.ndarray, seed: int) -> np.ndarray:
    first = _month_start(month_idx)
    return first + np.floor(_Stream(uid, seed).u("start") * 28).astype(np.int64)


def _simulate(period: str, areas: list[tuple[int, Area, int]], seed: int) -> _Episodes:
    """Episodes of the chosen areas that could be open in ``period`` (started within each group's history)."""
    target = _month_index(period)
    if target < max(MAX_HISTORY_MONTHS.values()) // 12 * 0:  # periods from 2005 on are supported
        raise ValueError(f"period {period} is before 2005")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("uid", "client", "area", "group", "start", "dur")}
    for area_idx, area, clients in areas:
        for group_idx, group in enumerate(SUBSTANCE_GROUPS):
            share = area.substance_mix.get(group, 0.0)
            if share <= 0:
                continue
            median, sigma = DURATION[group]
            mean_duration = min(median * np.exp(sigma**2 / 2), DURATION_CAP_DAYS[group])
            starts_per_day = clients * share / (mean_duration + 30.4)
            months = np.arange(max(0, target - MAX_HISTORY_MONTHS[group]), target + 1)
            sizes = np.array(
                [
                    np.random.default_rng([seed, area_idx, group_idx, int(m)]).poisson(starts_per_day * 30.4)
                    for m in months
                ]
            )
            month_of = np.repeat(months, sizes)
            index = np.concatenate([np.arange(n) for n in sizes]) if sizes.sum() else np.zeros(0, dtype=np.int64)
            uid = _uid(area_idx, group_idx, month_of, index)
            stream = _Stream(uid, seed)
            duration = np.minimum(
                np.exp(np.log(median) + sigma * ndtri(np.clip(stream.u("dur"), 1e-12, 1 - 1e-12))),
                DURATION_CAP_DAYS[group],
            )
            start = _start_day(uid, month_of, seed)
            # ~20% of episodes (35% for opiates) are re-presentations of a client from an earlier cohort.
            returning = stream.u("return") < (0.35 if group in OPIATE_GROUPS else 0.20)
            back = 6 + np.floor(stream.u("back") * 60).astype(np.int64)
            earlier = np.maximum(month_of - back, 0)
            earlier_index = np.floor(stream.u("who") * np.maximum(starts_per_day * 30.4 * 0.5, 1)).astype(np.int64)
            client = np.where(
                returning & (month_of - back >= 0), _uid(area_idx, group_idx, earlier, earlier_index), uid
            )
            for key, value in (
                ("uid", uid),
                ("client", client),
                ("area", np.full(len(uid), area_idx)),
                ("group", np.full(len(uid), group_idx)),
                ("start", start),
                ("dur", duration),
            ):
                parts[key].append(value)
    cat = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in parts.items()}
    return _Episodes(
        cat["uid"].astype(np.uint64),
        cat["client"].astype(np.uint64),
        cat["area"].astype(np.int64),
        cat["group"].astype(np.int64),
        cat["start"].astype(np.int64),
        cat["dur"].astype(np.float64),
    )


# --- attributes -------------------------------------------------------------------------------------

_ETHNIC = (
    list("ABCDEFGHJKLMNPRSZ") + ["99"],
    [83, 1, 4, 0.8, 0.5, 0.5, 0.7, 0.8, 0.8, 0.4, 0.5, 0.9, 0.7, 0.4, 0.2, 1, 2, 1.8],
)
_SEXUAL = (["1", "2", "3", "4", "U", "Z", "9"], [88, 2.5, 2.5, 0.5, 0.5, 3, 3])
_RELIGION = (
    [
        "NONE",
        "CHRISTIAN",
        "MUSLIM",
        "BUDDHIST",
        "HINDU",
        "JEWISH",
        "SIKH",
        "PAGAN",
        "JAIN",
        "ZOROASTRIAN",
        "OTHER",
        "DECLINED",
        "UNKNOWN",
    ],
    [45, 33, 2, 0.6, 0.5, 0.3, 0.4, 0.15, 0.03, 0.02, 3, 5, 10],
)
_NATION = (
    ["GBR", "POL", "IRL", "ROU", "LTU", "PRT", "IND", "PAK", "SOM", "ZZZ"],
    [93, 1.3, 0.8, 0.7, 0.5, 0.4, 0.6, 0.5, 0.4, 0.8],
)
_DISABILITY = (
    ["NN", "ZZ", "01", "08", "05", "04", "02", "09", "03", "06", "07", "10", "XX"],
    [62, 8, 9, 5, 2.5, 1.5, 0.8, 0.6, 0.4, 0.3, 0.3, 0.2, 1.4],
)
_PARENTAL = (["11", "12", "13", "14", "15"], [15, 4, 28, 48, 5])
_EMPLOYMENT = (["12", "9", "1", "13", "2", "10", "14", "15", "5", "6", "99"], [40, 20, 20, 5, 2, 2, 1, 3, 3, 2, 2])
_HOUSING = {True: (["1", "2", "3"], [10, 20, 70]), False: (["1", "2", "3"], [3, 9, 88])}
_REFERRAL = (
    [
        "SELF",
        "FAMILY",
        "GP",
        "HOSP",
        "AE",
        "PSYCH",
        "SOCSERV",
        "HEALTH_OTHER",
        "ARREST_DIP",
        "PRISON",
        "PROBATION",
        "LIAISON_DIVERSION",
        "DRR",
        "ATR",
        "CJ_OTHER",
        "DRUG_STAT",
        "DRUG_NONSTAT",
        "CAT",
        "JCP",
        "EDUCATION",
        "OTHER",
    ],
)
_REFERRAL_WEIGHTS = {
    True: [50, 5, 3, 2, 1, 1, 1, 1, 5, 6, 6, 1, 3, 0, 1, 4, 3, 0, 1, 0, 6],
    False: [45, 8, 12, 5, 3, 2, 3, 3, 2, 1, 3, 1, 0, 2, 1, 2, 2, 3, 1, 1, 1],
}
_FIRST_INITIALS = (
    list("JDSAMPCRLKTGEBNHWFIOVYZQUX"),
    [13, 8, 9, 8, 9, 6, 7, 5, 5, 5, 4, 3, 3, 3, 2, 2, 2, 1, 1, 1, 0.5, 0.5, 0.4, 0.2, 0.2, 0.2],
)
_SURNAME_INITIALS = (
    list("SBHMWCPRTGLDFJKNEAOVYIUZQX"),
    [10, 9, 8, 8, 7, 7, 6, 5, 5, 5, 5, 4, 4, 3, 3, 3, 2, 2, 1, 1, 1, 0.5, 0.3, 0.2, 0.1, 0.1],
)
_DISCHARGE_FAILED = (["85", "83", "84", "88", "86", "89", "87", "93", "95"], [30, 10, 3, 2, 1, 2.5, 1, 0.3, 0.2])


def _drugs(group: np.ndarray, s: _Stream) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """drug_1..3 consistent with the substance group, so recode re-derives exactly that group."""
    n = len(group)
    d1, d2, d3 = (np.full(n, "", dtype=object) for _ in range(3))
    g = np.asarray(SUBSTANCE_GROUPS, dtype=object)[group]
    opiate = s.choice("op", ["1011", "1011", "1105", "1000", "1150"], [60, 10, 12, 13, 5])
    non_opiate = s.choice(
        "nonop",
        ["5000", "3200", "2200", "3100", "3406", "3500", "4100", "8400", "4000"],
        [38, 30, 10, 8, 4, 3, 3, 3, 1],
    )
    extra = s.choice("extra", ["5000", "2200", "3200", "8400"], [45, 25, 20, 10])
    want_second = s.u("second") < 0.45
    want_third = s.u("third") < 0.2

    m = g == "opiate_not_crack"
    d1[m] = opiate[m]
    second = np.where(s.u("alc2") < 0.4, "7000", extra)
    d2[m] = np.where(want_second[m], second[m], "9996")
    m = g == "opiate_and_crack"
    crack_first = s.u("crackfirst") < 0.3
    d1[m] = np.where(crack_first[m], "3201", opiate[m])
    d2[m] = np.where(crack_first[m], opiate[m], "3201")
    m = g == "crack_not_opiate"
    d1[m] = "3201"
    d2[m] = np.where(want_second[m], np.where(s.u("alc3") < 0.5, "7000", "5000")[m], "9996")
    m = g == "non_opiate_only"
    d1[m] = non_opiate[m]
    alt = np.where(non_opiate == "5000", "3200", "5000")
    d2[m] = np.where(want_second[m], alt[m], "9996")
    m = g == "non_opiate_and_alcohol"
    alcohol_first = s.u("alcfirst") < 0.5
    d1[m] = np.where(alcohol_first[m], "7000", non_opiate[m])
    d2[m] = np.where(alcohol_first[m], non_opiate[m], "7000")
    m = g == "alcohol_only"
    d1[m] = "7000"
    d2[m] = "9996"

    # A third drug only where a second exists, and never repeating the first two or breaking the group.
    third_choice = np.full(n, "2200", dtype=object)  # benzodiazepines: never changes the group
    allowed = (
        (d2 != "9996")
        & want_third
        & ~np.isin(g, ["alcohol_only", "non_opiate_and_alcohol"])
        & (d1 != third_choice)
        & (d2 != third_choice)
    )
    d3[:] = "9997"
    d3[allowed] = third_choice[allowed]
    return d1, d2, d3


def _date(days: np.ndarray) -> np.ndarray:
    return (EPOCH + pd.to_timedelta(days, unit="D")).to_numpy().astype("datetime64[ms]")


def _frame(ep: _Episodes, period: str, area_list: list[Area], seed: int) -> pd.DataFrame:
    contract = load_contract()
    n = len(ep.uid)
    period_end = (pd.Timestamp(f"{period}-01") + pd.offsets.MonthEnd(0) - EPOCH).days
    group = np.asarray(SUBSTANCE_GROUPS, dtype=object)[ep.group_idx]
    is_opiate = np.isin(group, list(OPIATE_GROUPS))
    es = _Stream(ep.uid, seed)  # episode attributes
    cs = _Stream(ep.client_uid, seed)  # client attributes: identical for every episode of a client
    # ~0.1% "twins": a different client with the same attributor (initials, DOB, sex) in the same area,
    # made by deriving the person's attributes from the previous client of the same cohort.
    twin = (cs.u("twin") < 0.001) & ((ep.client_uid & np.uint64(0xFFFFFF)) > 0)
    person = np.where(twin, ep.client_uid - np.uint64(1), ep.client_uid)
    ps = _Stream(person, seed)

    # Client: age fixed at the client's first episode, so DOB is stable across episodes and months.
    first_month = ((person >> np.uint64(24)) & np.uint64(4095)).astype(np.int64)
    first_start = _start_day(person, first_month, seed)
    age_weights = np.array([AGE_BANDS[g] for g in SUBSTANCE_GROUPS])[ep.group_idx]
    cumulative = np.cumsum(age_weights, axis=1)
    band = (ps.u("ageband")[:, None] * cumulative[:, -1:] > cumulative).sum(axis=1)
    low, high = AGE_EDGES[band], AGE_EDGES[band + 1]
    age_years = low + np.floor(ps.u("age") * (high - low))
    dob = first_start - np.floor(age_years * 365.25).astype(np.int64) - ps.integers("dobday", 1, 364)
    male = ps.u("sex") < np.vectorize(MALE_SHARE.get)(group).astype(float)
    sex = np.where(male, "M", "F")
    # Sex "U" (not known) is allowed by the contract but NDTMS data-quality tables show ~0: not generated.

    start = ep.start_day
    referral = start - es.integers("wait", 0, 21)
    end = start + np.round(ep.duration).astype(np.int64)
    discharged = end <= period_end
    discharge = np.where(discharged, end, -1)
    success = es.u("success") < np.vectorize(SUCCESS_SHARE.get)(group).astype(float)
    succ_code = np.where(
        group == "alcohol_only",
        np.where(es.u("c81") < 0.6, "81", "80"),
        np.where(np.isin(group, list(OPIATE_GROUPS)), "80", np.where(es.u("c82") < 0.3, "82", "80")),
    )
    failed_code = es.choice("dreason", *_DISCHARGE_FAILED)
    reason = np.where(success, succ_code, failed_code)

    d1, d2, d3 = _drugs(ep.group_idx, es)
    injecting = np.where(
        is_opiate,
        es.choice("inj", ["C", "P", "N", "Z"], [18, 32, 47, 3]),
        es.choice("inj2", ["C", "P", "N", "Z"], [1, 3, 93, 3]),
    )
    route_opiate = es.choice("route_op", ["1", "3", "4", "2"], [35, 55, 8, 2])
    route = np.where(
        d1 == "7000",
        "4",
        np.where(
            np.isin(d1, ["1011", "1105", "1000", "1150"]),
            route_opiate,
            np.where(
                d1 == "3201", "3", np.where(d1 == "5000", "3", es.choice("route_other", ["2", "4", "3"], [50, 40, 10]))
            ),
        ),
    )
    route = np.where((route == "1") & ~np.isin(injecting, ["C", "P"]), "3", route)
    ever_injected = np.isin(injecting, ["C", "P"])

    pharm = np.where(is_opiate, es.u("pharm") < 0.85, es.u("pharm2") < np.where(group == "alcohol_only", 0.15, 0.05))
    special = es.choice("special", ["", "INPATIENT_DETOX", "RESI_REHAB"], [96.5, 2, 1.5])
    intervention = np.where(
        special != "", special, np.where(pharm, "PHARM", np.where(es.u("rec") < 0.1, "RECOVERY", "PSYCH"))
    )
    setting = np.where(
        intervention == "INPATIENT_DETOX",
        "INPATIENT_UNIT",
        np.where(
            intervention == "RESI_REHAB",
            "RESIDENTIAL",
            es.choice("setting", ["COMMUNITY", "PRIMARY_CARE", "RECOVERY_HOUSE", "PRISON"], [86, 11, 1.5, 1.5]),
        ),
    )
    ost = np.where(
        is_opiate & (intervention == "PHARM"),
        es.choice("ost", ["METHADONE", "BUPRENORPHINE_ORAL", "BUPRENORPHINE_DEPOT"], [60, 32, 8]),
        "",
    )
    modality_start = start + es.integers("modwait", 0, 14)
    modality_end = np.where(discharged, np.minimum(np.maximum(end, modality_start), period_end), -1)
    care_plan = start + es.integers("cplan", 0, 14)
    modality_referral = start
    first_offered = np.minimum(start + es.integers("offer", 0, 7), modality_start)

    # Latest TOP by the period end: start TOP a week in, reviews every ~182 days, exit TOP for 70%.
    horizon = np.minimum(period_end, np.where(discharged, end, period_end))
    first_top = start + 7
    has_top = first_top <= horizon
    reviews = np.maximum((horizon - first_top) // 182, 0)
    top_day = first_top + reviews * 182
    exit_top = discharged & (es.u("exittop") < 0.7) & has_top
    top_day = np.where(exit_top, end, top_day)
    top_stage = np.where(exit_top, "E", np.where(reviews > 0, "R", "S"))
    improving = np.where(top_stage == "S", 0, 1)

    def top_days(name: str, active: np.ndarray, high: float) -> np.ndarray:
        base = np.floor(es.u(name) * high).astype(np.int64)
        return np.where(active, np.clip(base - improving * es.integers(name + "r", 0, 10), 0, 28), 0)

    drinks = np.isin(group, ["alcohol_only", "non_opiate_and_alcohol"]) | (d2 == "7000")
    consent = np.where(cs.u("consent") < 0.01, "N", "Y")

    area_codes = np.asarray([a.code for a in area_list], dtype=object)[ep.area_idx]
    agency_count = np.asarray([1 + (a.clients > 500) + (a.clients > 1500) + (a.clients > 2200) for a in area_list])[
        ep.area_idx
    ]
    agency = np.char.add(
        "N", np.char.zfill(((ep.area_idx + 1) * 100 + es.integers("agency", 0, 99) % agency_count).astype(str), 4)
    )
    prefix = np.asarray(["".join(ch for ch in a.name.upper() if ch.isalpha())[:2] for a in area_list], dtype=object)[
        ep.area_idx
    ]
    postcode = prefix + cs.integers("pcd", 1, 9).astype(str) + " " + cs.integers("pcs", 0, 9).astype(str)
    alphabet = np.array(list("ABCDEFGHJKLMNPQRSTUVWXYZ23456789"))
    ref_codes = (cs.u("ref")[:, None] * np.array([32.0**k for k in range(1, 11)])).astype(np.int64) % 32
    client_ref = np.array(["".join(r) for r in alphabet[ref_codes]], dtype=object)
    episode_id = np.char.add("EP", np.char.upper(np.array([format(int(u), "x") for u in ep.uid], dtype=str)))

    female_18_44 = (sex == "F") & ((start - dob) < 45 * 365.25)
    parental = cs.choice("parental", *_PARENTAL)
    children = np.where(np.isin(parental, ["11", "12"]), cs.integers("children", 1, 4), 0)
    disability_1 = cs.choice("dis1", *_DISABILITY)
    has_dis = ~np.isin(disability_1, ["NN", "ZZ"])
    disability_2 = np.where(
        has_dis & (cs.u("dis2p") < 0.25), cs.choice("dis2", ["01", "08", "05", "04", "09"], [3, 3, 2, 1, 1]), ""
    )
    disability_2 = np.where(disability_2 == disability_1, "", disability_2)
    disability_3 = np.where((disability_2 != "") & (cs.u("dis3p") < 0.2), "02", "")
    disability_3 = np.where((disability_3 == disability_1) | (disability_3 == disability_2), "", disability_3)
    housing = np.where(is_opiate, es.choice("house_op", *_HOUSING[True]), es.choice("house", *_HOUSING[False]))
    referral_source = np.where(
        is_opiate,
        es.choice("ref_op", _REFERRAL[0], _REFERRAL_WEIGHTS[True]),
        es.choice("ref", _REFERRAL[0], _REFERRAL_WEIGHTS[False]),
    )

    def flag(name: str, p: float | np.ndarray, stream: _Stream = es) -> np.ndarray:
        return np.where(stream.u(name) < p, "Y", "N")

    columns: dict[str, object] = {
        "period": np.full(n, period, dtype=object),
        "agency_code": agency,
        "client_ref": client_ref,
        "episode_id": episode_id,
        "first_initial": ps.choice("fi", *_FIRST_INITIALS),
        "surname_initial": ps.choice("si", *_SURNAME_INITIALS),
        "date_of_birth": _date(dob),
        "sex": sex,
        "partial_postcode": np.where(cs.u("pcnull") < 0.03, "", postcode),
        "dat_code": np.char.add("S", np.char.zfill((ep.area_idx + 10).astype(str), 2)).astype(object) + "B",
        "la_code": area_codes,
        "consent": consent,
        "ethnicity": cs.choice("ethnic", *_ETHNIC),
        "nationality": cs.choice("nation", *_NATION),
        "sexual_orientation": cs.choice("sexual", *_SEXUAL),
        "religion": cs.choice("religion", *_RELIGION),
        "disability_1": np.where(cs.u("disnull") < 0.08, "", disability_1),
        "disability_2": disability_2,
        "disability_3": disability_3,
        "veteran": np.where(
            male & ((start - dob) > 40 * 365.25) & (cs.u("vet") < 0.04), "Y", cs.choice("vet2", ["N", "Z"], [92, 8])
        ),
        "pregnant": np.where(female_18_44, flag("preg", 0.03), ""),
        "parental_status": parental,
        "children_living_with": children,
        "employment_status": es.choice("emp", *_EMPLOYMENT),
        "accommodation_need": housing,
        "homeless_risk_8wk": flag("hr8", np.where(is_opiate, 0.18, 0.05)),
        "drug_1": d1,
        "drug_2": d2,
        "drug_3": d3,
        "drug_1_age_first_use": np.clip(
            np.round(
                np.where(
                    d1 == "7000",
                    16 + 4 * ndtri(np.clip(es.u("fa"), 1e-9, 1 - 1e-9)),
                    21 + 5 * ndtri(np.clip(es.u("fa"), 1e-9, 1 - 1e-9)),
                )
            ),
            8,
            np.floor((start - dob) / 365.25),
        ).astype(np.int64),
        "route": route,
        "injecting_status": injecting,
        "alcohol_units": np.where(
            drinks,
            np.clip(np.round(np.exp(np.log(20) + 0.5 * ndtri(np.clip(es.u("units"), 1e-9, 1 - 1e-9)))), 1, 200),
            -1,
        ).astype(np.int64),
        "drinking_days_28": np.where(drinks, np.clip(28 - np.floor(es.u("ddays") ** 2 * 20), 0, 28), -1).astype(
            np.int64
        ),
        "referral_source": referral_source,
        "previously_treated": flag("prev", np.where(is_opiate, 0.75, 0.35)),
        "referral_date": _date(np.maximum(referral, 0)),
        "triage_date": _date(start),
        "care_plan_date": _date(np.minimum(care_plan, period_end)),
        "intervention": intervention,
        "setting": setting,
        "modality_referral_date": _date(modality_referral),
        "first_appt_offered": _date(np.minimum(first_offered, period_end)),
        "modality_start": _date(np.minimum(modality_start, period_end)),
        "modality_end": np.where(modality_end >= 0, _date(np.maximum(modality_end, 0)), np.datetime64("NaT")),
        "modality_exit": np.where(discharged, np.where(success, "A", es.choice("modexit", ["B", "C"], [85, 15])), ""),
        "ost_type": ost,
        "naloxone_issued": np.where(is_opiate, flag("nalox", 0.4), flag("nalox2", 0.02)),
        "discharge_date": np.where(discharged, _date(np.maximum(discharge, 0)), np.datetime64("NaT")),
        "discharge_reason": np.where(discharged, reason, ""),
        "mental_health_need": flag(
            "mh", np.where(is_opiate, 0.57, np.where(group == "non_opiate_and_alcohol", 0.71, 0.66))
        ),
        "hep_c_status": np.where(ever_injected, es.choice("hepc", ["A", "B", "D"], [70, 15, 15]), ""),
        "hep_b_status": np.where(ever_injected, es.choice("hepb", ["A", "B", "C", "D", "E"], [55, 15, 15, 10, 5]), ""),
        "top_date": np.where(has_top, _date(np.maximum(top_day, 0)), np.datetime64("NaT")),
        "top_stage": np.where(has_top, top_stage, ""),
    }
    hep_c_tested = ever_injected & (columns["hep_c_status"] == "A")
    columns["hep_c_test_date"] = np.where(
        hep_c_tested & (start + 30 <= period_end),
        _date(np.minimum(start + es.integers("hcvt", 1, 60), period_end)),
        np.datetime64("NaT"),
    )
    top = {
        "days_alcohol": top_days("talc", drinks, 29),
        "days_opiates": top_days("topi", is_opiate, 29),
        "days_crack": top_days("tcra", (d1 == "3201") | (d2 == "3201"), 20),
        "days_cocaine": top_days("tcoc", (d1 == "3200") | (d2 == "3200"), 12),
        "days_amphetamine": top_days("tamp", (d1 == "3100"), 15),
        "days_cannabis": top_days("tcan", (d1 == "5000") | (d2 == "5000"), 29),
        "days_other_drug": top_days("toth", d3 != "9997", 10),
        "days_tobacco": np.where(es.u("tob") < 0.7, 28, es.integers("tob2", 0, 27)),
        "days_injected": top_days("tinj", injecting == "C", 29),
        "sharing": np.where(injecting == "C", flag("share", 0.1), "N"),
        "days_shoplifting": top_days("tshop", es.u("shopp") < (0.25 * is_opiate + 0.03), 12),
        "days_drug_selling": top_days("tsell", es.u("sellp") < 0.05, 10),
        "days_other_theft": top_days("ttheft", es.u("theftp") < 0.05, 8),
        "assault": flag("assault", 0.03),
        "psych_health": np.clip(
            np.round(9 + improving * 2.5 + 4 * ndtri(np.clip(es.u("psy"), 1e-9, 1 - 1e-9))), 0, 20
        ).astype(np.int64),
        "phys_health": np.clip(
            np.round(10 + improving * 2 + 4 * ndtri(np.clip(es.u("phy"), 1e-9, 1 - 1e-9))), 0, 20
        ).astype(np.int64),
        "quality_of_life": np.clip(
            np.round(9 + improving * 2.5 + 4 * ndtri(np.clip(es.u("qol"), 1e-9, 1 - 1e-9))), 0, 20
        ).astype(np.int64),
        "days_paid_work": np.where(es.u("work") < 0.2, es.integers("work2", 1, 28), 0),
        "days_education": np.where(es.u("edu") < 0.05, es.integers("edu2", 1, 20), 0),
        "acute_housing_problem": np.where(housing == "1", "Y", "N"),
        "eviction_risk": np.where(housing == "2", flag("evict", 0.4), "N"),
    }
    for name, values in top.items():
        columns[name] = np.where(has_top, values, -1 if np.asarray(values).dtype.kind in "iu" else "")

    frame = pd.DataFrame({name: columns[name] for name in contract.column_names})
    for col in contract.columns:
        values = frame[col.name]
        if col.type == "date":
            frame[col.name] = values.astype("datetime64[ms]")
        elif col.type == "integer":
            frame[col.name] = pd.array(values.where(values >= 0), dtype="Int64")
        else:
            frame[col.name] = values.astype("string").replace("", pd.NA)
    # NDTMS blanks every field but agency, client and consent when consent is withheld.
    keep = [c.name for c in contract.columns if c.required == "always"]
    withheld = frame["consent"] == "N"
    for name in contract.column_names:
        if name not in keep:
            frame.loc[withheld, name] = pd.NA
    return frame


def _resolve_areas(
    areas: Sequence[str] | None, clients: int | None, config_dir: Path | None
) -> list[tuple[int, Area, int]]:
    configured = load_areas(config_dir or REPO_DIR / "include" / "config").areas
    chosen = configured if not areas else [a for a in configured if a.name in set(areas)]
    unknown = sorted(set(areas or []) - {a.name for a in configured})
    if unknown:
        raise ValueError(f"unknown area(s) {unknown}; configured: {[a.name for a in configured]}")
    weight = sum(a.clients for a in chosen)
    scale = (clients / weight) if clients else 1.0
    # Keep each area's index from the full configuration, so an area's episodes do not depend on which others are asked for.
    index = {a.code: i for i, a in enumerate(configured)}
    return [(index[a.code], a, max(1, int(round(a.clients * scale)))) for a in chosen]


def generate_extract(
    period: str,
    *,
    clients: int | None = None,
    areas: Sequence[str] | None = None,
    seed: int = 20240101,
    config_dir: Path | None = None,
) -> pd.DataFrame:
    """The typed extract for ``period``: episodes open at any time in the month, as the provider would send."""
    chosen = _resolve_areas(areas, clients, config_dir)
    configured = load_areas(config_dir or REPO_DIR / "include" / "config").areas
    episodes = _simulate(period, chosen, seed)
    period_start = (pd.Timestamp(f"{period}-01") - EPOCH).days
    period_end = (pd.Timestamp(f"{period}-01") + pd.offsets.MonthEnd(0) - EPOCH).days
    end = episodes.start_day + np.round(episodes.duration).astype(np.int64)
    open_in_month = (episodes.start_day <= period_end) & (end >= period_start)
    selected = _Episodes(*(getattr(episodes, f)[open_in_month] for f in _Episodes.__dataclass_fields__))
    order = np.lexsort((selected.uid, selected.area_idx))
    selected = _Episodes(*(getattr(selected, f)[order] for f in _Episodes.__dataclass_fields__))
    return _frame(selected, period, configured, seed).reset_index(drop=True)


def generate_history(start_period: str, months: int, **kwargs: object) -> Iterator[tuple[str, pd.DataFrame]]:
    """Consecutive monthly extracts from the same population (same clients, same episode ids)."""
    first = pd.Period(start_period, freq="M")
    for offset in range(months):
        period = (first + offset).strftime("%Y-%m")
        yield period, generate_extract(period, **kwargs)  # type: ignore[arg-type]


def write_extract(frame: pd.DataFrame, path: Path | str, fmt: Literal["csv", "xlsx", "parquet"] | None = None) -> Path:
    """Write as a provider would: CSV (UTF-8, ISO dates, empty = null), XLSX (one sheet 'extract', ISO date text) or Parquet."""
    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".").lower()  # type: ignore[assignment]
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
        return path
    text = frame.copy()
    for name in text.columns:
        if pd.api.types.is_datetime64_any_dtype(text[name]):
            text[name] = text[name].dt.strftime("%Y-%m-%d")
    if fmt == "csv":
        text.to_csv(path, index=False, date_format="%Y-%m-%d")
    elif fmt == "xlsx":
        text.astype("string").to_excel(path, index=False, sheet_name="extract")
    else:
        raise ValueError(f"unsupported format {fmt!r}; expected csv, xlsx or parquet")
    return path
