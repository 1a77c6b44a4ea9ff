// Jobs: the submit form (for the roles that submit) and the list of workloads the caller may see, live.

import { ApiError, getJson, postJson } from "../api.js";
import { ago, esc, html, num, raw } from "../format.js";
import { maySubmit } from "../roles.js";

const TYPES = ["inference", "training", "fine_tune", "embedding", "batch_inference"];
const STATUSES = ["", "submitted", "queued", "routed", "running", "checkpointed", "migrating", "completed", "failed", "cancelled", "rejected"];

export function statusPill(status) {
  const colour = { completed: "green", running: "blue", routed: "blue", migrating: "amber", checkpointed: "amber", queued: "grey", failed: "red", rejected: "red", cancelled: "grey" }[status] ?? "grey";
  return raw(html`<span class="pill ${colour}" data-status="${status}">${status}</span>`);
}

function form() {
  return `<section class="card"><h2>Submit a workload</h2>
    <form id="submit-form" class="grid-form">
      <label>Name <input name="name" required maxlength="200" value="my-job"></label>
      <label>Type <select name="workload_type">${TYPES.map((t) => `<option>${t}</option>`).join("")}</select></label>
      <label>Image <input name="image" placeholder="ghcr.io/me/model:1" value="ghcr.io/toogreen/trainer:2.4"></label>
      <label>or command <input name="command" placeholder="python train.py"></label>
      <label>VRAM (MiB) <input name="vram_mb" type="number" min="1" required value="16000"></label>
      <label>Expected hours <input name="expected_hours" type="number" min="0.001" step="any" required value="0.1"></label>
      <label>Priority <select name="priority"><option>normal</option><option>urgent</option><option>async</option></select></label>
      <label class="check"><input name="green_only" type="checkbox"> Green only</label>
      <label>Max gCO2/kWh <input name="max_carbon_gco2_kwh" type="number" min="0" step="any"></label>
      <label>Budget (€) <input name="budget_eur" type="number" min="0" step="any"></label>
      <label>Deadline <input name="deadline" type="datetime-local"></label>
      <label>Checkpoint (GB) <input name="checkpoint_gb" type="number" min="0" step="any"></label>
      <div class="form-actions"><button type="submit">Submit</button><span id="submit-result" role="status"></span></div>
    </form></section>`;
}

function body(formEl) {
  const data = new FormData(formEl);
  const out = { name: data.get("name"), workload_type: data.get("workload_type"), priority: data.get("priority") };
  for (const key of ["image", "command"]) if (data.get(key)) out[key] = data.get(key);
  out.vram_mb = Number(data.get("vram_mb"));
  out.expected_hours = Number(data.get("expected_hours"));
  out.green_only = data.get("green_only") === "on";
  for (const key of ["max_carbon_gco2_kwh", "budget_eur", "checkpoint_gb"]) if (data.get(key)) out[key] = Number(data.get(key));
  if (data.get("deadline")) out.deadline = new Date(data.get("deadline")).toISOString();
  return out;
}

export default {
  id: "jobs",
  title: "Jobs",
  mount(el, { me }) {
    el.innerHTML = `${maySubmit(me.role) ? form() : ""}
      <section class="card"><div class="card-head"><h1>Jobs</h1><p class="summary" id="jobs-summary"></p>
      <label class="inline">Status <select id="status-filter">${STATUSES.map((s) => `<option value="${s}">${s || "any"}</option>`).join("")}</select></label></div>
      <table class="data" id="jobs-table"><thead><tr><th>Workload</th><th>Name</th><th>Status</th><th>Node</th><th>Progress</th>
      <th class="num">VRAM</th><th>Submitted</th><th>By</th><th class="num">Moves</th><th>Why there</th></tr></thead><tbody></tbody></table></section>`;
    const filter = el.querySelector("#status-filter");
    const view = {
      async refresh() {
        const q = filter.value ? `&status=${encodeURIComponent(filter.value)}` : "";
        const jobs = await getJson(`/api/v1/workloads?limit=100${q}`);
        el.querySelector("#jobs-summary").textContent = `${jobs.length} shown${jobs.length === 100 ? " (the newest 100)" : ""}`;
        el.querySelector("#jobs-table tbody").innerHTML =
          jobs
            .map(
              (w) => html`<tr data-workload="${w.workload_id}" data-submitter="${w.submitter ?? ""}">
            <td><a href="#/job/${encodeURIComponent(w.workload_id)}"><code>${w.workload_id}</code></a></td><td>${w.name}</td>
            <td>${statusPill(w.status)}</td><td>${w.node_id ?? "—"}</td>
            <td><span class="bar"><span style="width:${Math.min(100, w.progress_pct ?? 0).toFixed(0)}%"></span></span> ${num(w.progress_pct, 0)} %</td>
            <td class="num">${num(w.vram_mb / 1024, 1)} GiB</td><td>${ago(w.submitted_ms)}</td><td>${w.submitter ?? "—"}</td>
            <td class="num">${w.moves ?? 0}</td><td class="reason">${w.reason ?? ""}</td></tr>`,
            )
            .join("") || `<tr><td colspan="10" class="muted">No workloads yet.</td></tr>`;
      },
    };
    filter.addEventListener("change", () => view.refresh().catch(() => {}));
    const formEl = el.querySelector("#submit-form");
    // one Idempotency-Key per filled-in form: a double click or a retry after a lost answer submits it once
    let idempotencyKey = null;
    formEl?.addEventListener("input", () => {
      idempotencyKey = null;
    });
    formEl?.addEventListener("submit", async (event) => {
      event.preventDefault();
      const result = el.querySelector("#submit-result");
      result.className = "";
      result.textContent = "submitting…";
      try {
        idempotencyKey ??= globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random().toString(36).slice(2)}`;
        const accepted = await postJson("/api/v1/workloads", body(formEl), { "Idempotency-Key": idempotencyKey });
        result.innerHTML = html`accepted as <code>${accepted.workload_id}</code>`;
        location.hash = `#/job/${encodeURIComponent(accepted.workload_id)}`;
      } catch (error) {
        result.className = "error";
        result.innerHTML = esc(error instanceof ApiError ? `${error.status}: ${error.detail}` : error.message);
      }
    });
    return view;
  },
};
