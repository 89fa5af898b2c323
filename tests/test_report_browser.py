"""Open the rendered report in Debian's headless chromium: every image loads; take a screenshot."""

import shutil
from pathlib import Path

import pytest

from suite.reports.render import render_report
from tests.conftest import REQUIRE_BROWSER

FIXTURE = Path(__file__).parent / "fixtures" / "report.db"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.browser


@pytest.fixture
def browser():
    if not (CHROMIUM and DRIVER):
        if REQUIRE_BROWSER:
            pytest.fail("chromium and chromedriver are required (SUITE_REQUIRE_BROWSER=1); "
                        "install Debian's chromium and chromium-driver")
        pytest.skip("Debian's chromium and chromium-driver are not installed (sh .ci/setup installs them as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1366,900", "--disable-dev-shm-usage"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


def test_report_in_a_real_browser(tmp_path, browser):
    db = tmp_path / "report.db"
    shutil.copy(FIXTURE, db)
    index = render_report(db, tmp_path / "out")
    browser.get(index.as_uri())
    # scroll through so lazy images load, then ask the browser what it loaded
    browser.execute_script("""
        for (const img of document.images) { img.loading = 'eager'; img.scrollIntoView(); }""")
    browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        Promise.all(Array.from(document.images).map(i => i.complete ? null :
            new Promise(r => { i.onload = r; i.onerror = r; }))).then(() => done());""")
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth]);")
    assert len(images) == 6 * 8  # six protocols in the fixture store (tests/test_report.py), eight figures each
    broken = [src for src, complete, width in images if not (complete and width > 100)]
    assert broken == []
    assert browser.title == "Orthogonal & unitary RNN benchmark"
    assert browser.execute_script("return document.querySelectorAll('script').length") == 0
    # a laptop screen: no horizontal page scroll
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    browser.execute_script("window.scrollTo(0, 0)")
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
