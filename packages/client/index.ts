// @reactor/client: the Reactor Jobs HTTP API (docs/http-api.md) for bun and Node >= 20.
// Mirrors the Python client (reactor_jobs/client) method for method, in camelCase:
//
//   const reactor = createClient({ url: process.env.REACTOR_URL! });
//   await reactor.auth.signInWithPassword({ email, password });
//   reactor.auth.setOrg('acme');
//   const run = await reactor.jobs.trigger('process-order', { payload: { orderId: 'ord_123' } });
//
// Every failure is a ReactorError carrying the API's `code` and the HTTP `status`.

import { readFileSync, statSync } from "node:fs";
import { packDir } from "./bundle.ts";
import { sseMessages } from "./sse.ts";
import { ReactorError, Transport, type CallOptions, type RefreshHook } from "./transport.ts";
import type {
  Backoff,
  DlqEntry,
  Event,
  FunctionCheck,
  FunctionInfo,
  Job,
  JobWithTriggers,
  JournalEvent,
  LineageRun,
  LogEvent,
  NextFires,
  Page,
  PromotedFunction,
  ReplayResult,
  Run,
  RunStateAt,
  Session,
  StateDiff,
  Trigger,
  TriggerKind,
  User,
  Version,
} from "./types.ts";

export { BundleError, packDir } from "./bundle.ts";
export { SseDecoder } from "./sse.ts";
export { ReactorError, type RefreshHook } from "./transport.ts";
export type * from "./types.ts";

const ADMIN = "/jobs/v1/_admin/jobs";
const FUNCTIONS = "/functions/v1/_admin/functions";

/** One path segment, escaped (a name cannot reach another path). */
const seg = (value: string) => encodeURIComponent(value);
const jobPath = (name: string) => `${ADMIN}/${seg(name)}`;

async function page<T>(t: Transport, key: string, path: string, options?: CallOptions): Promise<Page<T>> {
  const body = await t.call<Record<string, unknown>>("GET", path, options);
  const items = (body[key] ?? []) as T[];
  return Object.assign(items, { nextCursor: (body.next_cursor as string | null) ?? null });
}

export interface PolicyFields {
  maxAttempts?: number;
  backoff?: Backoff;
  initialDelayMs?: number;
  maxDelayMs?: number;
  maxConcurrency?: number;
  timeoutMs?: number;
}

function policyBody(fields: object): Record<string, unknown> {
  const names: Record<string, string> = {
    functionName: "function_name", maxAttempts: "max_attempts", backoff: "backoff",
    initialDelayMs: "initial_delay_ms", maxDelayMs: "max_delay_ms",
    maxConcurrency: "max_concurrency", timeoutMs: "timeout_ms",
  };
  const body: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined && key in names) body[names[key]!] = value;
  }
  return body;
}

export class Auth {
  constructor(private readonly t: Transport) {}

  /** The tokens in use (they change when the client refreshes them). */
  get session(): Session | null {
    return this.t.session;
  }
  get org(): string | null {
    return this.t.org;
  }
  /** Use tokens kept from an earlier sign-in. */
  setSession(session: Session | null): void {
    this.t.session = session;
  }
  /** The org every later request acts in (the `X-Reactor-Org` header). */
  setOrg(org: string | null): void {
    this.t.org = org;
  }

  async signInWithPassword({ email, password }: { email: string; password: string }): Promise<Session> {
    this.t.session = await this.t.call<Session>("POST", "/auth/v1/token", {
      params: { grant_type: "password" },
      json: { email, password },
      auth: false,
    });
    return this.t.session;
  }

  /** New tokens for the refresh token; done automatically when a request gets a 401. */
  refresh(): Promise<Session> {
    return this.t.refresh();
  }

  /** Route refreshes through `hook(session, exchange)` (callers that share one stored,
   * single-use refresh token between processes serialise the exchange there). */
  onRefresh(hook: RefreshHook | null): void {
    this.t.refreshHook = hook;
  }

