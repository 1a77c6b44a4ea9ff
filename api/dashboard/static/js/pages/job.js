// One job: what was asked, its decision timeline (the chosen node, the runners-up, why the others were excluded,
// every move), a live gCO2 and € meter, its events, its bill, and its carbon receipt verified in this browser.

import { ApiError, getJson, getText } from "../api.js";
import { dateTime, esc, eur, html, num, raw, sig, time } from "../format.js";
import { parseReceipt, verifyReceipt } from "../receipt.js";
import { statusPill } from "./jobs.js";

const RUNNERS_UP = 5;
const RUNNING_FROM = new Set(["started", "resumed"]);
const RUNNING_UNTIL = new Set(["checkpointed", "migrating", "completed", "failed", "cancelled"]);

/** The spans the workload ran, [node_id, from_ms, to_ms], from its events (an open span runs until now). */
export function runningSpans(events, now) {
  const spans = [];
  let open = null;
  for (const e of events) {
    if (RUNNING_FROM.has(e.type) && !open) open = [e.node_id, e.ts_ms];
    else if (RUNNING_UNTIL.has(e.type) && open) {
      spans.push([open[0], open[1], e.ts_ms]);
      open = null;
    }
  }
  if (open) spans.push([open[0], open[1], now]);
  return spans;
}

/** Which alternative each node was in the decision that placed the workload on it (price and carbon there). */
function placements(decisions) {
  const out = {};
  for (const d of decisions) {
    const chosen = d.alternatives?.find((a) => a.node_id === d.chosen_node_id);
    if (chosen) out[d.chosen_node_id] = chosen;
  }
  return out;
}

/** The meter: final from the receipt and the bill, or else an estimate from the time run so far. */
function meter(w, nodes, now) {
  const billed = w.billing.reduce((s, b) => s + (b.charge ?? 0), 0);
  if (w.receipt) {
    return { final: true, gco2: Number(w.receipt.gco2_actual), kwh: Number(w.receipt.kwh), eur: w.billing.length ? billed : null, hours: w.billing.reduce((s, b) => s + (b.gpu_hours ?? 0), 0) };
  }
  const placed = placements(w.decisions);
  let hours = 0;
  let eurSoFar = 0;
  let gco2 = 0;
  let kwh = 0;
  let powerKnown = true;
  for (const [node, from, to] of runningSpans(w.events, now)) {
    const h = Math.max(0, to - from) / 3_600_000;
    const at = placed[node];
    hours += h;
    eurSoFar += h * (at?.price_eur_per_gpu_hour ?? 0);
    const powerW = nodes?.[node]?.power_w;
    if (powerW === undefined || powerW === null) powerKnown = false;
    else {
      // carbon_gco2_per_kwh of a decision is already the zone's windowed intensity x the node's PUE
      kwh += (h * powerW) / 1000;
      gco2 += ((h * powerW) / 1000) * (at?.carbon_gco2_per_kwh ?? 0);
    }
  }
  const here = placed[w.node_id];
  return { final: false, hours, eur: eurSoFar, gco2: powerKnown ? gco2 : null, kwh: powerKnown ? kwh : null, intensity: here?.carbon_gco2_per_kwh ?? null, price: here?.price_eur_per_gpu_hour ?? null };
}

function alternativeRow(a, rank, cls) {
  return html`<tr class="${cls}" data-node="${a.node_id}"><td>${rank}</td><td><code>${a.node_id}</code></td><td>${a.zone}</td>
    <td>${a.node_type}</td><td>T${a.tier}</td><td class="num">${num(a.score, 3)}</td><td class="num">${num(a.carbon_gco2_per_kwh, 0)}</td>
    <td class="num">${num(a.price_eur_per_gpu_hour, 2)}</td><td>${a.mig_profile ?? "whole GPU"}</td>
    <td>${a.eligible ? "eligible" : raw(html`<span class="excluded-reason">${a.excluded_reason}</span>`)}</td></tr>`;
}

