// One run: its summary and actions, its journal as a timeline grouped by attempt with the
// run's log lines interleaved in time, its state at any journal position (a slider over the
// audit route) with what each event changed and a diff between any two positions, and its
// lineage. The job's SSE stream (this run only, from its start) brings log lines and tells
// the page when new events were recorded.

import { get, post, q, runPath, stream } from "../api.js";
import {
  badge, duration, h, json, jsonBlock, link, notice, replace, table, time,
} from "../dom.js";
import { actionButton, errorView, field, status } from "./common.js";

const TERMINAL = new Set(["completed", "failed", "cancelled"]);

export async function runPage(ctx, job, id) {
  const signal = ctx.signal;
  const path = runPath(job, id);
  const page = { run: null, events: [], lineage: null, logs: [], selected: null, rendered: "" };

  const actionsOut = h("div", {});
  const summaryBox = h("section", { class: "card", id: "summary" });
  const timelineBox = h("section", { class: "timeline", id: "timeline" });
  const lineageBox = h("section", { class: "card", id: "lineage" });
  const stateBox = h("section", { class: "card state", id: "state" });

  const slider = h("input", { type: "range", min: 1, max: 1, value: 1, id: "state-slider",
    "aria-label": "Journal position", oninput: () => select(Number(slider.value), false) });
  const sliderLabel = h("div", { class: "slider-label", id: "state-position" });
  const stateView = h("div", { id: "state-view" });
  const changedView = h("div", { id: "state-changed" });
  const fromInput = h("input", { type: "number", min: 1, id: "diff-from", "aria-label": "From position" });
  const toInput = h("input", { type: "number", min: 1, id: "diff-to", "aria-label": "To position" });
  const diffOut = h("div", { id: "diff-view" });
  const diffButton = h("button", { onclick: () => showDiff(Number(fromInput.value),
    Number(toInput.value), diffOut) }, "Compare");

  replace(stateBox, h("h2", {}, "State at a position"), slider, sliderLabel, stateView,
    h("h3", {}, "What this event changed"), changedView,
    h("h3", {}, "Diff two positions"),
    h("div", { class: "row" }, "from ", fromInput, " to ", toInput, diffButton), diffOut);

  const cancel = actionButton("Cancel", async () => {
    const run = await post(`${path}/cancel`);
    await refresh();
    return `Run is ${run.status}.`;
  }, actionsOut, { confirmText: "Cancel this run?" });
  const retry = actionButton("Retry", async () => {
    const run = await post(`${path}/retry`);
    await refresh();
    return `Queued again as attempt ${run.attempt}.`;
  }, actionsOut);

  replace(ctx.root,
    h("div", { class: "crumbs" }, link("Jobs", "jobs"), " / ", link(job, "jobs", job), " / ", id),
    h("div", { class: "title-row" }, h("h1", {}, "Run ", h("code", {}, id)),
      h("span", { id: "run-status" }), h("span", { class: "spacer" }), cancel, retry),
    actionsOut, summaryBox,
    h("div", { class: "run-grid" },
      h("div", {}, h("h2", {}, "Timeline"), timelineBox),
      h("div", { class: "side" }, stateBox, lineageBox)));

  let stateSeq = 0;
  let timer = null;

  async function select(position, moveSlider = true) {
    page.selected = position;
    if (moveSlider) slider.value = String(position);
    for (const row of timelineBox.querySelectorAll(".event.selected")) row.classList.remove("selected");
    const row = timelineBox.querySelector(`[data-position="${position}"]`);
    if (row) row.classList.add("selected");
    const event = page.events[position - 1];
    replace(sliderLabel, `Position ${position} of ${page.events.length}`,
      event ? [" · ", h("strong", {}, event.type), " · ", time(event.recorded_at)] : "");
    clearTimeout(timer);
    timer = setTimeout(() => loadState(position), 80);
  }

  async function loadState(position) {
    const seq = ++stateSeq;
    try {
      const [state, changed] = await Promise.all([
        get(q(`${path}/state`, { at: position }), { signal }),
        position > 1 ? get(q(`${path}/state/diff`, { from: position - 1, to: position }), { signal })
          : null,
      ]);
      if (seq !== stateSeq) return;
      replace(stateView, stateTable(state));
      replace(changedView, changed ? changesTable(changed.changes)
        : h("p", { class: "muted" }, "The run was triggered: everything starts here."));
    } catch (err) {
      if (ctx.live && seq === stateSeq) replace(stateView, notice("error", err.message));
    }
  }

  async function refresh() {
    const [run, journal, lineage] = await Promise.all([
      get(path, { signal }), get(`${path}/journal`, { signal }), get(`${path}/lineage`, { signal }),
    ]);
    page.run = run;
    page.lineage = lineage;
    const grew = journal.events.length !== page.events.length;
    const follow = page.selected === null || page.selected === page.events.length;
    page.events = journal.events;
    render();
    if (grew) {
      slider.max = String(page.events.length);
      if (!fromInput.value) fromInput.value = "1";
      toInput.value = String(page.events.length);
      if (follow) select(page.events.length);
    }
  }

  function render() {
    const run = page.run;
    replace(document.getElementById("run-status") || h("span"), status(run.status));
    cancel.disabled = TERMINAL.has(run.status);
    retry.disabled = !(run.status === "failed" || run.status === "cancelled");
    replace(summaryBox, h("div", { class: "fields" },
      field("Job", link(run.job, "jobs", run.job)),
      field("Status", status(run.status)),
      field("Attempt", run.attempt),
      field("Function", link(run.function, "functions", run.function), ` v${run.function_version}`),
      field("Trigger", run.trigger_kind),
      field("Created", time(run.created_at)),
      run.started_at ? field("Started", time(run.started_at)) : null,
      run.finished_at ? field("Finished", time(run.finished_at),
        run.started_at ? ` (${duration(new Date(run.finished_at) - new Date(run.started_at))})` : "") : null,
      run.available_at && !TERMINAL.has(run.status) ? field("Due", time(run.available_at)) : null,
      run.idempotency_key ? field("Idempotency key", h("code", {}, run.idempotency_key)) : null,
      run.dlq_id ? field("DLQ entry", link(run.dlq_id, "dlq")) : null),
    run.output !== null && run.output !== undefined ? [h("h3", {}, "Output"), jsonBlock(run.output)] : null,
    run.last_error ? [h("h3", {}, run.status === "completed" ? "Last error (of an earlier attempt)"
      : "Last error"), errorView(run.last_error)] : null);
    const key = `${page.events.length}:${page.logs.length}:${json(lineageKey(page.lineage), true)}`;
    if (key !== page.rendered) {
      page.rendered = key;
      replace(timelineBox, timeline(page, job, (p) => select(p)));
      if (page.selected) {
        const row = timelineBox.querySelector(`[data-position="${page.selected}"]`);
        if (row) row.classList.add("selected");
      }
      replace(lineageBox, h("h2", {}, "Lineage"), lineageView(page.lineage, id));
    }
  }

  let pending = null;
  function soon() {
    if (pending) return;
    pending = setTimeout(async () => {
      pending = null;
      try { await refresh(); } catch (err) { if (ctx.live) replace(actionsOut, notice("error", err.message)); }
    }, 150);
  }

  await refresh();
  const logsPath = q(`/jobs/v1/_admin/jobs/${encodeURIComponent(job)}/logs`, { run_id: id });
  stream(logsPath, "0-0-0", (kind, data) => {
    if (kind === "log") { page.logs.push(data); soon(); }
    else if (kind === "run" && data.position > page.events.length) soon();
  }, signal).catch((err) => { if (ctx.live) replace(actionsOut, notice("warn", `Live updates stopped: ${err.message}`)); });
  // A fallback for proxies that buffer the stream: poll while the run is not finished.
  ctx.every(3000, () => { if (!TERMINAL.has(page.run.status)) soon(); });

  async function showDiff(from, to, out) {
    try {
      const d = await get(q(`${path}/state/diff`, { from, to }), { signal });
      replace(out, h("p", { class: "muted" }, `From position ${d.from} to ${d.to}:`), changesTable(d.changes));
    } catch (err) { replace(out, notice("error", err.message)); }
  }
}