  /** The signed-in user and the orgs they belong to, with their role in each. */
  user(): Promise<User> {
    return this.t.call<User>("GET", "/auth/v1/user");
  }

  /** Revoke the refresh token on the server and forget the tokens. */
  async signOut(): Promise<void> {
    try {
      const refreshToken = this.t.session?.refresh_token;
      if (refreshToken) {
        try {
          await this.#logout();
        } catch (err) {
          if (!(err instanceof ReactorError && err.status === 401)) throw err;
          await this.t.refresh(); // the access token expired; renew it to revoke
          await this.#logout();
        }
      }
    } catch (err) {
      if (!(err instanceof ReactorError && err.code === "unauthorized")) throw err;
    } finally {
      this.t.session = null;
    }
  }

  async #logout(): Promise<void> {
    // Not through refresh-on-401: a refresh would revoke the token before the logout could.
    const body = { refresh_token: this.t.session?.refresh_token };
    await this.t.call("POST", "/auth/v1/logout", { json: body, refresh: false });
  }
}

export interface TriggerCreate {
  kind: TriggerKind;
  schedule?: string;
  timezone?: string;
  catchUp?: "latest" | "skip" | "all";
  topic?: string;
  /** Webhooks only, write-only: requests must then be signed. */
  secret?: string;
}

export class Triggers {
  constructor(private readonly t: Transport) {}

  /** Add a trigger to job `name`. A webhook's ingress path is in `.url` (only here). */
  create(name: string, spec: TriggerCreate): Promise<Trigger> {
    const { kind, schedule, timezone, catchUp, topic, secret } = spec;
    const fields = { schedule, timezone, catch_up: catchUp, topic, secret };
    const body = Object.fromEntries(Object.entries({ kind, ...fields }).filter(([, v]) => v !== undefined));
    return this.t.call<Trigger>("POST", `${jobPath(name)}/triggers`, { json: body });
  }
  async list(name: string): Promise<Trigger[]> {
    return (await this.t.call<{ triggers: Trigger[] }>("GET", `${jobPath(name)}/triggers`)).triggers;
  }
  async delete(name: string, id: string): Promise<void> {
    await this.t.call("DELETE", `${jobPath(name)}/triggers/${seg(id)}`);
  }
  /** The next `count` (default 5) fire times of each cron trigger, from the database clock. */
  next(name: string, { count }: { count?: number } = {}): Promise<NextFires> {
    return this.t.call<NextFires>("GET", `${jobPath(name)}/triggers/next`, { params: { count } });
  }
}

export interface RunFilter {
  status?: string | string[];
  since?: Date | string;
  until?: Date | string;
  limit?: number;
  cursor?: string;
}

export class Runs {
  constructor(private readonly t: Transport) {}

  /** One page of the job's runs, newest first; `status` may name several. */
  list(name: string, filter: RunFilter = {}): Promise<Page<Run>> {
    return page<Run>(this.t, "runs", `${jobPath(name)}/runs`, { params: { ...filter } });
  }
  get(name: string, id: string): Promise<Run> {
    return this.t.call<Run>("GET", `${jobPath(name)}/runs/${seg(id)}`);
  }
  cancel(name: string, id: string): Promise<Run> {
    return this.t.call<Run>("POST", `${jobPath(name)}/runs/${seg(id)}/cancel`);
  }
  /** Queue a failed or cancelled run again, its completed steps cached. */
  retry(name: string, id: string): Promise<Run> {
    return this.t.call<Run>("POST", `${jobPath(name)}/runs/${seg(id)}/retry`);
  }
  async journal(name: string, id: string): Promise<JournalEvent[]> {
    const path = `${jobPath(name)}/runs/${seg(id)}/journal`;
    return (await this.t.call<{ events: JournalEvent[] }>("GET", path)).events;
  }
  /** Time travel: the run's state folded up to journal position `at` (default: its head). */
  state(name: string, id: string, { at }: { at?: number } = {}): Promise<RunStateAt> {
    return this.t.call<RunStateAt>("GET", `${jobPath(name)}/runs/${seg(id)}/state`, { params: { at } });
  }
  /** What changed in the run's state from journal position `a` to position `b`. */
  diff(name: string, id: string, a: number, b: number): Promise<StateDiff> {
    const path = `${jobPath(name)}/runs/${seg(id)}/state/diff`;
    return this.t.call<StateDiff>("GET", path, { params: { from: a, to: b } });
  }
  lineage(name: string, id: string): Promise<LineageRun> {
    return this.t.call<LineageRun>("GET", `${jobPath(name)}/runs/${seg(id)}/lineage`);
  }
  /** Replay-check the run on its own version (or `version`); nothing runs for real. */
  replay(name: string, id: string, { version }: { version?: number } = {}): Promise<ReplayResult> {
    const body = version === undefined ? {} : { version };
    return this.t.call<ReplayResult>("POST", `${jobPath(name)}/runs/${seg(id)}/replay`, { json: body });
  }
}

