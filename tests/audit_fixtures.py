"""Audit test helpers over HTTP: the quickstart run completed, ledger runs asleep, versions
deployed without promoting, jobs with event triggers."""

from __future__ import annotations

from typing import Any

from reactor_jobs.functions.bundle import pack_dir
from tests.engine_fixtures import BUNDLES
from tests.http_fixtures import Api, publish

JOB = "process-order"
RUN = "/jobs/v1/_admin/jobs/{job}/runs/{run}"


def run_path(run_id: str, job: str = JOB) -> str:
    return RUN.format(job=job, run=run_id)


async def deploy(api: Api, function: str, bundle: str) -> int:
    """Deploy a bundle as the function's next version, not promoted."""
    reply = await api.call(
        "POST", f"/functions/v1/_admin/functions/{function}/deploy",
        data=pack_dir(BUNDLES / bundle), headers={"Content-Type": "application/gzip"},
    )  # fmt: skip
    assert reply.status == 201, reply.text
    return int(reply.json["version"])


async def create_job(api: Api, name: str, function: str, topic: str | None = None) -> None:
    reply = await api.call(
        "POST", "/jobs/v1/_admin/jobs", json={"name": name, "function_name": function}
    )
    assert reply.status == 201, reply.text
    if topic is not None:
        trigger = {"kind": "event", "topic": topic}
        made = await api.call("POST", f"/jobs/v1/_admin/jobs/{name}/triggers", json=trigger)
        assert made.status == 201, made.text


async def trigger(api: Api, job: str, payload: Any) -> str:
    reply = await api.call("POST", f"/jobs/v1/{job}/trigger", json={"payload": payload})
    assert reply.status == 201, reply.text
    return str(reply.json["id"])


async def completed_order(api: Api) -> str:
    """The quickstart run, completed: Triggered, AttemptStarted, StepCompleted validate,
    StepCompleted charge, Emitted, Completed (positions 1 to 6)."""
    await publish(api, "process-order")
    await create_job(api, JOB, JOB)
    api.engine.start_worker()
    run_id = await trigger(api, JOB, {"orderId": "ord_7", "total": 12})
    assert (await api.wait_run(JOB, run_id, ("completed", "failed")))["status"] == "completed"
    await api.engine.stop_workers()
    return run_id


async def sleeping_ledger_runs(api: Api, count: int) -> list[str]:
    await publish(api, "ledger")
    await create_job(api, "orders", "ledger")
    api.engine.start_worker()
    ids = [await trigger(api, "orders", {"amount": n, "nap": "1h"}) for n in range(count)]
    for run_id in ids:
        await api.wait_run("orders", run_id, ("sleeping",))
    await api.engine.stop_workers()
    return ids
