"""docs/marts.md is generated from the definitions; it fails here when someone forgets to regenerate it."""

from __future__ import annotations

from treatment_marts.core.settings import REPO_DIR
from treatment_marts.marts.definitions import load_marts
from treatment_marts.marts.docs import DOC_PATH, render_marts_doc

CONFIG = REPO_DIR / "include" / "config"


def test_marts_doc_is_current() -> None:
    assert DOC_PATH.read_text() == render_marts_doc(CONFIG), (
        "docs/marts.md is stale: run `python -m treatment_marts.marts.docs`"
    )


def test_every_mart_is_documented() -> None:
    text = render_marts_doc(CONFIG)
    for mart in load_marts(CONFIG).marts:
        assert f"### `{mart.name}`" in text
