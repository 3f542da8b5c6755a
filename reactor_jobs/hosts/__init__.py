"""Function hosts: the programs that run job code outside the engine (docs/host-protocol.md)."""
