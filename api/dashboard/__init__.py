"""The dashboard: plain HTML, CSS and JavaScript modules under ``static/`` (no build step), and the browser-side
packages that ``npm ci`` installs into ``node_modules/`` (zone geometry, the map projection, charts, a lossless
JSON parser for receipt verification). The API serves the page at ``/``, its files under ``/css/`` and ``/js/``,
and the packages under ``/vendor/<package>/``; nothing else, so every API path keeps its own answers (a 405 for a
method it does not take, a JSON 404 for what does not exist)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

DASHBOARD_DIR = Path(__file__).parent
STATIC_DIR = DASHBOARD_DIR / "static"
NODE_MODULES = DASHBOARD_DIR / "node_modules"

# what the browser imports, and their own dependencies (d3-geo needs d3-array, which needs internmap)
VENDOR_PACKAGES = (
    "d3-array",
    "d3-geo",
    "internmap",
    "lossless-json",
    "topojson-client",
    "uplot",
    "us-atlas",
    "world-atlas",
)


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard at ``/`` and its files beside it."""

    @app.get("/", include_in_schema=False)
    def dashboard_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    for folder in ("css", "js"):
        app.mount(f"/{folder}", StaticFiles(directory=STATIC_DIR / folder), name=f"dashboard-{folder}")
    for package in VENDOR_PACKAGES:
        # check_dir=False: the API still starts where `make venv` has not run npm yet; the map then says so
        app.mount(f"/vendor/{package}", StaticFiles(directory=NODE_MODULES / package, check_dir=False))
