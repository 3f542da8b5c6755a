// Durations as the Python SDK reads them (reactor_jobs/engine/context.py, parse_duration):
// "500ms", "30s", "15m", "24h", "7d", or a number of seconds; at most 365 days.

const DURATION = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
export const MAX_SLEEP_MS = 365 * 86_400_000;

export type Duration = string | number;

/** The duration in whole milliseconds; TypeError if unreadable, RangeError if out of range. */
export function parseDuration(duration: Duration): number {
  let ms: number;
  if (typeof duration === "number" && Number.isFinite(duration)) {
    ms = duration * 1000;
  } else {
    const match = typeof duration === "string" ? DURATION.exec(duration) : null;
    if (match === null) {
      throw new TypeError(
        `cannot read ${typeof duration === "string" ? `'${duration}'` : String(duration)} as a duration: ` +
          "use '30s', '15m', '24h', '7d'",
      );
    }
    ms = Number(match[1]) * UNIT_MS[match[2]!]!;
  }
  if (ms < 0 || ms > MAX_SLEEP_MS) {
    throw new RangeError(`a sleep must last between 0 and 365 days, not ${describe(ms)}`);
  }
  return Math.round(ms);
}

function describe(ms: number): string {
  return Math.abs(ms) >= 86_400_000 ? `${ms / 86_400_000} days` : `${ms / 1000} seconds`;
}
