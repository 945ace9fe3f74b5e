"""Record-level K-anonymity by local suppression, for the optional record-level extract product.

Seed 000 received a record-level file that the data provider had made "K3" by deleting every record whose
quasi-identifier combination was rare, and its authors reported that the deletion fell hardest on women and
minority groups. Here no record is deleted: single values are suppressed instead (sdcMicro's
localSuppression), and a suppressed value is a wildcard that matches every category when group sizes are
counted. After protection every record is compatible with at least k+1 records (itself included), so no
combination of quasi-identifiers describes k or fewer people.

The algorithm (deterministic, vectorised over integer codes with pandas value counts):

1. Count, for every record, the records compatible with it (equal on every quasi-identifier that neither
   of the two has suppressed). Records compatible with k or fewer are *at risk*.
2. Sweep the quasi-identifiers from least to most important. For each, suppress that value in every at-risk
   record for which suppressing it alone is enough; then recount the records still at risk. Suppressing
   never lowers another record's count, so a record once safe stays safe.
3. A record that no single suppression protects has the value suppressed that raises its count most (ties:
   the least important), and the sweep repeats, until no record is at risk. Only when configured
   (``max_suppressed_per_record``) is a record that would need more values suppressed dropped instead.

:func:`wildcard_group_sizes` is an independent check (pairwise comparison of distinct records) that the
tests and :func:`write_record_level` use to prove the result is k-anonymous.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from treatment_marts.contract import load_contract
from treatment_marts.core.columns import as_strings, holds_value
from treatment_marts.core.config import NEVER_IN_RECORD_LEVEL, RecordLevel, RulesConfig
from treatment_marts.core.files import write_private

if TYPE_CHECKING:
    from treatment_marts.core.settings import Settings

ALL = "(all)"

log = logging.getLogger(__name__)


class AnonymisationError(ValueError):
    """K-anonymity cannot be reached with the configured rules (or the input does not fit them)."""


class KAnonymityViolated(AssertionError):
    """The independent check found a record compatible with k or fewer records; nothing is written."""


@dataclass(frozen=True)
class AnonymisedExtract:
    """The product and what it cost. ``suppressed`` and ``dropped`` are aligned with the input rows."""

    frame: pd.DataFrame
    suppressed: pd.DataFrame
    dropped: pd.Series
    loss: pd.DataFrame
    k: int
    sweeps: int

    @property
    def values_suppressed(self) -> int:
        return int(self.suppressed.to_numpy().sum())


# --- integer codes and wildcard-aware counting --------------------------------------------------------


def _encode(frame: pd.DataFrame, qis: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Codes 1..c per column (sorted category order, null a category of its own); 0 is reserved for
    'suppressed'. Returns (codes, mixed-radix multipliers) so a row's key is ``codes @ multipliers``."""
    codes = np.empty((len(frame), len(qis)), dtype=np.int64)
    radix = []
    for j, column in enumerate(qis):
        values, uniques = pd.factorize(frame[column], sort=True, use_na_sentinel=False)
        codes[:, j] = values + 1
        radix.append(len(uniques) + 1)
    if float(np.prod(np.array(radix, dtype=float))) >= 2.0**62:
        raise AnonymisationError(
            f"quasi-identifiers {qis} have too many category combinations to encode; band them first"
        )
    multipliers = np.cumprod([1, *radix[:-1]]).astype(np.int64)
    return codes, multipliers


def _patterns(codes: np.ndarray) -> np.ndarray:
    """Bitmask of each row's suppressed columns."""
    bits = (1 << np.arange(codes.shape[1], dtype=np.int64)).astype(np.int64)
    return (codes == 0).astype(np.int64) @ bits


