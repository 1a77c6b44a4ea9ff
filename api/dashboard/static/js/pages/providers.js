// Providers: what each provider earned (85 % of the charges of the work its nodes ran) and the payouts made to
// it, with the Solana transaction signature and status of each. A provider sees its own; the admin all.

import { ApiError, getJson } from "../api.js";
import { ago, eur, html, num, raw, sig } from "../format.js";

function earnings(records, nodes) {
  const byProvider = new Map();
  for (const r of records) {
    const node = nodes[r.node_id];
    const key = node?.provider ?? r.node_id ?? "unknown";
    const e = byProvider.get(key) ?? { provider: key, type: node?.node_type ?? "", jobs: 0, gpu_hours: 0, kwh: 0, charge: 0, payout: 0, paid: 0 };
    e.jobs += 1;
    e.gpu_hours += r.gpu_hours ?? 0;
    e.kwh += r.kwh ?? 0;
    e.charge += r.charge ?? 0;
    e.payout += r.payout ?? 0;
    if (r.payout_status === "paid") e.paid += r.payout ?? 0;
    byProvider.set(key, e);
  }
  return [...byProvider.values()].sort((a, b) => b.payout - a.payout || a.provider.localeCompare(b.provider));
}

export default {
  id: "providers",
  title: "Providers",
  mount(el, { me }) {
    el.innerHTML = `<section class="card"><div class="card-head"><h1>${me.role === "admin" ? "Providers" : "Your earnings"}</h1><p class="summary" id="providers-summary"></p></div>
      <div class="stats" id="provider-stats"></div>
      <table class="data" id="earnings-table"><thead><tr><th>Provider</th><th>Type</th><th class="num">Jobs</th><th class="num">GPU-hours</th>
      <th class="num">kWh</th><th class="num">Charged</th><th class="num">Earned (payout)</th><th class="num">Paid out</th></tr></thead><tbody></tbody></table></section>
      <section class="card"><h2>Payouts</h2><table class="data" id="payouts-table"><thead><tr><th>Workload</th><th>Node</th><th>Rail</th>
      <th class="num">Amount</th><th class="num">Lamports</th><th>Status</th><th>Solana signature</th><th>When</th></tr></thead><tbody></tbody></table>
      <p class="muted">Gamers are paid in lamports by a Solana transfer whose memo is the receipt's hash; in the demo the
      transactions run in an in-process Solana VM (LiteSVM). Data centres and recyclers are paid by invoice.</p></section>`;
    return {
      async refresh() {
        const billing = await getJson("/api/v1/billing?limit=1000");
        let nodes = {};
        try {
          nodes = Object.fromEntries((await getJson("/api/v1/nodes")).map((n) => [n.node_id, n]));
        } catch (error) {
          if (!(error instanceof ApiError) || error.status === 401) throw error;
        }
        const rows = earnings(billing.records, nodes);
        const t = billing.totals;
        el.querySelector("#providers-summary").textContent = `${rows.length} providers with billed work · ${billing.currency}`;
        el.querySelector("#provider-stats").innerHTML = [
          ["Billed jobs", t.records],
          ["GPU-hours", sig(t.gpu_hours, 4)],
          ["Charged", eur(t.charge)],
          ["Platform fee", eur(t.fee)],
          ["Provider payouts", eur(t.payout)],
        ]
          .map(([k, v]) => html`<div class="stat"><span>${k}</span><strong>${v}</strong></div>`)
          .join("");
        el.querySelector("#earnings-table tbody").innerHTML =
          rows
            .map((e) => html`<tr data-provider="${e.provider}"><td>${e.provider}</td><td>${e.type}</td><td class="num">${e.jobs}</td>
              <td class="num">${sig(e.gpu_hours, 4)}</td><td class="num">${sig(e.kwh, 4)}</td><td class="num">${eur(e.charge, 4)}</td>
              <td class="num">${eur(e.payout, 4)}</td><td class="num">${eur(e.paid, 4)}</td></tr>`)
            .join("") || `<tr><td colspan="8" class="muted">Nothing billed yet.</td></tr>`;
        const payouts = billing.records.filter((r) => r.payout_rail);
        el.querySelector("#payouts-table tbody").innerHTML =
          payouts
            .map((r) => html`<tr data-payout="${r.workload_id}"><td><a href="#/job/${encodeURIComponent(r.workload_id)}"><code>${r.workload_id}</code></a></td>
              <td><code>${r.node_id}</code></td><td>${r.payout_rail}</td><td class="num">${eur(r.payout, 4)}</td><td class="num">${num(r.payout_lamports, 0)}</td>
              <td><span class="pill ${r.payout_status === "failed" ? "red" : r.payout_status === "paid" ? "green" : "amber"}">${r.payout_status}</span></td>
              <td><code class="small signature" title="${r.payout_reference ?? ""}">${r.payout_reference ?? "—"}</code></td><td>${ago(r.ts_ms)}</td></tr>`)
            .join("") || `<tr><td colspan="8" class="muted">No payouts yet.</td></tr>`;
      },
    };
  },
};
