"""Routing: tiers, hard rules, min-max normalised composite, determinism; properties over random fleets."""

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from toogreen.domain.fleet import Fleet
from toogreen.domain.scoring import node_carbon, route, tier_of
from toogreen.domain.views import Candidate, NodeView, WorkloadSpec, ZoneView
from toogreen.settings import MigrationSettings, PricingSettings, ScoringSettings

NOW = 1_800_000_000_000
SCORING, PRICING = ScoringSettings(), PricingSettings()


def zone(code="FR", carbon=60.0, renewable=75.0, surplus=False, last=NOW) -> ZoneView:
    return ZoneView(code, carbon, renewable, 50.0, surplus, 0.5 if surplus else 0.0, NOW - 60_000, last)


def node(node_id="n1", node_type="datacenter", zone_code="FR", gpu="H100", free=80_000, util=10.0, pue=1.2, seen=NOW):
    return NodeView(node_id, node_type, gpu, zone_code, pue, 81_920, free, util, "healthy", seen)


WORK = WorkloadSpec("w1", vram_mb=16_000, expected_hours=2.0)


@pytest.mark.parametrize(
    ("node_type", "z", "tier"),
    [
        ("recycler", zone(renewable=10), 1),
        ("datacenter", zone(renewable=75), 2),
        ("datacenter", zone(renewable=20, surplus=True), 2),
        ("datacenter", zone(renewable=20), 4),
        ("gamer", zone(renewable=50), 3),
        ("gamer", zone(renewable=49.9, surplus=True), 4),
    ],
)
def test_tiers(node_type, z, tier):
    assert tier_of(node(node_type=node_type), z, SCORING) == tier


def test_recycler_uses_its_declared_source():
    rec = replace(node(node_type="recycler", pue=1.05), declared_carbon_gco2_per_kwh=20.0)
    assert node_carbon(rec, zone(carbon=400)) == pytest.approx(21.0)
    assert node_carbon(node(pue=1.5), zone(carbon=100)) == pytest.approx(150.0)


def test_strict_tier_priority_beats_score():
    zones = {"FR": zone("FR", carbon=30), "DE": zone("DE", carbon=500, renewable=10)}
    nodes = [node("dc-clean", zone_code="FR"), node("rc-dirty", node_type="recycler", zone_code="DE")]
    d = route(WORK, nodes, zones, NOW, SCORING, PRICING)
    assert d.chosen.node_id == "rc-dirty" and d.chosen.tier == 1


def test_work_that_is_not_green_only_spares_the_compliant_nodes_for_work_that_is():
    """A recycler (tier 1) in a dirty zone beside a data centre in a clean zone that is not compliant (low renewable
    share): green-only work must take the recycler; other work, sparing compliant nodes, takes the data centre and
    leaves the recycler free (with strict tiers it takes the recycler). Never for a dirtier node: a
    recycler in the clean zone beside the dirty data centre is taken. Among compliant nodes the tiers still hold."""
    spare = ScoringSettings(spare_compliant_nodes=True)
    zones = {"FR": zone("FR", carbon=60, renewable=20), "DE": zone("DE", carbon=300, renewable=20)}
    nodes = [node("dc-fr", zone_code="FR"), node("rc-de", node_type="recycler", zone_code="DE")]
    ordinary = route(WORK, nodes, zones, NOW, spare, PRICING)
    assert ordinary.chosen is not None and ordinary.chosen.node_id == "dc-fr" and ordinary.chosen.tier == 4
    assert ordinary.reason.startswith("compliant nodes spared for green-only work")
    green = route(replace(WORK, green_only=True), nodes, zones, NOW, spare, PRICING)
    assert green.chosen is not None and green.chosen.node_id == "rc-de"
    dirtier = [node("dc-de", zone_code="DE"), node("rc-fr", node_type="recycler", zone_code="FR")]
    assert route(WORK, dirtier, zones, NOW, spare, PRICING).chosen.node_id == "rc-fr"  # type: ignore[union-attr]
    strict = ScoringSettings(spare_compliant_nodes=False)
    assert route(WORK, nodes, zones, NOW, strict, PRICING).chosen.node_id == "rc-de"  # type: ignore[union-attr]
    both_compliant = {"FR": zone("FR", carbon=30), "DE": zone("DE", carbon=500, renewable=10)}
    assert route(WORK, nodes, both_compliant, NOW, spare, PRICING).chosen.node_id == "rc-de"  # type: ignore[union-attr]


