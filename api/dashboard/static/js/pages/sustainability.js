// Sustainability: carbon totals against the stated baseline, by zone and by provider type, and charts over time
// (each zone's windowed intensity, the energy billed, and the running totals while this page is open).

import uPlot from "uplot";
import { getJson } from "../api.js";
import { html, sig } from "../format.js";

const HISTORY_EVERY_MS = 15000; // window history moves every few minutes; no need to fetch it every poll
const ZONE_COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666", "#1f78b4", "#b2df8a", "#fb9a99"];

function bars(rows) {
  const max = Math.max(1e-12, ...rows.flatMap((r) => [r.gco2_baseline, r.gco2_actual]));
  return (
    rows
      .map(
        (r) => html`<div class="hbar" data-key="${r.key ?? "unknown"}"><span class="hbar-key">${r.key ?? "unknown"}</span>
        <span class="hbar-track"><span class="hbar-baseline" style="width:${((100 * r.gco2_baseline) / max).toFixed(1)}%"></span>
        <span class="hbar-actual" style="width:${((100 * r.gco2_actual) / max).toFixed(1)}%"></span></span>
        <span class="hbar-value">${sig(r.gco2_actual, 3)} of ${sig(r.gco2_baseline, 3)} g · saved ${sig(r.gco2_saved, 3)} g</span></div>`,
      )
      .join("") || `<p class="muted">No receipts yet.</p>`
  );
}

function chart(el, title, series, data, yLabel) {
  const width = Math.max(320, el.clientWidth - 8);
  return new uPlot(
    {
      title,
      width,
      height: 260,
      scales: { x: { time: true } },
      series: [{}, ...series],
      axes: [{}, { label: yLabel, size: 60 }],
      legend: { live: false },
    },
    data,
    el,
  );
}

/** Align per-zone series on the union of their window starts (uPlot wants one x array). */
function alignZones(histories) {
  const xs = [...new Set(histories.flatMap((h) => h.windows.map((w) => w.window_start_ms)))].sort((a, b) => a - b);
  const ys = histories.map((h) => {
    const at = new Map(h.windows.map((w) => [w.window_start_ms, w.carbon_mean]));
    return xs.map((x) => at.get(x) ?? null);
  });
  return [xs.map((x) => x / 1000), ...ys];
}

export default {
  id: "sustainability",
  title: "Sustainability",
  mount(el) {
    el.innerHTML = `<section class="card"><div class="card-head"><h1>Sustainability</h1><p class="summary" id="baseline"></p></div>
      <div class="stats" id="sust-stats"></div></section>
      <section class="card"><h2>Zone intensity over time</h2><div class="chart" id="chart-zones" data-chart="zones"></div>
      <p class="muted">Mean carbon intensity of each zone's 5-minute windows (gCO2eq/kWh), from the pipeline's windowed tables.</p></section>
      <div class="two-col"><section class="card"><h2>Energy billed over time</h2><div class="chart" id="chart-energy" data-chart="energy"></div></section>
      <section class="card"><h2>While this page is open</h2><div class="chart" id="chart-live" data-chart="live"></div>
      <p class="muted">gCO2eq actual and baseline, sampled at each refresh.</p></section></div>
      <div class="two-col"><section class="card"><h2>By zone</h2><div id="by-zone"></div></section>
      <section class="card"><h2>By provider type</h2><div id="by-type"></div></section></div>
      <p class="muted legend-line"><span class="hbar-actual key"></span> actual <span class="hbar-baseline key"></span> baseline</p>`;
    const charts = {};
    const live = [[], [], []];
    let historyAt = 0;

    function draw(key, make, data) {
      if (charts[key]) charts[key].setData(data);
      else charts[key] = make(data);
    }

    return {
      async refresh() {
        const s = await getJson("/api/v1/sustainability");
        const t = s.totals;
        el.querySelector("#baseline").textContent = `baseline: ${s.baseline}`;
        el.querySelector("#sust-stats").innerHTML = [
          ["Receipts", t.receipts],
          ["kWh", sig(t.kwh, 4)],
          ["gCO2eq actual", sig(t.gco2_actual, 4)],
          ["gCO2eq baseline", sig(t.gco2_baseline, 4)],
          ["gCO2eq saved", sig(t.gco2_saved, 4)],
          ["market-based", t.gco2_market_based === null ? "—" : sig(t.gco2_market_based, 4)],
        ]
          .map(([k, v]) => html`<div class="stat"><span>${k}</span><strong>${v}</strong></div>`)
          .join("");
        el.querySelector("#by-zone").innerHTML = bars(s.by_zone);
        el.querySelector("#by-type").innerHTML = bars(s.by_provider_type);

        live[0].push(Date.now() / 1000);
        live[1].push(t.gco2_actual);
        live[2].push(t.gco2_baseline);
        draw("live", (d) => chart(el.querySelector("#chart-live"), "", [
          { label: "actual gCO2eq", stroke: "#1a9850", width: 2 },
          { label: "baseline gCO2eq", stroke: "#d73027", dash: [6, 4] },
        ], d, "gCO2eq"), live);

        if (Date.now() - historyAt < HISTORY_EVERY_MS) return;
        historyAt = Date.now();
        const billing = await getJson("/api/v1/billing?limit=1000");
        const records = [...billing.records].sort((a, b) => a.ts_ms - b.ts_ms);
        let kwh = 0;
        const energy = [records.map((r) => r.ts_ms / 1000), records.map((r) => (kwh += r.kwh ?? 0))];
        draw("energy", (d) => chart(el.querySelector("#chart-energy"), "", [{ label: "cumulative kWh", stroke: "#2c7fb8", width: 2, fill: "rgba(44,127,184,0.12)" }], d, "kWh"), energy);

        const zones = await getJson("/api/v1/zones");
        const histories = await Promise.all(zones.map((z) => getJson(`/api/v1/zones/${encodeURIComponent(z.zone)}/history?kind=tumbling&limit=288`)));
        const data = alignZones(histories);
        if (charts.zones && charts.zones.series.length !== histories.length + 1) {
          charts.zones.destroy(); // a zone appeared: one series more
          delete charts.zones;
        }
        if (!charts.zones) {
          charts.zones = chart(el.querySelector("#chart-zones"), "", histories.map((h, i) => ({ label: h.zone, stroke: ZONE_COLOURS[i % ZONE_COLOURS.length], width: 2, points: { show: true, size: 5 } })), data, "gCO2eq/kWh");
        } else charts.zones.setData(data);
        el.querySelector("#chart-zones").dataset.zones = String(histories.length);
        el.querySelector("#chart-zones").dataset.windows = String(data[0].length);
      },
      unmount() {
        for (const c of Object.values(charts)) c.destroy();
      },
    };
  },
};
