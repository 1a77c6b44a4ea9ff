// The zone map: each zone's real shape coloured by its windowed carbon intensity (the 5-minute tumbling
// window's mean), with its price and whether it is in surplus; a table of every zone beside it; and one zone's
// day-ahead forecast beside its actuals (GET /api/v1/zones/{zone}).

import { geoCentroid, geoConicConformal, geoPath } from "d3-geo";
import uPlot from "uplot";
import { getJson } from "../api.js";
import { INTENSITY_LEGEND, ago, dateTime, esc, html, intensityColour, num, raw } from "../format.js";
import { LABEL_OFFSETS, loadAtlases, mainPolygon, zoneFeature, ZONE_SHAPES } from "../geometry.js";

const WIDTH = 560;
const FORECAST_EVERY_MS = 15000; // forecasts come every few hours and actuals are hourly: no need to redraw each poll
const HEIGHT = 440;

// the two panels: what each shows (a box of lon/lat corners the projection fits) and its projection
const PANELS = [
  {
    id: "europe",
    title: "Europe",
    atlas: "world",
    box: [[-10.5, 36], [18.5, 58.7]],
    projection: () => geoConicConformal().rotate([-5, 0]).parallels([38, 56]),
  },
  {
    id: "us",
    title: "United States",
    atlas: "us",
    box: [[-124.5, 25], [-67, 49.4]],
    projection: () => geoConicConformal().rotate([96, 0]).parallels([29.5, 45.5]),
  },
];

function boxOutline([[w, s], [e, n]]) {
  // corners and mid-edges: enough for a conic projection to fit the whole box
  const points = [];
  for (let i = 0; i <= 8; i++) {
    const lon = w + ((e - w) * i) / 8;
    points.push([lon, s], [lon, n]);
  }
  for (let i = 0; i <= 8; i++) {
    const lat = s + ((n - s) * i) / 8;
    points.push([w, lat], [e, lat]);
  }
  return { type: "MultiPoint", coordinates: points };
}

function drawPanel(panel, atlases) {
  const projection = panel.projection().fitExtent([[4, 4], [WIDTH - 4, HEIGHT - 4]], boxOutline(panel.box));
  projection.clipExtent([[0, 0], [WIDTH, HEIGHT]]);
  const path = geoPath(projection);
  const background = atlases[panel.atlas]
    .map((f) => `<path class="land" d="${path(f) ?? ""}"></path>`)
    .join("");
  const context = panel.atlas === "us" ? atlases.world.filter((f) => f.id === "124" || f.id === "484") : [];
  const contextPaths = context.map((f) => `<path class="land" d="${path(f) ?? ""}"></path>`).join("");
  const zones = Object.entries(ZONE_SHAPES)
    .filter(([, [atlas]]) => atlas === panel.atlas)
    .map(([zone]) => {
      const f = zoneFeature(atlases, zone);
      if (!f) return "";
      const [cx, cy] = projection(geoCentroid(mainPolygon(f)));
      const [dx, dy] = LABEL_OFFSETS[zone] ?? [0, 0];
      const [x, y] = [cx + dx, cy + dy];
      const leader = dx || dy ? `<line class="leader" x1="${cx.toFixed(1)}" y1="${cy.toFixed(1)}" x2="${x.toFixed(1)}" y2="${(y + 10).toFixed(1)}"></line>` : "";
      return `<g class="zone" data-zone="${esc(zone)}">
        <path class="zone-shape" d="${path(f) ?? ""}"><title></title></path>
        <path class="surplus-hatch" d="${path(f) ?? ""}"></path>${leader}
        <g class="zone-label" transform="translate(${x.toFixed(1)},${y.toFixed(1)})">
          <text class="code" y="-6">${esc(zone.replace(/^US-(\w+)-.*/, "US-$1"))}</text>
          <text class="value" y="8"></text><text class="price" y="21"></text>
        </g></g>`;
    })
    .join("");
  return `<figure class="map-panel"><figcaption>${esc(panel.title)}</figcaption>
    <svg viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="${esc(panel.title)} zones">
      <rect class="sea" width="${WIDTH}" height="${HEIGHT}"></rect>${contextPaths}${background}${zones}
    </svg></figure>`;
}

function legend() {
  const stops = INTENSITY_LEGEND.map((v, i) => `<stop offset="${(i / (INTENSITY_LEGEND.length - 1)) * 100}%" stop-color="${intensityColour(v)}"/>`).join("");
  const ticks = INTENSITY_LEGEND.map((v, i) => `<text x="${(i / (INTENSITY_LEGEND.length - 1)) * 300}" y="30">${v}</text>`).join("");
  return `<div class="legend"><svg viewBox="-12 0 330 36" width="330" height="36">
      <defs><linearGradient id="intensity-scale">${stops}</linearGradient></defs>
      <rect width="300" height="14" fill="url(#intensity-scale)" rx="2"></rect>${ticks}</svg>
    <span>gCO2eq/kWh, mean of the current 5-minute window</span>
    <span class="surplus-key"><svg width="18" height="14"><rect width="18" height="14" class="surplus-swatch"></rect></svg> in surplus</span></div>`;
}

