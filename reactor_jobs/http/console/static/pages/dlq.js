// Dead letters of every job, open ones by default, each with a retry button (the API's
// DLQ retry: the run is queued again with its completed steps cached).

import { get, jobPath, post, q } from "../api.js";
import { h, link, notice, replace, table, time } from "../dom.js";
import { actionButton, errorView, parseHashQuery, setHashQuery, status } from "./common.js";

export async function dlqPage(ctx) {
  const params = parseHashQuery();
  let which = params.get("status") || "open";
  const box = h("div", { id: "dlq" });
  const out = h("div", {});
  const picker = h("select", { "aria-label": "Entries", id: "dlq-status", onchange: (e) => {
    which = e.target.value;
    const p = new URLSearchParams();
    if (which !== "open") p.set("status", which);
    setHashQuery(p);
    load();
  } }, [["open", "Open"], ["retried", "Retried"], ["all", "All"]].map(([v, label]) =>
    h("option", { value: v, selected: v === which }, label)));

  async function load() {
    const { jobs } = await get("/jobs/v1/_admin/jobs", { signal: ctx.signal });
    const lists = await Promise.all(jobs.map((j) => get(q(`${jobPath(j.name)}/dlq`, {
      status: which === "all" ? "" : which, limit: 100 }), { signal: ctx.signal })));
    const entries = lists.flatMap((l) => l.entries)
      .sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    const rows = entries.map((e) => h("tr", { data: { dlq: e.id, status: e.status } },
      h("td", {}, h("code", {}, e.id)),
      h("td", {}, link(e.job, "jobs", e.job)),
      h("td", {}, link(e.run_id, "jobs", e.job, "runs", e.run_id)),
      h("td", { class: "num" }, e.attempts),
      h("td", { class: "error-cell" }, errorView(e.error)),
      h("td", {}, time(e.created_at)),
      h("td", {}, status(e.status), e.retried_at ? h("div", { class: "muted small" }, time(e.retried_at)) : null),
      h("td", {}, e.status === "open" ? actionButton("Retry", async () => {
        const run = await post(`${jobPath(e.job)}/dlq/${encodeURIComponent(e.id)}/retry`);
        await load();
        replace(out, notice("ok", "Retried: ", link(run.id, "jobs", run.job, "runs", run.id),
          " is ", status(run.status), "."));
        return null;
      }, out, { cls: "primary" }) : null)));
    replace(box, table(["Entry", "Job", "Run", "Tries", "Error", "Dead since", "Status", ""], rows, "dlq"));
  }

  replace(ctx.root, h("h1", {}, "Dead letters"),
    h("p", { class: "muted" }, "Runs that used up their attempts. A retry queues the run again; its completed steps are not run twice."),
    h("div", { class: "row" }, "Show ", picker), out, box);
  await load();
  ctx.every(5000, () => load().catch(() => {}));
}
