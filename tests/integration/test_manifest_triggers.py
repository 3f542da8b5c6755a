"""A function manifest's `job.triggers` reconciled on promote (and on job create or rebind):
manifest triggers added, changed in place and removed; API triggers never touched; an
unchanged trigger keeps its id and a webhook its URL; simultaneous promotes add nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from reactor_jobs.functions.bundle import pack_dir
from reactor_jobs.functions.errors import InvalidManifest
from reactor_jobs.triggers.manifest_sync import TriggerChanges
from reactor_jobs.triggers.specs import CronSpec, WebhookSpec
from reactor_jobs.triggers.store import TriggerStore
from tests.cli_runner import owner_env, run_cli
from tests.engine_fixtures import BUNDLES, ORG, Engine
from tests.http_fixtures import Api, api

pytestmark = pytest.mark.integration
__all__ = ["api"]

FN = "reports"
JOBS = "/jobs/v1/_admin/jobs"
FUNCTIONS = "/functions/v1/_admin/functions"
HOURLY = {"kind": "cron", "schedule": "0 * * * *"}
HALF_PAST = {"kind": "cron", "schedule": "30 * * * *", "timezone": "Europe/Paris"}
ORDERS = {"kind": "event", "topic": "order.created"}
REFUNDS = {"kind": "event", "topic": "order.refunded"}
WEBHOOK = {"kind": "webhook"}
MANUAL = {"kind": "manual"}
_ROWS = """
SELECT id, job, kind, schedule, timezone, catch_up, topic, token_hash, source, created_at,
       fired_through
  FROM _reactor_jobs.triggers ORDER BY id"""


def bundle(tmp: Path, triggers: list[dict[str, Any]]) -> bytes:
    """A bundle of function FN (the scenarios code) whose manifest names these triggers."""
    folder = tmp / f"bundle-{uuid.uuid4().hex[:8]}"
    shutil.copytree(BUNDLES / "scenarios" / "code", folder / "code")
    manifest = {"name": FN, "runtime": "python", "job": {"triggers": triggers}}
    (folder / "function.json").write_text(json.dumps(manifest))
    return pack_dir(folder)


async def deploy(engine: Engine, triggers: list[dict[str, Any]]) -> int:
    if FN not in {f.name for f in await engine.registry.list_functions(ORG)}:
        await engine.registry.create_function(ORG, FN)
    return await engine.registry.deploy(ORG, FN, bundle(engine.tmp, triggers))


async def manifest_triggers(pool: asyncpg.Pool, job: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT * FROM _reactor_jobs.triggers WHERE job = $1 AND source = 'manifest'"
        " ORDER BY kind, schedule, topic",
        job,
    )
    return rows


def ids(triggers: list[Any]) -> list[str]:
    return sorted(t.id for t in triggers)


def shapes(changes: TriggerChanges, field: str) -> list[tuple[str, str | None]]:
    found = getattr(changes, field)
    triggers = [t.trigger for t in found] if field == "added" else found
    return sorted((t.kind, t.schedule or t.topic) for t in triggers)


async def test_promote_adds_changes_and_removes_manifest_triggers_only(engine: Engine) -> None:
    store = TriggerStore(engine.pool)
    v1 = await deploy(engine, [HOURLY, ORDERS, WEBHOOK])
    await engine.registry.create_job(ORG, "nightly", FN)  # nothing live yet: no triggers
    assert await manifest_triggers(engine.pool, "nightly") == []
    first = await engine.registry.promote_with_triggers(ORG, FN, v1)
    assert first.version == v1
    assert shapes(first.triggers, "added") == [
        ("cron", "0 * * * *"), ("event", "order.created"), ("webhook", None)
    ]  # fmt: skip
    assert first.triggers.changed == first.triggers.removed == first.triggers.unchanged == []
    hook = next(t for t in first.triggers.added if t.trigger.kind == "webhook")
    assert hook.token is not None and hook.url == "/jobs/v1/webhooks/" + hook.token
    assert all(t.token is None for t in first.triggers.added if t.trigger.kind != "webhook")
    api_cron = (await store.create(ORG, "nightly", CronSpec(schedule="0 * * * *"))).trigger
    api_hook = await store.create(ORG, "nightly", WebhookSpec())
    api_rows = await engine.pool.fetch(
        "SELECT * FROM _reactor_jobs.triggers WHERE source = 'api' ORDER BY id"
    )
    cron_before = next(t.trigger for t in first.triggers.added if t.trigger.kind == "cron")

    v2 = await deploy(engine, [WEBHOOK, HALF_PAST, MANUAL])
    second = (await engine.registry.promote_with_triggers(ORG, FN, v2)).triggers
    assert ids(second.unchanged) == [hook.trigger.id]
    assert ids(second.changed) == [cron_before.id]  # same trigger, new schedule
    (cron_after,) = second.changed
    assert (cron_after.schedule, cron_after.timezone) == ("30 * * * *", "Europe/Paris")
    assert shapes(second, "removed") == [("event", "order.created")]
    assert shapes(second, "added") == [("manual", None)]
    # The unchanged webhook kept its token; the API's triggers were not touched.
    assert (await store.find_webhook(hook.token)).id == hook.trigger.id  # type: ignore[union-attr]
    assert (await store.find_webhook(api_hook.token or "")).id == api_hook.trigger.id  # type: ignore[union-attr]
    assert (
        await engine.pool.fetch(
            "SELECT * FROM _reactor_jobs.triggers WHERE source = 'api' ORDER BY id"
        )
        == api_rows
    )
    assert api_cron.id in {r["id"] for r in api_rows}
    rows = await manifest_triggers(engine.pool, "nightly")
    assert [(r["kind"], r["schedule"]) for r in rows] == [
        ("cron", "30 * * * *"), ("manual", None), ("webhook", None)
    ]  # fmt: skip
    # The new schedule counts from the change on: nothing of it before is caught up.
    cron_row = next(r for r in rows if r["kind"] == "cron")
    now = await engine.pool.fetchval("SELECT now()")
    assert cron_row["fired_through"] is not None and cron_row["fired_through"] <= now
    assert cron_row["fired_through"] > cron_row["created_at"]

    back = (await engine.registry.promote_with_triggers(ORG, FN, v1)).triggers
    assert ids(back.changed) == [cron_before.id] and ids(back.unchanged) == [hook.trigger.id]
    assert shapes(back, "added") == [("event", "order.created")]
    assert shapes(back, "removed") == [("manual", None)]


async def test_promoting_the_live_version_again_changes_nothing(engine: Engine) -> None:
    v1 = await deploy(engine, [HOURLY, ORDERS, WEBHOOK, WEBHOOK])
    await engine.registry.create_job(ORG, "a", FN)
    await engine.registry.create_job(ORG, "b", FN)
    await engine.registry.promote(ORG, FN, v1)
    rows = await engine.pool.fetch(_ROWS)
    assert len(rows) == 8
    again = (await engine.registry.promote_with_triggers(ORG, FN, v1)).triggers
    assert (again.added, again.changed, again.removed) == ([], [], [])
    assert ids(again.unchanged) == [r["id"] for r in rows]
    assert await engine.pool.fetch(_ROWS) == rows
    # A reordered manifest with the same triggers is no change either.
    v2 = await deploy(engine, [WEBHOOK, ORDERS, WEBHOOK, HOURLY])
    reordered = (await engine.registry.promote_with_triggers(ORG, FN, v2)).triggers
    assert len(reordered.unchanged) == 8 and not (reordered.added or reordered.removed)
    assert await engine.pool.fetch(_ROWS) == rows


async def test_a_job_gets_the_live_manifests_triggers_when_created_or_rebound(
    engine: Engine,
) -> None:
    await engine.deploy("scenarios")  # a function whose manifest names no triggers
    v1 = await deploy(engine, [HOURLY, REFUNDS])
    await engine.registry.promote(ORG, FN, v1)
    created = await engine.registry.create_job_with_triggers(ORG, "sync", FN, max_attempts=2)
    assert created.job.max_attempts == 2
    assert shapes(created.triggers, "added") == [("cron", "0 * * * *"), ("event", "order.refunded")]
    assert len(await manifest_triggers(engine.pool, "sync")) == 2
    plain = await engine.registry.create_job_with_triggers(ORG, "plain", "scenarios")
    assert not plain.triggers and await manifest_triggers(engine.pool, "plain") == []

    await TriggerStore(engine.pool).create(ORG, "sync", CronSpec(schedule="*/5 * * * *"))
    moved = await engine.registry.update_job_with_triggers(ORG, "sync", function_name="scenarios")
    assert shapes(moved.triggers, "removed") == [("cron", "0 * * * *"), ("event", "order.refunded")]
    assert await manifest_triggers(engine.pool, "sync") == []
    kept = await engine.pool.fetch("SELECT schedule FROM _reactor_jobs.triggers WHERE job = 'sync'")
    assert [r["schedule"] for r in kept] == ["*/5 * * * *"]  # the API's stays
    back = await engine.registry.update_job_with_triggers(ORG, "sync", function_name=FN)
    assert len(back.triggers.added) == 2
    same = await engine.registry.update_job_with_triggers(ORG, "sync", max_attempts=3)
    assert not same.triggers and same.job.max_attempts == 3


async def test_simultaneous_promotes_and_job_creates_never_duplicate(engine: Engine) -> None:
    v1 = await deploy(engine, [HOURLY, ORDERS, WEBHOOK])
    v2 = await deploy(engine, [HALF_PAST, REFUNDS, WEBHOOK, MANUAL])
    await engine.registry.create_job(ORG, "first", FN)
    promotes = [engine.registry.promote(ORG, FN, v1 if i % 2 else v2) for i in range(10)]
    creates = [engine.registry.create_job(ORG, f"job-{i}", FN) for i in range(6)]
    await asyncio.gather(*promotes, *creates)
    live = (await engine.registry.get_function(ORG, FN)).live_version
    expected = (
        [("cron", "0 * * * *"), ("event", "order.created"), ("webhook", None)]
        if live == v1
        else [("cron", "30 * * * *"), ("event", "order.refunded"), ("manual", None),
              ("webhook", None)]
    )  # fmt: skip
    for job in ["first", *(f"job-{i}" for i in range(6))]:
        rows = await manifest_triggers(engine.pool, job)
        assert sorted((r["kind"], r["schedule"] or r["topic"]) for r in rows) == expected, job


async def test_a_job_created_during_a_promote_gets_the_promoted_versions_triggers(
    engine: Engine,
) -> None:
    """A job create waits for a promote in flight instead of applying the version before."""
    v1 = await deploy(engine, [HOURLY])
    v2 = await deploy(engine, [REFUNDS])
    await engine.registry.promote(ORG, FN, v1)
    promoting = await asyncpg.connect(engine.db_url)
    try:
        async with promoting.transaction():  # what a promote holds until it commits
            await promoting.execute(
                "SELECT 1 FROM _reactor_jobs.functions WHERE org = $1 AND name = $2"
                " FOR NO KEY UPDATE",
                ORG,
                FN,
            )
            create = asyncio.create_task(engine.registry.create_job_with_triggers(ORG, "j", FN))
            await asyncio.sleep(0.3)  # the create reaches the function row meanwhile
            await promoting.execute(
                "UPDATE _reactor_jobs.functions SET live_version = $3 WHERE org = $1 AND name = $2",
                ORG,
                FN,
                v2,
            )
        created = await create
    finally:
        await promoting.close()
    assert shapes(created.triggers, "added") == [("event", "order.refunded")]
    rows = await manifest_triggers(engine.pool, "j")
    assert [(r["kind"], r["topic"]) for r in rows] == [("event", "order.refunded")]


async def cli(api: Api, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """`reactor …` as a user runs it, signed in as acme's owner."""
    return await run_cli(*args, cwd=tmp_path, env=owner_env(api, tmp_path / "config"))