export class Dlq {
  constructor(private readonly t: Transport) {}

  /** One page of the job's dead letters, newest first (`status`: open or retried). */
  list(name: string, filter: { status?: "open" | "retried"; limit?: number; cursor?: string } = {}): Promise<Page<DlqEntry>> {
    return page<DlqEntry>(this.t, "entries", `${jobPath(name)}/dlq`, { params: { ...filter } });
  }
  /** Run the dead-lettered run again; returns the run. */
  retry(name: string, dlqId: string): Promise<Run> {
    return this.t.call<Run>("POST", `${jobPath(name)}/dlq/${seg(dlqId)}/retry`);
  }
}

export class Jobs {
  readonly triggers: Triggers;
  readonly runs: Runs;
  readonly dlq: Dlq;

  constructor(private readonly t: Transport) {
    this.triggers = new Triggers(t);
    this.runs = new Runs(t);
    this.dlq = new Dlq(t);
  }

  /** A job bound to a function; policy fields left out follow its manifest. */
  create(spec: { name: string; functionName: string } & PolicyFields): Promise<JobWithTriggers> {
    const body = { name: spec.name, ...policyBody(spec) };
    return this.t.call<JobWithTriggers>("POST", ADMIN, { json: body });
  }
  async list(): Promise<Job[]> {
    return (await this.t.call<{ jobs: Job[] }>("GET", ADMIN)).jobs;
  }
  get(name: string): Promise<Job> {
    return this.t.call<Job>("GET", jobPath(name));
  }
  /** Change the fields given; null clears a policy field back to the manifest's. */
  update(
    name: string,
    changes: { functionName?: string } & { [K in keyof PolicyFields]?: PolicyFields[K] | null },
  ): Promise<JobWithTriggers> {
    return this.t.call<JobWithTriggers>("PATCH", jobPath(name), { json: policyBody(changes) });
  }
  async delete(name: string): Promise<void> {
    await this.t.call("DELETE", jobPath(name));
  }

  /** Start a run now. With an idempotency key, a repeat returns the first run. */
  trigger(name: string, { payload = null, idempotencyKey }: { payload?: unknown; idempotencyKey?: string } = {}): Promise<Run> {
    const headers = idempotencyKey ? { "Idempotency-Key": idempotencyKey } : undefined;
    return this.t.call<Run>("POST", `/jobs/v1/${seg(name)}/trigger`, { json: { payload }, headers });
  }

  /** The job's live log: a RunEvent per journal event of its runs and a LogLine per log
   * line, from now (or after `lastEventId`; "0-0-0" replays everything); with `runId`,
   * only that run's. Ends when the server closes the stream; resume with the last `.id`.
   * Breaking out of the loop closes the stream. */
  async *logs(name: string, { lastEventId, runId }: { lastEventId?: string; runId?: string } = {}): AsyncGenerator<LogEvent> {
    const headers: Record<string, string> = { Accept: "text/event-stream", "Cache-Control": "no-cache" };
    if (lastEventId !== undefined) headers["Last-Event-ID"] = lastEventId;
    const response = await this.t.open("GET", `${jobPath(name)}/logs`, { headers, params: { run_id: runId } });
    if (response.body === null) return;
    try {
      for await (const message of sseMessages(response.body)) {
        if (message.event !== "run" && message.event !== "log") continue; // a newer kind
        yield { ...JSON.parse(message.data), kind: message.event, id: message.id } as LogEvent;
      }
    } catch (err) {
      if (err instanceof ReactorError) throw err;
      throw new ReactorError(`the log stream from ${this.t.url} broke: ${(err as Error).message}`, "connection_failed", 0);
    }
  }
}

