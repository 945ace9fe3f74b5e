"""Disclosure audit: the attacker's view of a release, run before every publish.

Independent of the suppressor by design: it reads only the *published* tables (counts and `c` markers),
derives every additive relation itself (members of a line sum to its total, in every table), links
cells that linked tables share, and for each suppressed cell solves two linear programmes (HiGHS) for
the smallest and largest value consistent with everything published. The attacker knows the rule, so a
suppressed cell is at least 1 when zeros are published. A cell is *disclosed* when its interval is exact
or its upper bound is k or less (the attacker proves it is a small group). The bounds are integer-valid
(lp_model.py: the LP bounds rounded inwards, and an exact integer programme for the borderline cells), as
an attacker who knows counts are integers would find them.

The suppression log's true values are used only to report them beside the intervals (restricted), never
to compute the bounds. The audit imports only the table model (tables.py) and the bounds model
(lp_model.py), never the suppressor (import-linter contract in pyproject.toml), so a flaw in the
suppressor's reasoning cannot also blind the check of its output.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import csc_matrix, csr_matrix

from treatment_marts.core.labels import TOTAL
from treatment_marts.disclosure.lp_model import (
    INTEGER_EPS,
    BoundsModel,
    IntegerCache,
    a_priori_lower,
    pinned,
    proved_small,
    safe_by_point,
)
from treatment_marts.disclosure.tables import LinearRelation, MartTable, Zeros, cell_key, scoped_key, table_cell

Scopes = Sequence[str | None] | None  # per table: the population it belongs to (None: one population alone)


def _scope_of(scopes: Scopes, i: int) -> str | None:
    return None if scopes is None else scopes[i]


class DisclosureAuditFailed(RuntimeError):
    """Refuse to publish: a suppressed value is recoverable. The message names cells, never their values."""

    def __init__(self, result: AuditResult) -> None:
        self.result = result
        bad = result.intervals[result.intervals["disclosed"]]
        names = [f"{r.mart} {r.cell} ({r.reason})" for r in bad.head(10).itertuples()]
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        super().__init__(f"disclosure audit failed for {len(bad)} suppressed cell(s): " + "; ".join(names) + more)


@dataclass
class AuditResult:
    intervals: (
        pd.DataFrame
    )  # per suppressed table cell: mart, period, cell, key, lower, upper, true_count, disclosed, reason

    @property
    def passed(self) -> bool:
        return not bool(self.intervals["disclosed"].any()) if len(self.intervals) else True


def _published_cells(tables: Sequence[MartTable], scopes: Scopes = None) -> pd.DataFrame:
    """One row per (table, cell): canonical key (scoped by population), published value or NaN when
    suppressed."""
    parts = []
    for i, table in enumerate(tables):
        dims = list(table.dimensions)
        frame = table.frame
        labels = frame[dims].astype(str)
        scope = _scope_of(scopes, i)
        keys = [
            scoped_key(scope, cell_key(str(p), dict(zip(dims, row, strict=False))))
            for p, row in zip(frame["period"].astype(str), labels.itertuples(index=False, name=None), strict=False)
        ]
        parts.append(
            pd.DataFrame(
                {
                    "mart": table.name,
                    "period": frame["period"].astype(str).to_numpy(),
                    "cell": [
                        table_cell(dict(zip(dims, row, strict=False)))
                        for row in labels.itertuples(index=False, name=None)
                    ],
                    "key": keys,
                    "table": i,
                    "value": frame["count"].astype("Float64").to_numpy(dtype=float, na_value=np.nan),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _equations(tables: Sequence[MartTable], scopes: Scopes = None) -> list[tuple[str, list[str], float]]:
    """(total key, member keys, slack) for every line of every table, deduplicated: the members sum to
    between the total and the total + slack. The slack is 0 (an exact sum) except along a dimension whose
    Total is a distinct count (``MartTable.overlap``: national = distinct clients, so areas sum to at least
    national and at most national + D); a line two tables give with different slacks keeps the tighter."""
    equations: dict[tuple[str, tuple[str, ...]], float] = {}
    for i, table in enumerate(tables):
        dims = list(table.dimensions)
        scope = _scope_of(scopes, i)
        frame = table.frame.assign(
            _key=[
                scoped_key(scope, cell_key(str(p), dict(zip(dims, row, strict=False))))
                for p, row in zip(
                    table.frame["period"].astype(str),
                    table.frame[dims].astype(str).itertuples(index=False, name=None),
                    strict=False,
                )
            ]
        )
        for d in dims:
            slack = float(table.overlap.get(d, 0))
            others = [o for o in dims if o != d] + ["period"]
            totals = frame[frame[d] == TOTAL][others + ["_key"]].rename(columns={"_key": "_total"})
            members = frame[frame[d] != TOTAL][others + ["_key"]]
            joined = members.merge(totals, on=others, how="inner")
            for total, group in joined.groupby("_total", sort=True):
                line = (str(total), tuple(sorted(group["_key"])))
                equations[line] = min(slack, equations.get(line, slack))
    return [(total, list(members), slack) for (total, members), slack in equations.items()]


def _distinct_total_bounds(equations: Sequence[tuple[str, list[str], float]]) -> list[LinearRelation]:
    """A distinct-count Total is at least each of its levels on a line whose other dimensions are all
    Total (a client counted in an area is counted nationally): ``total - member >= 0``. Only there: in an
    inner cell (say one substance group) a client can be counted by one area's episode and nationally by
    another area's episode in another group, so the inner national cell can be below an area's."""
    out: list[LinearRelation] = []
    for total, members, slack in equations:
        if slack > 0 and len(json.loads(total[total.index("{") :])) == 1:  # past any scope: only the period
            out.extend(LinearRelation(((total, 1.0), (member, -1.0)), lower=0.0) for member in members)
    return out


class AttackModel:
    """The attacker's equations for a set of linked tables: built once from the tables' shape.

    Which cells are suppressed changes between calls (the suppressor iterates); the additive relations
    do not, so they are derived once and only the right-hand sides are recomputed.

    ``scopes`` (one per table) puts several populations of a release in one system, each cell named by
    its population (tables.scoped_key); ``relations`` are what the attacker knows across them (a subset
    population is at most its superset, cell by cell) or across releases, as inequality rows.
    """

    def __init__(
        self, tables: Sequence[MartTable], scopes: Scopes = None, relations: Sequence[LinearRelation] = ()
    ) -> None:
        self.cells = _published_cells(tables, scopes)
        lines = _equations(tables, scopes)
        self.equations = [(total, members) for total, members, _ in lines]
        self.slacks = [slack for _, _, slack in lines]  # 0: an exact sum; D: a distinct-count Total
        relations = [*relations, *_distinct_total_bounds(lines)]
        known_keys = set(self.cells["key"])
        for relation in relations:
            missing = [key for key, _ in relation.terms if key not in known_keys]
            if missing:
                raise ValueError(f"a relation names cell(s) no table publishes: {missing[:3]}")
        # A relation "a = b" (a revision's cell of an unchanged area and the earlier release's) makes the two
        # cells one variable: substituted, not added as a row, so a revision's system is hardly larger than
        # the release's own.
        parent: dict[str, str] = {}

        def root(key: str) -> str:
            while parent.get(key, key) != key:
                key = parent[key]
            return key

        self.relations = []
        for relation in relations:
            if _identity(relation):
                (a, _), (b, _) = relation.terms
                ra, rb = root(a), root(b)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
            else:
                self.relations.append(relation)
        self.alias = {key: root(key) for key in parent}
        self.integer_cache: IntegerCache = {}  # systems met again on later masks reuse their integer programmes
        self.component_cache: dict[tuple[object, ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def intervals(
        self,
        values: pd.Series,
        *,
        k: int,
        zeros: Zeros,
        reference: pd.Series | None = None,
        carried: Collection[str] = (),
        verdict_only: bool = False,
        public: Collection[str] = (),
        small_only: bool = False,
    ) -> pd.DataFrame:
        """Integer interval (``lower``, ``upper``: Int64, upper missing when unbounded) of every unknown (NaN)
        key and the verdict. ``reference``: a known feasible point (true values) that lets a caller skip the
        minimisation when the maximum already proves safety (``lower`` is then the a-priori floor).
        ``verdict_only`` (with ``reference``): the caller needs only *whether* each cell is disclosed, as the
        suppressor does on every round; a cell that an earlier LP's optimal point already shows at k + 2 or
        more and two above its true value (lp_model.safe_by_point) is safe without an LP of its own, and its
        ``upper`` is then that witnessed value rounded down (a lower estimate of the true maximum).
        ``carried``: keys hidden in the period's earlier release (public to anyone who kept it); such a cell
        stays hidden in a revision even if it is now zero, so the attacker may assume only 0 for it.
        ``public``: keys whose value an earlier release already published (the same cell, its input
        unchanged); pinning them reveals nothing new, so they are never judged disclosed.
        ``small_only``: a cell is disclosed only when the attacker proves it 0..k (or cannot prove otherwise
        in time); an exact value above k reveals no small group (tau-argus and sdcTable protect the
        sensitive cells, not the complementary ones). Used for a revision against the release it replaces,
        where the strict rule (no hidden cell pinned, however large) found no pattern."""
        columns = ["key", "lower", "upper", "disclosed", "reason"]
        hidden_keys = sorted(values[values.isna()].index)
        if not hidden_keys:
            return pd.DataFrame(columns=columns).astype({"disclosed": bool})
        known = values.dropna().to_dict()
        alias = self.alias
        group_value = {alias[key]: v for key, v in known.items() if key in alias}
        shown = {key: group_value[alias[key]] for key in hidden_keys if alias.get(key) in group_value}
        known.update(shown)  # hidden here, but the same cell is published in the other release
        unknown = sorted({alias.get(key, key) for key in hidden_keys if key not in shown})
        if not unknown:
            return _with_aliases(pd.DataFrame(columns=columns).astype({"disclosed": bool}), hidden_keys, alias, shown)
        position = {key: i for i, key in enumerate(unknown)}
        position.update({key: position[alias[key]] for key in hidden_keys if key in alias and key not in shown})
        rows: list[int] = []
        cols: list[int] = []
        coefs: list[float] = []
        rhs: list[float] = []
        rhs_upper: list[float] = []
        lines = [
            ([(m, 1.0) for m in members] + [(total, -1.0)], *self._line_bounds(total, members, slack, reference))
            for (total, members), slack in zip(self.equations, self.slacks, strict=True)
        ]
        extra = [(list(r.terms), r.lower, r.upper) for r in self.relations]
        for terms, low, high in lines + extra:
            involved = [(position[key], c) for key, c in terms if key in position]
            if not involved:
                continue
            constant = sum(c * known[key] for key, c in terms if key not in position)
            r = len(rhs)
            for j, c in involved:
                rows.append(r)
                cols.append(j)
                coefs.append(c)
            rhs.append(low - constant)
            rhs_upper.append(high - constant)
        matrix = csr_matrix((coefs, (rows, cols)), shape=(len(rhs), len(unknown)))
        matrix.sum_duplicates()
        matrix.eliminate_zeros()  # a cell and its alias in one line cancel
        b = np.asarray(rhs, dtype=float)
        b_upper = np.asarray(rhs_upper, dtype=float)

        parent = list(range(len(unknown)))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for r in range(matrix.shape[0]):
            involved = matrix.indices[matrix.indptr[r] : matrix.indptr[r + 1]]
            for j in involved[1:]:
                parent[find(int(j))] = find(int(involved[0]))
        components: dict[int, list[int]] = {}
        for j in range(len(unknown)):
            components.setdefault(find(j), []).append(j)

        floor = np.where(np.isin(unknown, [alias.get(key, key) for key in carried]), 0.0, float(a_priori_lower(zeros)))
        lower = floor.copy()
        upper = np.full(len(unknown), np.inf)
        unproved = np.zeros(len(unknown), dtype=bool)
        by_column = matrix.tocsc()
        ref = None if reference is None else reference.reindex(unknown).to_numpy(dtype=float)
        names = np.asarray(unknown, dtype=object)
        for component in components.values():
            lower[component], upper[component], unproved[component] = self._solve_component(
                by_column, component, b, b_upper, floor, k, ref, names, verdict_only=verdict_only
            )
        small = proved_small(upper, k)
        exact = pinned(lower, upper) & (small if small_only else True)
        reason = np.where(
            exact,
            "exact value recoverable",
            np.where(small, f"proved to be at most {k}", np.where(unproved, "not proved safe (time limit)", "")),
        )
        by_variable = pd.DataFrame(
            {
                "key": unknown,
                "lower": pd.array([int(v) for v in lower], dtype="Int64"),
                "upper": pd.array([int(v) if np.isfinite(v) else pd.NA for v in upper], dtype="Int64"),
                "disclosed": exact | small | unproved,
                "reason": reason,
            }
        )
        out = _with_aliases(by_variable, hidden_keys, alias, shown)
        known_public = out["key"].isin(list(public)).to_numpy()
        out["disclosed"] = out["disclosed"].to_numpy() & ~known_public
        out["reason"] = np.where(known_public, "published in the earlier release", out["reason"])
        return out

    @staticmethod
    def _line_bounds(total: str, members: list[str], slack: float, reference: pd.Series | None) -> tuple[float, float]:
        """What the attacker holds of ``sum(members) - total``: 0 for an exact line; for a distinct-count
        Total, 0..D, or, when the caller knows the truth (``reference``: the suppressor), its true value.
        That attacker knows more than the real one (how far each such Total falls short), so a pattern it
        passes is safe against the inequality form; and its lines are equations again, whose relaxation
        is integral far more often (with the ranges, integer programmes took ~90% of the suppressor's time)."""
        if slack == 0 or reference is None:
            return 0.0, slack
        try:
            gap = float(reference[members].sum() - reference[total])
        except KeyError:
            return 0.0, slack
        return gap, gap

    def _solve_component(
        self,
        by_column: csc_matrix,
        component: list[int],
        b: np.ndarray,
        b_upper: np.ndarray,
        floor: np.ndarray,
        k: int,
        ref: np.ndarray | None,
        names: np.ndarray,
        *,
        verdict_only: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Bounds of one connected system; the same system (cells, rows, right-hand sides) has the same
        answer, so a suppressor's round that changes one corner of a release re-solves only that corner."""
        sub = by_column[:, component]
        used_rows = np.unique(sub.nonzero()[0])
        system = sub[used_rows, :].tocsc()
        key = (
            tuple(names[component].tolist()),
            system.indptr.tobytes(),
            system.indices.tobytes(),
            system.data.tobytes(),
            b[used_rows].tobytes(),
            b_upper[used_rows].tobytes(),
            floor[component].tobytes(),
            k,
            None if ref is None else ref[component].tobytes(),
            verdict_only and ref is not None,
        )
        bounds = self.component_cache.get(key)
        if bounds is None:
            bounds = _component_bounds(
                system,
                b[used_rows],
                floor[component],
                k,
                None if ref is None else ref[component],
                verdict_only=verdict_only and ref is not None,
                names=names[component],
                cache=self.integer_cache,
                b_upper=b_upper[used_rows],
            )
            self.component_cache[key] = bounds
        return bounds


def _identity(relation: LinearRelation) -> bool:
    """``a - b = 0``: two names of one cell."""
    if len(relation.terms) != 2 or relation.lower != 0 or relation.upper != 0:
        return False
    return sorted(c for _, c in relation.terms) == [-1.0, 1.0]


def _with_aliases(
    by_variable: pd.DataFrame, hidden_keys: list[str], alias: dict[str, str], shown: dict[str, float]
) -> pd.DataFrame:
    """One row per hidden key: its variable's interval, or (``shown``) the value the other release
    published, which discloses nothing new."""
    rows = by_variable.set_index("key")
    solved = [key for key in hidden_keys if key not in shown]
    out = rows.reindex([alias.get(key, key) for key in solved]).reset_index(drop=True)
    out.insert(0, "key", solved)
    if shown:
        value = pd.array([int(shown[key]) for key in shown], dtype="Int64")
        extra = pd.DataFrame(
            {
                "key": list(shown),
                "lower": value,
                "upper": value,
                "disclosed": False,
                "reason": "published in the earlier release",
            }
        )
        out = pd.concat([out, extra], ignore_index=True)
    out["disclosed"] = out["disclosed"].astype(bool)
    return out.sort_values("key", kind="stable").reset_index(drop=True)


def attack_intervals(
    tables: Sequence[MartTable],
    *,
    k: int = 3,
    zeros: Zeros = "show",
    carried: Collection[str] = (),
    scopes: Scopes = None,
    relations: Sequence[LinearRelation] = (),
    public: Collection[str] = (),
    small_only: bool = False,
) -> pd.DataFrame:
    """Feasible interval of every suppressed cell (one row per distinct cell key), from the tables alone
    (and, for a revision, the keys the earlier release hid; with ``scopes``/``relations``, several
    populations and what links them, as AttackModel)."""
    model = AttackModel(tables, scopes, relations)
    values = model.cells.assign(value=model.cells["value"]).groupby("key")["value"].first()
    return model.intervals(values, k=k, zeros=zeros, carried=carried, public=public, small_only=small_only)


def _component_bounds(
    a_eq: csc_matrix,
    b_eq: np.ndarray,
    floor: np.ndarray,
    k: int,
    reference: np.ndarray | None,
    *,
    verdict_only: bool = False,
    names: np.ndarray | None = None,
    cache: IntegerCache | None = None,
    b_upper: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer lower and upper bound of every variable of one component, s.t. b <= A x <= b_upper (b_upper
    defaults to b: the tables' lines are equations, other relations may be inequalities), x >= floor, x
    integer (lp_model.BoundsModel: LP bounds, tightened, borderline cells by integer programme), and which
    bounds an integer programme could not prove in time.

    ``reference`` (a feasible point, the truth): a maximum that proves safety (lp_model.safe_by_point) makes
    the minimum unnecessary. ``verdict_only`` (with ``reference``): every optimal point is a feasible point
    for *all* variables; a variable it already proves safe needs no LP (see AttackModel.intervals).
    ``names`` / ``cache``: reuse of integer programmes across calls (lp_model.BoundsModel).
    """
    n = a_eq.shape[1]
    unproved = np.zeros(n, dtype=bool)
    if a_eq.shape[0] == 0:
        return floor.astype(float).copy(), np.full(n, np.inf), unproved
    model = BoundsModel(a_eq, b_eq, floor, names=names, cache=cache, rhs_upper=b_upper)
    low = floor.astype(float).copy()
    high = np.full(n, np.inf)
    witnessed = np.full(n, -np.inf)  # the largest value of each variable in any optimal point so far
    for j in range(n):
        if verdict_only and reference is not None and safe_by_point(witnessed[j], reference[j], k):
            # safe: a feasible point far enough above k and the truth; its value, not the maximum, is kept
            high[j], low[j] = np.floor(witnessed[j] + INTEGER_EPS), floor[j]
            continue
        upper = model.bound(j, maximise=True)
        high[j] = np.inf if upper is None else upper  # None (unbounded): the attacker learns no upper bound
        if upper is not None and verdict_only:
            np.maximum(witnessed, model.point(), out=witnessed)
        if reference is not None and safe_by_point(high[j], reference[j], k):
            low[j], high[j] = floor[j], np.floor(high[j] + INTEGER_EPS)  # the minimum is not needed to decide
            continue
        lower = model.bound(j, maximise=False)
        if lower is not None:
            low[j] = lower
            if verdict_only:
                np.maximum(witnessed, model.point(), out=witnessed)
        if verdict_only and reference is not None:  # the same verdict, by feasibility programmes
            interval = model.verdict(j, low[j], high[j], k, float(reference[j]))
        else:
            interval = model.decide(j, low[j], high[j], k)
        low[j], high[j], unproved[j] = interval.lower, interval.upper, not interval.proved
    return low, high, unproved


def audit(
    tables: Sequence[MartTable],
    *,
    k: int = 3,
    zeros: Zeros = "show",
    true_counts: pd.DataFrame | None = None,
    carried: Collection[str] = (),
    scopes: Scopes = None,
    relations: Sequence[LinearRelation] = (),
    report: Collection[int] | None = None,
    public: Collection[str] = (),
    small_only: bool = False,
) -> AuditResult:
    """Audit a set of linked published tables; one row per suppressed cell of each table. ``carried``: the
    keys the period's earlier release hid (a revision keeps them hidden even when now zero). ``scopes`` and
    ``relations``: every population of a release in one system (AttackModel). ``report``: the tables whose
    cells are this release's (positions; default all); the others are context, e.g. an earlier release
    the attacker holds, and are solved with the rest but not reported. ``public``: keys an earlier release
    already published; ``small_only``: only a cell proved 0..k is disclosed (AttackModel.intervals)."""
    cells = _published_cells(tables, scopes)
    if report is not None:
        cells = cells[cells["table"].isin(list(report))]
    suppressed = cells[cells["value"].isna()].drop(columns=["value", "table"])
    intervals = attack_intervals(
        tables,
        k=k,
        zeros=zeros,
        carried=carried,
        scopes=scopes,
        relations=relations,
        public=public,
        small_only=small_only,
    )
    result = suppressed.merge(intervals, on="key", how="left")
    result["disclosed"] = result["disclosed"].fillna(False).astype(bool)
    return _with_true_counts(result, true_counts)


def _with_true_counts(result: pd.DataFrame, true_counts: pd.DataFrame | None) -> AuditResult:
    """The intervals with the restricted true counts beside them (reported, never used to solve)."""
    result = result.drop(columns=["true_count"], errors="ignore")
    if true_counts is not None and len(true_counts):
        result = result.merge(true_counts[["mart", "cell", "true_count"]], on=["mart", "cell"], how="left")
    else:
        result["true_count"] = pd.NA
    return AuditResult(result.reset_index(drop=True))


def reported(result: AuditResult, scopes: Sequence[str], true_counts: pd.DataFrame | None = None) -> AuditResult:
    """An audit of a whole system (every table reported) narrowed to the cells of ``scopes``, in their
    order, as `audit` with ``report`` set to those tables would give them: a caller that audited the same
    system already (the window repair's last round) need not solve it again."""
    scope_of = result.intervals["key"].str.split("|", n=1).str[0]
    rank = {scope: i for i, scope in enumerate(scopes)}
    position = scope_of.map(rank)
    kept = result.intervals.assign(_rank=position)[position.notna()]
    kept = kept.sort_values("_rank", kind="stable").drop(columns="_rank")
    return _with_true_counts(kept, true_counts)
