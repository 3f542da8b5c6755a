// What the API returns (docs/http-api.md, "Objects"): fields as the API names them
// (snake_case), timestamps as RFC 3339 strings. Mirrors reactor_jobs/client/types.py.

export type Backoff = "exponential" | "linear";
export type TriggerKind = "cron" | "event" | "webhook" | "manual";

export interface Session {
  access_token: string;
  refresh_token?: string | null;
  expires_in?: number | null;
  token_type?: string;
}

export interface Membership {
  name: string;
  role: string;
}

export interface User {
  id: string;
  email: string;
  orgs: Membership[];
}

export interface Run {
  id: string;
  job: string;
  status: string;
  attempt: number;
  function: string;
  function_version: number;
  trigger_kind: string;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
  available_at: string | null;
  last_error: unknown;
  output: unknown;
  dlq_id: string | null;
  idempotency_key: string | null;
}

export interface Policy {
  max_attempts: number;
  backoff: Backoff;
  initial_delay_ms: number;
  max_delay_ms: number;
  max_concurrency: number;
  timeout_ms: number;
}

export interface Job {
  name: string;
  function_name: string;
  created_at: string;
  updated_at: string;
  max_attempts: number | null;
  backoff: Backoff | null;
  initial_delay_ms: number | null;
  max_delay_ms: number | null;
  max_concurrency: number | null;
  timeout_ms: number | null;
  policy: Policy | null;
}

export interface Trigger {
  id: string;
  job: string;
  kind: TriggerKind;
  source: string;
  created_at: string;
  schedule?: string | null;
  timezone?: string | null;
  catch_up?: string | null;
  topic?: string | null;
  /** The webhook ingress path: only on the trigger `triggers.create` returns. */
  url?: string | null;
  signed?: boolean | null;
}

export interface TriggerChanges {
  added: Trigger[];
  changed: Trigger[];
  removed: Trigger[];
  unchanged: Trigger[];
}

export interface JobWithTriggers extends Job {
  triggers?: TriggerChanges | null;
}

export interface NextFires {
  job: string;
  now: string;
  triggers: {
    id: string;
    schedule: string;
    timezone: string;
    catch_up: string;
    source: string;
    fires: { at: string; local: string | null }[];
  }[];
}

export interface DlqEntry {
  id: string;
  run_id: string;
  job: string;
  attempts: number;
  status: "open" | "retried";
  created_at: string;
  error: unknown;
  retried_at: string | null;
}

export interface Event {
  id: string;
  topic: string;
  run_id: string;
  job: string;
  emitted_at: string;
  fanout: number;
  payload: unknown;
  consumed_at: string | null;
}

export interface JournalEvent {
  global_position: number;
  run_id: string;
  position: number;
  org: string;
  type: string;
  version: number;
  recorded_at: string;
  prev_hash: string;
  hash: string;
  data: unknown;
}

export interface FunctionInfo {
  name: string;
  runtime: string;
  created_at: string;
  updated_at: string;
  live_version: number | null;
}

export interface PromotedFunction extends FunctionInfo {
  triggers?: TriggerChanges | null;
}

export interface Version {
  name: string;
  version: number;
  sha256: string;
  size: number;
  live: boolean;
  created_at: string;
}

/** `event: run` of the log stream; `id` resumes after it (`lastEventId`). */
export interface RunEvent {
  kind: "run";
  id: string | null;
  run_id: string;
  position: number;
  type: string;
  recorded_at: string;
  attempt?: number;
  error?: unknown;
}

/** `event: log` of the log stream: one ctx.log (or console) line of a run. */
export interface LogLine {
  kind: "log";
  id: string | null;
  run_id: string;
  attempt: number;
  level: string;
  message: string;
  at: string;
  step?: string | null;
  fields?: unknown;
}

export type LogEvent = RunEvent | LogLine;

export interface ReplayResult {
  run_id: string;
  job: string;
  version: number;
  outcome: "same" | "diverges";
  checked: number;
  recorded: number;
  events: number;
  divergence: string | null;
  position: number | null;
  note: string | null;
}

export interface FunctionCheck {
  function: string;
  version: number;
  runs: number;
  safe: number;
  diverges: number;
  diverging: ReplayResult[];
}

export interface LineageRun {
  run_id: string;
  job: string;
  status: string;
  cause: Record<string, unknown>;
  caused: LineageRun[];
  more: boolean;
}

export interface StateDiff {
  run_id: string;
  from: number;
  to: number;
  changes: { field: string; before: unknown; after: unknown }[];
}

/** A run's state folded up to a journal position. */
export type RunStateAt = Record<string, unknown> & { run_id: string; position: number; head: number; status: string };

/** One page of a list, newest first: the items, and `nextCursor` (null on the last page)
 * to pass back as `cursor` for the next one. */
export type Page<T> = T[] & { nextCursor: string | null };
