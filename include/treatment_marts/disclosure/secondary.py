"""Secondary (complementary) suppression: choose the cells that protect the primary cells (tau-argus /
sdcTable `protectTable`).

No relation may hold exactly one suppressed cell, and the suppressed cells of a relation with a published
total must hold enough individuals that none of them can be shown to be k or fewer (the *protection
interval*: upper bound > k). Complementary cells are chosen to hide the fewest individuals, inner cells
before margins, the grand total last, with deterministic tie-breaks. The relation rule is necessary, not
sufficient: `settle` then asks an attacker (an `Exposure`: the audit's integer-valid verdict, or the
clean-up's incremental version of it) which cells it can still pin or prove small, and widens around each
until it finds none.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from treatment_marts.disclosure.lattice import Lattice
from treatment_marts.disclosure.lp_model import a_priori_lower
from treatment_marts.disclosure.primary import primary_cells
from treatment_marts.disclosure.tables import ProtectionError, Zeros

Exposure = Callable[[np.ndarray], list[int]]  # the attacker's verdict on a mask: cells it pins, in key order


class Suppressor:
    """The suppression pattern of one lattice and the moves that grow it (secondary suppression).

    ``primary`` is the threshold rule's mask (primary.py); ``suppressed`` grows from it as complementary
    cells are chosen; ``carried`` cells were hidden in an earlier release and are never published again;
    ``forbidden`` cells are barred by the clean-up's swap move. ``lower`` is the a-priori bound the attacker
    holds for any hidden cell (lp_model.a_priori_lower).
    """

    def __init__(self, lattice: Lattice, k: int, zeros: Zeros) -> None:
        self.lattice = lattice
        self.k = k
        self.lower = a_priori_lower(zeros)  # what the attacker knows of any suppressed cell
        counts = lattice.counts
        self.primary = primary_cells(counts, k, zeros)
        self.suppressed = self.primary.copy()
        self.carried = np.zeros(len(counts), dtype=bool)  # suppressed in an earlier release: never released
        self.forbidden = np.zeros(len(counts), dtype=bool)  # the clean-up's swap move bars a cell it removed
        # Cells whose value is public elsewhere (a revision's cell of an unchanged area, published in the
        # earlier release): hiding one widens no interval, so `widen` never picks it; a line may still use it.
        self.futile = np.zeros(len(counts), dtype=bool)
        self.reason: dict[int, str] = {}
        grand = lattice.grand_totals()
        self.grand = grand
        # Preference for complementary cells: never the grand total if avoidable; inner cells before
        # margins (a suppressed margin is shared by every linked table and cascades through all of them);
        # then the fewest individuals; then the key (deterministic).
        self.rank = np.lexsort((np.asarray(lattice.keys), counts, lattice.totals_in_key, grand.astype(int)))
        self.position = np.empty(len(counts), dtype=np.int64)
        self.position[self.rank] = np.arange(len(counts))

    def relation_safe(self, r: int) -> bool:
        """Relation r is safe: no lone suppressed cell in it, and, with a published total, its hidden members
        hold more than k beyond what the attacker's a-priori bound gives to all but one of them."""
        total, members = self.lattice.relations[r]
        sup_members = members[self.suppressed[members]]
        m = len(sup_members) + int(self.suppressed[total])
        if m == 0:
            return True
        if m == 1:
            return False
        if self.suppressed[total]:
            return True
        held = int(self.lattice.counts[sup_members].sum())
        return held - (len(sup_members) - 1) * self.lower > self.k

    def _candidates(self, r: int) -> np.ndarray:
        """Cells that could be suppressed to protect relation r, cheapest first; a grand total only as a last resort."""
        total, members = self.lattice.relations[r]
        cells = np.append(members, total)
        eligible = cells[~self.suppressed[cells] & ~self.forbidden[cells] & (self.lattice.counts[cells] > 0)]
        preferred = eligible[~self.grand[eligible]]
        chosen = preferred if len(preferred) else eligible
        return chosen[np.argsort(self.position[chosen])]

    def _opens(self, cell: int, r: int) -> int:
        """How many other relations of ``cell`` would hold a lone suppressed cell if it were suppressed."""
        count = 0
        for other in self.lattice.relations_of[cell]:
            if other == r:
                continue
            total, members = self.lattice.relations[other]
            if not self.suppressed[members].any() and not self.suppressed[total]:
                count += 1
        return count

    def _closing(self, candidates: np.ndarray, r: int) -> list[int]:
        """Candidates that close the pattern first (a cell whose other lines already hold a suppressed cell
        completes a rectangle instead of opening new lines to protect, as in the hypercube method), then the
        usual preference order; keeps the result deterministic."""
        return sorted((int(c) for c in candidates), key=lambda c: (self._opens(c, r), self.position[c]))

    def _repair(self, r: int, why: str) -> list[int]:
        """Suppress the cheapest cells that make relation r safe; returns the cells added."""
        added: list[int] = []
        while not self.relation_safe(r):
            total, members = self.lattice.relations[r]
            candidates = self._candidates(r)
            if len(candidates) == 0:
                raise ProtectionError(
                    f"no cell left to protect the line around {self.lattice.keys[total]}: every other cell of it is "
                    "already suppressed, zero or carried forward from an earlier release"
                )
            sup_members = members[self.suppressed[members]]
            held = int(self.lattice.counts[sup_members].sum())
            needed = self.k + 1 + len(sup_members) * self.lower - held
            choice = self._closing(candidates, r)[0]
            if not self.suppressed[total] and len(sup_members) >= 1:
                inner = [c for c in self._closing(candidates, r) if c != total]
                enough = [c for c in inner if self.lattice.counts[c] >= needed]
                choice = enough[0] if enough else (max(inner, key=lambda c: self.lattice.counts[c]) if inner else total)
            self.suppressed[choice] = True
            self.reason.setdefault(int(choice), why)
            added.append(int(choice))
        return added

    def close_relations(self) -> None:
        """Repair every unsafe relation around the suppressed cells until all are safe (greedy)."""
        pending = sorted({r for c in np.flatnonzero(self.suppressed) for r in self.lattice.relations_of[c]})
        queue = list(pending)
        while queue:
            r = queue.pop()
            if self.relation_safe(r):
                continue
            total = self.lattice.relations[r][0]
            for cell in self._repair(r, f"complementary: protects the line totalled by {self.lattice.keys[total]}"):
                queue.extend(self.lattice.relations_of[cell])

    def widen(self, cell: int, max_depth: int = 64) -> bool:
        """The audit could pin ``cell``: suppress the cheapest eligible cell in the nearest relation around it.

        Returns False when nothing is left to suppress around it: cells exposed in the same audit round are
        widened one after another, and an earlier widening may already have protected this one, so only the
        next audit can tell whether it is really stuck.

        Nearest first: the cell's own relations, then those of the suppressed cells they link to (the
        attacker's equations chain through them), so protection spreads only as far as it must.
        """
        visited = {cell}
        frontier = [cell]
        last_resort: int | None = None  # a grand total, used only if nothing else is found
        choice: int | None = None
        for _ in range(max_depth):
            relations = sorted({r for c in frontier for r in self.lattice.relations_of[c]})
            options = [int(c) for r in relations for c in self._candidates(r)[~self.futile[self._candidates(r)]][:1]]
            ordinary = [c for c in options if not self.grand[c]]
            if ordinary:
                choice = min(ordinary, key=lambda c: self.position[c])
                break
            if options and last_resort is None:
                last_resort = options[0]
            linked = {int(c) for r in relations for c in (*self.lattice.relations[r][1], self.lattice.relations[r][0])}
            frontier = [c for c in linked if self.suppressed[c] and c not in visited]
            visited.update(frontier)
            if not frontier:
                break
        if choice is None and last_resort is None:
            # Everything linked to the cell is suppressed or zero: only a grand total is left to hide.
            spare = np.flatnonzero(
                self.grand & ~self.suppressed & ~self.forbidden & ~self.futile & (self.lattice.counts > 0)
            )
            last_resort = int(spare[0]) if len(spare) else None
        choice = choice if choice is not None else last_resort
        if choice is None:
            return False
        self.suppressed[choice] = True
        self.reason.setdefault(choice, f"complementary: widens the protection interval of {self.lattice.keys[cell]}")
        self.close_relations()
        return True


def settle(suppressor: Suppressor, exposed: Exposure, max_rounds: int) -> int:
    """Widen around every cell the attacker can pin until it pins none; returns the audits run."""
    for rounds in range(1, max_rounds + 1):
        cells = exposed(suppressor.suppressed)
        if not cells:
            return rounds
        stuck = [suppressor.lattice.keys[c] for c in cells if not suppressor.widen(c)]
        if len(stuck) == len(cells):
            raise ProtectionError(
                f"cell {stuck[0]} cannot be protected: every linked cell is already suppressed or zero; "
                "publish coarser categories (rules.yaml) or fewer dimensions for this population (marts.yaml)"
            )
    raise ProtectionError(f"no safe suppression pattern found in {max_rounds} rounds")