/** A bundle archive: the bytes given, a folder packed, or a .tar.gz file read. */
export function bundleBytes(source: string | Uint8Array): Uint8Array {
  if (typeof source !== "string") return source;
  return statSync(source).isDirectory() ? packDir(source) : new Uint8Array(readFileSync(source));
}

export class Functions {
  constructor(private readonly t: Transport) {}

  create(name: string, { runtime = "python" }: { runtime?: "python" | "bun" } = {}): Promise<FunctionInfo> {
    return this.t.call<FunctionInfo>("POST", FUNCTIONS, { json: { name, runtime } });
  }
  async list(): Promise<FunctionInfo[]> {
    return (await this.t.call<{ functions: FunctionInfo[] }>("GET", FUNCTIONS)).functions;
  }
  get(name: string): Promise<FunctionInfo> {
    return this.t.call<FunctionInfo>("GET", `${FUNCTIONS}/${seg(name)}`);
  }
  /** Upload a bundle as the function's next version; it is live once promoted. `source`:
   * a folder holding function.json and code/, a .tar.gz of one, or its bytes. */
  deploy(name: string, source: string | Uint8Array): Promise<Version> {
    return this.t.call<Version>("POST", `${FUNCTIONS}/${seg(name)}/deploy`, {
      body: bundleBytes(source),
      contentType: "application/gzip",
    });
  }
  /** Make `version` live (default: the latest deployed). */
  promote(name: string, version?: number): Promise<PromotedFunction> {
    const body = version === undefined ? {} : { version };
    return this.t.call<PromotedFunction>("POST", `${FUNCTIONS}/${seg(name)}/promote`, { json: body });
  }
  async versions(name: string): Promise<Version[]> {
    return (await this.t.call<{ versions: Version[] }>("GET", `${FUNCTIONS}/${seg(name)}/versions`)).versions;
  }
  /** Replay-check `version` against every run in flight: would promoting it be safe? */
  check(name: string, { version }: { version: number }): Promise<FunctionCheck> {
    return this.t.call<FunctionCheck>("POST", `${FUNCTIONS}/${seg(name)}/check`, { json: { version } });
  }
}

export class Events {
  constructor(private readonly t: Transport) {}

  /** One page of the org's emitted events, newest first. */
  list(filter: { topic?: string; unconsumed?: boolean; limit?: number; cursor?: string } = {}): Promise<Page<Event>> {
    const params = { ...filter, unconsumed: filter.unconsumed || undefined };
    return page<Event>(this.t, "events", "/jobs/v1/_admin/events", { params });
  }
}

export class Client {
  readonly auth: Auth;
  readonly jobs: Jobs;
  readonly functions: Functions;
  readonly events: Events;
  readonly #t: Transport;

  constructor(url: string, token: string | null = null, org: string | null = null) {
    this.#t = new Transport(url, token, org);
    this.auth = new Auth(this.#t);
    this.jobs = new Jobs(this.#t);
    this.functions = new Functions(this.#t);
    this.events = new Events(this.#t);
  }

  get url(): string {
    return this.#t.url;
  }
}

/** A client of the Reactor server at `url`. `token` is an access token or a service API key
 * (`rk_…`); without one, sign in with `auth.signInWithPassword`. `org`: see `auth.setOrg`. */
export function createClient({ url, token, org }: { url: string; token?: string; org?: string }): Client {
  return new Client(url, token ?? null, org ?? null);
}
