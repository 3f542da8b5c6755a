"""Reactor Jobs: durable execution on Postgres, built on an append-only, hash-chained journal."""

__version__ = "0.1.0"