function decisionItem(d) {
  const alternatives = d.alternatives ?? [];
  const chosen = alternatives.find((a) => a.node_id === d.chosen_node_id);
  const eligible = alternatives.filter((a) => a.eligible && a.node_id !== d.chosen_node_id);
  const excluded = alternatives.filter((a) => !a.eligible);
  const move = d.type === "reroute" ? html` from <code>${d.from_node_id}</code> (${d.from_zone})` : "";
  const target = d.chosen_node_id
    ? raw(html`<span data-chosen-node="${d.chosen_node_id}">→ <code>${d.chosen_node_id}</code> in ${d.chosen_zone}, tier ${d.tier}, score ${num(d.score, 3)}</span>`)
    : "";
  const gain = d.type === "reroute"
    ? raw(html`<p class="move-facts">score ${num(d.score_gain * 100, 0)} % better · saves ${sig(d.saved_gco2)} gCO2 over the rest of its run · move costs ${num(d.move_cost_s, 0)} s</p>`)
    : "";
  const counts = (d.exclusions ?? []).map((e) => html`<li><strong>${e.count}</strong> ${e.reason}</li>`).join("");
  const table = alternatives.length
    ? raw(html`<details ${d.type === "initial" ? "open" : ""}><summary>${d.nodes_eligible ?? eligible.length + (chosen ? 1 : 0)} of ${d.nodes_considered ?? alternatives.length} nodes eligible: the chosen one, ${Math.min(RUNNERS_UP, eligible.length)} runners-up, ${excluded.length} excluded</summary>
      <table class="data compact"><thead><tr><th>#</th><th>Node</th><th>Zone</th><th>Type</th><th>Tier</th><th class="num">Score</th><th class="num">gCO2/kWh</th><th class="num">€/GPU-h</th><th>Slice</th><th>Verdict</th></tr></thead>
      <tbody>${raw(chosen ? alternativeRow(chosen, "✓", "chosen") : "")}${raw(eligible.slice(0, RUNNERS_UP).map((a, i) => alternativeRow(a, i + 2, "runner-up")).join(""))}${raw(excluded.map((a) => alternativeRow(a, "✗", "excluded")).join(""))}</tbody></table>
      ${raw(counts ? html`<p>Why the others were excluded:</p><ul class="exclusions">${raw(counts)}</ul>` : "")}</details>`)
    : "";
  return html`<li class="decision" data-type="${d.type}" data-decision="${d.decision_id}"><div class="when">${time(d.ts_ms)}</div>
    <div><strong class="decision-type">${d.type}</strong>${raw(move)} ${target}<p class="reason">${d.reason ?? ""}</p>${gain}${table}</div></li>`;
}

function meterHtml(m) {
  const label = m.final ? "final: the signed receipt and the bill" : "so far: time run × the node's power and price (estimate until the receipt)";
  return html`<div class="meter ${m.final ? "final" : "live"}">
    <div class="stat big"><span>gCO2eq</span><strong id="meter-gco2">${m.gco2 === null ? "—" : sig(m.gco2, 4)}</strong></div>
    <div class="stat big"><span>€ charged</span><strong id="meter-eur">${m.eur === null ? "—" : eur(m.eur, m.eur < 1 ? 4 : 2)}</strong></div>
    <div class="stat"><span>kWh</span><strong>${m.kwh === null ? "—" : sig(m.kwh, 4)}</strong></div>
    <div class="stat"><span>GPU-hours</span><strong>${sig(m.hours, 4)}</strong></div>
    ${raw(m.final || m.intensity === null ? "" : html`<div class="stat"><span>gCO2eq/kWh where it runs</span><strong>${num(m.intensity, 0)}</strong></div><div class="stat"><span>€/GPU-hour there</span><strong>${num(m.price, 2)}</strong></div>`)}
    <p class="muted">${label}${m.gco2 === null ? "; gCO2 needs the node's power, which this role does not see" : ""}</p></div>`;
}

