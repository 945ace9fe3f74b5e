"""Complementary suppression by cost over a whole block: the minimum-cost pattern (Fischetti-Salazar).

Why: the greedy repair (secondary.py) chooses complements line by line, cheapest first, and cannot see
that one larger complement protects several lines at once, nor that a complement in one table forces more
in every table it is linked to. The classic remedy is a mixed-integer programme over the whole block
(Fischetti and Salazar-Gonzalez 2001; tau-argus' "optimal" method, sdcTable's ``OPT``): a binary y per
cell (suppressed or not) and, for every cell that must be protected, a real-valued *perturbation* of the
hidden cells, zero on every published cell, that keeps every additive line of the block and moves the
protected cell up by its protection level while each hidden cell stays at or above the floor the attacker
knows. Such a perturbation is exactly what the attacker cannot rule out, so the cell's upper bound is at
least its true value plus that level. Cost: the individuals hidden (the cells' counts), so big cells are
avoided; ties by cell key.

Blocks: one per linked table (its cells and its own lines; cells of other tables stay as they are), in
table order. A margin shared with other tables is priced at its count times the number of tables that
publish it, since hiding it forces complements in each; a margin an earlier block hid must be protected
again in every later block. A block is solved when it is small (``max_size``: cells to protect times the
block's cells, the size of the programme) and left to the greedy repair otherwise. The pattern found is only
a start: the suppressor's relation repair, its attacker-in-the-loop widening (``settle``), the clean-up and
the independent audit follow as for any pattern, so no guarantee rests on this model (which ignores
integrality, the other tables and the relations between populations).

Determinism: HiGHS with fixed options, one thread and a node limit instead of a time limit, so the same
block gives the same pattern on any machine; a block whose programme finds no pattern within the limit is
left to the greedy repair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import highspy
import numpy as np
from scipy.sparse import coo_matrix, csc_matrix, csr_matrix

from treatment_marts.disclosure.secondary import Suppressor

Complements = Literal["greedy", "optimal"]  # rules.yaml disclosure.complements
DEFAULT_MAX_SIZE = 6_000  # protected cells x free cells of a block solved exactly (the programme's columns)
DEFAULT_NODE_LIMIT = 50  # branch-and-bound nodes per block: a work limit, not a clock


@dataclass(frozen=True)
class BlockReport:
    """What the exact choice did: blocks solved, left to the greedy repair, and complements chosen."""

    solved: int
    too_large: int
    not_found: int
    complements: int


def protection_level(count: np.ndarray, k: int) -> np.ndarray:
    """How far above its true value a hidden cell must be shown to reach: k + 2 and two above the truth,
    the point at which the audit decides the cell safe without an integer programme (lp_model.safe_by_point)."""
    return np.maximum(k + 2 - count, 2).astype(float)


def free_cells(s: Suppressor) -> np.ndarray:
    """Cells a block may hide: not barred, not the grand total, not a published zero (hiding a true zero
    would contradict the floor the attacker knows), or already hidden."""
    counts = s.lattice.counts
    return s.suppressed | (~s.forbidden & ~s.futile & ~s.grand & (counts > 0))


def blocks(s: Suppressor, free: np.ndarray) -> list[tuple[np.ndarray, list[int]]]:
    """One block per linked table, in table order: its free cells and its own lines (those whose every
    cell is in the table). Margins shared with other tables are cells of each; a margin hidden by an
    earlier block must be protected again in every later one, which is the cascade the cost counts."""
    out = []
    for rows in s.lattice.rows:
        in_table = np.zeros(len(free), dtype=bool)
        in_table[rows] = True
        cells = np.unique(rows[free[rows]])
        lines = sorted(
            {
                r
                for c in cells
                for r in s.lattice.relations_of[int(c)]
                if in_table[s.lattice.relations[r][0]] and in_table[s.lattice.relations[r][1]].all()
            }
        )
        out.append((cells, lines))
    return out


def sharing(s: Suppressor) -> np.ndarray:
    """How many linked tables publish each cell: hiding a shared margin forces complements in each."""
    count = np.zeros(len(s.lattice.counts), dtype=np.int64)
    for rows in s.lattice.rows:
        count[np.unique(rows)] += 1
    return count


def choose_complements(
    s: Suppressor, *, max_size: int = DEFAULT_MAX_SIZE, node_limit: int = DEFAULT_NODE_LIMIT
) -> BlockReport:
    """Add the minimum-cost complementary cells of every small block to ``s.suppressed`` (in place)."""
    free = free_cells(s)
    weight = sharing(s)
    solved = too_large = not_found = complements = 0
    for cells, lines in blocks(s, free):
        protect = cells[s.suppressed[cells]]
        if not len(protect):
            continue
        if len(protect) * len(cells) > max_size:
            too_large += 1
            continue
        chosen = _solve_block(s, cells, lines, protect, weight[cells], node_limit)
        if chosen is None:
            not_found += 1
            continue
        solved += 1
        for c in chosen:
            if not s.suppressed[c]:
                s.suppressed[c] = True
                s.reason.setdefault(int(c), "complementary: minimum-cost pattern of its block")
                complements += 1
    return BlockReport(solved, too_large, not_found, complements)


def _solve_block(
    s: Suppressor, cells: np.ndarray, lines: list[int], protect: np.ndarray, weight: np.ndarray, node_limit: int
) -> list[int] | None:
    """The block's programme; the cells to suppress, or None when no pattern was found within the limit."""
    n, m = len(cells), len(protect)
    counts = s.lattice.counts[cells].astype(float)
    slack = np.maximum(counts - s.lower, 0.0)  # how far a hidden cell can go down (to the attacker's floor)
    slack[s.carried[cells]] = counts[s.carried[cells]]  # an earlier release's hidden cell: floor 0
    local = {int(c): i for i, c in enumerate(cells)}
    # The block's lines; their cells outside the block are published constants, whose perturbation is zero.
    rows, cols, vals = [], [], []
    for i, r in enumerate(lines):
        total, members = s.lattice.relations[r]
        for cell, sign in [*((int(x), 1.0) for x in members), (int(total), -1.0)]:
            if cell in local:
                rows.append(i)
                cols.append(local[cell])
                vals.append(sign)
    line_matrix = csr_matrix((vals, (rows, cols)), shape=(len(lines), n))
    level = protection_level(counts[[local[int(p)] for p in protect]], s.k)
    # Columns: y (n binaries), then one perturbation f^q (n reals) per protected cell q.
    order = np.argsort(np.argsort([s.lattice.keys[int(c)] for c in cells]))  # rank of each cell by key
    # Individuals hidden (in every table that publishes the cell), then the key.
    cost = np.concatenate([counts * weight * n + order, np.zeros(n * m)])
    lower = np.concatenate([np.zeros(n), np.tile(-slack, m)])
    upper = np.concatenate([np.ones(n), np.tile(np.full(n, np.inf), m)])
    already = s.suppressed[cells]
    lower[:n][already] = 1.0  # cells already hidden stay hidden
    for q, p in enumerate(protect):  # the protected cell moves up by its protection level
        j = n + q * n + local[int(p)]
        lower[j] = upper[j] = level[q]
    blocks_ = []
    # Each perturbation keeps every line: L f^q = 0.
    for q in range(m):
        part = coo_matrix(line_matrix)
        blocks_.append((part.row + q * len(lines), part.col + n + q * n, part.data))
    base = m * len(lines)
    # A published cell does not move: f^q_c <= level_q y_c and -f^q_c <= slack_c y_c.
    link_rows, link_cols, link_vals = [], [], []
    r = base
    for q in range(m):
        for c in range(n):
            link_rows += [r, r]
            link_cols += [n + q * n + c, c]
            link_vals += [1.0, -level[q]]
            link_rows += [r + 1, r + 1]
            link_cols += [n + q * n + c, c]
            link_vals += [-1.0, -slack[c]]
            r += 2
    all_rows = np.concatenate([b[0] for b in blocks_] + [np.asarray(link_rows)])
    all_cols = np.concatenate([b[1] for b in blocks_] + [np.asarray(link_cols)])
    all_vals = np.concatenate([b[2] for b in blocks_] + [np.asarray(link_vals)])
    matrix = coo_matrix((all_vals, (all_rows, all_cols)), shape=(r, n + n * m)).tocsc()
    row_lower = np.concatenate([np.zeros(base), np.full(r - base, -np.inf)])
    row_upper = np.zeros(r)
    values = _run(cost, lower, upper, matrix, row_lower, row_upper, n, node_limit)
    if values is None:
        return None
    return [int(cells[i]) for i in np.flatnonzero(values[:n] > 0.5)]


