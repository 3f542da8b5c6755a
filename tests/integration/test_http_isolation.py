"""Org isolation and roles, route by route: every route that names an object is called with
another org's credentials on acme's objects (404, never 403: nothing leaks that it exists)
and, where it changes things, by a mere member of acme (403). Nothing changes either way."""

from __future__ import annotations

import re
from typing import Any

import pytest

from reactor_jobs.functions.bundle import pack_dir
from reactor_jobs.http.app import routes
from reactor_jobs.http.routes import Route
from tests.engine_fixtures import BUNDLES
from tests.http_fixtures import Api, api, publish

pytestmark = pytest.mark.integration
__all__ = ["api"]

JOB = "process-order"


async def acme_objects(api: Api) -> dict[str, str]:
    """A function, a job, a webhook trigger, a failed run and its DLQ entry, in acme."""
    await publish(api, "process-order")
    job = {"name": JOB, "function_name": JOB, "max_attempts": 1}
    assert (await api.call("POST", "/jobs/v1/_admin/jobs", json=job)).status == 201
    hook = await api.call("POST", f"/jobs/v1/_admin/jobs/{JOB}/triggers", json={"kind": "webhook"})
    api.engine.start_worker()
    no_order = {"payload": {"total": 5}}  # no orderId: the run fails
    run = (await api.call("POST", f"/jobs/v1/{JOB}/trigger", json=no_order)).json
    failed = await api.wait_run(JOB, run["id"], ("failed",))
    await api.engine.stop_workers()
    return {"run": run["id"], "trigger": hook.json["id"], "dlq": failed["dlq_id"]}


def target(route: Route, ids: dict[str, str]) -> str:
    values = {
        "name": JOB,
        "id": ids["trigger"] if "/triggers/" in route.path else ids["run"],
        "dlq_id": ids["dlq"],
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m[1]], route.path)


def request_body(route: Route) -> dict[str, Any]:
    if route.path.endswith("/deploy"):
        return {"data": pack_dir(BUNDLES / "process-order"),
                "headers": {"Content-Type": "application/gzip"}}  # fmt: skip
    bodies = {
        "create_trigger": {"kind": "manual"},
        "update_job": {"max_attempts": 2},
        "trigger": {"payload": {"orderId": "ord_1"}},
        "promote": {"version": 1},
        "check_function": {"version": 1},
        "replay_run": {"version": 1},
    }
    return {"json": bodies[route.name]} if route.name in bodies else {}


def object_routes() -> list[Route]:
    return [r for r in routes() if r.access != "public" and "{" in r.path]


async def test_another_orgs_objects_are_not_found_on_every_route(api: Api) -> None:
    ids = await acme_objects(api)
    before = await api.snapshot()
    checked = []
    made_up = {name: f"{value[:4]}01NOSUCHTHING" for name, value in ids.items()}
    for route in object_routes():
        reply = await api.call(
            route.method, target(route, ids), as_="outsider", **request_body(route)
        )
        assert (reply.status, reply.error_code) == (404, "not_found"), (route.name, reply.text)
        # Indistinguishable from asking for something that does not exist anywhere.
        unknown = await api.call(
            route.method, target(route, made_up), as_="outsider", **request_body(route)
        )
        message = reply.json["error"]["message"]
        for name, value in ids.items():
            message = message.replace(value, made_up[name])
        assert message == unknown.json["error"]["message"]
        checked.append(route.name)
    assert await api.snapshot() == before
    assert len(checked) >= 19 and {"stream_logs", "retry_dlq", "deploy"} <= set(checked)
    audit = {"run_state", "run_state_diff", "run_lineage", "replay_run", "check_function"}
    assert audit <= set(checked)


async def test_listings_show_another_org_nothing(api: Api) -> None:
    ids = await acme_objects(api)
    before = await api.snapshot()
    for route in routes():
        if route.access == "public" or "{" in route.path or route.method != "GET":
            continue
        reply = await api.call("GET", route.path, as_="outsider")
        assert reply.status == 200, (route.name, reply.text)
        assert JOB not in reply.text and ids["run"] not in reply.text
    assert await api.snapshot() == before


async def test_a_job_cannot_bind_another_orgs_function(api: Api) -> None:
    await acme_objects(api)
    before = await api.snapshot()
    body = {"name": "steal", "function_name": JOB}
    reply = await api.call("POST", "/jobs/v1/_admin/jobs", as_="outsider", json=body)
    assert (reply.status, reply.error_code) == (404, "not_found")
    assert await api.snapshot() == before


async def test_members_may_read_and_trigger_but_not_change(api: Api) -> None:
    ids = await acme_objects(api)
    before = await api.snapshot()
    for route in routes():
        if route.access != "admin":
            continue
        reply = await api.call(
            route.method, target(route, ids), as_="member", **request_body(route)
        )
        assert (reply.status, reply.error_code) == (403, "forbidden"), (route.name, reply.text)
    assert await api.snapshot() == before
    runs = await api.call("GET", f"/jobs/v1/_admin/jobs/{JOB}/runs", as_="member")
    assert runs.status == 200 and runs.json["runs"][0]["id"] == ids["run"]
    triggered = await api.call(
        "POST", f"/jobs/v1/{JOB}/trigger", as_="member", json={"payload": {"orderId": "o"}}
    )
    assert triggered.status == 201


async def test_credentials_for_another_org_are_refused(api: Api) -> None:
    ids = await acme_objects(api)
    await api.add_api_key("globex-ci", "globex", "admin")
    before = await api.snapshot()
    path = f"/jobs/v1/_admin/jobs/{JOB}/runs/{ids['run']}"
    # A globex user naming acme is not a member there; a globex key naming acme is refused.
    as_user = await api.call("GET", path, as_="outsider", headers={"X-Reactor-Org": "acme"})
    assert (as_user.status, as_user.error_code) == (403, "forbidden")
    as_key = await api.call("GET", path, as_="globex-ci", headers={"X-Reactor-Org": "acme"})
    assert (as_key.status, as_key.error_code) == (403, "forbidden")
    own_org = await api.call("GET", path, as_="globex-ci")
    assert (own_org.status, own_org.error_code) == (404, "not_found")
    assert await api.snapshot() == before
