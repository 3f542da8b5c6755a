// Pieces several pages share: action buttons that report the API's own answer, and small
// summaries of runs and errors.

import { ApiError } from "../api.js";
import { badge, h, json, notice, replace } from "../dom.js";

// A button that runs `action`, then shows its outcome in `out` (the API's error message as
// is: a member refused a promote reads the server's 403 text).
export function actionButton(label, action, out, { cls = "", confirmText = null } = {}) {
  const button = h("button", { class: cls, onclick: async () => {
    if (confirmText && !window.confirm(confirmText)) return;
    button.disabled = true;
    try {
      const message = await action();
      if (message) replace(out, notice("ok", message));
    } catch (err) {
      const prefix = err instanceof ApiError ? `${err.status} ${err.code}: ` : "";
      replace(out, notice("error", prefix + err.message));
    } finally { button.disabled = false; }
  } }, label);
  return button;
}

export function errorView(error) {
  if (!error) return null;
  if (typeof error !== "object") return h("div", { class: "error" }, String(error));
  return h("div", { class: "error" },
    h("div", {}, h("strong", {}, error.type || "error"), ": ", error.message ?? json(error, true),
      error.retryable === false ? h("span", { class: "tag" }, "not retryable") : null),
    error.traceback ? h("pre", { class: "traceback" }, error.traceback) : null);
}

export function status(s) { return badge(s); }

export function field(label, ...value) {
  return h("div", { class: "field" }, h("span", { class: "label" }, label), h("span", {}, ...value));
}

export const STATUSES = ["queued", "running", "sleeping", "retrying", "completed", "failed",
  "cancelled"];

export function parseHashQuery() {
  const query = location.hash.split("?")[1] || "";
  return new URLSearchParams(query);
}

export function setHashQuery(params) {
  const base = location.hash.split("?")[0];
  const text = params.toString();
  history.replaceState(null, "", text ? `${base}?${text}` : base);
}
