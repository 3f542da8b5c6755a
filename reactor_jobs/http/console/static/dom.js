// Building the page without ever parsing data as HTML: every node is made with
// createElement and every piece of text goes in through a Text node (or textContent).
// Attributes are set one by one; links may only point inside the console (#/…).

const PROPS = new Set(["value", "checked", "disabled", "min", "max", "step", "type", "placeholder",
  "name", "rows", "autocomplete", "required", "selected", "title", "id", "htmlFor"]);

export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "href") node.setAttribute("href", safeHref(value));
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "data") {
      for (const [k, v] of Object.entries(value)) node.dataset[k] = String(v);
    } else if (PROPS.has(key)) node[key] = value;
    else if (/^(aria-[a-z]+|role|for|colspan|open|tabindex)$/.test(key)) {
      node.setAttribute(key, String(value));
    } else throw new Error(`attribute ${key} is not allowed`);
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

function safeHref(value) {
  const text = String(value);
  if (text.startsWith("#/") || text === "#") return text;
  throw new Error("the console links only to its own pages");
}

// A route link: each part is a path segment, encoded.
export function route(...parts) {
  return "#/" + parts.map((p) => encodeURIComponent(String(p))).join("/");
}

export function link(text, ...parts) {
  return h("a", { href: route(...parts) }, text);
}

export function json(value, compact = false) {
  if (value === undefined) return "";
  return compact ? JSON.stringify(value) : JSON.stringify(value, null, 2);
}

export function jsonBlock(value, cls = "json") {
  return h("pre", { class: cls }, json(value));
}

export function badge(status) {
  return h("span", { class: `badge s-${String(status).replace(/[^a-z_]/g, "")}` }, status);
}

export function time(value) {
  if (!value) return "";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z").replace(/Z$/, " UTC");
}

export function ago(value) {
  if (!value) return "";
  const s = (Date.now() - new Date(value).getTime()) / 1000;
  if (s < 0) return `in ${duration(-s * 1000)}`;
  return `${duration(s * 1000)} ago`;
}

export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "";
  if (ms === 0) return "0 ms";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = s / 60;
  if (m < 60) return Math.round(s % 60) ? `${Math.floor(m)} min ${Math.round(s % 60)} s` : `${Math.floor(m)} min`;
  const hrs = m / 60;
  if (hrs < 48) return `${Math.floor(hrs)} h ${Math.round(m % 60)} min`;
  return `${Math.floor(hrs / 24)} d ${Math.round(hrs % 24)} h`;
}

export function table(headers, rows, cls = "") {
  return h("table", { class: cls },
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.length ? rows
      : h("tr", {}, h("td", { class: "muted", colspan: headers.length }, "nothing here"))));
}

export function notice(kind, ...text) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, ...text);
}
