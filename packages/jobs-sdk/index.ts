// @reactor/jobs-sdk. The implementation lives with the bun host that runs it
// (reactor_jobs/hosts/bun/sdk, shipped inside the Python package), so the host and this
// package are one source; this file re-exports it.
export * from "../../reactor_jobs/hosts/bun/sdk/index.ts";
