"""Read side: pure handlers turn journal events into projection rows (runs, dlq, events)."""
