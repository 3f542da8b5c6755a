// One attempt inside the host: the JobContext's Channel over the session (proposals wait
// for ack/nack), its log lines, cancel, and the one `done` that ends it. After `done`
// nothing more is sent for the attempt: the worker would take that as a protocol error.

import { AsyncLocalStorage } from "node:async_hooks";
import {
  AttemptSignal,
  JobContext,
  ReactorJobsError,
  StepOutputError,
  describeError,
  isAttemptSignal,
  toJsonValue,
  type Ack,
  type Channel,
  type ErrorInfo,
  type LogLevel,
  type Proposal,
  type Recorded,
  type RunInfo,
} from "./sdk/index.ts";
import type { Message } from "./frames.ts";

/** The attempt (and step) the running code belongs to: console output finds it here. */
export const current = new AsyncLocalStorage<{ attempt: Attempt; step: string | null }>();

export interface Handler {
  fetch(request: Request, env: Record<string, string>, ctx: JobContext): unknown;
}

export interface Invoke {
  id: string;
  fn: string;
  timeout_ms?: number;
  env?: Record<string, string>;
  run: RunInfo;
  request?: {
    method?: string;
    url?: string;
    headers?: Record<string, string>;
    content_type?: string;
    payload?: unknown;
  };
  state?: Record<string, unknown>;
  recorded?: Recorded[];
  replay?: boolean;
}

// In characters, as the Python host cuts them.
const MAX_LOG = 16_000;
const MAX_MESSAGE = 4000;
const MAX_TRACEBACK = 8000;

type Pending = { resolve: (ack: Ack) => void; reject: (err: unknown) => void };

export class Attempt implements Channel {
  readonly id: string;
  over = false;
  #nextReq = 1;
  readonly #pending = new Map<number, Pending>();

  constructor(
    invoke: Invoke,
    private readonly send: (message: Message) => void,
    private readonly frames: (stack: string) => string,
    private readonly onOver: (id: string) => void,
  ) {
    this.id = invoke.id;
  }

  /** Run the handler to its `done`. */
  async run(handler: Handler, invoke: Invoke): Promise<void> {
    const ctx = new JobContext({
      run: invoke.run,
      state: invoke.state ?? {},
      recorded: invoke.recorded ?? [],
      replay: invoke.replay === true,
      channel: this,
    });
    await current.run({ attempt: this, step: null }, async () => {
      try {
        const request = toRequest(invoke);
        const result = await handler.fetch(request, Object.freeze({ ...invoke.env }), ctx);
        this.finish({ outcome: "completed", output: await toOutput(result) });
      } catch (err) {
        if (isAttemptSignal(err)) return;
        const error = this.describe(err);
        if (err instanceof StepOutputError) error.retryable = false; // it would fail again
        this.finish({ outcome: "failed", error });
      }
    });
  }

  propose(proposal: Proposal): Promise<Ack> {
    if (this.over) return Promise.reject(new AttemptSignal("cancelled"));
    const req = this.#nextReq++;
    return new Promise<Ack>((resolve, reject) => {
      this.#pending.set(req, { resolve, reject });
      this.send({ ...proposal, id: this.id, req });
    });
  }

  answer(message: Message): void {
    const pending = this.#pending.get(message.req);
    if (pending === undefined) return;
    this.#pending.delete(message.req);
    if (message.t === "ack") {
      // Everything the worker answered (a data call's rows, count and error, a replay's
      // output, a sleep's resume), not only an emit's event_id.
      const { t: _t, id: _id, req: _req, ...ack } = message;
      pending.resolve(ack as Ack);
    } else {
      const error = message.error ?? {};
      pending.reject(new ReactorJobsError(error.type ?? "Refused", error.message ?? "refused"));
    }
  }

  log(level: LogLevel, message: string, fields: Record<string, unknown> | null): void {
    if (this.over) return;
    const step = current.getStore()?.step ?? null;
    const line = { t: "log", id: this.id, level, message: message.slice(0, MAX_LOG), step };
    try {
      this.send({ ...line, fields });
    } catch {
      // fields that JSON cannot hold, or a frame over the limit: keep the line, say why
      this.send({ ...line, fields: { dropped: "the fields could not be sent as JSON" } });
    }
  }

  runStep<T>(key: string, fn: () => T | Promise<T>): Promise<T> {
    if (this.over) return Promise.reject(new AttemptSignal("cancelled"));
    return current.run({ attempt: this, step: key }, async () => await fn());
  }

  describe(err: unknown): ErrorInfo {
    const info = describeError(err, this.frames);
    info.message = info.message.slice(0, MAX_MESSAGE);
    if (info.traceback !== undefined) info.traceback = info.traceback.slice(-MAX_TRACEBACK);
    return info;
  }

  suspend(): void {
    this.finish({ outcome: "suspended" });
  }

  cancel(): void {
    this.finish({
      outcome: "failed",
      error: { type: "Cancelled", message: "the worker stopped this attempt", retryable: true },
    });
  }

  finish(done: { outcome: string; output?: unknown; error?: ErrorInfo }): void {
    if (this.over) return;
    this.over = true;
    this.onOver(this.id);
    const signal = new AttemptSignal(done.outcome === "suspended" ? "suspended" : "cancelled");
    for (const pending of this.#pending.values()) pending.reject(signal);
    this.#pending.clear();
    this.send({ t: "done", id: this.id, ...done });
  }
}

const JSON_TYPE = /^application\/([\w.+-]+\+)?json\b/i;

/** The web Request user code reads (`await request.json()`). */
export function toRequest(invoke: Invoke): Request {
  const spec = invoke.request ?? {};
  const method = (spec.method ?? "POST").toUpperCase();
  const headers = new Headers(spec.headers ?? {});
  const contentType = spec.content_type ?? headers.get("content-type") ?? "application/json";
  if (!headers.has("content-type")) headers.set("content-type", contentType);
  const url = new URL(spec.url ?? "/", "http://localhost").toString();
  if (method === "GET" || method === "HEAD") return new Request(url, { method, headers });
  const payload = spec.payload ?? invoke.run.payload ?? null;
  const body =
    typeof payload === "string" && !JSON_TYPE.test(contentType) ? payload : JSON.stringify(payload);
  return new Request(url, { method, headers, body });
}

/** The function's result as the run's output, as the Python host makes it
 * (functions/messages.py, to_output): a Response's body, parsed when it is JSON, else its
 * text, null when empty (the status is not part of it); anything else must be JSON. */
export async function toOutput(result: unknown): Promise<unknown> {
  if (result instanceof Response) {
    const text = await result.text();
    if (text === "") return null;
    if (JSON_TYPE.test(result.headers.get("content-type") ?? "")) {
      try {
        return toJsonValue(JSON.parse(text), "the run's output");
      } catch (err) {
        if (err instanceof StepOutputError) throw err;
        // a mislabelled body stays text
      }
    }
    return toJsonValue(text, "the run's output");
  }
  return toJsonValue(result, "the run's output");
}
