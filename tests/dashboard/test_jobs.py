"""A developer submits a job from the form and watches it, without reloading, get routed (the chosen node, the
runners-up, why the others were excluded), run, and settle with a receipt verified in the browser; and every
page renders for the admin, live."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.dashboard.conftest import Live

pytestmark = pytest.mark.integration


def test_a_job_submitted_from_the_form_is_routed_runs_and_its_receipt_verifies_in_the_browser(page: Page, live: Live):
    live.sign_in(page, "developer", "#/jobs")
    page.evaluate("window.__sameDocument = true")  # gone if anything reloads the page
    form = page.locator("#submit-form")
    form.locator("[name=name]").fill("from-the-form")
    form.locator("[name=workload_type]").select_option("fine_tune")
    form.locator("[name=vram_mb]").fill("12000")
    form.locator("[name=expected_hours]").fill("0.03")
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/api/v1/workloads")) as request:
        form.locator("button[type=submit]").click()
    assert request.value.headers["idempotency-key"]  # a retry of this form would not submit it twice

    page.wait_for_url("**/#/job/wl-*")
    workload_id = page.url.rsplit("/", 1)[-1]
    initial = page.locator('li.decision[data-type="initial"]')
    expect(initial).to_be_visible(timeout=30_000)
    chosen = initial.locator("[data-chosen-node]").get_attribute("data-chosen-node")
    expect(initial.locator("tr.chosen")).to_have_attribute("data-node", chosen)
    expect(initial.locator("tr.runner-up").first).to_be_visible()
    expect(initial.locator("ul.exclusions li").first).to_be_visible()  # the busy or unfit nodes, counted by reason

    # what the browser shows is what the API says
    detail = live.get("developer", f"/api/v1/workloads/{workload_id}").json()
    assert detail["name"] == "from-the-form" and detail["submitter"] == "ada"
    assert detail["decisions"][0]["chosen_node_id"] == chosen

    expect(page.locator("#job-head [data-status]")).to_have_attribute("data-status", "completed", timeout=60_000)
    verdict = page.locator("#job-receipt [data-verified]")
    expect(verdict).to_have_attribute("data-verified", "true", timeout=60_000)
    expect(verdict).to_contain_text("Ed25519 signature matches")
    expect(page.locator(".meter.final #meter-gco2")).not_to_have_text("—")
    expect(page.locator("#job-events li[data-event=completed]")).to_have_count(1)
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"


@pytest.mark.parametrize("hash_path", ["#/map", "#/fleet", "#/jobs", "#/providers", "#/sustainability"])
def test_every_page_renders_live_for_the_admin(page: Page, live: Live, hash_path: str):
    live.sign_in(page, "admin", hash_path)
    status = page.locator("#live-status")
    expect(status).to_contain_text("live · updated")
    first = status.inner_text()
    expect(status).not_to_have_text(first, timeout=10_000)  # refreshed again by itself
    expect(page.locator("#page .card").first).to_be_visible()
    if hash_path == "#/sustainability":
        expect(page.locator("#chart-zones")).to_have_attribute("data-zones", "11")
        expect(page.locator("#chart-zones canvas")).to_have_count(1)
