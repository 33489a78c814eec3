"""Pages that work offline: `dvc plots show` / `dvc plots diff` and the API's /docs and /redoc,
drawn in a real headless Chromium whose only network is loopback.

The vendored scripts (vendor/README.md) are checked against vendor/manifest.json. The
browser tests skip when Debian's ``chromium`` (and, for /docs, ``chromium-driver``) is absent.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dvc_render.html import PAGE_HTML

from helpers import ROOT, make_project, sh
from sentinelle.experiments import plots_report
from sentinelle_tools import vendor
from test_api import model_path, server  # noqa: F401 (fixtures: `sentinelle serve`, a tiny model)

# A real browser: CI runs it (SENTINELLE_FULL_TESTS=1), as does naming the file.
pytestmark = pytest.mark.slow

CHROMIUM = plots_report.chromium()
CHROMEDRIVER = shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM, reason="needs Debian's chromium (apt-get install chromium)"
)
needs_driver = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)
MANIFEST = json.loads((ROOT / "vendor" / "manifest.json").read_text())
# The pipeline's vega plots: six of the evaluate stage and the top-level Threshold plot.
VEGA_PLOTS = 7
WAIT = 60  # seconds the browser may take to draw (a loaded CI machine)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_vendored_files_are_the_ones_npm_gave() -> None:
    template = vendor.TEMPLATE.read_text(encoding="utf-8")
    found = re.findall(
        r"<script>/\* ([\w-]+) [\d.]+ \(vendor/README.md\) \*/\n(.*?)\n</script>", template, re.S
    )
    inlined = dict(found)
    assert list(inlined) == list(vendor.PLOT_SCRIPTS)
    for package in vendor.PACKAGES:
        entry = MANIFEST[package.name]
        assert entry["version"] == package.version
        for name, digest in entry["files"].items():
            data = (
                inlined[package.name].encode()
                if package.name in inlined
                else (package.dest / name).read_bytes()
            )
            assert sha256(data) == digest, f"{package.name}: {name} is not the file npm gave"
    for name in vendor.PLOT_SCRIPTS:  # BSD-3-Clause
        assert "Redistribution and use" in (vendor.VENDOR / "licenses" / f"{name}.txt").read_text()
    for name in ("swagger-ui-dist.LICENSE", "redoc.LICENSE"):
        assert (vendor.DOCS / name).stat().st_size > 500
    # Nothing is loaded from elsewhere: no script or style sheet with an address.
    assert not re.search(r"<(script|link)[^>]+(src|href)=", template)
    assert "{plot_divs}" in template and "{scripts}" not in template
    config = (ROOT / ".dvc" / "config").read_text()
    assert "html_template = ../vendor/plots-template.html" in config


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh clone's worth of the project (committed plot data and dvc.lock), with a second
    commit whose plot data differ (another confusion matrix and ROC curve)."""
    repo = make_project(tmp_path_factory.mktemp("offline") / "repo")
    plots = repo / "dvclive" / "evaluate" / "plots" / "sklearn"
    confusion = json.loads((plots / "confusion_matrix.json").read_text())
    flipped = [r for r in confusion if r["actual"] == "spam"][:5]
    for row in flipped:
        row["predicted"] = "ham"
    (plots / "confusion_matrix.json").write_text(json.dumps(confusion))
    roc = json.loads((plots / "roc.json").read_text())
    roc["roc"] = roc["roc"][::2]
    (plots / "roc.json").write_text(json.dumps(roc))
    sh("git", "commit", "-qam", "other plot data", cwd=repo)
    return repo


def _drawn(page: Path) -> plots_report.Check:
    with tempfile.TemporaryDirectory() as tmp:
        return plots_report.check(page, Path(tmp) / "shot.png")


@needs_chromium
@pytest.mark.parametrize("command", [["show"], ["diff", "HEAD~1", "HEAD"]])
def test_dvc_plots_draw_every_vega_plot_offline(project: Path, command: list[str]) -> None:
    out = project.parent / f"plots-{command[0]}"
    sh("dvc", "plots", *command, "-o", out, cwd=project)
    page = out / "index.html"
    assert "cdn.jsdelivr.net" not in page.read_text()
    result = _drawn(page)
    assert result.plots == VEGA_PLOTS
    assert result.rendered == VEGA_PLOTS, result
    assert result.ink > 0.01


@needs_chromium
def test_dvc_default_page_draws_nothing_with_the_network_off(project: Path) -> None:
    """The check is real: DVC's own page (vega from a CDN) draws no plot in that browser."""
    out = project.parent / "plots-default"
    default = project.parent / "dvc-default.html"
    default.write_text(PAGE_HTML)
    sh("dvc", "plots", "show", "--html-template", default, "-o", out, cwd=project)
    page = out / "index.html"
    assert "cdn.jsdelivr.net" in page.read_text()
    result = _drawn(page)
    assert (result.plots, result.rendered) == (VEGA_PLOTS, 0)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        *plots_report.HEADLESS_FLAGS,
        *plots_report.OFFLINE_FLAGS,
        "--window-size=1200,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _shown(driver: Any, css: str, text: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = [e for e in driver.find_elements(By.CSS_SELECTOR, css) if text in e.text]
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{driver.current_url}: no {css} showing {text!r} after {WAIT} s")


@needs_driver
def test_docs_and_redoc_render_offline(browser: Any, server: str) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    paths = ("/healthz", "/predict", "/predict/batch", "/model")
    browser.get(f"{server}/docs")
    _shown(browser, ".swagger-ui .info .title", "Sentinelle")
    shown = {e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert set(paths) <= shown
    browser.get(f"{server}/redoc")
    _shown(browser, "h1", "Sentinelle")
    assert len(browser.find_elements(By.CSS_SELECTOR, "[data-section-id]")) >= len(paths)


@needs_driver
def test_the_browser_has_no_network_but_loopback(browser: Any) -> None:
    from selenium.common.exceptions import WebDriverException

    with pytest.raises(WebDriverException, match="ERR_PROXY_CONNECTION_FAILED"):
        browser.get("https://cdn.jsdelivr.net/npm/vega@5")
