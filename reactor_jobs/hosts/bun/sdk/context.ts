// The JobContext a bun function's `fetch(request, env, ctx)` receives. It answers recorded
// calls locally (docs/host-protocol.md, "The SDK answers recorded calls locally") and sends
// every new decision through a Channel: the host's attempt, or a fake in tests.

import { AsyncLocalStorage } from "node:async_hooks";
import { DataClient, DataRequestError, type DataRequest, type DataResult } from "./data.ts";
import { parseDuration, type Duration } from "./duration.ts";
import {
  AttemptSignal,
  describeError,
  isAttemptSignal,
  type ErrorInfo,
} from "./errors.ts";
import { jsonEqual, toJsonValue } from "./json.ts";

export type Recorded =
  | { kind: "step"; name: string; output?: unknown; failed?: boolean }
  | { kind: "emit"; name: string; event_id: string }
  | { kind: "sleep"; name: string; done?: boolean }
  | { kind: "data"; name: string; data?: unknown; count?: number | null };

export type Proposal =
  | { t: "step"; pos: number; name: string; output: unknown; duration_ms: number }
  | { t: "step"; pos: number; name: string; error: ErrorInfo }
  | { t: "step"; pos: number; name: string; replay: true }
  | { t: "state"; key: string; value: unknown }
  | { t: "state"; key: string; deleted: true }
  | { t: "emit"; pos: number; name: string; payload: unknown }
  | { t: "sleep"; pos: number; name: string; ms: number; replay?: boolean }
  | { t: "sleep"; pos: number; name: string; until: string; replay?: boolean }
  | { t: "data"; pos: number; name: string; request: DataRequest; replay?: boolean }
  | { t: "data"; in_step: true; name: string; request: DataRequest };

export interface Ack {
  event_id?: string;
  /** Audit replays: a step's recorded output. */
  output?: unknown;
  /** A sleep that is already over: go on instead of suspending. */
  resume?: boolean;
  /** A data call's rows and count, or the error the Data API answered. */
  data?: unknown;
  count?: number | null;
  error?: { code: string; message: string };
}

/** Which step the current code runs in (data calls inside a step are plain calls). */
const inStep = new AsyncLocalStorage<string>();

export type LogLevel = "debug" | "info" | "warning" | "error";

/** What the context needs from its host: proposals answered by ack (resolve) or nack
 * (reject), logs, a step's code run as that step, and the end of the attempt on a sleep. */
export interface Channel {
  propose(proposal: Proposal): Promise<Ack>;
  log(level: LogLevel, message: string, fields: Record<string, unknown> | null): void;
  runStep<T>(key: string, fn: () => T | Promise<T>): Promise<T>;
  describe(err: unknown): ErrorInfo;
  /** Called after a sleep's ack: reports the attempt suspended. */
  suspend(): void;
}

/** Who and what this run is (the invoke's `run`). */
export interface RunInfo {
  run_id: string;
  attempt: number;
  job: string;
  org: string;
  trigger: unknown;
  payload: unknown;
}

export interface ContextInit {
  run: RunInfo;
  state?: Record<string, unknown>;
  recorded?: Recorded[];
  /** An audit replay: step functions never run; the worker answers every decision. */
  replay?: boolean;
  channel: Channel;
}

const MAX_NAME = 200;

export function checkName(name: unknown, kind: string): asserts name is string {
  if (typeof name !== "string" || name.length === 0 || name.length > MAX_NAME || name.includes("\0")) {
    throw new TypeError(`a ${kind} name must be a non-empty string of at most ${MAX_NAME} characters`);
  }
}

/** The run's durable key-value state: reads are local, writes are proposals. */
export class RunState {
  readonly #values: Map<string, unknown>;
  readonly #channel: Channel;

  constructor(values: Record<string, unknown>, channel: Channel) {
    this.#values = new Map(Object.entries(values));
    this.#channel = channel;
  }

  get<T = unknown>(key: string): T | undefined {
    return this.#values.get(key) as T | undefined;
  }

  has(key: string): boolean {
    return this.#values.has(key);
  }

