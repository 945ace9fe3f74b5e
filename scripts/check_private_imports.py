"""Fail on a cross-module use of another module's `_private` name (import-linter does not check names).

A module's `_private` names are its own: `from treatment_marts.x import _y`, `import treatment_marts.x as m`
then `m._y`, in the package, the tests, the DAGs or the plugin, each make one module depend on another's
internals. Dunder names (`__version__`) are public. Exit 1 listing every use.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOTS = ("include/treatment_marts", "tests", "dags", "plugins", "scripts")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found, aliases = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("treatment_marts"):
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"{path}:{node.lineno}: imports {node.module}.{alias.name}")
                else:
                    aliases.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("treatment_marts"):
                    aliases.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in aliases:
                found.append(f"{path}:{node.lineno}: uses {ast.unparse(node)}")
    return found


def main() -> int:
    repo = Path(__file__).resolve().parents[1]
    found = [v for root in ROOTS for p in sorted((repo / root).rglob("*.py")) for v in violations(p)]
    for line in found:
        print(line)
    print(f"{len(found)} cross-module use(s) of a _private name" if found else "no cross-module _private names")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