def test_composite_is_min_max_normalised_inside_the_tier():
    zones = {"FR": zone("FR", carbon=50), "PT": zone("PT", carbon=150)}
    nodes = [node("a", zone_code="FR", util=50), node("b", zone_code="PT", util=10)]
    d = route(WORK, nodes, zones, NOW, SCORING, PRICING)
    by = {c.node_id: c for c in d.alternatives}
    assert by["a"].carbon_part == 0.0 and by["b"].carbon_part == 1.0
    assert by["a"].utilisation_part == 1.0 and by["b"].utilisation_part == 0.0
    assert by["a"].score == pytest.approx(0.6 * 0 + 0.3 * by["a"].price_part + 0.1 * 1)
    assert d.chosen.node_id == "a"


def test_ties_break_on_node_id():
    zones = {"FR": zone()}
    d = route(WORK, [node("n2"), node("n1"), node("n3")], zones, NOW, SCORING, PRICING)
    assert d.chosen.node_id == "n1"


@pytest.mark.parametrize(
    ("work", "n", "z", "reason"),
    [
        (WORK, node(free=8_000), zone(), "VRAM"),
        (WORK, node(seen=NOW - 120_000), zone(), "stale"),
        (WORK, node(), zone(last=NOW - 3_600_000), "stale"),
        (replace(WORK, green_only=True), node(), zone(renewable=10), "green-only"),
        (replace(WORK, max_carbon_gco2_kwh=50), node(pue=1.2), zone(carbon=60), "above max"),
        (replace(WORK, budget_eur=1.0), node(), zone(), "budget"),
        (replace(WORK, deadline_ms=NOW + 3_600_000), node(), zone(), "deadline"),
    ],
)
def test_hard_rules_exclude_with_a_reason(work, n, z, reason):
    d = route(work, [n], {"FR": z}, NOW, SCORING, PRICING)
    assert d.chosen is None
    assert reason in d.alternatives[0].excluded_reason
    assert reason in d.reason


def test_node_in_zone_without_data_is_not_routable():
    d = route(WORK, [node(zone_code="IT")], {"FR": zone()}, NOW, SCORING, PRICING)
    assert d.chosen is None and "no grid data" in d.alternatives[0].excluded_reason


zones_st = st.dictionaries(
    st.sampled_from(["FR", "DE", "ES", "GB"]),
    st.builds(
        lambda c, r, s: zone("X", c, r, s),
        st.floats(5, 900),
        st.one_of(st.none(), st.floats(0, 100)),
        st.booleans(),
    ),
    min_size=1,
).map(lambda d: {k: replace(v, zone=k) for k, v in d.items()})

nodes_st = st.lists(
    st.builds(
        node,
        node_id=st.text("abcdef", min_size=1, max_size=4),
        node_type=st.sampled_from(["datacenter", "recycler", "gamer"]),
        zone_code=st.sampled_from(["FR", "DE", "ES", "GB", "IT"]),
        gpu=st.sampled_from(["H100", "A100", "RTX 4090"]),
        free=st.integers(0, 81_920),
        util=st.floats(0, 100),
        pue=st.floats(1.0, 2.0),
        seen=st.integers(NOW - 120_000, NOW),
    ),
    max_size=12,
    unique_by=lambda n: n.node_id,
)
work_st = st.builds(
    WorkloadSpec,
    workload_id=st.just("w"),
    vram_mb=st.integers(1, 81_920),
    expected_hours=st.floats(0.1, 20),
    green_only=st.booleans(),
    max_carbon_gco2_kwh=st.one_of(st.none(), st.floats(10, 1000)),
    budget_eur=st.one_of(st.none(), st.floats(0, 200)),
    deadline_ms=st.one_of(st.none(), st.integers(NOW, NOW + 48 * 3_600_000)),
)


