"""Fixtures of the browser tests: Debian's headless chromium driven by Playwright (never Playwright's own browser
download), the dashboard's static files served alone (for what needs no pipeline), and a live system."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, sync_playwright

from api.dashboard import NODE_MODULES, mount_dashboard
from tests.integration.conftest import free_port, running_core
from toogreen.app.demo import Stack, issue_demo_tokens

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


@pytest.fixture(scope="package")
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


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn on 127.0.0.1 (a secure context, so the page has WebCrypto), in a thread."""
    port = free_port()
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise TimeoutError("the dashboard server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="package")
def static_site() -> Iterator[str]:
    """The dashboard's files alone, served by the same mount as the API's."""
    app = FastAPI()
    mount_dashboard(app)
    with served(app) as url:
        yield url


@dataclass(frozen=True)
class Live:
    """A running system with the demo's people: ``tokens[name]`` is {"role", "subject", "token"}."""

    stack: Stack
    tokens: dict[str, dict[str, str]]

    @property
    def url(self) -> str:
        return self.stack.api_url()

    def token(self, name: str) -> str:
        return self.tokens[name]["token"]

    def get(self, name: str, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", headers={"Authorization": f"Bearer {self.token(name)}"}, timeout=10)

    def post(self, name: str, path: str, body: dict) -> httpx.Response:
        return httpx.post(
            f"{self.url}{path}", json=body, headers={"Authorization": f"Bearer {self.token(name)}"}, timeout=15
        )

    def sign_in(self, page: Page, name: str, hash_path: str = "") -> Page:
        """Open the dashboard through a sign-in link, as ``make demo`` prints it, then go to ``hash_path``."""
        page.goto(f"{self.url}/#token={self.token(name)}")
        page.wait_for_selector("#who:not([hidden])")
        if hash_path:
            page.evaluate("(h) => { location.hash = h; }", hash_path)
        return page


def _ready(live: Live) -> bool:
    try:
        zones = live.get("admin", "/api/v1/zones").json()
        nodes = live.get("admin", "/api/v1/nodes").json()
    except (httpx.HTTPError, ValueError):
        return False
    return len([z for z in zones if z["window_5m"]]) == 11 and sum(1 for n in nodes if n["routable"]) >= 15


@pytest.fixture(scope="package")
def live(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[Live]:
    """One system for every browser test here: broker, worker, API with its sink, the simulated fleet and the
    synthetic grid as real processes, and a token per demo person issued by the running API."""
    with running_core(tmp_path_factory, "dashboard") as stack:
        stack.spawn("fleet", "produce", "telemetry")
        stack.spawn("grid", "produce", "grid")
        tokens = issue_demo_tokens(stack, stack.run_dir / "demo-tokens.json")
        live = Live(stack, tokens)
        stack.wait_for("11 windowed zones and a routable fleet", lambda: _ready(live), 90)
        yield live