function lineageKey(node) {
  if (!node) return null;
  return [node.run_id, node.status, (node.caused || []).map(lineageKey)];
}

// The timeline: events and log lines in time order, a group per attempt.
function timeline(page, job, onSelect) {
  const events = page.events;
  if (!events.length) return h("p", { class: "muted" }, "No events yet.");
  const start = new Date(events[0].recorded_at).getTime();
  const caused = new Map();
  for (const child of (page.lineage && page.lineage.caused) || []) {
    const key = child.cause && child.cause.event_id;
    if (!key) continue;
    if (!caused.has(key)) caused.set(key, []);
    caused.get(key).push(child);
  }
  const items = [
    ...events.map((e) => ({ t: new Date(e.recorded_at).getTime(), order: e.position, event: e })),
    ...page.logs.map((l, i) => ({ t: new Date(l.at).getTime(), order: 1e9 + i, log: l })),
  ].sort((a, b) => a.t - b.t || a.order - b.order);

  const groups = [];
  let group = { title: h("span", {}, "Before the first attempt"), rows: [], attempt: 0 };
  groups.push(group);
  for (const item of items) {
    const e = item.event;
    if (e && e.type === "AttemptStarted") {
      const ends = events.find((x) => x.position > e.position && ["AttemptStarted", "Completed",
        "Failed", "SleepScheduled", "Cancelled", "TimedOut", "LeaseExpired",
        "AttemptInterrupted"].includes(x.type));
      const took = ends ? new Date(ends.recorded_at) - new Date(e.recorded_at) : null;
      group = { rows: [], attempt: e.data.attempt,
        title: h("span", {}, `Attempt ${e.data.attempt}`,
          h("span", { class: "muted" }, ` on ${e.data.worker}`,
            took !== null ? ` · ${duration(took)}${ends.type === "SleepScheduled" ? " until it slept" : ""}` : " · running")) };
      groups.push(group);
    }
    group.rows.push(item.log ? logRow(item.log, start) : eventRow(e, start, job, caused, onSelect));
  }
  return groups.filter((g) => g.rows.length).map((g) => h("div", { class: "attempt", data: { attempt: g.attempt } },
    h("div", { class: "attempt-title" }, g.title), h("ol", {}, g.rows)));
}

