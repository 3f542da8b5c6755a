// @reactor/jobs-sdk: the JobContext of bun functions. This folder is the one source: the
// bun host imports it, bundles resolve `@reactor/jobs-sdk` to it, and packages/jobs-sdk
// re-exports it for npm.

export {
  JobContext,
  LocalChannel,
  RunLog,
  RunState,
  type Ack,
  type Channel,
  type ContextInit,
  type LogLevel,
  type Proposal,
  type Recorded,
  type RunInfo,
} from "./context.ts";
export {
  DataClient,
  DataQuery,
  DataRequestError,
  DataTable,
  type DataRequest,
  type DataResult,
} from "./data.ts";
export { MAX_SLEEP_MS, parseDuration, type Duration } from "./duration.ts";
export {
  AttemptSignal,
  DataClientUnavailable,
  NonRetryableError,
  ReactorJobsError,
  describeError,
  isAttemptSignal,
  isNonRetryable,
  type ErrorInfo,
} from "./errors.ts";
export { MAX_OUTPUT_BYTES, StepOutputError, jsonEqual, toJsonValue } from "./json.ts";

/** A function's `env`: the worker's `REACTOR_FN_*` variables, prefix removed. */
export type Env = Record<string, string | undefined>;

declare global {
  /** The spec's quickstart names `Env` without importing it. */
  type Env = Record<string, string | undefined>;
}
