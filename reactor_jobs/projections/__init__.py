"""Read side: the handlers that turn journal events into projection rows (runs, dlq, events),
and everything that reads them: queries (read.sql), the live tail, lineage, export, audits."""
