// Bench job, as bench/bundles/steps5 in TypeScript: five checkpointed async steps. Returns
// the durations (seconds, performance.now() within the host) of its cache-miss
// `await ctx.step(...)` calls as job code sees them: the step function, the proposal to the
// worker, its append and the acknowledgement. A step whose output was recorded by an earlier
// attempt does not run its function and is not timed.
import type { JobContext } from "@reactor/jobs-sdk";

export default {
  async fetch(_request: Request, _env: unknown, ctx: JobContext): Promise<number[]> {
    const misses: number[] = [];
    const ran: number[] = []; // the steps whose functions ran: cache misses
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      await ctx.step(`s${i}`, async () => {
        ran.push(i);
        return i;
      });
      if (ran.length > 0 && ran[ran.length - 1] === i) {
        misses.push((performance.now() - started) / 1000);
      }
    }
    return misses;
  },
};
