// Functions: the list, and one function's versions with promote and the replay check (does
// this version replay every run in flight the same way?).

import { fnPath, get, post } from "../api.js";
import { badge, h, link, notice, replace, table, time } from "../dom.js";
import { actionButton } from "./common.js";

export async function functionsPage(ctx) {
  const { functions } = await get("/functions/v1/_admin/functions", { signal: ctx.signal });
  replace(ctx.root, h("h1", {}, "Functions"), table(["Function", "Runtime", "Live version", "Updated"],
    functions.map((f) => h("tr", {},
      h("td", {}, link(f.name, "functions", f.name)), h("td", {}, f.runtime),
      h("td", {}, f.live_version ? `v${f.live_version}` : h("span", { class: "muted" }, "none")),
      h("td", {}, time(f.updated_at))))));
}

export async function functionPage(ctx, name) {
  const out = h("div", { id: "function-out" });
  const checkOut = h("div", { id: "check-out" },
    h("p", { class: "muted" }, "Press Check on a version (needs the admin role: it runs the code)."));
  const box = h("div", {});

  async function load() {
    const [fn, { versions }] = await Promise.all([
      get(fnPath(name), { signal: ctx.signal }), get(`${fnPath(name)}/versions`, { signal: ctx.signal })]);
    const rows = versions.slice().sort((a, b) => b.version - a.version).map((v) => h("tr",
      { data: { version: v.version } },
      h("td", {}, `v${v.version}`, v.live ? [" ", badge("live")] : null),
      h("td", {}, h("code", {}, (v.sha256 || "").slice(0, 12))),
      h("td", { class: "num" }, `${v.size} B`),
      h("td", {}, time(v.created_at)),
      h("td", { class: "actions" },
        actionButton("Check", async () => {
          replace(checkOut, h("p", { class: "muted" }, `Replaying the runs in flight on v${v.version}…`));
          const r = await post(`${fnPath(name)}/check`, { version: v.version });
          replace(checkOut, checkView(r));
          return null;
        }, checkOut),
        v.live ? null : actionButton("Promote", async () => {
          await post(`${fnPath(name)}/promote`, { version: v.version });
          await load();
          return `v${v.version} is live.`;
        }, out, { cls: "primary", confirmText: `Make v${v.version} of ${name} live?` }))));
    replace(box, h("p", {}, `Runtime ${fn.runtime}, live version `,
      fn.live_version ? `v${fn.live_version}` : "none", "."),
    table(["Version", "sha256", "Size", "Deployed", ""], rows, "versions"));
  }

  replace(ctx.root, h("div", { class: "crumbs" }, link("Functions", "functions"), " / ", name),
    h("h1", {}, name),
    h("p", { class: "muted" }, "Check replays a version against every queued, running, sleeping or retrying run before you promote it."),
    out, box, h("h2", {}, "Replay check"), checkOut);
  await load();
}

function checkView(r) {
  return h("div", { class: "check" },
    r.diverges === 0
      ? notice("ok", r.runs ? `v${r.version} replays all ${r.runs} runs in flight the same way: safe to promote.`
        : `No runs in flight: v${r.version} is safe to promote.`)
      : notice("error", `v${r.version} diverges on ${r.diverges} of ${r.runs} runs in flight` +
        ` (${r.safe} replay the same way).`),
    r.diverging.length ? table(["Run", "Checked", "Divergence"], r.diverging.map((d) => h("tr", {},
      h("td", {}, link(d.run_id, "jobs", d.job, "runs", d.run_id)),
      h("td", {}, `${d.checked} of ${d.recorded}`),
      h("td", {}, d.divergence || "", d.note ? h("div", { class: "muted" }, d.note) : null)))) : null);
}
