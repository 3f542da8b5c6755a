// What a step output, a state value or an event payload may be: JSON, at most 1 MiB once
// encoded. JSON.stringify silently drops or changes what JSON cannot hold (undefined, Date,
// Map, NaN), so a value is walked first and refused with the path of the first bad part.

export const MAX_OUTPUT_BYTES = 1024 * 1024;

/** A step output, state value or payload that cannot be recorded (the worker's name too). */
export class StepOutputError extends Error {
  override name = "StepOutputError";
}

/** The value as it comes back from the journal (a JSON round trip), size-checked. A
 * top-level `undefined` (a step that returns nothing) is recorded as null. */
export function toJsonValue(value: unknown, what: string): unknown {
  if (value === undefined) return null;
  const problem = findProblem(value, "$", new Set());
  if (problem !== null) {
    throw new StepOutputError(`${what} cannot be stored as JSON: ${problem}`);
  }
  const text = JSON.stringify(value);
  const size = Buffer.byteLength(text, "utf8");
  if (size > MAX_OUTPUT_BYTES) {
    throw new StepOutputError(`${what} is ${size} bytes; the limit is ${MAX_OUTPUT_BYTES}`);
  }
  if (text.includes("\\u0000")) {
    throw new StepOutputError(`${what} contains a NUL character, which cannot be stored`);
  }
  return JSON.parse(text);
}

function findProblem(value: unknown, path: string, seen: Set<object>): string | null {
  switch (typeof value) {
    case "string":
    case "boolean":
      return null;
    case "number":
      return Number.isFinite(value) ? null : `${value} at ${path} is not a JSON number`;
    case "undefined":
      return `undefined at ${path} (use null)`;
    case "bigint":
      return `a BigInt at ${path} (store it as a string or a number)`;
    case "function":
      return `a function at ${path}`;
    case "symbol":
      return `a symbol at ${path}`;
  }
  if (value === null) return null;
  return findInObject(value as object, path, seen);
}

function findInObject(value: object, path: string, seen: Set<object>): string | null {
  if (seen.has(value)) return `a cycle at ${path} (the value refers to itself)`;
  const kind = objectKind(value);
  if (kind !== null) return `${kind[0]} at ${path}${kind[1] ? ` (${kind[1]})` : ""}`;
  seen.add(value);
  try {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const problem = findProblem(value[i], `${path}[${i}]`, seen);
        if (problem !== null) return problem;
      }
      return null;
    }
    for (const [key, item] of Object.entries(value)) {
      const problem = findProblem(item, `${path}.${key}`, seen);
      if (problem !== null) return problem;
    }
    return null;
  } finally {
    seen.delete(value);
  }
}

/** What a non-plain object is and a hint, or null for plain objects and arrays. */
function objectKind(value: object): [string, string] | null {
  if (Array.isArray(value)) return null;
  if (value instanceof Date) return ["a Date", "store date.toISOString()"];
  if (value instanceof Map) return ["a Map", "store Object.fromEntries(map)"];
  if (value instanceof Set) return ["a Set", "store [...set]"];
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return ["binary data", "store base64 text"];
  if (value instanceof Promise) return ["a Promise", "await it first"];
  const proto = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) return null;
  const name = (proto?.constructor?.name as string | undefined) ?? "object";
  return [`an instance of ${name}`, "store a plain object"];
}

/** Equal as JSON values (object key order does not matter). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every(
    (k) => Object.hasOwn(b, k) && jsonEqual((a as any)[k], (b as any)[k]),
  );
}