@hsettings(max_examples=300, deadline=None)
@given(work_st, nodes_st, zones_st)
def test_no_decision_breaks_a_hard_rule(work, nodes, zones):
    d = route(work, nodes, zones, NOW, SCORING, PRICING)
    assert len(d.alternatives) == len(nodes)
    by_id = {n.node_id: n for n in nodes}
    for c in d.alternatives:  # the array judgement agrees with the one-node rules the router and evaluation use
        z = zones.get(c.zone)
        assert c.tier == (tier_of(by_id[c.node_id], z, SCORING) if z else None)
        assert c.carbon_gco2_per_kwh == (pytest.approx(node_carbon(by_id[c.node_id], z)) if z else None)
    if d.chosen is None:
        assert not any(c.eligible for c in d.alternatives)
        return
    chosen = d.chosen
    n = next(x for x in nodes if x.node_id == chosen.node_id)
    assert n.vram_free_mb >= work.vram_mb
    assert NOW - n.last_seen_ms <= SCORING.node_stale_after_s * 1000
    if work.green_only:
        assert chosen.tier in (1, 2, 3)
    if work.max_carbon_gco2_kwh is not None:
        assert chosen.carbon_gco2_per_kwh <= work.max_carbon_gco2_kwh
    if work.budget_eur is not None:
        assert chosen.price_eur_per_gpu_hour * work.expected_hours <= work.budget_eur
    if work.deadline_ms is not None:
        assert NOW + work.expected_hours * 3_600_000 <= work.deadline_ms
    eligible = [c for c in d.alternatives if c.eligible]

    assert ranked_key(chosen, eligible, work) == min(ranked_key(c, eligible, work) for c in eligible)
    assert all(0.0 <= c.score <= 1.0 + 1e-9 for c in eligible)


@hsettings(max_examples=100, deadline=None)
@given(work_st, nodes_st, zones_st)
def test_same_inputs_same_decision(work, nodes, zones):
    first = route(work, nodes, zones, NOW, SCORING, PRICING)
    again = route(work, list(reversed(nodes)), dict(reversed(list(zones.items()))), NOW, SCORING, PRICING)
    assert first == again


MIGRATION = MigrationSettings()
# busy, split or capable nodes, so that the MIG fallback is exercised too
mig_nodes_st = nodes_st.flatmap(
    lambda nodes: st.tuples(*[
        st.builds(
            lambda n, tenants, used, capable: replace(n, whole_tenants=tenants, mig_used=used, mig_capable=capable),
            st.just(n),
            st.integers(0, 1),
            st.sampled_from([(), (("1g.10gb", 2),), (("3g.40gb", 1),)]),
            st.booleans(),
        )
        for n in nodes
    ]).map(list)
)  # fmt: skip


def ranked_key(c: Candidate, eligible: list[Candidate], work: WorkloadSpec) -> tuple[int, float, str]:
    """How the decision ranks an eligible candidate: tier, score inside it, node id; for work that is not green-only
    (sparing compliant nodes), a non-compliant node no dirtier than the cleanest compliant one before every tier."""
    tier = c.tier or 0
    compliant = [x.carbon_gco2_per_kwh or 0.0 for x in eligible if x.tier in (1, 2, 3)]
    spare = SCORING.spare_compliant_nodes and not work.green_only
    if spare and tier == 4 and compliant and (c.carbon_gco2_per_kwh or 0.0) <= min(compliant):
        tier = 0
    return tier, c.score or 0.0, c.node_id


