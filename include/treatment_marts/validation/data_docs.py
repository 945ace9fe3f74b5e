"""Data Docs that work offline: the CDN assets GX's pages load, served from files beside the docs.

GX 1.24 renders Data Docs that fetch Bootstrap, jQuery, bootstrap-table, Font Awesome, Vega and its logos
from public CDNs. On a restricted network (where Data Docs live: they describe identifying extracts) the
page is then unstyled and the validation list, drawn by bootstrap-table's JavaScript, is empty; and every
view tells the CDNs and GX's asset bucket who looked (the logo URL carries a timestamp and the context id).

`make_offline` rewrites every page of a local site to relative links under `static/vendor/`, copying each
file once from an npm install of the pinned packages (`data-docs/package.json`, installed by `make venv`
into `data-docs/node_modules`; `TREATMENT_MARTS_DATA_DOCS_ASSETS` points elsewhere). The logos become GX's
own copy in `static/images/`. Links a reader clicks (GX's documentation) are left alone: they load nothing.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from treatment_marts.core.settings import REPO_DIR

log = logging.getLogger(__name__)

ENV_ASSETS = "TREATMENT_MARTS_DATA_DOCS_ASSETS"
DEFAULT_ASSETS = REPO_DIR / "data-docs" / "node_modules"
VENDOR = Path("static") / "vendor"

# URL prefix (without query) -> file under node_modules. Versions follow data-docs/package.json.
ASSETS: dict[str, str] = {
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": (
        "@forevolve/bootstrap-dark/dist/css/bootstrap-prefers-dark.css"
    ),
    "https://cdn.jsdelivr.net/npm/vega@5": "vega/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed/build/vega-embed.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        "bootstrap-datepicker/dist/css/bootstrap-datepicker.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        "bootstrap-datepicker/dist/js/bootstrap-datepicker.min.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": (
        "@fortawesome/fontawesome-free/css/all.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js/dist/umd/popper.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/dist/jquery.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap/dist/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap/dist/js/bootstrap.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css": (
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css": (
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table/dist/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table/dist/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": (
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.min.js"
    ),
}
# Folders a stylesheet reaches by relative URL (Font Awesome's ../webfonts/).
COMPANIONS = {"@fortawesome/fontawesome-free/css/all.min.css": "@fortawesome/fontawesome-free/webfonts"}
LOGOS = re.compile(r"https://great-expectations-web-assets\.s3\.[a-z0-9-]+\.amazonaws\.com/[A-Za-z_-]+\.png[^\"']*")
# Tags that make the browser load something (not <a href>: a click, not a request), and their URL.
TAG = re.compile(r"<(?:script|link|img)\b[^>]*>", re.I)
URL = re.compile(r"""(\b(?:src|href)=)(["'])(https?://[^"']+)\2""", re.I)
# Subresource-integrity attributes: meant for CDNs; a file:// page cannot make the CORS request they need.
SRI = re.compile(r"""\s(?:integrity=(["'])[^"']*\1|crossorigin(?:=(["'])[^"']*\2)?)""", re.I)


@dataclass
class OfflineReport:
    """What `make_offline` did: pages rewritten, and external URLs it had no file for (should be none)."""

    pages: int = 0
    unknown: set[str] = field(default_factory=set)
    assets_missing: bool = False


def assets_dir() -> Path:
    value = os.environ.get(ENV_ASSETS)
    return Path(value) if value else DEFAULT_ASSETS


def _local(url: str) -> str | None:
    bare = url.split("?", 1)[0]
    if LOGOS.fullmatch(url):
        return "images/logo-long.png"
    return ASSETS.get(bare)


def make_offline(site_dir: Path, assets: Path | None = None) -> OfflineReport:
    """Point every page of the local Data Docs site at files inside it; copy the files once."""
    assets = assets or assets_dir()
    report = OfflineReport()
    if not all((assets / rel).is_file() for rel in ASSETS.values()):
        log.warning(
            "Data Docs use public CDNs: the pinned assets are not installed at %s (run `make venv`, or set %s)",
            assets,
            ENV_ASSETS,
        )
        report.assets_missing = True
        return report
    for page in sorted(site_dir.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        depth = os.path.relpath(site_dir, page.parent)

        def relink(tag: re.Match[str], page_depth: str = depth) -> str:
            found = URL.search(tag.group(0))
            if not found:
                return tag.group(0)
            url = found.group(3)
            local = _local(url)
            if local is None:
                report.unknown.add(url.split("?", 1)[0])
                return tag.group(0)
            if local.startswith("images/"):
                target = Path("static") / local
            else:
                target = VENDOR / local
                _copy(assets / local, site_dir / target, COMPANIONS.get(local), assets)
            href = Path(page_depth, target).as_posix()
            quote = found.group(2)
            relinked = tag.group(0).replace(found.group(0), f"{found.group(1)}{quote}{href}{quote}")
            return SRI.sub("", relinked)

        rewritten = TAG.sub(relink, text)
        if rewritten != text:
            page.write_text(rewritten, encoding="utf-8")
        report.pages += 1
    if report.unknown:
        log.warning("Data Docs still load %d external URL(s): %s", len(report.unknown), sorted(report.unknown))
    return report


def _copy(source: Path, target: Path, companion: str | None, assets: Path) -> None:
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    if companion:
        folder = target.parents[1] / Path(companion).name  # css/all.min.css -> ../webfonts
        if not folder.exists():
            shutil.copytree(assets / companion, folder)
