"""Fixtures of the browser tests: Debian's headless chromium driven by Playwright (never Playwright's own browser
download), the dashboard's static files served alone (for what needs no pipeline), and a live system."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, sync_playwright

from api.dashboard import NODE_MODULES, mount_dashboard
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration


def chromium_path() -> str:
    """Debian's chromium (``make test`` installs it); CI must have it, elsewhere the tests say how to get it."""
    path = os.environ.get("TOOGREEN_CHROMIUM") or shutil.which("chromium")
    if path is None:
        message = "Debian's chromium is not installed: `make chromium` (apt-get install chromium) installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    if not NODE_MODULES.is_dir():
        pytest.fail("the dashboard's npm packages are missing: `make venv` installs them (npm ci)")
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    with sync_playwright() as playwright:
        # --no-sandbox: chromium refuses its sandbox as root, which is how CI runs
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (its own localStorage) whose page fails the test on any script error."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"script errors on the page: {errors}"


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # it runs in a thread: leave the signals to pytest
        pass


@pytest.fixture(scope="session")
def static_site() -> Iterator[str]:
    """The dashboard's files alone, served by the same mount as the API's, on 127.0.0.1 (a secure context, so
    the page has WebCrypto)."""
    app = FastAPI()
    mount_dashboard(app)
    port = free_port()
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise TimeoutError("the static dashboard server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