@hsettings(max_examples=200, deadline=None)
@given(work_st, mig_nodes_st, zones_st, st.integers(1, 4))
def test_a_bounded_report_is_the_head_of_the_full_one(work, nodes, zones, keep):
    """With ``keep``, a decision reports the best ``keep`` eligible nodes and the first ``keep`` excluded ones of
    what the full report holds, and counts every node: eligible or excluded for a named reason."""
    full = route(work, nodes, zones, NOW, SCORING, PRICING, migration=MIGRATION)
    short = route(work, nodes, zones, NOW, SCORING, PRICING, migration=MIGRATION, keep=keep)
    assert (short.chosen == full.chosen and short.reason == full.reason) or short.chosen is None
    eligible = [c for c in full.alternatives if c.eligible]
    ranked = sorted(eligible, key=lambda c: ranked_key(c, eligible, work))
    excluded = [c for c in full.alternatives if not c.eligible]  # the full report is in node-id order
    assert short.alternatives == tuple(ranked[:keep] + excluded[:keep])
    assert short.eligible == len(ranked) and short.considered == len(nodes)
    assert sum(n for _reason, n in short.exclusions) == len(excluded)
    if short.chosen is not None:
        assert short.chosen == ranked[0]


@hsettings(max_examples=100, deadline=None)
@given(work_st, mig_nodes_st, zones_st, st.data())
def test_a_fleet_kept_up_to_date_decides_like_a_fresh_one(work, nodes, zones, data):
    """The worker's fleet changes node by node (upserts, removals); it must decide as one built from scratch."""
    fleet = Fleet()
    for n in nodes:
        fleet.upsert(replace(n, util_pct=0.0))
    gone = data.draw(st.sets(st.sampled_from([n.node_id for n in nodes]))) if nodes else set()
    for node_id in gone:
        fleet.remove(node_id)
    for n in nodes:
        if n.node_id not in gone:
            fleet.upsert(n)
    remaining = [n for n in nodes if n.node_id not in gone]
    assert sorted(fleet.rows) == sorted(n.node_id for n in remaining)
    kept = route(work, fleet, zones, NOW, SCORING, PRICING, migration=MIGRATION)
    fresh = route(work, remaining, zones, NOW, SCORING, PRICING, migration=MIGRATION)
    assert kept == fresh


@hsettings(max_examples=100, deadline=None)
@given(work_st, mig_nodes_st, zones_st)
def test_narrowing_to_a_gpu_model_and_leaving_a_node_out_is_routing_among_the_others(work, nodes, zones):
    if not nodes:
        return
    here = nodes[0]
    narrowed = route(work, nodes, zones, NOW, SCORING, PRICING, migration=MIGRATION, gpu_model=here.gpu_model,
                     exclude_node_id=here.node_id)  # fmt: skip
    others = [n for n in nodes if n.gpu_model == here.gpu_model and n.node_id != here.node_id]
    assert narrowed == route(work, others, zones, NOW, SCORING, PRICING, migration=MIGRATION)


def test_a_low_carbon_zone_counts_as_green_only_where_the_setting_says_so():
    nuclear = zone("FR", carbon=45.0, renewable=25.0)
    windy = zone("GB", carbon=180.0, renewable=55.0)
    spec, low = ScoringSettings(), ScoringSettings(green_max_carbon_gco2_per_kwh=100.0)
    assert tier_of(node(zone_code="FR"), nuclear, spec) == 4 and tier_of(node(zone_code="GB"), windy, spec) == 2
    assert tier_of(node(zone_code="FR"), nuclear, low) == 2 and tier_of(node(zone_code="GB"), windy, low) == 2
    assert tier_of(node(node_type="gamer", zone_code="FR"), nuclear, low) == 3
    assert tier_of(node(zone_code="FR"), replace(nuclear, carbon_gco2_per_kwh=150.0), low) == 4
    work = WorkloadSpec("w", 1000, 1.0, green_only=True)
    nodes = [node("fr", zone_code="FR"), node("gb", zone_code="GB")]
    zones = {"FR": nuclear, "GB": windy}
    pricing = PricingSettings()
    assert route(work, nodes, zones, NOW, spec, pricing).chosen.node_id == "gb"
    assert route(work, nodes, zones, NOW, low, pricing).chosen.node_id == "fr"  # same tier: the cleaner one