def _run(
    cost: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    matrix: csc_matrix,
    row_lower: np.ndarray,
    row_upper: np.ndarray,
    binaries: int,
    node_limit: int,
) -> np.ndarray | None:
    """One HiGHS MIP with fixed options, one thread and a node limit; the incumbent, or None."""
    solver = highspy.Highs()
    solver.setOptionValue("output_flag", False)
    solver.setOptionValue("threads", 1)
    solver.setOptionValue("random_seed", 0)
    solver.setOptionValue("mip_max_nodes", node_limit)
    solver.setOptionValue("mip_rel_gap", 1e-6)
    lp = highspy.HighsLp()
    lp.num_col_ = len(cost)
    lp.num_row_ = matrix.shape[0]
    lp.col_cost_ = cost
    lp.col_lower_ = np.clip(lower, -highspy.kHighsInf, highspy.kHighsInf)
    lp.col_upper_ = np.clip(upper, -highspy.kHighsInf, highspy.kHighsInf)
    lp.row_lower_ = np.clip(row_lower, -highspy.kHighsInf, highspy.kHighsInf)
    lp.row_upper_ = row_upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = matrix.indptr.astype(np.int32)
    lp.a_matrix_.index_ = matrix.indices.astype(np.int32)
    lp.a_matrix_.value_ = matrix.data.astype(float)
    lp.integrality_ = [highspy.HighsVarType.kInteger] * binaries + [highspy.HighsVarType.kContinuous] * (
        len(cost) - binaries
    )
    solver.passModel(lp)
    solver.run()
    if solver.getInfo().primal_solution_status != 2:  # no feasible incumbent (infeasible, or none by the limit)
        return None
    return np.asarray(solver.getSolution().col_value, dtype=float)
