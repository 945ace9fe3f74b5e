"""Render docs/extract-spec.md from the contract (a test fails when the committed file is stale)."""

from __future__ import annotations

from treatment_marts.contract.model import Column, ExtractContract

GROUP_TITLES = {
    "identity": "Identity and administration",
    "demographics": "Demographics and social circumstances",
    "substances": "Substances",
    "referral": "Referral and dates",
    "modality": "Modality (latest intervention)",
    "exit": "Exit",
    "health": "Health and blood-borne viruses",
    "top": "Treatment Outcomes Profile (latest TOP)",
}


def _constraint(col: Column) -> str:
    if col.type == "integer":
        return f"{col.min} to {col.max}"
    if col.pattern:
        return f"`{col.pattern}`"
    if col.type == "flag":
        return "Y / N"
    if col.type == "code":
        return f"{len(col.codes or {})} codes (below)"
    return ""


def render_extract_spec(contract: ExtractContract) -> str:
    lines = [
        f"# Extract specification: `{contract.name}` v{contract.version}",
        "",
        "Generated from `include/treatment_marts/contract/extract_contract.yaml` by",
        "`python -m treatment_marts.contract.generate`; do not edit by hand (a test fails when this file is stale).",
        "",
        f"**Grain:** {contract.grain}. **Record key:** {', '.join(f'`{k}`' for k in contract.record_key)}.",
        "",
        "Real NDTMS CSV files can carry several rows per episode (one per modality, TOP or sub-intervention",
        "review). This contract flattens them to one row per episode, holding the latest modality and the latest",
        "TOP, as a provider-side export would.",
        "",
        "## File conventions",
        "",
        "- CSV (UTF-8, a byte-order mark is accepted; comma-separated; header row of the column names below),",
        "  XLSX (one sheet, or a sheet named `extract`) or Parquet. One file per provider or area per month, or one",
        "  file for all areas; a period's files must not repeat an episode.",
        "- Dates are ISO `YYYY-MM-DD`; other date formats are rejected with the column and rows named.",
        "- An empty field is a null. Codes are case-sensitive.",
        "- When `consent` = `N`, NDTMS blanks every field except the administrative ones marked *always*;",
        "  fields marked *when consented* must be present for consenting clients.",
        "- **Identifying** columns are pseudonymised or dropped at the recode stage and never appear in marts,",
        "  logs, Data Docs or error messages.",
        "",
    ]
    for group, title in GROUP_TITLES.items():
        columns = [c for c in contract.columns if c.group == group]
        if not columns:
            continue
        lines += [
            f"## {title}",
            "",
            "| column | NDTMS | type | required | identifying | values | description |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in columns:
            lines.append(
                f"| `{c.name}` | {c.ndtms or ''} | {c.type} | {c.required.replace('_', ' ')} | "
                f"{'**yes**' if c.identifying else 'no'} | {_constraint(c)} | {c.description} |"
            )
        lines.append("")
    lines += ["## Code lists", ""]
    seen: set[tuple] = set()
    for c in contract.columns:
        if c.type != "code" or c.codes is None:
            continue
        signature = tuple(c.codes.items())
        if signature in seen:
            lines += [f"`{c.name}`: as above.", ""]
            continue
        seen.add(signature)
        lines += [f"### `{c.name}`", "", "| code | meaning |", "|---|---|"]
        lines += [f"| `{code}` | {label} |" for code, label in c.codes.items()]
        lines.append("")
    return "\n".join(lines)
