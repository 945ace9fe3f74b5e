"""The extract contract: the single source of truth for columns, types and code lists.

Docs (docs/extract-spec.md) and the Great Expectations suite are generated from it; tests fail when they drift.
"""

from treatment_marts.contract.model import Column, ExtractContract, load_contract

__all__ = ["Column", "ExtractContract", "load_contract"]