function offset(t, start) {
  const ms = new Date(t).getTime() - start;
  return `+${duration(ms) || "0 ms"}`;
}

function eventRow(e, start, job, caused, onSelect) {
  const d = e.data || {};
  const detail = describe(e, d, job, caused);
  const cls = `event t-${e.type}${e.type === "LeaseExtended" ? " quiet" : ""}`;
  return h("li", { class: cls, data: { position: e.position, type: e.type } },
    h("button", { class: "pos", title: "Show the state at this position",
      onclick: () => onSelect(e.position) }, String(e.position)),
    h("span", { class: "when", title: time(e.recorded_at) }, offset(e.recorded_at, start)),
    h("span", { class: "etype" }, e.type),
    h("div", { class: "detail" }, detail));
}

function outputOf(value) {
  if (value === undefined || value === null) return h("span", { class: "muted" }, "null");
  const text = json(value, true);
  if (text.length <= 80) return h("code", { class: "output" }, text);
  return h("details", {}, h("summary", {}, h("code", {}, `${text.slice(0, 60)}…`)), jsonBlock(value));
}

function wakeOf(e, d) {
  if (d.wake_at) return d.wake_at;
  if (d.delay_ms !== undefined && d.delay_ms !== null) {
    return new Date(new Date(e.recorded_at).getTime() + d.delay_ms).toISOString();
  }
  return null;
}

function describe(e, d, job, caused) {
  switch (e.type) {
    case "Triggered": {
      const t = d.trigger || {};
      return [`by ${t.kind}`, t.scheduled_for ? ` for the slot ${time(t.scheduled_for)}` : "",
        t.causation_run_id ? [" from run ", h("code", {}, t.causation_run_id)] : "",
        `, version ${d.function_version}, up to ${d.max_attempts} attempts`,
        h("div", {}, "payload ", outputOf(d.payload))];
    }
    case "AttemptStarted": return `attempt ${d.attempt} on ${d.worker}`;
    case "LeaseExtended": return "heartbeat";
    case "StepCompleted":
      return [h("strong", {}, d.name), h("span", { class: "dur" }, ` ${duration(d.duration_ms)}`),
        h("div", {}, "→ ", outputOf(d.output))];
    case "StepFailed":
      return [h("strong", {}, d.name), " failed", errorView(d.error)];
    case "StateSet":
      return d.deleted ? ["state ", h("code", {}, d.key), " deleted"]
        : ["state ", h("code", {}, d.key), " = ", outputOf(d.value)];
    case "Emitted": {
      const runs = caused.get(d.event_id) || [];
      return [h("strong", {}, d.topic), " ", h("code", { class: "muted" }, d.event_id),
        h("div", {}, "payload ", outputOf(d.payload)),
        h("div", { class: "caused" }, runs.length ? ["started ", runs.map((r, i) => [i ? ", " : "",
          link(`${r.job} ${r.run_id}`, "jobs", r.job, "runs", r.run_id), " ", badge(r.status)])]
          : h("span", { class: "muted" }, "started no runs"))];
    }
    case "SleepScheduled": {
      const wake = wakeOf(e, d);
      return [h("strong", {}, d.name), " until ", time(wake),
        d.delay_ms !== undefined && d.delay_ms !== null ? h("span", { class: "dur" }, ` (${duration(d.delay_ms)})`) : ""];
    }
    case "SleepCompleted": return ["woke from ", h("strong", {}, d.name)];
    case "Failed": return [`attempt ${d.attempt} failed`, errorView(d.error)];
    case "RetryScheduled": {
      const due = d.available_at || wakeOf(e, d);
      return [`attempt ${d.attempt} due at ${time(due)}`,
        d.delay_ms !== undefined && d.delay_ms !== null ? h("span", { class: "dur" }, ` (backoff ${duration(d.delay_ms)})`) : ""];
    }
    case "DeadLettered":
      return [`dead-lettered after ${d.attempts} attempts as `, link(d.dlq_id, "dlq"), errorView(d.error)];
    case "Retried":
      return [d.dlq_id ? `retried from the DLQ (${d.dlq_id})` : "retried", d.by ? ` by ${d.by}` : "",
        d.max_attempts ? `, up to attempt ${d.max_attempts}` : ""];
    case "Cancelled": return [d.reason || "cancelled", d.by ? ` by ${d.by}` : ""];
    case "TimedOut": return `attempt ${d.attempt} timed out after ${duration(d.timeout_ms)}`;
    case "LeaseExpired":
      return `attempt ${d.attempt} lost its lease on ${d.worker}${d.charged === false ? " (not charged)" : ""}`;
    case "AttemptInterrupted": return `attempt ${d.attempt} interrupted: ${d.reason} (not charged)`;
    case "Completed": return ["output ", outputOf(d.output)];
    default: return outputOf(d);
  }
}

