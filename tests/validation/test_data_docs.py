"""Data Docs are a styled page listing the validation, with no request leaving the machine.

A real GX run builds the site; Debian's Chromium opens it from disk with every non-file request recorded
and refused, as on a restricted network.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from treatment_marts.core.settings import Settings
from treatment_marts.ops.synth import generate_extract
from treatment_marts.validation.data_docs import make_offline
from treatment_marts.validation.gx_runner import validate_extract

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = Settings.from_env(data_root=tmp_path_factory.mktemp("data"))
    frame = generate_extract("2024-03", clients=400, areas=["Northton"], seed=3)
    report = validate_extract(frame, period="2024-03", settings=settings, run_id="docs", source="extract.csv")
    assert report.data_docs_index is not None
    return report.data_docs_index


def _external_loads(page_text: str) -> list[str]:
    import re

    return re.findall(r"""<(?:script|link|img)\b[^>]*?\b(?:src|href)=["'](https?://[^"']+)""", page_text)


def test_no_page_of_the_site_loads_anything_from_the_internet(index: Path) -> None:
    pages = sorted(index.parent.rglob("*.html"))
    assert len(pages) >= 2  # the index, the suite and at least one validation result
    for page in pages:
        assert _external_loads(page.read_text()) == [], page.relative_to(index.parent)
    assert (index.parent / "static" / "vendor" / "bootstrap" / "dist" / "css" / "bootstrap.min.css").is_file()
    assert (index.parent / "static" / "vendor" / "@fortawesome" / "fontawesome-free" / "webfonts").is_dir()


def test_the_site_is_styled_and_lists_the_validation_with_no_external_request(index: Path) -> None:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is not installed (.ci/run installs it)"
    external: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()

        def route(request_route, request) -> None:  # noqa: ANN001 - Playwright's own types
            if request.url.startswith("file://"):
                request_route.continue_()
            else:
                external.append(request.url)
                request_route.abort()

        page.route("**/*", route)
        page.goto(index.as_uri())
        page.wait_for_load_state("networkidle")
        font = page.evaluate("getComputedStyle(document.body).fontFamily")
        rows = page.locator("table tbody tr").count()
        listed = page.locator("body").inner_text()
        icons = page.evaluate("getComputedStyle(document.querySelector('.fas')).fontFamily")
        browser.close()
    assert external == [], f"requests left the machine: {external}"
    assert "Times" not in font, f"unstyled page (font {font!r}): Bootstrap did not load"
    assert rows >= 1 and "docs-extract" in listed.replace("_", "-"), listed[:500]
    assert "Font Awesome" in icons


def test_without_the_assets_the_site_is_left_as_gx_wrote_it(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    page = site / "index.html"
    page.write_text('<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>')
    report = make_offline(site, assets=tmp_path / "nothing-installed")
    assert report.assets_missing and page.read_text().count("code.jquery.com") == 1