/** One zone's actuals, what the forecast issued before each hour said of it (dashed), and the latest forecast
 * ahead with its uncertainty band (shaded), on one time axis (uPlot wants one x array: the union of the hours). */
function forecastData(detail) {
  const actuals = detail.actuals ?? [];
  const points = detail.forecast?.points ?? [];
  const xs = [...new Set([...actuals.map((a) => a.ts_ms), ...points.map((p) => p.ts_ms)])].sort((a, b) => a - b);
  const actual = new Map(actuals.map((a) => [a.ts_ms, a]));
  const ahead = new Map(points.map((p) => [p.ts_ms, p]));
  return [
    xs.map((x) => x / 1000),
    xs.map((x) => actual.get(x)?.mean_gco2_per_kwh ?? null),
    xs.map((x) => actual.get(x)?.forecast_gco2_per_kwh ?? null),
    xs.map((x) => ahead.get(x)?.mean_gco2_per_kwh ?? null),
    xs.map((x) => ahead.get(x)?.high_gco2_per_kwh ?? null),
    xs.map((x) => ahead.get(x)?.low_gco2_per_kwh ?? null),
  ];
}

function forecastChart(target, detail) {
  const data = forecastData(detail);
  target.innerHTML = "";
  target.dataset.zone = detail.zone;
  target.dataset.actuals = String((detail.actuals ?? []).length);
  target.dataset.forecastPoints = String(detail.forecast?.points.length ?? 0);
  target.dataset.forecastThen = String(data[2].filter((v) => v !== null).length);
  if (!data[0].length) {
    target.innerHTML = html`<p class="muted">No readings or forecast for ${detail.zone} yet.</p>`;
    return null;
  }
  const blue = "#2563eb";
  return new uPlot(
    {
      width: Math.max(320, target.clientWidth - 8),
      height: 280,
      scales: { x: { time: true } },
      series: [
        {},
        { label: "actual (hourly mean)", stroke: "#111827", width: 2 },
        { label: "forecast, issued before the hour", stroke: blue, width: 1.5, dash: [5, 4] },
        { label: "latest forecast", stroke: blue, width: 2 },
        { label: "band high", stroke: "rgba(37,99,235,0.35)", width: 1 },
        { label: "band low", stroke: "rgba(37,99,235,0.35)", width: 1 },
      ],
      bands: [{ series: [4, 5], fill: "rgba(37,99,235,0.15)" }],
      axes: [{}, { label: "gCO2eq/kWh", size: 60 }],
      legend: { live: false },
    },
    data,
    target,
  );
}

function forecastCaption(detail) {
  const f = detail.forecast;
  const said = (detail.actuals ?? []).filter((a) => a.forecast_gco2_per_kwh !== null);
  const mae = said.length ? said.reduce((s, a) => s + Math.abs(a.forecast_gco2_per_kwh - a.mean_gco2_per_kwh), 0) / said.length : null;
  const what = f
    ? html`Latest forecast: <strong>${f.model}</strong> (${f.source}), issued ${dateTime(f.issued_ms)}, ${f.points.length} hourly points${f.band_coverage ? `, ${Math.round(f.band_coverage * 100)} % band` : ", no band"}.`
    : "No forecast for this zone yet (the forecaster needs two days of its readings).";
  const error = mae === null ? "" : html` Over the last ${said.length} hours it was off by ${num(mae, 1)} gCO2eq/kWh on average.`;
  return `${what}${error} <span class="muted">Black: actual hourly means; dashed: what the forecast issued before each hour said; blue: the latest forecast and its band.</span>`;
}