async def http_deploy(api: Api, triggers: list[dict[str, Any]]) -> int:
    reply = await api.call(
        "POST", f"{FUNCTIONS}/{FN}/deploy", data=bundle(api.engine.tmp, triggers),
        headers={"Content-Type": "application/gzip"},
    )  # fmt: skip
    assert reply.status == 201, reply.text
    return int(reply.json["version"])


async def test_promote_and_job_create_responses_show_new_webhook_urls_once(api: Api) -> None:
    assert (await api.call("POST", FUNCTIONS, json={"name": FN})).status == 201
    v1 = await http_deploy(api, [HOURLY, WEBHOOK])
    alone = await api.call("POST", f"{FUNCTIONS}/{FN}/promote", json={"version": v1})
    assert alone.status == 200 and "triggers" not in alone.json  # no job bound yet
    created = await api.call("POST", JOBS, json={"name": "nightly", "function_name": FN})
    assert created.status == 201
    changes = created.json["triggers"]
    assert (changes["changed"], changes["removed"], changes["unchanged"]) == ([], [], [])
    by_kind = {t["kind"]: t for t in changes["added"]}
    assert by_kind.keys() == {"cron", "webhook"} and "url" not in by_kind["cron"]
    assert {t["source"] for t in changes["added"]} == {"manifest"}
    url = by_kind["webhook"]["url"]
    assert url.startswith("/jobs/v1/webhooks/whk_") and by_kind["webhook"]["signed"] is False
    got = await api.call("GET", f"{JOBS}/nightly")
    assert "triggers" not in got.json and url not in got.text
    listed = await api.call("GET", f"{JOBS}/nightly/triggers")
    assert url not in listed.text and len(listed.json["triggers"]) == 2

    v2 = await http_deploy(api, [WEBHOOK, ORDERS])
    promoted = await api.call("POST", f"{FUNCTIONS}/{FN}/promote", json={"version": v2})
    assert promoted.status == 200 and promoted.json["live_version"] == v2
    summary = promoted.json["triggers"]
    assert [t["id"] for t in summary["unchanged"]] == [by_kind["webhook"]["id"]]
    assert [t["id"] for t in summary["removed"]] == [by_kind["cron"]["id"]]
    assert [(t["kind"], t["topic"], t["job"]) for t in summary["added"]] == [
        ("event", "order.created", "nightly")
    ]
    assert url not in promoted.text  # shown once, at its creation
    accepted = await api.call("POST", url, as_=None, json={"still": "works"})
    assert accepted.status == 202, accepted.text
    again = await api.call("POST", f"{FUNCTIONS}/{FN}/promote", json={"version": v2})
    assert again.json["triggers"]["added"] == again.json["triggers"]["removed"] == []


