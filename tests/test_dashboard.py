"""The dashboard in a real headless Chromium: the what-if panel changes the score.

Chromium and ChromeDriver come from Debian (`chromium`, `chromium-driver`),
installed by .ci/run; elsewhere the browser test is skipped, visibly.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from ci_risk_hook import dashboard, demo

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    repo = tmp_path_factory.mktemp("dash") / "demo"
    demo.build(str(repo), seed=4, commits=100)
    os.environ["CI_RISK_DB"] = str(repo / ".git" / "ci-risk" / "history.sqlite")
    try:
        state = dashboard.load_state(cwd=str(repo))
    finally:
        del os.environ["CI_RISK_DB"]
    server = dashboard.make_server(state, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_api_scores_what_if_inputs(served: str) -> None:
    def whatif(body: dict) -> dict:
        request = urllib.request.Request(served + "api/whatif", data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())

    calm = whatif({"files_ci": 0, "files_build": 0, "la": 10, "author_exp": 80})
    risky = whatif({"files_ci": 1, "files_build": 1, "la": 600, "nf": 3, "author_exp": 0})
    assert risky["probability"] > calm["probability"]
    assert len(risky["reasons"]) == 3
    with urllib.request.urlopen(served + "api/history?branch=main") as response:
        history = json.loads(response.read())
    assert history["builds"] and all(b["branch"] == "main" for b in history["builds"])


def test_server_binds_loopback_and_says_so() -> None:
    server = dashboard.make_server(dashboard.State.__new__(dashboard.State), "127.0.0.1", 0)
    try:
        assert server.server_address[0] == "127.0.0.1"
        assert "loopback only" in dashboard.started_message(server)
    finally:
        server.server_close()


@pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                    reason="needs Debian's chromium and chromium-driver (installed by .ci/run)")
def test_browser_what_if_changes_the_score(served: str, tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(served)
        wait = WebDriverWait(driver, 20)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
        before = driver.find_element(By.ID, "whatif-score").text
        assert before.endswith("%"), before
        ci = driver.find_element(By.ID, "whatif-files_ci")
        if not ci.is_selected():
            ci.click()
        build = driver.find_element(By.ID, "whatif-files_build")
        if not build.is_selected():
            build.click()
        lines = driver.find_element(By.ID, "whatif-la")
        lines.clear()
        lines.send_keys("900")
        wait.until(lambda d: d.find_element(By.ID, "whatif-score").text != before)
        after = driver.find_element(By.ID, "whatif-score").text
        assert int(after.rstrip("%")) > int(before.rstrip("%")), (before, after)
        assert driver.find_elements(By.CSS_SELECTOR, "#history tr"), "the history table is empty"
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "dashboard.png"))
    finally:
        driver.quit()