export default {
  id: "map",
  title: "Zones",
  mount(el) {
    el.innerHTML = `<section class="card"><div class="card-head"><h1>Zones</h1><p class="summary" id="zone-summary"></p></div>
      <div class="maps" id="maps"><p class="muted">Loading the map…</p></div>${legend()}</section>
      <section class="card"><h2>Every zone</h2><table class="data" id="zone-table">
      <thead><tr><th>Zone</th><th>Name</th><th class="num">gCO2/kWh (5 min)</th><th class="num">gCO2/kWh (1 h)</th>
      <th class="num">Renewable %</th><th class="num">Price (5 min)</th><th>Surplus</th><th class="num">Readings</th><th>Latest</th></tr></thead>
      <tbody></tbody></table></section>
      <section class="card" id="forecast-card"><div class="card-head"><h2>Forecast beside the actuals</h2>
      <label>Zone <select id="forecast-zone"></select></label></div>
      <div class="chart" id="forecast-plot"><p class="muted">Loading…</p></div><p class="summary" id="forecast-caption"></p></section>`;
    const maps = el.querySelector("#maps");
    const select = el.querySelector("#forecast-zone");
    let plot = null;
    let shownAt = 0;
    async function showForecast() {
      const zone = select.value;
      if (!zone) return;
      const detail = await getJson(`/api/v1/zones/${encodeURIComponent(zone)}?hours=48`);
      if (select.value !== zone) return; // another zone was chosen meanwhile
      plot?.destroy();
      plot = forecastChart(el.querySelector("#forecast-plot"), detail);
      el.querySelector("#forecast-caption").innerHTML = forecastCaption(detail);
    }
    select.addEventListener("change", () => {
      showForecast().catch((error) => {
        el.querySelector("#forecast-plot").innerHTML = html`<p class="error">${error.message}</p>`;
      });
    });
    let drawn = false;
    const ready = loadAtlases()
      .then((atlases) => {
        maps.innerHTML = PANELS.map((p) => drawPanel(p, atlases)).join("");
        drawn = true;
      })
      .catch((error) => {
        maps.innerHTML = html`<p class="error">The map geometry could not load: ${error.message}</p>`;
      });

    function paint(zones) {
      for (const z of zones) {
        const g = maps.querySelector(`g.zone[data-zone="${CSS.escape(z.zone)}"]`);
        if (!g) continue;
        const w = z.window_5m;
        const carbon = w?.carbon_mean ?? null;
        g.dataset.intensity = carbon === null ? "" : carbon.toFixed(1);
        g.classList.toggle("in-surplus", z.surplus);
        g.querySelector(".zone-shape").style.fill = intensityColour(carbon);
        g.querySelector("title").textContent = `${z.name} (${z.zone}): ${num(carbon, 0)} gCO2eq/kWh, ${num(w?.renewable_mean, 0)} % renewable, ${num(w?.price_mean, 1)} €/MWh${z.surplus ? ` — surplus: ${z.surplus_reason}` : ""}`;
        g.querySelector(".value").textContent = `${num(carbon, 0)} g${z.surplus ? " ⚡" : ""}`;
        g.querySelector(".price").textContent = w ? `€${num(w.price_mean, 0)}/MWh` : "";
      }
    }

    return {
      async refresh() {
        const zones = await getJson("/api/v1/zones");
        await ready;
        if (drawn) paint(zones);
        const surplus = zones.filter((z) => z.surplus).map((z) => z.zone);
        el.querySelector("#zone-summary").innerHTML = html`${zones.length} zones · ${surplus.length ? raw(html`in surplus: <strong>${surplus.join(", ")}</strong>`) : "none in surplus"}`;
        el.querySelector("#zone-table tbody").innerHTML = zones
          .map((z) => {
            const w = z.window_5m;
            const unit = z.latest?.price_unit === "EUR/MWh" ? "€/MWh" : z.latest?.price_unit ?? "";
            return html`<tr data-zone="${z.zone}" class="${z.surplus ? "surplus-row" : ""}">
              <td><span class="swatch" style="background:${intensityColour(w?.carbon_mean)}"></span>${z.zone}</td><td>${z.name}</td>
              <td class="num">${num(w?.carbon_mean, 0)}</td><td class="num">${num(z.window_1h?.carbon_mean, 0)}</td>
              <td class="num">${num(w?.renewable_mean, 0)}</td><td class="num">${num(w?.price_mean, 1)} ${unit}</td>
              <td>${z.surplus ? raw(html`<span class="pill green">surplus</span> ${z.surplus_reason ?? ""}`) : "—"}</td>
              <td class="num">${w?.count ?? 0}${w?.late_count ? ` (${w.late_count} late)` : ""}</td>
              <td>${z.latest ? `${z.latest.source}, ${ago(z.latest.ts_ms)}` : "—"}</td></tr>`;
          })
          .join("");
        const codes = zones.map((z) => z.zone);
        if (select.options.length !== codes.length || [...select.options].some((o, i) => o.value !== codes[i])) {
          const keep = select.value || (codes.includes("FR") ? "FR" : codes[0] ?? "");
          select.innerHTML = codes.map((c) => html`<option value="${c}">${c}</option>`).join("");
          select.value = keep;
        }
        if (Date.now() - shownAt > FORECAST_EVERY_MS || plot === null) {
          shownAt = Date.now();
          await showForecast();
        }
      },
      unmount() {
        plot?.destroy();
      },
    };
  },
};
