// The console's only way to the server: the public HTTP API, same origin, with the signed-in
// user's bearer token and the chosen org. Tokens live in sessionStorage (this tab only,
// gone when it closes); nothing is ever put in a URL, a cookie or localStorage.

const KEY = "reactor-console";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const session = {
  load() {
    try { return JSON.parse(sessionStorage.getItem(KEY)) || null; } catch { return null; }
  },
  save(value) { sessionStorage.setItem(KEY, JSON.stringify(value)); },
  clear() { sessionStorage.removeItem(KEY); },
  get() { return this.load() || {}; },
  update(fields) { this.save({ ...this.get(), ...fields }); },
};

async function errorOf(response) {
  let code = "http_" + response.status;
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error) ({ code, message } = body.error);
  } catch { /* not JSON */ }
  return new ApiError(response.status, code, message);
}

async function tokenRequest(grant, body) {
  const response = await fetch(`/auth/v1/token?grant_type=${grant}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

export async function signIn(email, password) {
  const tokens = await tokenRequest("password", { email, password });
  session.save({ email, access: tokens.access_token, refresh: tokens.refresh_token });
  const user = await call("GET", "/auth/v1/user");
  const orgs = user.orgs || [];
  session.update({ orgs, org: orgs.length ? orgs[0].name : null });
  return user;
}

let refreshing = null;

async function refresh() {
  const { refresh: token } = session.get();
  if (!token) throw new ApiError(401, "unauthorized", "signed out");
  // Concurrent 401s share one refresh: a refresh token is good for one use only.
  refreshing ||= tokenRequest("refresh_token", { refresh_token: token })
    .then((t) => session.update({ access: t.access_token, refresh: t.refresh_token }))
    .finally(() => { refreshing = null; });
  return refreshing;
}

export async function signOut() {
  const { refresh: token, access } = session.get();
  session.clear();
  if (token) {
    await fetch("/auth/v1/logout", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${access}` },
      body: JSON.stringify({ refresh_token: token }),
    }).catch(() => {});
  }
}

function headers(extra) {
  const s = session.get();
  const out = { Accept: "application/json", ...extra };
  if (s.access) out.Authorization = `Bearer ${s.access}`;
  if (s.org) out["X-Reactor-Org"] = s.org;
  return out;
}

export async function call(method, path, body, { signal, retried = false } = {}) {
  const init = { method, headers: headers(), signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401 && !retried && session.get().refresh) {
    try { await refresh(); } catch (e) { session.clear(); throw e; }
    return call(method, path, body, { signal, retried: true });
  }
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return null;
  return response.json();
}

export const get = (path, opts) => call("GET", path, undefined, opts);
export const post = (path, body = {}, opts) => call("POST", path, body, opts);

export function q(path, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") query.set(k, String(v));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

export const enc = encodeURIComponent;
export const jobPath = (name) => `/jobs/v1/_admin/jobs/${enc(name)}`;
export const runPath = (job, id) => `${jobPath(job)}/runs/${enc(id)}`;
export const fnPath = (name) => `/functions/v1/_admin/functions/${enc(name)}`;

// Server-Sent Events over fetch (EventSource cannot send an Authorization header). Calls
// onEvent(kind, data, id) per event; reconnects from the last id after an error until
// `signal` aborts.
export async function stream(path, lastId, onEvent, signal) {
  let last = lastId;
  while (!signal.aborted) {
    try {
      const extra = { Accept: "text/event-stream" };
      if (last) extra["Last-Event-ID"] = last;
      const response = await fetch(path, { headers: headers(extra), signal });
      if (response.status === 401) { await refresh(); continue; }
      if (!response.ok) throw await errorOf(response);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let kind = "message", data = [], id = null;
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) continue;
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "event") kind = val;
            else if (field === "data") data.push(val);
            else if (field === "id") id = val;
          }
          if (id) last = id;
          if (data.length) onEvent(kind, JSON.parse(data.join("\n")), id);
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof ApiError && e.status !== 401 && e.status < 500) throw e;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