function receiptHtml(state) {
  if (!state) return `<p class="muted">No receipt yet: it is signed when the workload finishes.</p>`;
  if (state.error) return html`<p class="error">${state.error}</p>`;
  const { receipt, result, keyHex } = state;
  const verdict = result.valid
    ? html`<p class="verified" data-verified="true">✔ Verified in this browser: ${result.checks.join("; ")}.</p>`
    : html`<p class="not-verified" data-verified="false">✘ Not verified: ${result.failed_check}.</p>`;
  const intervals = receipt.intervals
    .map((i) => html`<tr><td><code>${i.node_id}</code></td><td>${i.zone}</td><td>${time(Number(i.start_ms))}–${time(Number(i.end_ms))}</td>
      <td class="num">${sig(Number(i.kwh), 4)}</td><td class="num">${num(Number(i.carbon_gco2_per_kwh), 1)}</td><td class="num">${sig(Number(i.gco2), 4)}</td></tr>`)
    .join("");
  return html`${raw(verdict)}
    <dl class="facts"><dt>Receipt</dt><dd><code>${receipt.receipt_id}</code></dd><dt>Issued</dt><dd>${dateTime(Number(receipt.issued_ms))}</dd>
    <dt>kWh</dt><dd>${sig(Number(receipt.kwh), 4)}</dd><dt>gCO2eq actual</dt><dd>${sig(Number(receipt.gco2_actual), 4)}</dd>
    <dt>baseline</dt><dd>${sig(Number(receipt.gco2_baseline), 4)}</dd><dt>saved</dt><dd>${sig(Number(receipt.gco2_saved), 4)}</dd>
    <dt>Method</dt><dd class="small">${receipt.method}</dd><dt>Sources</dt><dd>${receipt.data_sources.join(", ")}</dd>
    <dt>Platform key</dt><dd><code class="small">${keyHex}</code></dd><dt>Signature</dt><dd><code class="small">${receipt.signature}</code></dd></dl>
    <table class="data compact"><thead><tr><th>Node</th><th>Zone</th><th>When</th><th class="num">kWh</th><th class="num">gCO2/kWh</th><th class="num">gCO2</th></tr></thead><tbody>${raw(intervals)}</tbody></table>`;
}

async function loadReceipt(receiptId) {
  try {
    const [text, key] = await Promise.all([getText(`/api/v1/receipts/${encodeURIComponent(receiptId)}`), getJson("/api/v1/public-key")]);
    const receipt = parseReceipt(text);
    return { receipt, keyHex: key.hex, result: await verifyReceipt(receipt, key.hex) };
  } catch (error) {
    return { error: `The receipt could not be checked: ${error.message}` };
  }
}

