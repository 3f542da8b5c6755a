// The spec's client quickstart: `REACTOR_URL=… REACTOR_EMAIL=… REACTOR_PASSWORD=…
// bun examples/process-order-ts/client.ts` (REACTOR_ORG defaults to the spec's `acme`).
// It creates the job and its cron trigger, so run it once per database.
import { createClient } from '@reactor/client';

const email = process.env.REACTOR_EMAIL!;
const password = process.env.REACTOR_PASSWORD!;

const reactor = createClient({ url: process.env.REACTOR_URL! });
await reactor.auth.signInWithPassword({ email, password });
reactor.auth.setOrg(process.env.REACTOR_ORG ?? 'acme');

await reactor.jobs.create({ name: 'process-order', functionName: 'process-order' });
await reactor.jobs.triggers.create('process-order', { kind: 'cron', schedule: '0 * * * *' });

const run = await reactor.jobs.trigger('process-order', { payload: { orderId: 'ord_123' } });
console.log(run.id, run.status);
