"""Regenerate (or check) the artefacts derived from the contract: the GX suite and docs/extract-spec.md.

`python -m treatment_marts.contract.generate` writes them; `--check` exits 1 naming any stale file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from treatment_marts.contract.docs import render_extract_spec
from treatment_marts.contract.model import load_contract
from treatment_marts.contract.suite import build_suite

REPO_DIR = Path(__file__).resolve().parents[3]  # the contract sits below core: no Settings import


def artefacts() -> dict[Path, str]:
    contract = load_contract()
    return {
        REPO_DIR / "expectations" / f"{contract.name}.json": json.dumps(build_suite(contract), indent=2) + "\n",
        REPO_DIR / "docs" / "extract-spec.md": render_extract_spec(contract),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in artefacts().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    for path in stale:
        print(f"{path} is stale: run `python -m treatment_marts.contract.generate`", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
