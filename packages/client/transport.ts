// The one HTTP path of the client (mirrors reactor_jobs/client/transport.py): base URL,
// credentials and org headers, JSON in and out, one typed error, and one token refresh when
// a request is refused with 401. Concurrent requests that fail together refresh once (the
// refresh token is single-use). No error message carries a token.

import type { Session } from "./types.ts";

export const ORG_HEADER = "X-Reactor-Org";

/** Every failure of the client: the API's error `code`, the HTTP `status` (0 when the
 * server was not reached), its request id and, for 429, `retryAfter` seconds. */
export class ReactorError extends Error {
  override name = "ReactorError";
  constructor(
    message: string,
    readonly code: string,
    readonly status: number,
    readonly requestId: string | null = null,
    readonly retryAfter: number | null = null,
  ) {
    super(message);
  }
}

export type Exchange = (refreshToken: string) => Promise<Session>;
/** Given the session in use and the exchange, the session to use from now on. */
export type RefreshHook = (session: Session, exchange: Exchange) => Promise<Session>;

export interface CallOptions {
  json?: unknown;
  body?: Uint8Array;
  contentType?: string;
  params?: Record<string, string | number | boolean | string[] | Date | null | undefined>;
  headers?: Record<string, string>;
  auth?: boolean;
  refresh?: boolean;
}

export class Transport {
  readonly url: string;
  session: Session | null;
  org: string | null;
  refreshHook: RefreshHook | null = null;
  #refreshing: Promise<Session> | null = null;

  constructor(url: string, token: string | null, org: string | null) {
    this.url = url.replace(/\/+$/, "");
    this.session = token ? { access_token: token } : null;
    this.org = org;
  }

  /** The decoded JSON body of a successful request (null for an empty body). */
  async call<T = unknown>(method: string, path: string, options: CallOptions = {}): Promise<T> {
    const response = await this.open(method, path, options);
    const text = await this.#text(response);
    return (text ? JSON.parse(text) : null) as T;
  }

  /** A successful response whose body is not read yet (the SSE log); errors are raised. */
  async open(method: string, path: string, options: CallOptions = {}): Promise<Response> {
    const { auth = true, refresh = true } = options;
    for (const firstTry of [true, false]) {
      const token = auth ? (this.session?.access_token ?? null) : null;
      const response = await this.#send(method, path, options, token);
      if (response.status === 401 && firstTry && token && refresh && this.#canRefresh()) {
        await response.body?.cancel();
        await this.#refreshAfter(token);
        continue;
      }
      if (response.status >= 400) throw await errorFor(response, await this.#text(response));
      return response;
    }
    throw new Error("unreachable");
  }

  async #send(
    method: string,
    path: string,
    options: CallOptions,
    token: string | null,
  ): Promise<Response> {
    const headers: Record<string, string> = { ...options.headers };
    let body: string | Uint8Array | undefined = options.body;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers["Content-Type"] = "application/json";
    } else if (options.contentType) {
      headers["Content-Type"] = options.contentType;
    }
    if (token) headers.Authorization = `Bearer ${token}`;
    if (this.org) headers[ORG_HEADER] = this.org;
    try {
      return await fetch(this.url + path + query(options.params), {
        method,
        headers,
        body: body as BodyInit | undefined,
      });
    } catch (err) {
      throw new ReactorError(
        `cannot reach the Reactor server at ${this.url}: ${(err as Error).message}`,
        "connection_failed",
        0,
      );
    }
  }

  async #text(response: Response): Promise<string> {
    try {
      return await response.text();
    } catch (err) {
      throw new ReactorError(
        `the connection to ${this.url} failed: ${(err as Error).message}`,
        "connection_failed",
        0,
      );
    }
  }

  #canRefresh(): boolean {
    return Boolean(this.session?.refresh_token);
  }

  async #refreshAfter(staleToken: string): Promise<void> {
    if (this.#refreshing) {
      await this.#refreshing;
      return;
    }
    if (this.session !== null && this.session.access_token !== staleToken) return;
    await this.refresh();
  }

  /** Trade the refresh token for new tokens (the old refresh token is revoked). */
  async refresh(): Promise<Session> {
    if (this.#refreshing) return this.#refreshing;
    const held = this.session;
    if (!held?.refresh_token) {
      throw new ReactorError(
        "Not signed in: this needs a refresh token; sign in with a password first.",
        "unauthorized",
        0,
      );
    }
    const exchange: Exchange = (token) => this.exchange(token);
    this.#refreshing = (this.refreshHook ? this.refreshHook(held, exchange) : exchange(held.refresh_token))
      .then((session) => (this.session = session))
      .finally(() => (this.#refreshing = null));
    return this.#refreshing;
  }

  /** POST the refresh token for a new pair (the server revokes the one sent). */
  exchange(refreshToken: string): Promise<Session> {
    return this.call<Session>("POST", "/auth/v1/token", {
      params: { grant_type: "refresh_token" },
      json: { refresh_token: refreshToken },
      auth: false,
    });
  }
}

/** Query parameters, leaving out the ones not given. */
export function query(params: CallOptions["params"]): string {
  const out = new URLSearchParams();
  for (const [key, value] of Object.entries(params ?? {})) {
    if (value === null || value === undefined) continue;
    if (typeof value === "boolean") out.set(key, value ? "true" : "false");
    else if (value instanceof Date) out.set(key, value.toISOString());
    else if (Array.isArray(value)) out.set(key, value.join(","));
    else out.set(key, String(value));
  }
  const text = out.toString();
  return text ? `?${text}` : "";
}

async function errorFor(response: Response, body: string): Promise<ReactorError> {
  const requestId = response.headers.get("X-Request-Id");
  const retryAfter = Number(response.headers.get("Retry-After") ?? NaN);
  let code = response.status >= 500 ? "internal" : `http_${response.status}`;
  let message = `HTTP ${response.status}: ${body.slice(0, 200).trim() || "no body"}`;
  try {
    const error = JSON.parse(body).error;
    if (typeof error?.code === "string" && typeof error?.message === "string") {
      ({ code, message } = error);
    }
  } catch {
    // not the API's error shape (a proxy's page): keep the status-derived code
  }
  return new ReactorError(message, code, response.status, requestId, Number.isFinite(retryAfter) ? retryAfter : null);
}