  keys(): string[] {
    return [...this.#values.keys()];
  }

  entries(): [string, unknown][] {
    return [...this.#values.entries()];
  }

  get size(): number {
    return this.#values.size;
  }

  toJSON(): Record<string, unknown> {
    return Object.fromEntries(this.#values);
  }

  async set(key: string, value: unknown): Promise<void> {
    checkName(key, "state key");
    const stored = toJsonValue(value, `state '${key}'`);
    if (this.#values.has(key) && jsonEqual(this.#values.get(key), stored)) {
      return; // a replay writing what is already there proposes nothing
    }
    await this.#channel.propose({ t: "state", key, value: stored });
    this.#values.set(key, stored);
  }

  async delete(key: string): Promise<void> {
    if (!this.#values.has(key)) return;
    await this.#channel.propose({ t: "state", key, deleted: true });
    this.#values.delete(key);
  }
}

/** Structured log lines of the attempt, tied to the current step by the host. */
export class RunLog {
  constructor(readonly channel: Channel) {}

  debug(message: string, fields?: Record<string, unknown>): void {
    this.channel.log("debug", String(message), fields ?? null);
  }
  info(message: string, fields?: Record<string, unknown>): void {
    this.channel.log("info", String(message), fields ?? null);
  }
  warn(message: string, fields?: Record<string, unknown>): void {
    this.channel.log("warning", String(message), fields ?? null);
  }
  /** The Python SDK's name for warn. */
  warning(message: string, fields?: Record<string, unknown>): void {
    this.warn(message, fields);
  }
  error(message: string, fields?: Record<string, unknown>): void {
    this.channel.log("error", String(message), fields ?? null);
  }
}

export class JobContext {
  readonly runId: string;
  readonly attempt: number;
  readonly job: string;
  readonly org: string;
  readonly trigger: unknown;
  readonly payload: unknown;
  readonly state: RunState;
  readonly log: RunLog;
  readonly #channel: Channel;
  readonly #recorded: Recorded[];
  readonly #replay: boolean;
  readonly #uses = new Map<string, number>();
  readonly #data: DataClient;
  #position = 0;

  constructor(init: ContextInit) {
    this.runId = init.run.run_id;
    this.attempt = init.run.attempt;
    this.job = init.run.job;
    this.org = init.run.org;
    this.trigger = init.run.trigger;
    this.payload = init.run.payload;
    this.#channel = init.channel;
    this.#recorded = init.recorded ?? [];
    this.#replay = init.replay ?? false;
    this.state = new RunState(init.state ?? {}, init.channel);
    this.log = new RunLog(init.channel);
    this.#data = new DataClient((request) => this.#dataCall(request));
  }

  /** The Data client over the org's own tables (postgrest-js's builder). */
  get data(): DataClient {
    return this.#data;
  }

  async #dataCall(request: DataRequest): Promise<DataResult> {
    const name = `data:${request.table ?? `rpc/${request.rpc}`}`;
    if (request.body !== undefined) request.body = toJsonValue(request.body, `the body of ${name}`);
    let ack: Ack;
    if (inStep.getStore() !== undefined) {
      ack = await this.#channel.propose({ t: "data", in_step: true, name, request });
    } else {
      const key = this.#key(name, "data");
      const pos = this.#position++;
      const recorded = this.#take(pos);
      if (recorded?.kind === "data" && recorded.name === key) {
        return { data: recorded.data ?? null, count: recorded.count ?? null, error: null };
      }
      const proposal: Proposal = this.#replay
        ? { t: "data", pos, name: key, request, replay: true }
        : { t: "data", pos, name: key, request };
      ack = await this.#channel.propose(proposal);
    }
    if (ack.error) throw new DataRequestError(ack.error.code, ack.error.message);
    return { data: ack.data ?? null, count: ack.count ?? null, error: null };
  }

  /** Run fn once per run: a recorded output is returned without calling fn again. */
  async step<T>(name: string, fn: () => T | Promise<T>): Promise<T> {
    const key = this.#key(name, "step");
    const pos = this.#position++;
    const recorded = this.#take(pos);
    if (recorded?.kind === "step" && recorded.name === key && !recorded.failed) {
      return recorded.output as T;
    }
    if (this.#replay) {
      // an audit replay never runs a step: the recording answers
      return (await this.#channel.propose({ t: "step", pos, name: key, replay: true })).output as T;
    }
    const started = performance.now();
    let output: T;
    try {
      output = await this.#channel.runStep(key, () => inStep.run(key, fn));
    } catch (err) {
      if (!isAttemptSignal(err)) {
        await this.#channel.propose({ t: "step", pos, name: key, error: this.#channel.describe(err) });
      }
      throw err;
    }
    const stored = toJsonValue(output, `the output of step '${key}'`);
    const duration_ms = Math.round((performance.now() - started) * 1000) / 1000;
    await this.#channel.propose({ t: "step", pos, name: key, output: stored, duration_ms });
    return stored as T;
  }

  /** Record an event on `topic` once per run; returns its id (the same on replays). Jobs
   * with an event trigger on exactly that topic start a run each. */
  async emit(topic: string, payload: unknown = null): Promise<string> {
    checkName(topic, "topic");
    const pos = this.#position++;
    const recorded = this.#take(pos);
    if (recorded?.kind === "emit" && recorded.name === topic) return recorded.event_id;
    const stored = toJsonValue(payload, `the payload of event '${topic}'`);
    const ack = await this.#channel.propose({ t: "emit", pos, name: topic, payload: stored });
    return ack.event_id ?? "";
  }

  /** Release the worker; resume after `duration` ("500ms", "30s", "15m", "24h", "7d", or
   * seconds; at most 365 days) past this call, by the database's clock. */
  async sleep(name: string, duration: Duration): Promise<void> {
    const ms = parseDuration(duration);
    const key = this.#key(name, "sleep");
    await this.#sleep(key, { ms });
  }

  /** Release the worker; resume at `when`. */
  async sleepUntil(name: string, when: Date | string): Promise<void> {
    const at = typeof when === "string" ? new Date(when) : when;
    if (!(at instanceof Date) || Number.isNaN(at.getTime())) {
      throw new TypeError("sleepUntil needs a Date (or an ISO 8601 time with its zone)");
    }
    const key = this.#key(name, "sleep");
    await this.#sleep(key, { until: at.toISOString() });
  }

  async #sleep(key: string, when: { ms: number } | { until: string }): Promise<void> {
    const pos = this.#position++;
    const recorded = this.#take(pos);
    if (recorded?.kind === "sleep" && recorded.name === key && recorded.done) return;
    const proposal = { t: "sleep", pos, name: key, ...when, replay: this.#replay } as Proposal;
    if ((await this.#channel.propose(proposal)).resume) return;
    this.#channel.suspend();
    throw new AttemptSignal("suspended");
  }

  /** What was recorded at this position (nothing in an audit replay). */
  #take(pos: number): Recorded | undefined {
    return this.#replay ? undefined : this.#recorded[pos];
  }

  #key(name: string, kind: "step" | "sleep" | "data"): string {
    checkName(name, kind);
    const uses = (this.#uses.get(`${kind}:${name}`) ?? 0) + 1;
    this.#uses.set(`${kind}:${name}`, uses);
    return uses === 1 ? name : `${name}#${uses}`;
  }
}

/** A channel that runs everything locally: for unit tests of job code. Proposals are
 * recorded in `proposals` and acked at once; emits get ids `evt_1`, `evt_2`, … */
export class LocalChannel implements Channel {
  readonly proposals: Proposal[] = [];
  readonly logs: { level: LogLevel; message: string; fields: Record<string, unknown> | null }[] = [];
  suspended = false;
  #events = 0;

  async propose(proposal: Proposal): Promise<Ack> {
    this.proposals.push(proposal);
    return proposal.t === "emit" ? { event_id: `evt_${++this.#events}` } : {};
  }
  log(level: LogLevel, message: string, fields: Record<string, unknown> | null): void {
    this.logs.push({ level, message, fields });
  }
  async runStep<T>(_key: string, fn: () => T | Promise<T>): Promise<T> {
    return await fn();
  }
  describe(err: unknown): ErrorInfo {
    return describeError(err);
  }
  suspend(): void {
    this.suspended = true;
  }
}
