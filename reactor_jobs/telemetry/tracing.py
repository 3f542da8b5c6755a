"""OpenTelemetry spans per run, attempt and step, when a collector is configured.

A run outlives any one process (its attempts may run on different workers, days apart), so
its span cannot be held open in memory. Its identity is derived from the run instead: the
trace id is the trigger's (W3C `traceparent`, kept in the Triggered event's headers) or, with
none, one derived from the run id; the run span's id is derived from the run id. Any worker
can then parent an attempt to the run span, and the worker that ends the run records the
run span itself, from the run's creation to its end. Attempts are real spans around the
conversation with the function host; steps are spans as long as the host timed them; an
emit is a span whose context becomes the `traceparent` of the runs it starts.

Nothing here runs without a collector: `TRACING.enabled` is False, every hook returns at
once and no span object is made. Runs whose trigger sent a traceparent still carry it (and
pass it to the runs their emits start), so a worker with tracing on continues the trace.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.id_generator import IdGenerator

    from reactor_jobs.config import Config

log = logging.getLogger("reactor_jobs.telemetry")

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_TRACESTATE = re.compile(r"^[\x20-\x7e]{1,512}$")
SCOPE = "reactor_jobs"
EXPORT_TIMEOUT_S = 5.0

# The ids the next span must take (a run span's, derived from its run).
_FORCED: contextvars.ContextVar[tuple[int | None, int] | None] = contextvars.ContextVar(
    "reactor_jobs_forced_span_ids", default=None
)


def parse_traceparent(value: str | None) -> tuple[int, int, bool] | None:
    """(trace id, parent span id, sampled) from a W3C traceparent; None when malformed."""
    if value is None:
        return None
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        return None
    trace_id, span_id = int(match[1], 16), int(match[2], 16)
    if trace_id == 0 or span_id == 0:
        return None
    return trace_id, span_id, bool(int(match[3], 16) & 1)


def trace_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The trace context among request headers worth keeping with a run: a valid
    traceparent and, with it, a sane tracestate. Anything else is dropped."""
    lowered = {k.lower(): v for k, v in headers.items()}
    parent = lowered.get(TRACEPARENT)
    if parent is None or parse_traceparent(parent) is None:
        return {}
    kept = {TRACEPARENT: parent.strip()}
    state = lowered.get(TRACESTATE)
    if state is not None and _TRACESTATE.match(state):
        kept[TRACESTATE] = state
    return kept


def format_traceparent(trace_id: int, span_id: int, sampled: bool = True) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"


