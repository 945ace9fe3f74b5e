"""Golden run: SHA-256 of every published and restricted output of a fixed-seed month and of a revision.

Proves a refactor changed no output. Run it before and after, and compare:

    python scripts/golden_run.py --out before.json
    python scripts/golden_run.py --out after.json --compare before.json

What is normalised (and why): run-time facts that differ between two runs of the same code on the same
input, never a published number.
- timestamps (ISO 8601 date-times, compact `YYYYMMDDTHHMMSS` stamps, epoch seconds) in JSON, HTML, YAML and text;
- the random suffix of a release folder (`<run_id>.<12 hex>`) and GX's run names / ids (uuid4 hex);
- durations (`*_seconds`, `elapsed`) in JSON;
- SQLite databases are compared as their rows (sorted) rather than bytes (page layout is not output);
- XLSX and ODS workbooks are compared member by member (the zip's own dates and docProps times are not output);
- the lock files (`.publish.lock`, `.gx.lock`) and GX's generated `.ge_store_backend_id` (a random uuid per context).
- the folder it runs in (`--work`) is written as `<work>` wherever an output records an absolute path.
The pseudonym key is fixed through TREATMENT_MARTS_PSEUDONYM_KEY (otherwise a random per-installation key).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

PERIOD = "2024-03"
CLIENTS = 3000
SEED = 20240101

ISO_TIME = re.compile(rb"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?")
COMPACT_TIME = re.compile(rb"\d{8}T\d{6}(\.?\d+)?Z?")
EPOCH = re.compile(rb"\b1[6-9]\d{8}\.\d+")
UUID = re.compile(rb"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")
RELEASE_SUFFIX = re.compile(r"\.[0-9a-f]{12}(?=/|$)")
DURATION_KEY = re.compile(r"(seconds|elapsed|duration)", re.I)
SKIP = {".publish.lock", ".gx.lock", ".ge_store_backend_id"}


WORK: list[bytes] = []  # the --work folder, as written into outputs


def _normalise_text(data: bytes) -> bytes:
    for work in WORK:
        data = data.replace(work, b"<work>")
    data = ISO_TIME.sub(b"<time>", data)
    data = COMPACT_TIME.sub(b"<stamp>", data)
    data = UUID.sub(b"<uuid>", data)
    data = EPOCH.sub(b"<epoch>", data)
    return re.sub(rb"\.[0-9a-f]{12}\b", b".<release>", data)


def _normalise_json(value: object) -> object:
    if isinstance(value, dict):
        return {k: ("<duration>" if DURATION_KEY.search(k) else _normalise_json(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise_json(v) for v in value]
    if isinstance(value, str):
        return _normalise_text(value.encode()).decode()
    return value


def _sqlite_rows(path: Path) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table' order by name")]
        for table in tables:
            writer.writerow([f"table {table}"])
            cur = con.execute(f'select * from "{table}"')
            writer.writerow([d[0] for d in cur.description])
            for row in sorted(cur.fetchall(), key=repr):
                writer.writerow(row)
    return _normalise_text(out.getvalue().encode())


def fingerprint(path: Path) -> str:
    if path.suffix in {".xlsx", ".ods"}:  # zip archives: their members, not the zip's dates
        with zipfile.ZipFile(path) as book:
            data = b"".join(name.encode() + _normalise_text(book.read(name)) for name in sorted(book.namelist()))
    elif path.suffix == ".db":
        data = _sqlite_rows(path)
    elif path.suffix == ".json":
        data = json.dumps(_normalise_json(json.loads(path.read_bytes())), sort_keys=True).encode()
    elif path.suffix in {".html", ".yml", ".yaml", ".txt", ".csv", ".md", ".sha256"}:
        data = _normalise_text(path.read_bytes())
    else:
        data = path.read_bytes()
    return hashlib.sha256(data).hexdigest()


def hash_tree(root: Path) -> dict[str, str]:
    hashes = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name not in SKIP):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(("raw/", "inbox/")):
            continue  # inputs, not outputs
        key = COMPACT_TIME.sub(b"<stamp>", RELEASE_SUFFIX.sub(".<release>", rel).encode()).decode()
        hashes[key] = fingerprint(path)
    return hashes


def _cli(*args: str, data_root: Path) -> None:
    env = {
        **os.environ,
        "GX_ANALYTICS_ENABLED": "False",
        "TREATMENT_MARTS_DATA_ROOT": str(data_root),
        "TREATMENT_MARTS_PSEUDONYM_KEY": "golden-run-fixed-key",
    }
    cmd = [sys.executable, "-m", "treatment_marts.cli", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(args[:1])} failed:\n{proc.stdout}\n{proc.stderr}")


def golden(work: Path) -> dict[str, dict[str, str]]:
    data = work / "data"
    extract = work / "in" / "extract.csv"
    _cli(
        "generate",
        "--period",
        PERIOD,
        "--clients",
        str(CLIENTS),
        "--seed",
        str(SEED),
        "--out",
        str(extract),
        data_root=data,
    )
    _cli(
        "run",
        "--period",
        PERIOD,
        "--extract",
        str(extract),
        "--run-id",
        "golden_a",
        "--data-root",
        str(data),
        data_root=data,
    )
    first = hash_tree(data)
    # A revision: the same month re-sent with every 40th episode row removed (a corrected file).
    lines = extract.read_text().splitlines(keepends=True)
    revised = work / "in_rev" / "extract.csv"
    revised.parent.mkdir(parents=True)
    revised.write_text(lines[0] + "".join(line for i, line in enumerate(lines[1:]) if i % 40 != 39))
    _cli(
        "run",
        "--period",
        PERIOD,
        "--extract",
        str(revised),
        "--run-id",
        "golden_b",
        "--data-root",
        str(data),
        data_root=data,
    )
    return {"month": first, "revision": hash_tree(data)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="write the hashes here (JSON)")
    parser.add_argument("--compare", help="an earlier --out: exit 1 listing every file that differs")
    parser.add_argument(
        "--work",
        default="/tmp/treatment-marts-golden",
        help="the fixed folder to run in (emptied first; kept afterwards for inspection)",
    )
    args = parser.parse_args()
    work = Path(args.work).resolve()
    WORK[:] = [str(work).encode()]
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    result = golden(work)
    Path(args.out).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"hashed {len(result['month'])} files after the month, {len(result['revision'])} after the revision")
    if not args.compare:
        return 0
    before = json.loads(Path(args.compare).read_text())
    diffs = [
        f"{stage}: {name}"
        for stage in result
        for name in sorted(set(before[stage]) | set(result[stage]))
        if before[stage].get(name) != result[stage].get(name)
    ]
    for line in diffs:
        print("differs", line)
    print("identical" if not diffs else f"{len(diffs)} file(s) differ")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
