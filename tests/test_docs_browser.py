"""GET /docs in a real browser: Debian's headless Chromium, driven by selenium, against `make run`'s
server, with every host but 127.0.0.1 unresolvable. Swagger UI renders every route, logs no console
error, requests nothing from elsewhere, and "Try it out" reaches the server. `UPDATE_SCREENSHOT=1`
rewrites docs/api-docs.png (README: API contract); otherwise the screenshot goes to the tmp folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from embedding_engine.api.routes import ROUTES
from local_server import ROOT, local_server

PACKAGES = ["chromium", "chromium-driver", "fonts-liberation"]
SCREENSHOT = ROOT / "docs" / "api-docs.png"
WINDOW = (1280, 900)


def install_browser() -> str | None:
    """Debian's Chromium and its driver, installed with apt-get if missing (as .ci/run does); None
    once they are there, else why they could not be installed."""
    if shutil.which("chromium") and shutil.which("chromedriver"):
        return None
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return "chromium and chromium-driver are missing, and apt-get cannot run here as root to install them"
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:  # perhaps stale package lists
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env, check=False)
        done = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0 or not (shutil.which("chromium") and shutil.which("chromedriver")):
        return f"could not install {' '.join(PACKAGES)} with apt-get: {done.stderr.strip()[-500:]}"
    return None


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`make run` without API keys: the docs are public."""
    with local_server(tmp_path_factory.mktemp("docs-server")) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    reason = install_browser()
    if reason is not None:
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = str(shutil.which("chromium"))
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        # Every host but the server's is unresolvable: a CDN fetch would fail, and log an error.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--disable-background-networking",
        "--no-first-run",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))
    metrics = {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)  # the viewport, exactly
    try:
        yield driver
    finally:
        driver.quit()


def requested_urls(driver: webdriver.Chrome) -> list[str]:
    """Every URL the page requested since the performance log was last read."""
    urls = []
    for entry in log(driver, "performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def console_errors(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    return [entry for entry in log(driver, "browser") if entry["level"] == "SEVERE"]


def log(driver: webdriver.Chrome, kind: str) -> list[dict[str, Any]]:
    """The entries of a log (goog:loggingPrefs) since it was last read."""
    entries: list[dict[str, Any]] = driver.get_log(kind)  # type: ignore[no-untyped-call]
    return entries


def first(scope: WebElement, css: str) -> Callable[[Any], WebElement | Literal[False]]:
    """A wait condition: the first element under `scope` that matches `css`, once there is one."""

    def found(_: Any) -> WebElement | Literal[False]:
        matches = scope.find_elements(By.CSS_SELECTOR, css)
        return matches[0] if matches else False

    return found


def rendered_operations(driver: webdriver.Chrome) -> set[tuple[str, str]]:
    """(method, path) of each operation Swagger UI shows."""
    found = set()
    for block in driver.find_elements(By.CSS_SELECTOR, ".opblock"):
        method = block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text
        path = block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path")
        found.add((method, str(path)))
    return found


def test_the_docs_page_renders_every_route_from_this_server_alone(
    browser: webdriver.Chrome, base_url: str, tmp_path: Path
) -> None:
    browser.get(f"{base_url}/docs")
    routes = {(spec.method, spec.path) for spec in ROUTES}
    WebDriverWait(browser, 60).until(lambda driver: len(rendered_operations(driver)) >= len(routes))
    assert rendered_operations(browser) == routes
    assert browser.title == "Embeddings API"
    assert "Embeddings API" in browser.find_element(By.CSS_SELECTOR, ".info .title").text

    screenshot = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") == "1" else tmp_path / SCREENSHOT.name
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes().startswith(b"\x89PNG")

    urls = requested_urls(browser)
    assert [url for url in urls if not url.startswith((f"{base_url}/", "data:"))] == []
    for needed in ("/docs", "/docs/swagger-ui-bundle.js?v=", "/docs/swagger-ui.css?v=", "/openapi.json"):
        assert any(url.startswith(base_url + needed) for url in urls), (needed, urls)
    assert console_errors(browser) == []


def test_try_it_out_calls_this_server(browser: webdriver.Chrome, base_url: str) -> None:
    """The relative server URL resolves to the page's own origin, and the page's CSP lets it through."""
    browser.get(f"{base_url}/docs")
    health = WebDriverWait(browser, 60).until(
        lambda found: found.find_element(By.ID, "operations-Service-getHealth")
    )
    for selector in (".opblock-summary-control", ".try-out__btn", ".execute"):
        WebDriverWait(browser, 10).until(first(health, selector)).click()
    status = WebDriverWait(browser, 60).until(
        first(health, ".live-responses-table tbody .response-col_status")
    )
    assert status.text.strip() == "200"
    assert f"{base_url}/health" in requested_urls(browser)
    assert console_errors(browser) == []
