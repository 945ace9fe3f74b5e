"""docs/architecture.md's package map is the newcomer's table of contents: it names every module of the
package, and only modules that exist (a renamed or split module must update the map in the same change)."""

from __future__ import annotations

import re

from treatment_marts.core.settings import REPO_DIR

PACKAGE = REPO_DIR / "include" / "treatment_marts"


def _map_section() -> str:
    text = (REPO_DIR / "docs" / "architecture.md").read_text(encoding="utf-8")
    start = text.index("## Package map")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _rows() -> dict[str, set[str]]:
    """Folder -> the module file names its rows list (a row with an empty layer cell continues the folder above)."""
    listed: dict[str, set[str]] = {}
    folder = ""
    for line in _map_section().splitlines():
        if not line.startswith("|") or line.startswith("|---") or line.startswith("| layer"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        layer = cells[0].strip("`")
        if layer:
            folder = "" if layer.endswith(".py") else layer.rstrip("/")
            if layer.endswith(".py"):
                listed.setdefault("", set()).add(layer)
        names = set(re.findall(r"`([a-z_]+\.py)`", " ".join(cells[1:2])))
        listed.setdefault(folder, set()).update(names)
    return listed


def test_every_module_of_the_package_is_in_the_package_map() -> None:
    listed = _rows()
    missing = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "__init__.py"
        and path.name not in listed.get("" if path.parent == PACKAGE else path.parent.name, set())
    ]
    assert not missing, f"docs/architecture.md's package map does not list {missing}"


def test_the_package_map_lists_no_module_that_does_not_exist() -> None:
    stale = [
        f"{folder}/{name}" if folder else name
        for folder, names in _rows().items()
        for name in sorted(names)
        if not (PACKAGE / folder / name).exists()
    ]
    assert not stale, f"docs/architecture.md's package map lists modules that do not exist: {stale}"
