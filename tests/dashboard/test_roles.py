"""Signing in, in a real browser, and what each role sees and cannot see: the admin all 11 zones and the whole
fleet, a provider its own nodes, a developer its own jobs and never the other developer's."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.dashboard.conftest import Live

pytestmark = pytest.mark.integration

ALL_PAGES = ["Zones", "Fleet", "Jobs", "Providers", "Sustainability"]
SEEN = {
    "admin": ALL_PAGES,
    "developer": ["Zones", "Jobs", "Sustainability"],
    "datacenter": ALL_PAGES,
    "recycler": ALL_PAGES,
    "gamer": ALL_PAGES,
}
HASH = {"Zones": "#/map", "Fleet": "#/fleet", "Jobs": "#/jobs", "Providers": "#/providers",
        "Sustainability": "#/sustainability"}  # fmt: skip


def test_the_form_refuses_a_bad_token_and_signs_in_with_a_good_one_which_stays_in_the_browser(page: Page, live: Live):
    page.goto(live.url)
    page.fill("#token-input", "tg_not-a-token")
    page.click("#sign-in-form button")
    expect(page.locator("#sign-in-error")).to_have_text("That token is not valid.")
    assert page.evaluate("localStorage.getItem('toogreen.token')") is None

    page.fill("#token-input", live.token("developer"))
    page.click("#sign-in-form button")
    expect(page.locator("#who-role")).to_have_text("developer")
    expect(page.locator("#who-subject")).to_have_text("ada")
    assert page.evaluate("localStorage.getItem('toogreen.token')") == live.token("developer")

    page.reload()  # the token stayed in the browser
    expect(page.locator("#who-role")).to_have_text("developer")
    page.click("#sign-out")
    expect(page.locator("#sign-in")).to_be_visible()
    assert page.evaluate("localStorage.getItem('toogreen.token')") is None


def test_a_token_link_signs_in_and_leaves_the_address_bar(page: Page, live: Live):
    live.sign_in(page, "admin")
    expect(page.locator("#who-role")).to_have_text("admin")
    assert "token" not in page.url
    # every request after it carries the token as a bearer header, never in the URL
    with page.expect_request(re.compile(r"/api/v1/zones$")) as request:
        page.reload()
    assert request.value.headers["authorization"] == f"Bearer {live.token('admin')}"


def test_the_admin_sees_all_11_zones_on_the_map_and_the_whole_fleet(page: Page, live: Live):
    live.sign_in(page, "admin", "#/map")
    coloured = page.locator('g.zone[data-intensity]:not([data-intensity=""])')
    expect(coloured).to_have_count(11)
    expect(page.locator("#zone-table tbody tr")).to_have_count(11)
    fill = coloured.first.locator(".zone-shape").evaluate("e => e.style.fill")
    assert fill.startswith("rgb(")  # coloured by its intensity
    expect(page.locator("g.zone .price").first).to_contain_text("/MWh")

    page.click("#nav a[data-page=fleet]")
    nodes = live.get("admin", "/api/v1/nodes").json()
    expect(page.locator("#fleet-table tbody tr")).to_have_count(len(nodes))
    assert len(nodes) == 20
    expect(page.locator("#fleet-table tbody tr").first).to_contain_text("healthy")


@pytest.mark.parametrize("name", list(SEEN))
def test_each_role_has_its_pages_and_is_refused_the_others(page: Page, live: Live, name: str):
    live.sign_in(page, name)
    expect(page.locator("#who-role")).to_have_text(live.tokens[name]["role"])
    expect(page.locator("#nav a")).to_have_text(SEEN[name])
    for title in set(ALL_PAGES) - set(SEEN[name]):
        page.evaluate("(h) => { location.hash = h; }", HASH[title])
        expect(page.locator("[data-refused]")).to_contain_text(f"The {name} role does not see this page")
    page.evaluate("(h) => { location.hash = h; }", "#/jobs")
    expect(page.locator("#jobs-table")).to_be_visible()
    # submitting is for developers (and the admin)
    expect(page.locator("#submit-form")).to_have_count(1 if name in ("admin", "developer") else 0)


@pytest.mark.parametrize("name", ["datacenter", "gamer"])
def test_a_provider_sees_its_own_nodes_and_no_others(page: Page, live: Live, name: str):
    provider = live.tokens[name]["subject"]
    own = [n["node_id"] for n in live.get("admin", "/api/v1/nodes").json() if n["provider"] == provider]
    assert own, f"the demo fleet has nodes of {provider}"
    live.sign_in(page, name, "#/fleet")
    rows = page.locator("#fleet-table tbody tr")
    expect(rows).to_have_count(len(own))
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.node)")) == sorted(own)


def test_a_developer_sees_its_own_jobs_and_not_the_other_developers(page: Page, live: Live):
    body = {"workload_type": "inference", "image": "ghcr.io/x/y:1", "vram_mb": 4000, "expected_hours": 0.01}
    mine = live.post("developer", "/api/v1/workloads", {**body, "name": "ada-job"}).json()["workload_id"]
    theirs = live.post("developer-2", "/api/v1/workloads", {**body, "name": "grace-job"}).json()["workload_id"]

    live.sign_in(page, "developer", "#/jobs")
    expect(page.locator(f'#jobs-table tr[data-workload="{mine}"]')).to_have_count(1, timeout=30_000)
    submitters = page.locator("#jobs-table tbody tr").evaluate_all("rs => rs.map(r => r.dataset.submitter)")
    assert set(submitters) == {"ada"}
    expect(page.locator(f'#jobs-table tr[data-workload="{theirs}"]')).to_have_count(0)

    # grace's job exists (she sees it), but to ada it does not
    live.sign_in(page, "developer-2", f"#/job/{theirs}")
    expect(page.locator("#job-head h1")).to_contain_text("grace-job", timeout=30_000)
    live.sign_in(page, "developer", f"#/job/{theirs}")
    expect(page.locator("[data-not-found]")).to_be_visible()


@pytest.mark.parametrize("name", ["datacenter", "recycler", "gamer"])
def test_a_provider_sees_its_own_earnings_and_payouts_only(page: Page, live: Live, name: str):
    provider = live.tokens[name]["subject"]
    own = {n["node_id"] for n in live.get("admin", "/api/v1/nodes").json() if n["provider"] == provider}
    billed = live.get(name, "/api/v1/billing?limit=1000").json()["records"]
    assert {r["node_id"] for r in billed} <= own  # the API's scoping, which the page shows
    live.sign_in(page, name, "#/providers")
    expect(page.locator("#providers-summary")).to_contain_text("with billed work")
    rows = page.locator("#earnings-table tbody tr[data-provider]")
    if billed:  # bills only ever accrue, so the page, read after the API, has them too
        expect(rows).to_have_count(1)
    assert set(rows.evaluate_all("rs => rs.map(r => r.dataset.provider)")) <= {provider}
    payout_nodes = page.locator("#payouts-table tbody tr[data-payout] td:nth-child(2)").all_inner_texts()
    assert set(payout_nodes) <= own
