"""Prometheus /metrics: served by `reactor serve`'s app and by the separate listener, parsed
with prometheus_client's own text parser, moving as a real worker runs real runs."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request
from prometheus_client.parser import text_string_to_metric_families

from reactor_jobs.config import MetricsConfig
from reactor_jobs.engine.scheduler import Scheduler
from reactor_jobs.telemetry.http import metrics_response, start_metrics_listener
from reactor_jobs.telemetry.metrics import OTHER, LabelCap, render, top_pairs
from tests.engine_fixtures import ORG, Engine
from tests.http_fixtures import Api, api
from tests.integration.test_scheduler import cron_trigger, fired_slots

pytestmark = pytest.mark.integration
__all__ = ["api"]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample by (name, labels); the parser raises on anything malformed."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(api: Api) -> Samples:
    reply = await api.call("GET", "/metrics", as_=None)
    assert reply.status == 200, reply.text
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(reply.text)


async def trigger(api: Api, job: str, payload: dict[str, Any]) -> str:
    reply = await api.call("POST", f"/jobs/v1/{job}/trigger", json={"payload": payload})
    assert reply.status == 201, reply.text
    run_id = reply.json["id"]
    assert isinstance(run_id, str)
    return run_id


async def test_counters_move_when_a_real_worker_runs_runs(api: Api) -> None:
    engine = api.engine
    await engine.job("metered")
    queued = [await trigger(api, "metered", {"mode": "noop"}) for _ in range(3)]
    doomed = await trigger(api, "metered", {"mode": "fatal"})
    await asyncio.sleep(0.05)
    before = await scrape(api)
    # nothing runs yet: the projection's gauges see the backlog
    assert value(before, "reactor_metrics_database_up") == 1
    assert value(before, "reactor_runs", org=ORG, job="metered", status="queued") == 4
    assert value(before, "reactor_queue_depth", org=ORG, job="metered") == 4
    assert value(before, "reactor_queue_oldest_due_age_seconds") > 0
    assert value(before, "reactor_dlq_open", org=ORG, job="metered") == 0

    engine.start_worker()
    for run_id in [*queued, doomed]:
        await api.wait_run("metered", run_id, ("completed", "failed"))
    after = await scrape(api)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    mine = {"org": ORG, "job": "metered"}
    assert moved("reactor_attempts_total", **mine, outcome="completed") == 3
    assert moved("reactor_attempts_total", **mine, outcome="failed") == 1
    assert moved("reactor_runs_finished_total", **mine, status="completed") == 3
    assert moved("reactor_runs_finished_total", **mine, status="failed") == 1
    assert moved("reactor_runs_claimed_total") >= 4
    assert moved("reactor_claim_latency_seconds_count") >= 1
    assert moved("reactor_trigger_to_start_seconds_count", start="first") >= 4
    assert moved("reactor_step_duration_seconds_count") >= 3
    assert value(after, "reactor_dlq_open", **mine) == 1  # the fatal run
    assert value(after, "reactor_runs", **mine, status="queued") == 0
    assert value(after, "reactor_queue_depth", **mine) == 0
    assert ("reactor_function_hosts", frozenset()) in after
    assert value(after, "process_cpu_seconds_total") > 0


async def test_retries_are_counted(api: Api) -> None:
    engine = api.engine
    await engine.job("wobbly")
    engine.start_worker()
    before = await scrape(api)
    run_id = await trigger(api, "wobbly", {"mode": "flaky", "ok_on": 2})
    await api.wait_run("wobbly", run_id, ("completed",))
    after = await scrape(api)
    labels = {"org": ORG, "job": "wobbly"}
    assert (
        value(after, "reactor_retries_total", **labels)
        - value(before, "reactor_retries_total", **labels)
        == 1
    )
    assert value(after, "reactor_steps_failed_total") > value(before, "reactor_steps_failed_total")
    retried = value(after, "reactor_trigger_to_start_seconds_count", start="retry")
    assert retried > value(before, "reactor_trigger_to_start_seconds_count", start="retry")


async def test_metrics_hold_no_payloads_ids_or_errors(api: Api) -> None:
    engine = api.engine
    await engine.job("secretive")
    engine.start_worker()
    run_id = await trigger(api, "secretive", {"mode": "fatal", "password": "hunter2-payload"})
    await api.wait_run("secretive", run_id, ("failed",))
    text = (await api.call("GET", "/metrics", as_=None)).text
    for leak in ("hunter2", run_id, "do not retry", "NonRetryableError", "Bearer"):
        assert leak not in text


async def test_the_series_are_capped_and_the_rest_summed_as_other(engine: Engine) -> None:
    for job in ("one", "two", "three"):
        await engine.job(job)
    for job, count in (("one", 3), ("two", 2), ("three", 1)):
        await engine.control.trigger_many(ORG, job, [{"mode": "noop"}] * count)
    samples = parse((await render(engine.pool, None, max_series=2)).decode())
    assert value(samples, "reactor_runs", org=ORG, job="one", status="queued") == 3
    assert value(samples, "reactor_runs", org=ORG, job="two", status="queued") == 2
    assert value(samples, "reactor_runs", org=OTHER, job=OTHER, status="queued") == 1
    assert value(samples, "reactor_runs", org=ORG, job="three", status="queued") == 0


def test_label_cap_and_top_pairs() -> None:
    cap = LabelCap(2)
    assert [cap("o", j) for j in "abca"] == [("o", "a"), ("o", "b"), (OTHER, OTHER), ("o", "a")]
    assert top_pairs({("o", "a"): 1, ("o", "b"): 5, ("o", "c"): 3}, 2) == {("o", "b"), ("o", "c")}


async def test_the_separate_listener_and_its_bearer_token(api: Api) -> None:
    token = "metrics-token-0123456789"
    settings = MetricsConfig(port=0, bearer_token=token)
    runner = await start_metrics_listener(api.node, settings)
    assert runner is not None
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as r:
                assert r.status == 401 and "Bearer" in r.headers["WWW-Authenticate"]
            wrong = {"Authorization": "Bearer not-the-token-at-all"}
            async with session.get(url, headers=wrong) as r:
                assert r.status == 401
                assert token not in await r.text()
            async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 200
                samples = parse(await r.text())
        assert value(samples, "reactor_metrics_database_up") == 1
    finally:
        await runner.cleanup()
    assert await start_metrics_listener(api.node, MetricsConfig()) is None  # no port: none


async def test_serve_metrics_open_by_default_and_404_when_off(api: Api) -> None:
    assert (await api.call("GET", "/metrics", as_=None)).status == 200
    # the bearer token of the API is not needed, and not refused either
    assert (await api.call("GET", "/metrics", as_="member")).status == 200
    off = await metrics_response(
        make_mocked_request("GET", "/metrics"), api.node, MetricsConfig(enabled=False)
    )
    assert off.status == 404


async def test_scheduler_lateness_is_observed_per_slot_fired(engine: Engine) -> None:
    await engine.job("ticking")
    await cron_trigger(engine, "trg_late", "ticking", "* * * * *", catch_up="all",
                       fired_through_ago=timedelta(minutes=3))  # fmt: skip
    before = parse((await render(None, None, max_series=10)).decode())
    await Scheduler(engine.pool, engine.control, interval_ms=100).tick()
    fired = len(await fired_slots(engine, "trg_late"))
    after = parse((await render(None, None, max_series=10)).decode())
    name = "reactor_scheduler_lateness_seconds"
    assert fired >= 3
    assert value(after, f"{name}_count") - value(before, f"{name}_count") == fired
    # the oldest slot was minutes late: the sum says so
    assert value(after, f"{name}_sum") - value(before, f"{name}_sum") > 60
    # a second tick fires nothing more, and observes nothing more
    await Scheduler(engine.pool, engine.control, interval_ms=100).tick()
    again = parse((await render(None, None, max_series=10)).decode())
    assert value(again, f"{name}_count") == value(after, f"{name}_count")
