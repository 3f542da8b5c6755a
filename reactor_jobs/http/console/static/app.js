// The console's shell: sign-in, the org picker, navigation and a hash router. Each page is
// an async function (ctx, ...params) that renders into ctx.root; ctx.signal aborts and
// ctx.every() timers stop when the user leaves the page.

import { ApiError, session, signIn, signOut } from "./api.js";
import { h, link, notice, replace } from "./dom.js";
import { dlqPage } from "./pages/dlq.js";
import { eventsPage } from "./pages/events.js";
import { functionPage, functionsPage } from "./pages/functions.js";
import { jobPage, jobsPage } from "./pages/jobs.js";
import { runPage } from "./pages/run.js";

const ROUTES = [
  [/^jobs$/, jobsPage],
  [/^jobs\/([^/]+)$/, jobPage],
  [/^jobs\/([^/]+)\/runs\/([^/]+)$/, runPage],
  [/^dlq$/, dlqPage],
  [/^functions$/, functionsPage],
  [/^functions\/([^/]+)$/, functionPage],
  [/^events$/, eventsPage],
];

const top = document.getElementById("top");
const main = document.getElementById("page");
let current = null;

function leave() {
  if (!current) return;
  current.abort.abort();
  for (const timer of current.timers) clearInterval(timer);
  current = null;
}

function context() {
  const abort = new AbortController();
  const ctx = {
    abort, timers: [], root: main, signal: abort.signal,
    every(ms, fn) {
      const timer = setInterval(() => {
        if (!abort.signal.aborted && !document.hidden) fn();
      }, ms);
      ctx.timers.push(timer);
    },
    get live() { return !abort.signal.aborted; },
  };
  return ctx;
}

function header() {
  const s = session.get();
  const orgs = s.orgs || [];
  const role = (orgs.find((o) => o.name === s.org) || {}).role;
  const picker = h("select", { "aria-label": "Organization", id: "org",
    onchange: (e) => { session.update({ org: e.target.value }); header(); show(); } },
  orgs.map((o) => h("option", { value: o.name, selected: o.name === s.org }, o.name)));
  const here = location.hash.split("/")[1] || "jobs";
  const nav = [["jobs", "Jobs"], ["functions", "Functions"], ["dlq", "Dead letters"],
    ["events", "Events"]].map(([key, label]) => h("a", {
    href: `#/${key}`, class: here === key ? "active" : "" }, label));
  replace(top,
    h("a", { href: "#/jobs", class: "brand" }, "Reactor Jobs"),
    h("nav", {}, nav),
    h("span", { class: "spacer" }),
    h("span", { class: "who" }, s.email || "", role ? ` · ${role}` : ""),
    orgs.length ? picker : h("span", { class: "muted" }, "no org"),
    h("button", { class: "link", onclick: async () => { await signOut(); start(); } },
      "Sign out"));
}

function signInPage(message) {
  leave();
  replace(top, h("span", { class: "brand" }, "Reactor Jobs"));
  const error = h("div", {});
  if (message) replace(error, notice("error", message));
  const email = h("input", { type: "email", name: "email", id: "email", autocomplete: "username",
    required: true });
  const password = h("input", { type: "password", name: "password", id: "password",
    autocomplete: "current-password", required: true });
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { class: "signin", onsubmit: async (e) => {
    e.preventDefault();
    button.disabled = true;
    try {
      await signIn(email.value, password.value);
      if (location.hash === "" || location.hash === "#/signin") location.hash = "#/jobs";
      start();
    } catch (err) {
      replace(error, notice("error", err.message));
    } finally { button.disabled = false; }
  } },
  h("h1", {}, "Sign in"),
  h("p", { class: "muted" }, "The same accounts, orgs and roles as the API and the CLI."),
  h("label", { htmlFor: "email" }, "Email"), email,
  h("label", { htmlFor: "password" }, "Password"), password,
  error, button);
  replace(main, form);
  email.focus();
}

async function show() {
  leave();
  if (!session.get().access) { signInPage(); return; }
  header();
  const raw = location.hash.replace(/^#\/?/, "").split("?")[0] || "jobs";
  const ctx = context();
  current = ctx;
  for (const [pattern, page] of ROUTES) {
    const match = raw.match(pattern);
    if (!match) continue;
    const params = match.slice(1).map(decodeURIComponent);
    replace(main, h("p", { class: "muted" }, "Loading…"));
    try {
      await page(ctx, ...params);
    } catch (err) {
      if (!ctx.live) return;
      if (err instanceof ApiError && err.status === 401) { session.clear(); signInPage(err.message); return; }
      replace(main, notice("error", err.message));
    }
    return;
  }
  replace(main, notice("error", `No page at ${raw}. `, link("Jobs", "jobs")));
}

function start() {
  if (!session.get().access) signInPage(); else show();
}

window.addEventListener("hashchange", show);
window.addEventListener("unhandledrejection", (e) => {
  if (e.reason instanceof ApiError && e.reason.status === 401) { session.clear(); signInPage(e.reason.message); }
});
start();
