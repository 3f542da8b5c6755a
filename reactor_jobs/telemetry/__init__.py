"""Metrics, traces and structured logs (README, "Metrics and traces").

- metrics: Prometheus counters and histograms kept in this process (in-process increments on
  the hot path, never a database round trip), plus gauges read from the runs projection
  once per scrape.
- tracing: OpenTelemetry spans per run, attempt and step, exported over OTLP/HTTP only when
  a collector is configured; W3C trace context from the trigger, carried by the run.
- logs: one JSON object per line, on request.
"""