async def test_the_cli_prints_manifest_triggers_and_new_webhook_urls(
    api: Api, tmp_path: Path
) -> None:
    assert (await api.call("POST", FUNCTIONS, json={"name": FN})).status == 201
    v1 = await http_deploy(api, [HOURLY, WEBHOOK])
    promoted = await api.call("POST", f"{FUNCTIONS}/{FN}/promote", json={"version": v1})
    assert promoted.status == 200
    code, out, err = await cli(api, tmp_path, "jobs", "create", "nightly", "--function", FN)
    assert code == 0, err
    assert "manifest triggers: 2 added, 0 changed, 0 removed, 0 unchanged" in out
    assert re.search(r"^  added +trg_\S+ +nightly +cron +0 \* \* \* \*$", out, re.MULTILINE), out
    url = re.search(rf"Returns ingress URL: {re.escape(api.base)}(/jobs/v1/webhooks/whk_\S+)", out)
    assert url is not None and "shown only now" in err  # the full URL, the server's own
    assert (await api.call("POST", url[1], as_=None, json={})).status == 202
    await http_deploy(api, [HOURLY, WEBHOOK, WEBHOOK])
    code, out, err = await cli(api, tmp_path, "functions", "promote", FN)
    assert code == 0, err
    assert f"{FN}: version 2 is live" in out
    assert "manifest triggers: 1 added, 0 changed, 0 removed, 2 unchanged" in out
    full_url = rf"Returns ingress URL: {re.escape(api.base)}/jobs/v1/webhooks/"
    assert len(re.findall(full_url, out)) == 1
    assert url[1] not in out
    code, out, err = await cli(api, tmp_path, "functions", "promote", FN, "--json")
    assert code == 0 and len(json.loads(out)["triggers"]["unchanged"]) == 3


async def test_a_manifest_trigger_the_api_would_refuse_is_refused_at_deploy(
    engine: Engine,
) -> None:
    with pytest.raises(InvalidManifest) as refused:
        await deploy(engine, [HOURLY, {"kind": "event", "topic": " order.created"}])
    assert refused.value.path == "$.job.triggers[1].topic"
    assert "whitespace" in refused.value.reason
    assert await engine.registry.list_versions(ORG, FN) == []