export default {
  id: "job",
  title: "Job",
  mount(el, { params }) {
    const workloadId = params[0];
    el.innerHTML = html`<p><a href="#/jobs">← all jobs</a></p><section class="card" id="job-head"><h1>Job <code>${workloadId}</code></h1><p class="muted">Waiting for the pipeline…</p></section>
      <section class="card"><h2>Carbon and cost</h2><div id="job-meter"></div></section>
      <section class="card"><h2>Decisions</h2><ol class="timeline" id="job-decisions"></ol></section>
      <section class="card" id="job-moves-card"><h2>Moves</h2><div id="job-moves"></div></section>
      <div class="two-col"><section class="card"><h2>Events</h2><ol class="events" id="job-events"></ol></section>
      <section class="card"><h2>Bill</h2><div id="job-bill"></div></section></div>
      <section class="card" id="receipt-card"><h2>Carbon receipt</h2><div id="job-receipt"></div></section>`;
    let receipt = null; // {receipt, keyHex, result} once loaded
    let receiptFor = null;
    let nodes = null; // node_id -> node, where this role sees the fleet
    let tick = null;
    let last = null;

    const renderMeter = () => {
      if (last) el.querySelector("#job-meter").innerHTML = meterHtml(meter({ ...last, receipt: receipt?.receipt }, nodes, Date.now()));
    };

    return {
      async refresh() {
        let w;
        try {
          w = await getJson(`/api/v1/workloads/${encodeURIComponent(workloadId)}`);
        } catch (error) {
          if (error instanceof ApiError && error.status === 404) {
            el.querySelector("#job-head").innerHTML = html`<h1>Job <code>${workloadId}</code></h1><p class="muted" data-not-found>Not found (yet): a new submission appears within seconds; another's job never does.</p>`;
            return;
          }
          throw error;
        }
        try {
          nodes = Object.fromEntries((await getJson("/api/v1/nodes")).map((n) => [n.node_id, n]));
        } catch (error) {
          if (!(error instanceof ApiError) || error.status === 401) throw error;
          nodes = null; // this role does not see the fleet
        }
        last = w;
        el.querySelector("#job-head").innerHTML = html`<h1>${w.name} ${statusPill(w.status)}</h1>
          <p><code>${w.workload_id}</code> · on <strong data-node="${w.node_id ?? ""}">${w.node_id ?? "no node yet"}</strong> · submitted ${dateTime(w.submitted_ms)} by ${w.submitter ?? "?"}</p>
          <p><span class="bar wide"><span style="width:${Math.min(100, w.progress_pct ?? 0).toFixed(0)}%"></span></span> ${num(w.progress_pct, 0)} %</p>
          <dl class="facts inline"><dt>Type</dt><dd>${w.workload_type}</dd><dt>VRAM</dt><dd>${num(w.vram_mb / 1024, 1)} GiB</dd>
          <dt>Expected</dt><dd>${w.expected_hours} h</dd><dt>Priority</dt><dd>${w.priority}</dd><dt>Green only</dt><dd>${w.green_only ? "yes" : "no"}</dd>
          <dt>Max carbon</dt><dd>${w.max_carbon_gco2_kwh ?? "—"}</dd><dt>Budget</dt><dd>${w.budget_eur === null ? "—" : eur(w.budget_eur)}</dd>
          <dt>Deadline</dt><dd>${w.deadline_ms ? dateTime(w.deadline_ms) : "—"}</dd></dl>
          ${raw(w.reason ? html`<p class="reason">${w.reason}</p>` : "")}`;
        el.querySelector("#job-decisions").innerHTML = w.decisions.map(decisionItem).join("") || `<li class="muted">No decision yet.</li>`;
        el.querySelector("#job-moves").innerHTML = w.moves.length
          ? html`<table class="data compact"><thead><tr><th>When</th><th>From</th><th>To</th><th>Checkpoint</th><th class="num">Gain</th><th class="num">Saves gCO2</th><th class="num">Cost (s)</th></tr></thead><tbody>${raw(
              w.moves.map((m) => html`<tr class="move"><td>${time(m.ts_ms)}</td><td><code>${m.from_node_id}</code> ${m.from_zone}</td><td><code>${m.to_node_id}</code> ${m.to_zone}</td>
              <td><code class="small">${m.checkpoint_uri ?? "—"}</code></td><td class="num">${num(m.score_gain * 100, 0)} %</td><td class="num">${sig(m.saved_gco2)}</td><td class="num">${num(m.move_cost_s, 0)}</td></tr>`).join(""),
            )}</tbody></table>`
          : `<p class="muted">It has not moved.</p>`;
        el.querySelector("#job-events").innerHTML = w.events
          .map((e) => html`<li data-event="${e.type}"><span class="when">${time(e.ts_ms)}</span> <strong>${e.type}</strong>${e.node_id ? ` on ${e.node_id}` : ""}${e.progress_pct !== null && e.progress_pct !== undefined ? ` · ${num(e.progress_pct, 0)} %` : ""}${e.checkpoint_uri ? ` · ${e.checkpoint_uri}` : ""}${e.reason && e.type !== "routed" ? ` · ${e.reason}` : ""}</li>`)
          .join("");
        el.querySelector("#job-bill").innerHTML = w.billing.length
          ? w.billing.map((b) => html`<dl class="facts"><dt>Charge</dt><dd>${eur(b.charge, 4)} ${b.currency}</dd><dt>Platform fee</dt><dd>${eur(b.fee, 4)}</dd>
              <dt>Provider payout</dt><dd>${eur(b.payout, 4)}</dd><dt>GPU-hours</dt><dd>${sig(b.gpu_hours, 4)}</dd><dt>kWh</dt><dd>${sig(b.kwh, 4)}</dd>
              <dt>Stripe</dt><dd>${b.stripe_status ?? "—"}</dd></dl>`).join("")
          : `<p class="muted">Billed when it finishes.</p>`;
        if (w.receipt_id && receiptFor !== w.receipt_id) {
          receiptFor = w.receipt_id;
          receipt = await loadReceipt(w.receipt_id);
        }
        el.querySelector("#job-receipt").innerHTML = receiptHtml(receipt);
        renderMeter();
        // between polls the meter ticks every half second while the job runs
        clearInterval(tick);
        if (!receipt && ["running"].includes(w.status)) tick = setInterval(renderMeter, 500);
      },
      unmount() {
        clearInterval(tick);
      },
    };
  },
};