function logRow(l, start) {
  return h("li", { class: `log level-${String(l.level).replace(/[^a-z]/g, "")}` },
    h("span", { class: "pos log-mark" }, "log"),
    h("span", { class: "when", title: time(l.at) }, offset(l.at, start)),
    h("span", { class: "etype" }, l.level),
    h("div", { class: "detail" }, l.step ? h("span", { class: "muted" }, `[${l.step}] `) : "",
      l.message, l.fields && Object.keys(l.fields).length
        ? h("code", { class: "muted" }, ` ${json(l.fields, true)}`) : ""));
}

function stateTable(s) {
  const kv = (obj) => Object.keys(obj || {}).length
    ? table(["Key", "Value"], Object.entries(obj).map(([k, v]) =>
      h("tr", {}, h("td", {}, h("code", {}, k)), h("td", {}, outputOf(v)))), "kv")
    : h("p", { class: "muted" }, "none");
  return h("div", { class: "state-fields" },
    h("div", { class: "fields" },
      field("Status", status(s.status)), field("Attempt", s.attempt),
      field("Recorded", time(s.updated_at)),
      field("Hash", h("code", { class: "hash" }, s.hash.slice(0, 16) + "…"))),
    h("h3", {}, "Steps"), kv(s.steps),
    h("h3", {}, "State"), kv(s.state),
    Object.keys(s.sleeps || {}).length ? [h("h3", {}, "Sleeps"), table(["Sleep", "Wakes", "Done"],
      Object.entries(s.sleeps).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, time(v.wake_at)),
        h("td", {}, v.done ? "yes" : "no"))))] : null,
    s.emitted && s.emitted.length ? [h("h3", {}, "Emitted"), h("p", {}, s.emitted.join(", "))] : null,
    s.output !== null && s.output !== undefined ? [h("h3", {}, "Output"), outputOf(s.output)] : null,
    s.last_error ? [h("h3", {}, "Last error"), errorView(s.last_error)] : null);
}

function changesTable(changes) {
  if (!changes.length) return h("p", { class: "muted" }, "No change to the folded state.");
  return table(["Field", "Before", "After"], changes.map((c) => h("tr", {},
    h("td", {}, h("code", {}, c.field)), h("td", {}, outputOf(c.before)), h("td", {}, outputOf(c.after)))),
  "changes");
}

function lineageView(node, current) {
  if (!node) return null;
  const cause = node.cause || {};
  const from = cause.run_id
    ? h("p", {}, "Caused by ", cause.topic ? ["event ", h("code", {}, cause.topic), " of "] : "",
      cause.job ? link(`${cause.job} ${cause.run_id}`, "jobs", cause.job, "runs", cause.run_id)
        : h("code", {}, cause.run_id))
    : h("p", { class: "muted" }, `Started by a ${cause.kind} trigger`,
      cause.scheduled_for ? ` for ${time(cause.scheduled_for)}` : "", ".");
  return [from, h("ul", { class: "tree" }, treeNode(node, current))];
}

function treeNode(node, current) {
  const label = node.run_id === current ? h("strong", {}, `${node.job} ${node.run_id}`)
    : link(`${node.job} ${node.run_id}`, "jobs", node.job, "runs", node.run_id);
  return h("li", {}, label, " ", badge(node.status),
    node.cause && node.cause.topic ? h("span", { class: "muted" }, ` via ${node.cause.topic}`) : "",
    node.more ? h("span", { class: "muted" }, " (more below: open it)") : "",
    node.caused && node.caused.length ? h("ul", {}, node.caused.map((c) => treeNode(c, current))) : null);
}
