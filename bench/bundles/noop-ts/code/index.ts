// Bench job, as bench/bundles/noop in TypeScript: one checkpointed no-op step. Returns the
// wall clock (seconds since the epoch, performance.timeOrigin + performance.now()) taken at
// its first line: bun's performance.now() alone counts from the host's start, so it means
// nothing to another process; the wall clock compares with Python's time.time().
import type { JobContext } from "@reactor/jobs-sdk";

export default {
  async fetch(_request: Request, _env: unknown, ctx: JobContext): Promise<number> {
    const started = (performance.timeOrigin + performance.now()) / 1000;
    await ctx.step("noop", async () => null);
    return started;
  },
};
