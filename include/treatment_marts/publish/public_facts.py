"""What a public manifest may say about a release: provenance and rules, never a count of people.

An outside attacker read `rows: 3` for one area's input file in the public release manifest and capped that
area at 3 clients, which pinned 58 suppressed cells (one woman fully characterised); `episodes_in=5` and
`excluded_no_consent=2` did the same for a small extract. The run manifest in the restricted zone keeps
every fact; the public release manifest, each mart's `_manifest.json` and the warehouse `releases` row carry
only the keys below (an allow-list, so a fact added to the run manifest later stays restricted until it is
judged safe here). The integers left are counts of *cells* or configuration, never of individuals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Top-level keys of the run manifest a public manifest keeps, as they are.
PUBLIC_KEYS = frozenset(
    {
        "run_id",
        "period",
        "package_version",
        "ruleset_sha256",
        "k",
        "zeros",
        "marts",
        "marts_not_built",
        "suppressed_cells",
        "audit",
        "protected_at",
        "partial",  # the release leaves areas out (names only: which areas, never how many rows or why)
        "areas_left_out",
        "area_designs",  # each area's table design and why (a size band it is below, never its count)
    }
)
# Per input file: what was received and its checksum; never its row count.
PUBLIC_INPUT_KEYS = ("source", "sha256")


def public_facts(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a run manifest that may be published beside the marts."""
    facts = {key: value for key, value in manifest.items() if key in PUBLIC_KEYS}
    if "inputs" in manifest:
        facts["inputs"] = [{k: item[k] for k in PUBLIC_INPUT_KEYS if k in item} for item in manifest["inputs"]]
    return facts
