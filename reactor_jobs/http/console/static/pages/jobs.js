// Jobs: the list, and one job's page (policy, triggers with their next cron fires, a form
// to trigger a run, and its runs with status filters, refreshed every two seconds).

import { get, jobPath, post, q } from "../api.js";
import { ago, duration, h, json, link, notice, replace, table, time } from "../dom.js";
import { actionButton, field, parseHashQuery, setHashQuery, STATUSES, status } from "./common.js";

export async function jobsPage(ctx) {
  const { jobs } = await get("/jobs/v1/_admin/jobs", { signal: ctx.signal });
  const rows = jobs.map((j) => h("tr", {},
    h("td", {}, link(j.name, "jobs", j.name)),
    h("td", {}, link(j.function_name, "functions", j.function_name)),
    h("td", {}, j.policy ? policyLine(j.policy) : h("span", { class: "muted" }, "no live version")),
    h("td", {}, time(j.created_at))));
  replace(ctx.root, h("h1", {}, "Jobs"),
    table(["Job", "Function", "Policy", "Created"], rows, "jobs"));
}

function policyLine(p) {
  return `${p.max_attempts} attempts, ${p.backoff} ${duration(p.initial_delay_ms)}…` +
    `${duration(p.max_delay_ms)}, concurrency ${p.max_concurrency}, timeout ${duration(p.timeout_ms)}`;
}

export async function jobPage(ctx, name) {
  const signal = ctx.signal;
  const [job, { triggers }, next] = await Promise.all([
    get(jobPath(name), { signal }),
    get(`${jobPath(name)}/triggers`, { signal }),
    get(q(`${jobPath(name)}/triggers/next`, { count: 5 }), { signal }),
  ]);
  const params = parseHashQuery();
  const chosen = new Set((params.get("status") || "").split(",").filter(Boolean));
  const runsBox = h("div", { id: "runs" });
  const runsNote = h("div", {});
  let cursor = null;
  let pages = [null];

  const filters = h("div", { class: "filters", role: "group", "aria-label": "Status filter" },
    STATUSES.map((s) => h("label", { class: "chip" },
      h("input", { type: "checkbox", name: `status-${s}`, checked: chosen.has(s), onchange: (e) => {
        if (e.target.checked) chosen.add(s); else chosen.delete(s);
        const p = new URLSearchParams();
        if (chosen.size) p.set("status", [...chosen].join(","));
        setHashQuery(p);
        pages = [null];
        loadRuns();
      } }), s)));

  async function loadRuns() {
    const statusQuery = STATUSES.filter((s) => chosen.has(s)).join(",");
    try {
      const page = await get(q(`${jobPath(name)}/runs`, {
        status: statusQuery, limit: 25, cursor: pages[pages.length - 1] }), { signal });
      cursor = page.next_cursor;
      replace(runsBox, runsTable(name, page.runs), pager());
      replace(runsNote);
    } catch (err) {
      if (ctx.live) replace(runsNote, notice("error", err.message));
    }
  }

  function pager() {
    return h("div", { class: "pager" },
      pages.length > 1 ? h("button", { onclick: () => { pages.pop(); loadRuns(); } }, "Newer") : null,
      cursor ? h("button", { onclick: () => { pages.push(cursor); loadRuns(); } }, "Older") : null);
  }

  const payload = h("textarea", { name: "payload", rows: 3, placeholder: "{}", id: "payload" });
  const triggerOut = h("div", {});
  const triggerButton = actionButton("Trigger run", async () => {
    const text = payload.value.trim();
    let body;
    try { body = text ? JSON.parse(text) : {}; } catch (e) { throw new Error(`payload: ${e.message}`); }
    const run = await post(`/jobs/v1/${encodeURIComponent(name)}/trigger`, { payload: body });
    await loadRuns();
    replace(triggerOut, notice("ok", "Run ", link(run.id, "jobs", name, "runs", run.id), " ",
      status(run.status)));
    return null;
  }, triggerOut, { cls: "primary" });

  replace(ctx.root,
    h("div", { class: "crumbs" }, link("Jobs", "jobs"), " / ", name),
    h("h1", {}, name),
    h("div", { class: "grid2" },
      h("section", { class: "card" }, h("h2", {}, "Policy"),
        field("Function", link(job.function_name, "functions", job.function_name)),
        job.policy ? [
          field("Max attempts", job.policy.max_attempts, override(job.max_attempts)),
          field("Backoff", `${job.policy.backoff}, ${duration(job.policy.initial_delay_ms)} to ${duration(job.policy.max_delay_ms)}`),
          field("Max concurrency", job.policy.max_concurrency, override(job.max_concurrency)),
          field("Timeout", duration(job.policy.timeout_ms), override(job.timeout_ms)),
        ] : notice("warn", "The function has no live version: promote one to run this job."),
        field("Dead letters", link("open entries", "dlq"))),
      h("section", { class: "card" }, h("h2", {}, "Triggers"),
        triggersView(triggers, next))),
    h("section", { class: "card" }, h("h2", {}, "Trigger a run"),
      h("label", { htmlFor: "payload" }, "Payload (JSON)"), payload, triggerButton, triggerOut),
    h("section", {}, h("h2", {}, "Runs ", h("span", { class: "muted small" }, "live")),
      filters, runsNote, runsBox));
  await loadRuns();
  ctx.every(2000, loadRuns);
}

function override(value) {
  return value === null || value === undefined ? h("span", { class: "muted" }, " (manifest)")
    : h("span", { class: "muted" }, " (job override)");
}

function triggersView(triggers, next) {
  if (!triggers.length) return h("p", { class: "muted" }, "Manual only (no triggers).");
  const fires = new Map((next.triggers || []).map((t) => [t.id, t.fires]));
  return h("ul", { class: "triggers" }, triggers.map((t) => h("li", {},
    h("span", { class: "tag" }, t.kind), " ",
    t.kind === "cron" ? [h("code", {}, t.schedule), ` ${t.timezone || "UTC"}, catch-up ${t.catch_up || "latest"}`] : null,
    t.kind === "event" ? ["topic ", h("code", {}, t.topic)] : null,
    t.kind === "webhook" ? "webhook (URL shown once at creation)" : null,
    h("span", { class: "muted" }, ` · ${t.source}`),
    fires.has(t.id) ? h("ul", { class: "fires" }, fires.get(t.id).map((f) =>
      h("li", {}, time(f.at), f.local ? h("span", { class: "muted" }, ` (${f.local})`) : null,
        h("span", { class: "muted" }, ` · ${ago(f.at)}`)))) : null)));
}

export function runsTable(job, runs) {
  const rows = runs.map((r) => h("tr", { data: { run: r.id, status: r.status } },
    h("td", {}, link(r.id, "jobs", job, "runs", r.id)),
    h("td", {}, status(r.status)),
    h("td", { class: "num" }, r.attempt),
    h("td", {}, r.trigger_kind),
    h("td", {}, `v${r.function_version}`),
    h("td", {}, time(r.created_at)),
    h("td", { class: "num" }, r.finished_at && r.started_at
      ? duration(new Date(r.finished_at) - new Date(r.started_at)) : ""),
    h("td", { class: "clip" }, outcome(r))));
  return table(["Run", "Status", "Try", "Trigger", "Version", "Created", "Took", "Output / error"],
    rows, "runs");
}

// What a run came to: its output once completed, else its last error (if any).
function outcome(r) {
  if (r.status === "completed") return r.output === null ? "" : json(r.output, true);
  if (!r.last_error) return "";
  return h("span", { class: "err-text" }, r.last_error.message ?? json(r.last_error, true));
}
