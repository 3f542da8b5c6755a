// Emitted events: newest first, the unconsumed ones (no job's event trigger took them)
// marked, each linked to the run that emitted it.

import { get, q } from "../api.js";
import { h, json, link, replace, table, time } from "../dom.js";
import { parseHashQuery, setHashQuery } from "./common.js";

export async function eventsPage(ctx) {
  const params = parseHashQuery();
  const topic = h("input", { type: "text", id: "topic", placeholder: "topic", value: params.get("topic") || "" });
  const only = h("input", { type: "checkbox", id: "unconsumed", checked: params.get("unconsumed") === "true" });
  const box = h("div", { id: "events" });
  let cursor = null;
  let pages = [null];

  async function load() {
    const p = new URLSearchParams();
    if (topic.value) p.set("topic", topic.value);
    if (only.checked) p.set("unconsumed", "true");
    setHashQuery(p);
    const page = await get(q("/jobs/v1/_admin/events", { topic: topic.value,
      unconsumed: only.checked ? "true" : "", limit: 50, cursor: pages[pages.length - 1] }),
    { signal: ctx.signal });
    cursor = page.next_cursor;
    const rows = page.events.map((e) => h("tr", { class: e.consumed_at ? "" : "unconsumed",
      data: { event: e.id } },
    h("td", {}, h("code", {}, e.topic)),
    h("td", {}, e.consumed_at ? h("span", { class: "muted" }, `started ${e.fanout} run${e.fanout === 1 ? "" : "s"}`)
      : h("span", { class: "badge s-unconsumed" }, "unconsumed")),
    h("td", {}, link(`${e.job} ${e.run_id}`, "jobs", e.job, "runs", e.run_id)),
    h("td", { class: "clip" }, h("code", {}, json(e.payload, true))),
    h("td", {}, time(e.emitted_at)),
    h("td", {}, h("code", { class: "muted" }, e.id))));
    replace(box, table(["Topic", "Consumed", "Emitted by", "Payload", "At", "Id"], rows, "events"),
      h("div", { class: "pager" },
        pages.length > 1 ? h("button", { onclick: () => { pages.pop(); load(); } }, "Newer") : null,
        cursor ? h("button", { onclick: () => { pages.push(cursor); load(); } }, "Older") : null));
  }

  const reload = () => { pages = [null]; load(); };
  topic.addEventListener("change", reload);
  only.addEventListener("change", reload);
  replace(ctx.root, h("h1", {}, "Events"),
    h("div", { class: "row" }, topic, h("label", { class: "chip" }, only, "unconsumed only")), box);
  await load();
  ctx.every(5000, () => { if (pages.length === 1) load().catch(() => {}); });
}
