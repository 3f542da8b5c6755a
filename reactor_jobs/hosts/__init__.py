"""Function hosts: the processes that run job code, apart from the engine.

`python.py` is the Python host program and `sdk.py` the `ctx` its code gets; `protocol.py`
frames the messages between a worker and a host (docs/host-protocol.md). `bun/host.ts` is
the bun host (its `ctx` in `bun/sdk/`), started with the argv
`functions.bun_binary.bun_host_command` gives.
"""
