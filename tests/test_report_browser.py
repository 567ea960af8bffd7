"""The report in a real browser: headless Chromium loads it with no console error and every image.

Skipped when Chromium, chromedriver or selenium is missing, unless ``MCSP_REQUIRE_BROWSER=1``
(CI sets it after ``.ci/browser-up.sh``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcsp.report import SECTIONS, build_report

from .test_report import write_full

REQUIRED = os.environ.get("MCSP_REQUIRE_BROWSER") == "1"


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"MCSP_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def driver() -> Iterator:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (pip install -e '.[dev]')")
    chromedriver = shutil.which("chromedriver")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromedriver is None or chromium is None:
        _unavailable("chromium / chromedriver not found (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,6000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # an explicit driver path: Selenium Manager never looks for one on the network
    browser = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        yield browser
    finally:
        browser.quit()


def test_report_loads_cleanly_in_chromium(driver, tmp_path: Path) -> None:
    results = write_full(tmp_path / "results", tables=True)
    page = build_report(results)
    driver.get(page.resolve().as_uri())
    ids = driver.execute_script("return [...document.querySelectorAll('section')].map(s => s.id)")
    assert ids == [sid for sid, _ in SECTIONS]
    images = driver.execute_script(
        "return [...document.images].map(i => [i.alt, i.complete && i.naturalWidth > 0])"
    )
    assert len(images) >= 8
    assert [alt for alt, loaded in images if not loaded] == []
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
    shots = os.environ.get("MCSP_REPORT_SHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(shots) / "test_report.png"))
