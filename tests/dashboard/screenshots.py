"""Screenshots of every dashboard page, as `make demo` shows them: runs `toogreen demo` (on free ports, in a
scratch folder), signs in with the tokens it writes, waits until jobs have settled and moved, and saves PNGs.

    python -m tests.dashboard.screenshots docs/screenshots      (or: make screenshots)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, sync_playwright

from tests.dashboard.conftest import chromium_path
from tests.integration.conftest import free_port

VIEWPORT = {"width": 1400, "height": 1000}


def wait_for(what: str, check: Callable[[], Any], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except (httpx.HTTPError, ValueError, OSError, KeyError):
            pass
        time.sleep(1)
    raise TimeoutError(f"{what} not within {timeout_s:.0f} s")


def shoot(page: Page, url: str, path: Path, ready: str, full_page: bool = True, settle_ms: int = 2500) -> None:
    page.goto(url)
    page.wait_for_selector(ready, timeout=30_000)
    page.wait_for_timeout(settle_ms)  # a refresh or two: charts drawn, the meter ticking
    page.screenshot(path=str(path), full_page=full_page)
    print(f"  {path}")


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="toogreen-screenshots-"))
    api_port = free_port()
    env = {
        **os.environ,
        "TOOGREEN_API__PORT": str(api_port),
        "TOOGREEN_BROKER__EMBEDDED_PORT": str(free_port()),
        "TOOGREEN_STORAGE__DUCKDB_PATH": str(scratch / "toogreen.duckdb"),
        "TOOGREEN_STORAGE__SNAPSHOT_PATH": str(scratch / "snapshot.duckdb"),
        "TOOGREEN_SETTLEMENT__SIGNING_KEY_PATH": str(scratch / "signing.pem"),
        "TOOGREEN_SETTLEMENT__SOLANA_PAYER_KEY_PATH": str(scratch / "payer.json"),
    }
    base = f"http://127.0.0.1:{api_port}"
    log = open(scratch / "demo.log", "wb")  # noqa: SIM115  (the demo writes to it until it stops)
    demo = subprocess.Popen([sys.executable, "-m", "toogreen.app.cli", "demo"], env=env, stdout=log, stderr=log)
    try:
        tokens_path = scratch / "demo-tokens.json"
        wait_for("the demo's tokens", tokens_path.exists, 120)
        tokens = json.loads(tokens_path.read_text())

        def api(name: str, path: str) -> Any:
            headers = {"Authorization": f"Bearer {tokens[name]['token']}"}
            return httpx.get(f"{base}{path}", headers=headers, timeout=10).json()

        print("waiting for settled jobs, a move and a payout…")

        def settled_move() -> str | None:
            done = api("admin", "/api/v1/workloads?status=completed&limit=500")
            moved = [w["workload_id"] for w in done if w["moves"]]
            return next((w for w in moved if api("admin", f"/api/v1/workloads/{w}")["receipt_id"]), None)

        moved_id = wait_for("a settled job that moved", settled_move, 240)
        try:  # gamers' payouts come with the first settled gamer jobs; the page says so when there is none
            wait_for("a payout", lambda: any(r["payout_rail"] for r in api("admin", "/api/v1/billing")["records"]), 180)
        except TimeoutError as exc:
            print(f"  ({exc}: the providers page shows none)")
        running = wait_for(
            "a running job of the developer", lambda: api("developer", "/api/v1/workloads?status=running&limit=5"), 60
        )

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
            page = browser.new_page(viewport=VIEWPORT)
            shoot(page, base, out / "sign-in.png", "#sign-in-form", full_page=False, settle_ms=300)
            page.goto(f"{base}/#token={tokens['admin']['token']}")
            page.wait_for_selector("#who:not([hidden])")
            shoot(page, f"{base}/#/map", out / "map.png", 'g.zone[data-intensity]:not([data-intensity=""])')
            shoot(page, f"{base}/#/fleet", out / "fleet.png", "#fleet-table tbody tr")
            shoot(page, f"{base}/#/jobs", out / "jobs.png", "#jobs-table tbody tr", full_page=False)
            shoot(page, f"{base}/#/job/{moved_id}", out / "job.png", "#job-receipt [data-verified]")
            shoot(page, f"{base}/#/providers", out / "providers.png", "#earnings-table tbody tr")
            shoot(page, f"{base}/#/sustainability", out / "sustainability.png", "#chart-zones canvas", settle_ms=4000)

            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"{base}/#token={tokens['developer']['token']}")
            page.wait_for_selector("#who:not([hidden])")
            shoot(page, f"{base}/#/jobs", out / "developer-jobs.png", "#jobs-table tbody tr", full_page=False)
            job = running[0]["workload_id"]
            shoot(page, f"{base}/#/job/{job}", out / "developer-job-live.png", "li.decision", settle_ms=1500)
            shoot(page, f"{base}/#/fleet", out / "developer-refused.png", "[data-refused]", full_page=False)

            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"{base}/#token={tokens['datacenter']['token']}")
            page.wait_for_selector("#who:not([hidden])")
            earnings = out / "datacenter-providers.png"
            shoot(page, f"{base}/#/providers", earnings, "#earnings-table tbody tr", full_page=False)
            shoot(page, f"{base}/#/fleet", out / "datacenter-fleet.png", "#fleet-table tbody tr", full_page=False)
            browser.close()
        return 0
    finally:
        demo.send_signal(signal.SIGTERM)
        try:
            demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
        log.close()


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")))