def _derived(kind: str, run_id: str, bits: int) -> int:
    digest = hashlib.sha256(f"reactor_jobs/{kind}/{run_id}".encode()).digest()
    return int.from_bytes(digest[: bits // 8], "big") or 1


def run_trace(run_id: str, headers: Mapping[str, str]) -> tuple[int, int, int | None, bool]:
    """(trace id, run span id, the trigger's span id or None, sampled) of a run."""
    parent = parse_traceparent(headers.get(TRACEPARENT))
    span_id = _derived("span", run_id, 64)
    if parent is None:
        return _derived("trace", run_id, 128), span_id, None, True
    trace_id, parent_span, sampled = parent
    return trace_id, span_id, parent_span, sampled


def run_traceparent(run_id: str, headers: Mapping[str, str]) -> str:
    """The traceparent naming a run's own span: for runs it starts while no span is open."""
    trace_id, span_id, _, sampled = run_trace(run_id, headers)
    return format_traceparent(trace_id, span_id, sampled)


def _ns(at: datetime) -> int:
    return int(at.timestamp() * 1e9)


class Tracing:
    """The process's tracer; `enabled` only once a provider is installed."""

    def __init__(self) -> None:
        self.provider: TracerProvider | None = None
        self.tracer: trace.Tracer | None = None

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    def configure(self, config: Config, environ: Mapping[str, str] | None = None) -> bool:
        """Export to [jobs.telemetry] otlp_endpoint, else OTEL_EXPORTER_OTLP_ENDPOINT (or
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); with neither, stay off. True when on."""
        env = os.environ if environ is None else environ
        endpoint = config.jobs.telemetry.otlp_endpoint
        if endpoint:
            endpoint = endpoint.rstrip("/") + "/v1/traces"
        else:
            endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or (
                env["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
                if env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                else None
            )
        if not endpoint:
            return False
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # Exports run on the batch processor's thread, never the event loop; a collector
        # that is down costs at most this long at shutdown (retries included).
        self.install(
            OTLPSpanExporter(endpoint=endpoint, timeout=EXPORT_TIMEOUT_S),
            service_name=config.jobs.telemetry.service_name,
            batch=True,
        )
        log.info("traces exported over OTLP/HTTP to %s", _without_query(endpoint))
        return True

    def install(
        self, exporter: SpanExporter, *, service_name: str = "reactor-jobs", batch: bool = True
    ) -> TracerProvider:
        """Send spans to `exporter` (tests: an InMemorySpanExporter with batch=False)."""
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        self.shutdown()
        provider = TracerProvider(
            resource=Resource.create({"service.name": service_name}), id_generator=_run_ids()
        )
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
        self.provider, self.tracer = provider, provider.get_tracer(SCOPE)
        return provider

    def shutdown(self) -> None:
        """Flush and stop exporting; tracing is off afterwards."""
        provider, self.provider, self.tracer = self.provider, None, None
        if provider is not None:
            provider.shutdown()

    # The engine's hooks. Each returns at once when tracing is off.

    def start_attempt(self, state: Any, worker: str) -> Span | None:
        if self.tracer is None:
            return None
        trace_id, run_span, _, sampled = run_trace(state.run_id, state.headers)
        flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
        parent = NonRecordingSpan(SpanContext(trace_id, run_span, True, flags))
        return self.tracer.start_span(
            f"attempt {state.job}",
            context=trace.set_span_in_context(parent),
            kind=SpanKind.CONSUMER,
            attributes={
                **_run_attributes(state),
                "reactor.attempt": state.tries,
                "reactor.execution": state.attempt,
                "reactor.worker": worker,
            },
        )

    def end_attempt(self, span: Span | None, outcome: str, detail: str = "") -> None:
        if span is None:
            return
        span.set_attribute("reactor.outcome", outcome)
        if outcome in ("failed", "timed_out", "error"):
            span.set_status(Status(StatusCode.ERROR, detail[:500] or outcome))
        span.end()

    def step(
        self, parent: Span | None, name: str, duration_ms: float, error: str | None = None
    ) -> None:
        """A step the host ran, as long as the host timed it, ending now."""
        if self.tracer is None or parent is None:
            return
        end = time.time_ns()
        span = self.tracer.start_span(
            f"step {name}",
            context=trace.set_span_in_context(parent),
            start_time=end - int(max(duration_ms, 0.0) * 1e6),
            attributes={"reactor.step": name},
        )
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error[:200]))
        span.end(end_time=end)

    def start_emit(self, parent: Span | None, topic: str) -> Span | None:
        if self.tracer is None or parent is None:
            return None
        return self.tracer.start_span(
            f"emit {topic}",
            context=trace.set_span_in_context(parent),
            kind=SpanKind.PRODUCER,
            attributes={"reactor.topic": topic},
        )

    def end_run(self, state: Any, status: str, detail: str = "") -> None:
        """The run's own span, from its creation to now, under the trigger's span."""
        if self.tracer is None:
            return
        trace_id, span_id, parent_span, sampled = run_trace(state.run_id, state.headers)
        context = Context()  # a root, not a child of the attempt span current here
        if parent_span is not None:
            flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
            remote = NonRecordingSpan(SpanContext(trace_id, parent_span, True, flags))
            context = trace.set_span_in_context(remote)
        token = _FORCED.set((None if parent_span is not None else trace_id, span_id))
        try:
            start = _ns(state.created_at) if state.created_at is not None else time.time_ns()
            span = self.tracer.start_span(
                f"run {state.job}",
                context=context,
                kind=SpanKind.SERVER if state.trigger is None else _kind(state.trigger.kind),
                start_time=start,
                attributes={**_run_attributes(state), "reactor.status": status,
                            "reactor.attempts": state.tries},
            )  # fmt: skip
        finally:
            _FORCED.reset(token)
        if status != "completed":
            span.set_status(Status(StatusCode.ERROR, detail[:500] or status))
        span.end()


def emit_traceparent(span: Span | None, state: Any) -> dict[str, str]:
    """Headers for the runs an emit starts: the emit span, else the emitting run's span when
    the run itself carries trace context; nothing when neither."""
    if span is not None:
        ctx = span.get_span_context()
        return {TRACEPARENT: format_traceparent(ctx.trace_id, ctx.span_id, ctx.trace_flags.sampled)}
    if TRACEPARENT in state.headers:
        return {TRACEPARENT: run_traceparent(state.run_id, state.headers)}
    return {}


def _kind(trigger_kind: str) -> SpanKind:
    return SpanKind.CONSUMER if trigger_kind == "event" else SpanKind.SERVER


def _run_attributes(state: Any) -> dict[str, Any]:
    trigger = state.trigger
    return {
        "reactor.run_id": state.run_id,
        "reactor.org": state.org,
        "reactor.job": state.job,
        "reactor.function": state.function,
        "reactor.function_version": state.function_version,
        "reactor.trigger": "" if trigger is None else trigger.kind,
    }


def _without_query(url: str) -> str:
    return url.split("?", 1)[0].split("#", 1)[0]


def _run_ids() -> IdGenerator:
    """Random ids, but the ids `_FORCED` names for the span being started (a run span)."""
    from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator

    class RunIds(IdGenerator):
        def __init__(self) -> None:
            self._random = RandomIdGenerator()

        def generate_span_id(self) -> int:
            forced = _FORCED.get()
            return forced[1] if forced is not None else self._random.generate_span_id()

        def generate_trace_id(self) -> int:
            forced = _FORCED.get()
            if forced is not None and forced[0] is not None:
                return forced[0]
            return self._random.generate_trace_id()

    return RunIds()


TRACING = Tracing()


# The attempt span of the attempt this task runs (None: tracing off).
_ATTEMPT: contextvars.ContextVar[Span | None] = contextvars.ContextVar(
    "reactor_jobs_attempt_span", default=None
)


def current_attempt() -> Span | None:
    return _ATTEMPT.get()


@contextlib.contextmanager
def attempt_context(span: Span | None) -> Iterator[None]:
    """While an attempt runs: its span is current (for step and emit spans and the JSON
    log's trace ids); nothing at all when tracing is off."""
    if span is None:
        yield
        return
    token = _ATTEMPT.set(span)
    try:
        with trace.use_span(span, end_on_exit=False):
            yield
    finally:
        _ATTEMPT.reset(token)
