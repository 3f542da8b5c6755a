"""OpenTelemetry spans: a run, its attempts and their steps, under the trigger's
traceparent; an emit's runs continue the trace. Real spans from a real worker, caught by
opentelemetry's InMemorySpanExporter."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from reactor_jobs.config import Config, JobsConfig, TelemetryConfig
from reactor_jobs.domain import events as ev
from reactor_jobs.telemetry.tracing import (
    TRACING,
    parse_traceparent,
    run_trace,
    trace_headers,
)
from tests.engine_fixtures import ORG
from tests.http_fixtures import Api, api
from tests.integration.test_fanout import runs_of, subscribe

pytestmark = pytest.mark.integration
__all__ = ["api"]

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    TRACING.install(exporter, batch=False)
    try:
        yield exporter
    finally:
        TRACING.shutdown()


def named(spans: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name.startswith(prefix)]


def hex_ids(span: ReadableSpan) -> tuple[str, str, str | None]:
    ctx = span.get_span_context()
    assert ctx is not None
    parent = None if span.parent is None else f"{span.parent.span_id:016x}"
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}", parent


async def test_a_run_its_attempts_and_steps_under_the_triggers_traceparent(
    api: Api, spans: InMemorySpanExporter
) -> None:
    await api.engine.job("traced")
    api.engine.start_worker()
    reply = await api.call(
        "POST", "/jobs/v1/traced/trigger",
        json={"payload": {"mode": "flaky", "ok_on": 2}},
        headers={"traceparent": TRACEPARENT, "tracestate": "vendor=1"},
    )  # fmt: skip
    assert reply.status == 201, reply.text
    run_id = reply.json["id"]
    done = await api.wait_run("traced", run_id, ("completed", "failed"))
    assert done["status"] == "completed"
    # the trace context is kept with the run, in its Triggered event's headers
    first = (await api.engine.journal.read_stream(run_id))[0].event
    assert isinstance(first, ev.Triggered)
    assert first.headers == {"traceparent": TRACEPARENT, "tracestate": "vendor=1"}

    (run,) = named(spans, "run traced")
    trace_id, run_span, parent = hex_ids(run)
    assert (trace_id, parent) == (TRACE_ID, PARENT_ID)
    assert run.attributes is not None
    assert run.attributes["reactor.run_id"] == run_id
    assert run.attributes["reactor.status"] == "completed"
    assert run.attributes["reactor.attempts"] == 2
    assert run.start_time is not None and run.end_time is not None
    assert run.start_time < run.end_time

    attempts = sorted(named(spans, "attempt traced"), key=lambda s: s.start_time or 0)
    assert len(attempts) == 2
    for attempt in attempts:
        assert hex_ids(attempt)[0] == TRACE_ID and hex_ids(attempt)[2] == run_span
    assert attempts[0].attributes is not None and attempts[1].attributes is not None
    assert attempts[0].attributes["reactor.outcome"] == "failed"
    assert attempts[0].status.status_code is StatusCode.ERROR
    assert attempts[1].attributes["reactor.outcome"] == "completed"

    first_ids, second_ids = hex_ids(attempts[0])[1], hex_ids(attempts[1])[1]
    steps = {(s.name, hex_ids(s)[2], s.status.status_code) for s in named(spans, "step ")}
    assert steps == {
        ("step a", first_ids, StatusCode.UNSET),  # a is cached on the second attempt
        ("step b", first_ids, StatusCode.ERROR),
        ("step b", second_ids, StatusCode.UNSET),
    }
    for step in named(spans, "step "):
        assert hex_ids(step)[0] == TRACE_ID


async def test_runs_started_by_an_emit_continue_the_trace(
    api: Api, spans: InMemorySpanExporter
) -> None:
    engine = api.engine
    for job in ("shouter", "hearer"):
        await engine.job(job)
    await subscribe(engine.pool, "trg_hear", "hearer", "thing.said")
    engine.start_worker()
    reply = await api.call(
        "POST", "/jobs/v1/shouter/trigger",
        json={"payload": {"mode": "emit", "topic": "thing.said"}},
        headers={"traceparent": TRACEPARENT},
    )  # fmt: skip
    await api.wait_run("shouter", reply.json["id"], ("completed",))
    (heard,) = await runs_of(engine, "hearer")
    await engine.wait(heard)
    (emit,) = named(spans, "emit thing.said")
    assert hex_ids(emit)[0] == TRACE_ID
    first = (await engine.journal.read_stream(heard))[0].event
    assert isinstance(first, ev.Triggered)
    assert first.headers["traceparent"] == f"00-{TRACE_ID}-{hex_ids(emit)[1]}-01"
    (hearer_run,) = named(spans, "run hearer")
    assert hex_ids(hearer_run)[0] == TRACE_ID
    assert hex_ids(hearer_run)[2] == hex_ids(emit)[1]


async def test_without_a_traceparent_the_run_roots_its_own_trace(
    api: Api, spans: InMemorySpanExporter
) -> None:
    await api.engine.job("rooted")
    api.engine.start_worker()
    run = await api.engine.control.trigger(ORG, "rooted", payload={"mode": "fatal"})
    await api.engine.wait(run.id)
    (root,) = named(spans, "run rooted")
    trace_id, span_id, _, _ = run_trace(run.id, {})
    assert root.parent is None
    assert hex_ids(root)[:2] == (f"{trace_id:032x}", f"{span_id:016x}")
    assert root.status.status_code is StatusCode.ERROR
    (attempt,) = named(spans, "attempt rooted")
    assert hex_ids(attempt)[2] == f"{span_id:016x}"


async def test_off_without_a_collector(api: Api) -> None:
    assert not TRACING.enabled
    assert not TRACING.configure(Config(), environ={})
    assert not TRACING.enabled
    await api.engine.job("dark")
    api.engine.start_worker()
    # a malformed traceparent is not kept; nothing is exported anywhere
    reply = await api.call(
        "POST", "/jobs/v1/dark/trigger", json={"payload": {"mode": "noop"}},
        headers={"traceparent": "00-zz-00-01"},
    )  # fmt: skip
    run_id = reply.json["id"]
    await api.wait_run("dark", run_id, ("completed",))
    first = (await api.engine.journal.read_stream(run_id))[0].event
    assert isinstance(first, ev.Triggered) and first.headers == {}


def test_configure_from_the_config_or_the_environment() -> None:
    config = Config(jobs=JobsConfig(telemetry=TelemetryConfig(otlp_endpoint="http://c:4318")))
    try:
        assert TRACING.configure(config, environ={})
        assert TRACING.enabled
        TRACING.shutdown()
        assert TRACING.configure(Config(), environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"})
    finally:
        TRACING.shutdown()
    assert not TRACING.enabled


def test_traceparent_parsing() -> None:
    assert parse_traceparent(TRACEPARENT) == (int(TRACE_ID, 16), int(PARENT_ID, 16), True)
    for bad in (
        None, "", "garbage", f"01-{TRACE_ID}-{PARENT_ID}-01", f"00-{'0' * 32}-{PARENT_ID}-01",
        f"00-{TRACE_ID}-{'0' * 16}-01", f"00-{TRACE_ID.upper()}-{PARENT_ID}-01",
    ):  # fmt: skip
        assert parse_traceparent(bad) is None
    assert trace_headers({"Traceparent": TRACEPARENT, "Authorization": "Bearer x"}) == {
        "traceparent": TRACEPARENT
    }
    assert trace_headers({"tracestate": "a=1"}) == {}


async def test_spans_reach_an_otlp_http_collector(api: Api) -> None:
    """The configured path end to end: OTLP/HTTP protobuf to a collector (a local stand-in)."""
    from aiohttp import web
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    received: list[ExportTraceServiceRequest] = []

    async def collect(request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        received.append(message)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/v1/traces", collect)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    endpoint = f"http://127.0.0.1:{runner.addresses[0][1]}"
    config = Config(jobs=JobsConfig(telemetry=TelemetryConfig(otlp_endpoint=endpoint)))
    try:
        assert TRACING.configure(config, environ={})
        await api.engine.job("exported")
        api.engine.start_worker()
        run = await api.engine.control.trigger(ORG, "exported", payload={"mode": "noop"})
        await api.engine.wait(run.id)
        await asyncio.to_thread(TRACING.shutdown)  # flushes (the collector is on this loop)
    finally:
        TRACING.shutdown()
        await runner.cleanup()
    names = {
        span.name
        for message in received
        for resource in message.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    }
    assert {"run exported", "attempt exported", "step noop"} <= names
    services = {
        attr.value.string_value
        for message in received
        for resource in message.resource_spans
        for attr in resource.resource.attributes
        if attr.key == "service.name"
    }
    assert services == {"reactor-jobs"}
