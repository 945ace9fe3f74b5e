"""The outside attack (ops/attack.py): relations derived from the definitions alone, over every release."""

from __future__ import annotations

import pandas as pd

from treatment_marts.core.ids import Period
from treatment_marts.disclosure.tables import MartTable
from treatment_marts.ops.attack import PublicSystem, attack_systems, span_relations

APRIL, MAY = Period.parse("2024-04"), Period.parse("2024-05")


def exits_table(period: str, a: int | None, b: int | None, total: int) -> MartTable:
    frame = pd.DataFrame(
        {
            "period": pd.array([period] * 3, dtype="string"),
            "area": pd.array(["A", "B", "Total"], dtype="string"),
            "count": pd.array([a, b, total], dtype="Int64"),
            "status": pd.array(["" if a is not None else "c", "" if b is not None else "c", ""], dtype="string"),
        }
    )
    return MartTable("exits_area", ("area",), frame)


def clients(keys: list[int], episode: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "client_key": [f"c{k}" for k in keys],
            "agency_code": ["X"] * len(keys),
            "episode_id": [f"e{k}.{episode}" for k in keys],
        }
    )


def systems(april: MartTable, may: MartTable, year: MartTable) -> dict[str, PublicSystem]:
    out = {}
    for months, table in (((APRIL,), april), ((MAY,), may), ((APRIL, MAY), year)):
        system = PublicSystem("exits", months, [table])
        out[system.scope] = system
    return out


def test_a_flow_over_a_span_is_its_months_summed_so_a_month_hidden_beside_it_is_pinned() -> None:
    """April hides area A (2 exits) and B (5) behind its published total; May and the two months'
    span publish everything. Nobody exits twice, so the span is April + May exactly: A = 6 - 4 = 2."""
    published = systems(
        exits_table("2024-04", None, None, 7), exits_table("2024-05", 4, 6, 10), exits_table("2024-05", 6, 11, 17)
    )
    who = {(APRIL,): clients(list(range(7))), (MAY,): clients(list(range(7, 17)))}
    who[(APRIL, MAY)] = pd.concat(who.values(), ignore_index=True)

    attack = attack_systems(published, lambda population, months: who.get(months), k=3, zeros="show")

    recovered = attack.recovered
    assert set(recovered["cell"]) == {'{"area": "A"}', '{"area": "B"}'}
    assert attack.relations >= 3  # at least each month, at most and at least their sum, per shared cell


def test_repeats_widen_the_sum_by_the_clients_counted_twice() -> None:
    """April hides A (4) and B (5); three of April's A clients exit again in May (a second episode), and
    the span counts them once (A: 5 = 4 + 4 - 3). "Span = April + May" then holds only up to 3, which
    leaves April's A anywhere in 1..4 (B in 5..8): not pinned, not proved small."""
    published = systems(
        exits_table("2024-04", None, None, 9), exits_table("2024-05", 4, 6, 10), exits_table("2024-05", 5, 11, 16)
    )
    april = clients(list(range(9)))
    may = pd.concat([clients([0, 1, 2], episode=1), clients(list(range(9, 16)))], ignore_index=True)
    year = pd.concat([may.iloc[:3], april.iloc[3:], may.iloc[3:]], ignore_index=True)
    who = {(APRIL,): april, (MAY,): may, (APRIL, MAY): year}

    relations = span_relations(published, lambda population, months: who.get(months))

    sums = [r for r in relations if len(r.terms) == 3 and r.lower > float("-inf")]
    assert sums and all(r.lower == -3.0 for r in sums)
    attack = attack_systems(published, lambda population, months: who.get(months), k=3, zeros="show")
    assert attack.recovered.empty, attack.recovered