def _rows_by_pattern(patterns: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(pattern, positions of its rows in order) for each distinct pattern, smallest first: one stable
    sort instead of a comparison of every row with every pattern."""
    order = np.argsort(patterns, kind="stable")
    values, starts = np.unique(patterns[order], return_index=True)
    ends = [*starts[1:], len(order)]
    return [(int(v), order[a:b]) for v, a, b in zip(values, starts, ends, strict=True)]


def _distinct(codes: np.ndarray, multipliers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct rows, how many rows each stands for, each row's position among them): the counts are
    the same for equal rows, so they are computed once per distinct combination. The mixed-radix key is
    one integer per combination (0, suppressed, included), hashed rather than sorted."""
    inverse, uniques = pd.factorize(codes @ multipliers)
    some_row = np.empty(len(uniques), dtype=np.int64)
    some_row[inverse] = np.arange(len(inverse))  # any row of a combination stands for all of them
    return codes[some_row], np.bincount(inverse, minlength=len(uniques)), inverse


def _compatible_counts(data: np.ndarray, query: np.ndarray, multipliers: np.ndarray) -> np.ndarray:
    """For each query row, how many data rows agree with it on every column neither has suppressed.

    Rows are grouped by suppression pattern; for a pair of patterns (P, P') the rows match exactly on the
    columns outside P | P', which is one join of integer keys. Few patterns occur, and both sides are
    first reduced to their distinct rows (tens of thousands of combinations for a national month's
    hundreds of thousands of records), so this is a handful of vectorised sorts however many rows there are."""
    out = np.zeros(len(query), dtype=np.int64)
    if len(query) == 0 or len(data) == 0:
        return out
    q = data.shape[1]
    data_rows, data_weights, _ = _distinct(data, multipliers)
    query_rows, _, query_inverse = _distinct(query, multipliers)
    data_groups = {p: (data_rows[rows], data_weights[rows]) for p, rows in _rows_by_pattern(_patterns(data_rows))}
    counted = np.zeros(len(query_rows), dtype=np.int64)
    cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for p, rows in _rows_by_pattern(_patterns(query_rows)):
        for p2, (group, weights) in data_groups.items():
            union = p | p2
            keep = np.array([0 if union >> j & 1 else 1 for j in range(q)], dtype=np.int64) * multipliers
            if (p2, union) not in cache:
                keys, position = np.unique(group @ keep, return_inverse=True)
                totals = np.bincount(position.reshape(-1), weights=weights, minlength=len(keys))
                cache[(p2, union)] = keys, np.rint(totals).astype(np.int64)  # float sums, exact below 2**53
            keys, totals = cache[(p2, union)]
            wanted = query_rows[rows] @ keep
            at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
            counted[rows] += np.where(keys[at] == wanted, totals[at], 0)
    return counted[query_inverse]


# --- local suppression --------------------------------------------------------------------------------


def _local_suppression(
    codes: np.ndarray, multipliers: np.ndarray, k: int, max_suppressed: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Suppress (set to 0) values of ``codes`` in place until every kept row is compatible with > k kept
    rows. Column order is importance (first = most important). Returns (codes, kept mask, sweeps)."""
    n, q = codes.shape
    target = k + 1
    kept = np.ones(n, dtype=bool)
    sweeps = 0
    while True:
        alive = np.flatnonzero(kept)
        at_risk = alive[_compatible_counts(codes[alive], codes[alive], multipliers) < target]
        if len(at_risk) == 0:
            return codes, kept, sweeps
        sweeps += 1
        if sweeps > n * q + 1:  # cannot happen: every sweep suppresses or drops something
            raise AnonymisationError("local suppression did not converge")
        limit = q if max_suppressed is None else max_suppressed
        # 2. single suppressions, least important column first
        for j in range(q - 1, -1, -1):
            room = (codes[at_risk] == 0).sum(axis=1) < limit
            candidates = at_risk[(codes[at_risk, j] != 0) & room]
            if len(candidates):
                trial = codes[candidates].copy()
                trial[:, j] = 0
                enough = _compatible_counts(codes[alive], trial, multipliers) >= target
                codes[candidates[enough], j] = 0
            at_risk = at_risk[_compatible_counts(codes[alive], codes[at_risk], multipliers) < target]
            if len(at_risk) == 0:
                break
        if len(at_risk) == 0:
            continue
        # 3. no single value is enough: drop (last resort, if configured) or suppress the most helpful value
        if max_suppressed is not None:  # the last resort: no room for another suppressed value
            over = (codes[at_risk] == 0).sum(axis=1) >= max_suppressed
            kept[at_risk[over]] = False
            at_risk = at_risk[~over]
        full = (codes[at_risk] == 0).all(axis=1)
        if full.any():
            raise AnonymisationError(
                f"{int(full.sum())} record(s) stay at risk with every quasi-identifier suppressed: the population "
                f"({int(kept.sum())} records) is not larger than k={k}; set record_level.max_suppressed_per_record "
                "to allow dropping records as a last resort"
            )
        best = np.full(len(at_risk), -1, dtype=np.int64)
        best_count = np.full(len(at_risk), -1, dtype=np.int64)
        for j in range(q - 1, -1, -1):  # least important first, so ties keep the least important
            open_ = codes[at_risk, j] != 0
            trial = codes[at_risk].copy()
            trial[:, j] = 0
            count = np.where(open_, _compatible_counts(codes[kept], trial, multipliers), -1)
            better = count > best_count
            best[better], best_count[better] = j, count[better]
        codes[at_risk, best] = 0


# --- the independent checker --------------------------------------------------------------------------


PAIRWISE_LIMIT = 100_000_000  # pairs of distinct records above which the checker joins by wildcard pattern


def wildcard_group_sizes(
    frame: pd.DataFrame,
    qis: list[str],
    suppressed_value: str,
    *,
    method: Literal["auto", "pairwise", "patterns"] = "auto",
) -> pd.Series:
    """For each record, the number of records it cannot be told apart from: those equal to it on every
    quasi-identifier where neither holds ``suppressed_value`` (a wildcard).

    Independent of the suppressor: it works on the published string values, one row per distinct record.
    ``pairwise`` compares every distinct record holding a wildcard with every distinct record (two
    records without one are compatible only when equal); ``patterns`` merges, for every pair of wildcard
    patterns, the distinct records on the columns neither pattern hides (for heavily suppressed files,
    where pairwise is quadratic). ``auto`` picks pairwise unless it would compare over PAIRWISE_LIMIT pairs."""
    if frame.empty:
        return pd.Series(dtype="int64", index=frame.index)
    values = frame[qis].astype("object").where(frame[qis].notna(), "\x00null")
    record = _record_ids(values)  # each record's distinct record, in order of first appearance
    first = np.full(int(record.max()) + 1, len(record), dtype=np.int64)
    np.minimum.at(first, record, np.arange(len(record)))
    distinct = values.iloc[first].reset_index(drop=True)
    distinct["n"] = np.bincount(record)
    wildcard = (distinct[qis] == suppressed_value).to_numpy()
    has_wildcard = wildcard.any(axis=1)
    if method == "auto":
        method = "pairwise" if int(has_wildcard.sum()) * len(distinct) <= PAIRWISE_LIMIT else "patterns"
    if method == "pairwise":
        sizes = _pairwise_sizes(distinct, qis, wildcard)
    else:
        sizes = _pattern_sizes(distinct, qis, wildcard)
    return pd.Series(np.asarray(sizes)[record], index=frame.index, dtype="int64")


def _record_ids(values: pd.DataFrame) -> np.ndarray:
    """0..d-1 per row, equal for rows equal on every column: column by column, each pair (ids so far,
    column value) factorised again so the ids stay small."""
    ids = np.zeros(len(values), dtype=np.int64)
    for column in values.columns:
        codes, uniques = pd.factorize(values[column])
        ids, _ = pd.factorize(ids * len(uniques) + codes)
    return ids


def _pairwise_sizes(distinct: pd.DataFrame, qis: list[str], wildcard: np.ndarray, chunk: int = 1024) -> np.ndarray:
    table = np.column_stack([pd.factorize(distinct[c])[0].astype(np.int32) for c in qis])
    weights = distinct["n"].to_numpy().astype(np.float64)
    with_wildcard = np.flatnonzero(wildcard.any(axis=1))
    others = ~wildcard.any(axis=1)
    sizes = distinct["n"].to_numpy().astype(np.int64)  # a record without wildcards matches its equals
    sizes[with_wildcard] = 0
    for start in range(0, len(with_wildcard), chunk):
        rows = with_wildcard[start : start + chunk]
        compatible = np.ones((len(rows), len(table)), dtype=bool)
        for c in range(len(qis)):
            compatible &= (table[rows, c, None] == table[None, :, c]) | wildcard[rows, c, None] | wildcard[None, :, c]
        as_float = compatible.astype(np.float64)  # BLAS products; exact for counts below 2**53
        sizes[rows] = np.rint(as_float @ weights).astype(np.int64)  # wildcard rows against everyone (themselves too)
        # and every record without wildcards gains the wildcard records compatible with it
        sizes[others] += np.rint(weights[rows] @ as_float[:, others]).astype(np.int64)
    return sizes


def _pattern_sizes(distinct: pd.DataFrame, qis: list[str], wildcard: np.ndarray) -> np.ndarray:
    pattern = ["".join("*" if w else "." for w in row) for row in wildcard]
    groups = {p: distinct[[x == p for x in pattern]] for p in sorted(set(pattern))}
    sizes = pd.Series(0, index=distinct.index, dtype="int64")
    for p, left in groups.items():
        for p2, right in groups.items():
            shown = [c for c, a, b in zip(qis, p, p2, strict=False) if a == "." and b == "."]
            if not shown:
                sizes[left.index] += int(right["n"].sum())
                continue
            totals = right.groupby(shown, sort=False)["n"].sum().rename("matched").reset_index()
            matched = left[shown].reset_index().merge(totals, on=shown, how="inner")
            sizes[matched["index"]] += matched["matched"].to_numpy()
    return sizes.to_numpy()


def k_anonymity_violations(frame: pd.DataFrame, qis: list[str], k: int, suppressed_value: str) -> pd.DataFrame:
    """Records compatible with k or fewer records (empty when the frame is k-anonymous in the K3 sense)."""
    sizes = wildcard_group_sizes(frame, qis, suppressed_value)
    return frame.loc[sizes <= k, qis].assign(group_size=sizes[sizes <= k])


def naive_deletion(frame: pd.DataFrame, qis: list[str], k: int) -> pd.Series:
    """The seed study's method, for comparison: delete every record whose exact combination has <= k records."""
    if frame.empty:
        return pd.Series(dtype=bool, index=frame.index)
    sizes = frame.groupby(qis, dropna=False, sort=False, observed=True)[qis[0]].transform("size")
    return (sizes <= k).rename("deleted")


# --- loss report --------------------------------------------------------------------------------------


def loss_report(
    original: pd.DataFrame, qis: list[str], suppressed: pd.DataFrame, dropped: pd.Series, naive_deleted: pd.Series
) -> pd.DataFrame:
    """Tidy loss per quasi-identifier category (and overall): naive deletion beside local suppression.

    ``local_lost`` counts the records of a category that no longer show it (their value of that
    quasi-identifier suppressed, or the record dropped): what an analyst of that group loses."""
    touched = suppressed.any(axis=1) & ~dropped  # dropped records count as dropped, not as touched
    values_per_record = suppressed.sum(axis=1).where(~dropped, 0)
    rows: list[dict[str, Any]] = [
        {
            "quasi_identifier": ALL,
            "category": ALL,
            "records": len(original),
            "naive_deleted": int(naive_deleted.sum()),
            "local_dropped": int(dropped.sum()),
            "local_value_suppressed": pd.NA,
            "local_lost": int(dropped.sum()),
            "local_records_touched": int(touched.sum()),
            "local_values_suppressed": int(values_per_record.sum()),
        }
    ]
    for qi in qis:
        frame = pd.DataFrame(
            {
                "category": as_strings(original[qi]).fillna("(missing)"),
                "naive_deleted": naive_deleted.astype("int64"),
                "local_dropped": dropped.astype("int64"),
                "local_value_suppressed": (suppressed[qi] & ~dropped).astype("int64"),
                "local_records_touched": touched.astype("int64"),
                "local_values_suppressed": values_per_record.astype("int64"),
            }
        )
        grouped = frame.groupby("category", sort=True)
        summary = grouped.sum().join(grouped.size().rename("records")).reset_index()
        summary["local_lost"] = summary["local_dropped"] + summary["local_value_suppressed"]
        summary.insert(0, "quasi_identifier", qi)
        rows.extend(summary.to_dict("records"))
    report = pd.DataFrame(rows)
    report["naive_deleted_pct"] = (100 * report["naive_deleted"] / report["records"]).round(2)
    report["local_lost_pct"] = (100 * report["local_lost"] / report["records"]).round(2)
    columns = [
        "quasi_identifier",
        "category",
        "records",
        "naive_deleted",
        "naive_deleted_pct",
        "local_lost",
        "local_lost_pct",
        "local_dropped",
        "local_value_suppressed",
        "local_records_touched",
        "local_values_suppressed",
    ]
    report = report[columns]
    return report.astype(
        {
            c: "Int64"
            for c in columns
            if c not in ("quasi_identifier", "category", "naive_deleted_pct", "local_lost_pct")
        }
    )


# --- the product --------------------------------------------------------------------------------------


def anonymise(frame: pd.DataFrame, config: RecordLevel, k: int) -> AnonymisedExtract:
    """One row per client (e.g. a population from marts.select_population) -> the K-anonymous product.

    The product holds ``record_id`` (1..n, meaningless), the quasi-identifiers (suppressed values set to
    ``config.suppressed_value``) and the carried attributes, sorted by content so that the same records give
    byte-identical output whatever their input order."""
    qis = list(config.quasi_identifiers)
    missing = [c for c in config.columns if c not in frame.columns]
    if missing:
        raise AnonymisationError(f"record-level columns {missing} are not in the input frame")
    if "client_key" in frame.columns and frame["client_key"].duplicated().any():
        raise AnonymisationError("the input must hold one row per client (select a population first)")
    clashing = [c for c in qis if holds_value(frame[c], config.suppressed_value)]
    if clashing:
        raise AnonymisationError(
            f"{clashing} already hold the suppressed value {config.suppressed_value!r}; choose another"
        )

    frame = frame.reset_index(drop=True)
    codes, multipliers = _encode(frame, qis)
    codes, kept, sweeps = _local_suppression(codes, multipliers, k, config.max_suppressed_per_record)
    suppressed = pd.DataFrame(codes == 0, columns=qis)
    dropped = pd.Series(~kept, name="dropped")

    # Plain strings in the product, whatever the analysis frame held (categoricals decode natively).
    product = pd.DataFrame({column: _decoded(frame.loc[kept, column]) for column in config.columns})
    for qi in qis:
        product[qi] = as_strings(product[qi]).where(~suppressed.loc[kept, qi], config.suppressed_value)
    product = product.sort_values(config.columns, kind="stable", na_position="last").reset_index(drop=True)
    product.insert(0, "record_id", pd.array(np.arange(1, len(product) + 1), dtype="Int64"))
    _refuse_identifiers(product)

    loss = loss_report(frame, qis, suppressed, dropped, naive_deletion(frame, qis, k))
    return AnonymisedExtract(frame=product, suppressed=suppressed, dropped=dropped, loss=loss, k=k, sweeps=sweeps)


def _decoded(column: pd.Series) -> pd.Series:
    return as_strings(column) if isinstance(column.dtype, pd.CategoricalDtype) else column


def _refuse_identifiers(product: pd.DataFrame) -> None:
    """A guard on this module's own output, independent of the configuration's validation."""
    leaked = set(product.columns) & (set(load_contract().identifying_columns) | set(NEVER_IN_RECORD_LEVEL))
    if leaked:
        raise AnonymisationError(f"identifying columns would leave anonymise: {sorted(leaked)}")


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def write_record_level(
    settings: Settings,
    period: str,
    run_id: str,
    recoded: pd.DataFrame,
    rules: RulesConfig,
    *,
    clients: pd.DataFrame | None = None,
) -> dict[str, Any] | None:
    """Build, check and write the period's record-level product to the restricted zone.

    For the protect/publish stage: takes the recoded frame (one row per episode), selects the configured
    population, anonymises it, proves k-anonymity with the independent checker and writes
    ``restricted/record_level/period=YYYY-MM/{record_level.parquet, loss_report.csv, manifest.json}``
    (owner-only, atomic). Returns a small JSON-able summary, or None when rules.yaml has no record_level.
    ``clients``: the population already selected from ``recoded`` (the marts' selection, one row per
    client), which saves selecting it again (a few seconds on a national month)."""
    from treatment_marts.marts.populations import select_population

    config = rules.record_level
    if config is None:
        return None
    k = rules.disclosure.k
    if clients is None:
        clients = select_population(recoded, config.population, period)
    if len(clients) <= k:  # no record can be hidden among k others: nothing to release, say so clearly
        log.warning("record-level product for %s withheld: the population is not larger than k=%d", period, k)
        return {
            "period": period,
            "run_id": run_id,
            "population": config.population,
            "k": k,
            "withheld": True,
            "records_in": len(clients),
            "records_out": 0,
            "reason": f"the population ({len(clients)} records) is not larger than k={k}",
        }
    result = anonymise(clients, config, k)
    violations = k_anonymity_violations(result.frame, list(config.quasi_identifiers), k, config.suppressed_value)
    if not violations.empty:  # never expected; counts only, no values, in the message
        raise KAnonymityViolated(
            f"{len(violations)} record(s) of the record-level product are compatible with <= {k} records"
        )

    folder = settings.restricted_dir / "record_level" / f"period={period}"
    data = _parquet_bytes(result.frame)
    write_private(folder / "record_level.parquet", data)
    write_private(folder / "loss_report.csv", result.loss.to_csv(index=False).encode())
    overall = result.loss.iloc[0]
    summary = {
        "period": period,
        "run_id": run_id,
        "population": config.population,
        "k": k,
        "quasi_identifiers": list(config.quasi_identifiers),
        "records_in": int(overall["records"]),
        "records_out": len(result.frame),
        "records_dropped": int(overall["local_dropped"]),
        "records_touched": int(overall["local_records_touched"]),
        "values_suppressed": int(overall["local_values_suppressed"]),
        "naive_deleted": int(overall["naive_deleted"]),
        "sha256": hashlib.sha256(data).hexdigest(),
        "path": str(folder / "record_level.parquet"),
        "loss_report": str(folder / "loss_report.csv"),
    }
    write_private(folder / "manifest.json", json.dumps(summary, indent=2, sort_keys=True).encode())
    return summary
