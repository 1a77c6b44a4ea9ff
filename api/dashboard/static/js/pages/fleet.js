// The fleet: every node the caller may see (all of them for the admin, a provider's own), with its tier, its
// score for a reference workload, utilisation, power, memory, MIG slices and health, refreshed live.

import { getJson } from "../api.js";
import { ago, html, num, raw } from "../format.js";

const TIER_NAMES = { 1: "T1 recycler", 2: "T2 green DC", 3: "T3 green gamer", 4: "T4 other" };

function bar(pct) {
  const v = Math.max(0, Math.min(100, pct ?? 0));
  return raw(html`<span class="bar"><span style="width:${v.toFixed(0)}%"></span></span> ${num(pct, 0)} %`);
}

function memory(n) {
  const used = n.mem_used_mb ?? 0;
  const total = n.mem_total_mb ?? n.vram_mb ?? 0;
  const reserved = n.vram_reserved_mb ? ` · ${num(n.vram_reserved_mb / 1024, 0)} GiB held` : "";
  return `${num(used / 1024, 1)} / ${num(total / 1024, 0)} GiB${reserved}`;
}

function mig(n) {
  if (!n.mig_capable) return "no MIG";
  return `${n.mig_slices_free ?? 0} slices free`;
}

export default {
  id: "fleet",
  title: "Fleet",
  mount(el) {
    el.innerHTML = `<section class="card"><div class="card-head"><h1>Fleet</h1><p class="summary" id="fleet-summary"></p></div>
      <div class="stats" id="fleet-stats"></div>
      <table class="data" id="fleet-table"><thead><tr><th>Node</th><th>Provider</th><th>GPU</th><th>Zone</th><th>Tier</th>
      <th class="num">Score</th><th>Routable</th><th>Utilisation</th><th class="num">Power</th><th>Memory</th><th>MIG</th>
      <th>Health</th><th class="num">gCO2/kWh</th><th class="num">€/GPU-h</th><th>Seen</th></tr></thead><tbody></tbody></table>
      <p class="muted">Score and tier are those of a 1 GiB, one-hour reference workload now (lower is better; the tier
      ranks first). Carbon is the zone's windowed intensity × the node's PUE.</p></section>`;
    return {
      async refresh() {
        const nodes = await getJson("/api/v1/nodes");
        const routable = nodes.filter((n) => n.routable).length;
        const power = nodes.reduce((s, n) => s + (n.power_w ?? 0), 0);
        const byTier = {};
        for (const n of nodes) if (n.tier) byTier[n.tier] = (byTier[n.tier] ?? 0) + 1;
        el.querySelector("#fleet-summary").textContent = `${nodes.length} node${nodes.length === 1 ? "" : "s"} · ${routable} routable`;
        el.querySelector("#fleet-stats").innerHTML = [
          ["Nodes", nodes.length],
          ["Routable", routable],
          ["Drawing now", `${num(power / 1000, 2)} kW`],
          ...Object.entries(byTier).map(([t, c]) => [TIER_NAMES[t] ?? `T${t}`, c]),
        ]
          .map(([k, v]) => html`<div class="stat"><span>${k}</span><strong>${v}</strong></div>`)
          .join("");
        el.querySelector("#fleet-table tbody").innerHTML = nodes
          .map(
            (n) => html`<tr data-node="${n.node_id}" class="${n.routable ? "" : "not-routable"}">
              <td><code>${n.node_id}</code></td><td>${n.provider ?? "—"} <span class="muted">${n.node_type ?? ""}</span></td>
              <td>${n.gpu_model ?? "—"}</td><td>${n.zone ?? "—"}</td>
              <td>${n.tier ? raw(html`<span class="pill tier-${n.tier}">T${n.tier}</span>`) : "—"}</td>
              <td class="num">${num(n.score, 3)}</td>
              <td>${n.routable ? "yes" : raw(html`<span class="muted">no: ${n.not_routable_because ?? "?"}</span>`)}</td>
              <td>${bar(n.sm_util_pct)}</td><td class="num">${num(n.power_w, 0)} W${n.max_power_w ? ` / ${num(n.max_power_w, 0)}` : ""}</td>
              <td>${memory(n)}</td><td>${mig(n)}</td>
              <td><span class="pill ${n.health === "healthy" ? "green" : "red"}">${n.health ?? "unknown"}</span></td>
              <td class="num">${num(n.carbon_gco2_per_kwh, 0)}</td><td class="num">${num(n.price_eur_per_gpu_hour, 2)}</td>
              <td>${ago(n.last_seen_ms)}</td></tr>`,
          )
          .join("");
      },
    };
  },
};
