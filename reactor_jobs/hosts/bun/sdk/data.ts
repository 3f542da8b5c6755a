// ctx.data: the Data client of bun job code, a fluent builder that mirrors postgrest-js.
//
//   const { data, count } = await ctx.data.from("orders").select("id,total").eq("status", "paid").limit(10);
//
// Each call is a PostgREST request proposed to the worker (docs/host-protocol.md, "t":
// "data"), which executes it for the run's org: job code holds no credentials. Outside any
// step a call is a durable decision (its result is journaled; a retry returns it); inside
// a step it is a plain call. A refused call throws DataRequestError (postgrest-js would
// put it in `error`; here an uncaught one fails the attempt, which then retries).

export interface DataRequest {
  method: "GET" | "POST" | "PATCH" | "DELETE";
  table?: string;
  rpc?: string;
  query: [string, string][];
  prefer?: string[];
  body?: unknown;
}

export interface DataResult<T = any> {
  /** Rows (or an rpc's value); null for a write without `.select()`. */
  data: T;
  /** The exact total with `{ count: "exact" }`, else the rows returned or written. */
  count: number | null;
  /** Always null: errors are thrown (DataRequestError). Kept for postgrest-js code. */
  error: null;
}

/** The Data API refused a call: `code` is its error code (bad_request, not_found, …). */
export class DataRequestError extends Error {
  override name = "DataRequestError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

export type DataSend = (request: DataRequest) => Promise<DataResult>;

function text(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function listed(value: unknown): string {
  const t = text(value);
  return /[,()"\\ ]/.test(t) || t === "" ? `"${t.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"` : t;
}

/** A request being built; await it (it is a thenable) to make the call. */
export class DataQuery<T = any> implements PromiseLike<DataResult<T>> {
  readonly #send: DataSend;
  readonly #request: DataRequest;

  constructor(send: DataSend, request: DataRequest) {
    this.#send = send;
    this.#request = request;
  }

  /** The request as the worker receives it. */
  toRequest(): DataRequest {
    return structuredClone(this.#request);
  }

  then<A = DataResult<T>, B = never>(
    onfulfilled?: ((value: DataResult<T>) => A | PromiseLike<A>) | null,
    onrejected?: ((reason: any) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return (this.#send(this.#request) as Promise<DataResult<T>>).then(onfulfilled, onrejected);
  }

  #add(key: string, value: string): this {
    this.#request.query.push([key, value]);
    return this;
  }

  #prefer(token: string): this {
    const prefer = (this.#request.prefer ??= []);
    if (!prefer.includes(token)) prefer.push(token);
    return this;
  }

  filter(column: string, operator: string, value: unknown): this {
    return this.#add(column, `${operator}.${operator === "in" ? value : text(value)}`);
  }
  eq(column: string, value: unknown): this {
    return this.filter(column, "eq", value);
  }
  neq(column: string, value: unknown): this {
    return this.filter(column, "neq", value);
  }
  gt(column: string, value: unknown): this {
    return this.filter(column, "gt", value);
  }
  gte(column: string, value: unknown): this {
    return this.filter(column, "gte", value);
  }
  lt(column: string, value: unknown): this {
    return this.filter(column, "lt", value);
  }
  lte(column: string, value: unknown): this {
    return this.filter(column, "lte", value);
  }
  like(column: string, pattern: string): this {
    return this.filter(column, "like", pattern);
  }
  ilike(column: string, pattern: string): this {
    return this.filter(column, "ilike", pattern);
  }
  in(column: string, values: readonly unknown[]): this {
    return this.filter(column, "in", `(${values.map(listed).join(",")})`);
  }
  is(column: string, value: boolean | null): this {
    return this.filter(column, "is", value);
  }
  /** `.not("status", "eq", "paid")` */
  not(column: string, operator: string, value: unknown): this {
    return this.filter(column, `not.${operator}`, value);
  }
  /** PostgREST's or: `.or("status.eq.paid,total.gt.100")` */
  or(filters: string): this {
    return this.#add("or", `(${filters})`);
  }
  match(values: Record<string, unknown>): this {
    for (const [column, value] of Object.entries(values)) this.eq(column, value);
    return this;
  }
  order(column: string, options: { ascending?: boolean; nullsFirst?: boolean } = {}): this {
    let order = `${column}.${options.ascending === false ? "desc" : "asc"}`;
    if (options.nullsFirst !== undefined) order += options.nullsFirst ? ".nullsfirst" : ".nullslast";
    return this.#add("order", order);
  }
  limit(n: number): this {
    return this.#add("limit", String(Math.trunc(n)));
  }
  offset(n: number): this {
    return this.#add("offset", String(Math.trunc(n)));
  }
  /** Rows from..to, both included. */
  range(from: number, to: number): this {
    return this.offset(from).limit(to - from + 1);
  }
  /** After a write: return the written rows with these columns. */
  select(columns = "*"): this {
    this.#request.prefer = (this.#request.prefer ?? []).filter((p) => !p.startsWith("return="));
    this.#prefer("return=representation");
    return this.#add("select", columns);
  }
}

type Count = { count?: "exact" };

/** `ctx.data.from(table)`: choose the operation. */
export class DataTable {
  constructor(
    readonly send: DataSend,
    readonly table: string,
  ) {}

  #query(
    method: DataRequest["method"],
    body?: unknown,
    prefer: string[] = [],
    count?: string,
    query: [string, string][] = [],
  ): DataQuery {
    const request: DataRequest = { method, table: this.table, query };
    if (body !== undefined) request.body = body;
    const tokens = [...prefer];
    if (count) tokens.push(`count=${count}`);
    if (tokens.length) request.prefer = tokens;
    return new DataQuery(this.send, request);
  }

  select<T = any>(columns = "*", options: Count = {}): DataQuery<T[]> {
    return this.#query("GET", undefined, [], options.count, [["select", columns]]);
  }
  insert(values: object | object[], options: Count = {}): DataQuery {
    return this.#query("POST", values, ["return=minimal"], options.count);
  }
  upsert(values: object | object[], options: Count & { onConflict?: string; ignoreDuplicates?: boolean } = {}): DataQuery {
    const resolution = options.ignoreDuplicates ? "resolution=ignore-duplicates" : "resolution=merge-duplicates";
    const query: [string, string][] = options.onConflict ? [["on_conflict", options.onConflict]] : [];
    return this.#query("POST", values, ["return=minimal", resolution], options.count, query);
  }
  update(values: object, options: Count = {}): DataQuery {
    return this.#query("PATCH", values, ["return=minimal"], options.count);
  }
  delete(options: Count = {}): DataQuery {
    return this.#query("DELETE", undefined, ["return=minimal"], options.count);
  }
}

/** `ctx.data`: `from(table)` and `rpc(fn, args)`. */
export class DataClient {
  constructor(readonly send: DataSend) {}

  from(table: string): DataTable {
    return new DataTable(this.send, table);
  }

  rpc<T = any>(fn: string, args: Record<string, unknown> = {}): DataQuery<T> {
    return new DataQuery<T>(this.send, { method: "POST", rpc: fn, query: [], body: args });
  }
}
