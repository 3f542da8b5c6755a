// Errors user code sees and throws, and how an error travels to the worker.

const NON_RETRYABLE = Symbol.for("reactor.jobs.NonRetryableError");

/** Throw to skip the remaining retries: the run goes to the dead-letter queue. */
export class NonRetryableError extends Error {
  override name = "NonRetryableError";
  readonly [NON_RETRYABLE] = true;
}

/** True for a NonRetryableError, also one from another copy of this SDK. */
export function isNonRetryable(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as any)[NON_RETRYABLE] === true;
}

/** A decision the worker refused (nack): `name` is the worker's error type. */
export class ReactorJobsError extends Error {
  constructor(type: string, message: string) {
    super(message);
    this.name = type;
  }
}

/** `ctx.data`, the Data client, is not built yet in this version of Reactor Jobs. */
export class DataClientUnavailable extends Error {
  override name = "DataClientUnavailable";
  constructor() {
    super("ctx.data (the Data client) is not built yet in this version of Reactor Jobs");
  }
}

const SIGNAL = Symbol.for("reactor.jobs.AttemptSignal");

/** The attempt is over (suspended by a sleep, or cancelled): user code is unwound. Once
 * thrown, the host has already reported the attempt, so catching it changes nothing. */
export class AttemptSignal extends Error {
  readonly [SIGNAL] = true;
  constructor(readonly kind: "suspended" | "cancelled") {
    super(kind === "suspended" ? "the run sleeps; this attempt is over" : "the worker stopped this attempt");
    this.name = kind === "suspended" ? "Suspended" : "Cancelled";
  }
}

export function isAttemptSignal(err: unknown): err is AttemptSignal {
  return typeof err === "object" && err !== null && (err as any)[SIGNAL] === true;
}

export interface ErrorInfo {
  type: string;
  message: string;
  retryable: boolean;
  traceback?: string;
}

/** An error as the protocol carries it. A thrown non-Error (`throw "boom"`) is type
 * `Error` with a readable message. `frames` may rewrite the stack (the host keeps the
 * user's frames only). */
export function describeError(err: unknown, frames?: (stack: string) => string): ErrorInfo {
  if (err instanceof Error) {
    const stack = err.stack ?? "";
    const info: ErrorInfo = {
      type: err.name || err.constructor?.name || "Error",
      message: err.message,
      retryable: !isNonRetryable(err),
    };
    const traceback = frames ? frames(stack) : stack;
    if (traceback) info.traceback = traceback;
    return info;
  }
  return { type: "Error", message: readable(err), retryable: !isNonRetryable(err) };
}

function readable(value: unknown): string {
  if (typeof value === "string") return value;
  if (value === undefined) return "undefined was thrown";
  try {
    const text = JSON.stringify(value);
    if (text !== undefined) return `a non-Error value was thrown: ${text}`;
  } catch {
    // a cycle or a BigInt: fall back to String()
  }
  return `a non-Error value was thrown: ${String(value)}`;
}
