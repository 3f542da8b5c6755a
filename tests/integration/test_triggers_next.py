"""`GET …/triggers/next` and `reactor jobs triggers next`: the next fire times of a job's
cron triggers from the database clock's now, in UTC and in the trigger's timezone, under the
DST rule (a skipped local time fires at the first instant after the gap, a repeated one once).
"""

from __future__ import annotations

import itertools
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reactor_jobs.client import create_client
from tests.http_fixtures import PASSWORD, Api, api
from tests.integration.test_manifest_triggers import cli

pytestmark = pytest.mark.integration
__all__ = ["api"]

JOBS = "/jobs/v1/_admin/jobs"
NEXT = f"{JOBS}/sync/triggers/next"


async def job_with_crons(api: Api) -> dict[str, str]:
    """Job `sync` with four cron triggers (and an event trigger, which has no fire times)."""
    body = {"name": "sync", "function_name": "scenarios"}
    assert (await api.call("POST", JOBS, json=body)).status == 201
    crons = {
        "weekdays": {"schedule": "0 9 * * 1-5"},
        "seconds": {"schedule": "* * * * * */2"},
        "march": {"schedule": "30 2 * 3 0", "timezone": "America/New_York"},
        "november": {"schedule": "30 1 * 11 0", "timezone": "America/New_York"},
    }
    ids = {}
    for name, fields in crons.items():
        reply = await api.call("POST", f"{JOBS}/sync/triggers", json={"kind": "cron", **fields})
        assert reply.status == 201, reply.text
        ids[name] = reply.json["id"]
    event = {"kind": "event", "topic": "order.created"}
    assert (await api.call("POST", f"{JOBS}/sync/triggers", json=event)).status == 201
    return ids


def fires(body: dict[str, Any], trigger_id: str) -> list[tuple[datetime, datetime | None]]:
    (trigger,) = [t for t in body["triggers"] if t["id"] == trigger_id]
    return [
        (
            datetime.fromisoformat(f["at"]),
            None if f["local"] is None else datetime.fromisoformat(f["local"]),
        )
        for f in trigger["fires"]
    ]


def nth_sunday(year: int, month: int, n: int) -> int:
    first = datetime(year, month, 1).weekday()  # Monday 0
    return 1 + (6 - first) % 7 + 7 * (n - 1)


async def test_next_fires_from_the_database_clock_in_utc_and_local_time(api: Api) -> None:
    ids = await job_with_crons(api)
    before = await api.node.pool.fetchval("SELECT clock_timestamp()")
    reply = await api.call("GET", f"{NEXT}?count=12")
    after = await api.node.pool.fetchval("SELECT clock_timestamp()")
    assert reply.status == 200, reply.text
    body = reply.json
    now = datetime.fromisoformat(body["now"])
    assert body["job"] == "sync" and before <= now <= after
    assert [t["id"] for t in body["triggers"]] == list(ids.values())  # no event trigger
    for trigger in body["triggers"]:
        times = [at for at, _ in fires(body, trigger["id"])]
        assert len(times) == 12 and times[0] > now
        assert all(a < b for a, b in itertools.pairwise(times))
        assert all(at.utcoffset() == timedelta(0) for at in times)

    weekdays = fires(body, ids["weekdays"])
    assert all(at.weekday() < 5 and (at.hour, at.minute) == (9, 0) for at, _ in weekdays)
    assert all(local is None for _, local in weekdays)  # UTC: no local time
    seconds = [at for at, _ in fires(body, ids["seconds"])]
    assert seconds[0] - now <= timedelta(seconds=2)
    assert all(b - a == timedelta(seconds=2) for a, b in itertools.pairwise(seconds))

    # Sundays of March, New York, 02:30: on the second one (spring forward) 02:30 does not
    # exist and the fire is at 03:00 EDT; twelve fires span at least two Marches.
    march = fires(body, ids["march"])
    springs = 0
    for at, local in march:
        assert local is not None and local == at and local.date().month == 3
        if local.day == nth_sunday(local.year, 3, 2):
            springs += 1
            assert (local.hour, local.minute, local.utcoffset()) == (3, 0, timedelta(hours=-4))
        else:
            assert (local.hour, local.minute) == (2, 30)
    assert springs >= 2
    # Sundays of November, 01:30: on the first one (fall back) 01:30 happens twice and fires
    # once, at the first occurrence (EDT).
    november = fires(body, ids["november"])
    assert len({local.date() for _, local in november if local}) == 12
    for at, local in november:
        assert local is not None and local == at and (local.hour, local.minute) == (1, 30)
        fall_back = local.day == nth_sunday(local.year, 11, 1)
        assert local.utcoffset() == timedelta(hours=-4 if fall_back else -5)


async def test_count_is_checked_and_other_orgs_see_nothing(api: Api) -> None:
    await job_with_crons(api)
    default = (await api.call("GET", NEXT)).json
    assert {len(t["fires"]) for t in default["triggers"]} == {5}
    assert {len(t["fires"]) for t in (await api.call("GET", f"{NEXT}?count=100")).json[
        "triggers"]} == {100}  # fmt: skip
    for bad in ("0", "101", "-1", "two", "1.5"):
        reply = await api.call("GET", f"{NEXT}?count={bad}")
        assert (reply.status, reply.error_code) == (422, "invalid_field"), bad
        assert "count" in reply.json["error"]["message"]
    unknown = await api.call("GET", f"{NEXT}?limit=3")
    assert (unknown.status, unknown.error_code) == (422, "invalid_field")
    missing = await api.call("GET", f"{JOBS}/nope/triggers/next")
    assert (missing.status, missing.error_code) == (404, "not_found")
    outsider = await api.call("GET", NEXT, as_="outsider")
    assert (outsider.status, outsider.error_code) == (404, "not_found")
    member = await api.call("GET", NEXT, as_="member")
    assert member.status == 200
    empty = {"name": "quiet", "function_name": "scenarios"}
    assert (await api.call("POST", JOBS, json=empty)).status == 201
    assert (await api.call("GET", f"{JOBS}/quiet/triggers/next")).json["triggers"] == []


async def test_the_client_and_the_cli(api: Api, tmp_path: Path) -> None:
    ids = await job_with_crons(api)
    code, out, err = await cli(api, tmp_path, "jobs", "triggers", "next", "sync", "--count", "2")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["TRIGGER", "SCHEDULE", "AT", "(UTC)", "LOCAL"]
    assert len(lines) == 1 + 2 * len(ids)
    march = [line for line in lines if line.startswith(ids["march"])]
    assert len(march) == 2 and all(re.search(r" (02:30|03:00):00 E[DS]T \(America/New_York\)$",
                                             line) for line in march)  # fmt: skip
    weekdays = [line for line in lines if line.startswith(ids["weekdays"])]
    assert all(re.search(r" 09:00:00Z +-$", line) for line in weekdays), weekdays
    assert "(the database clock)" in err
    code, out, err = await cli(api, tmp_path, "jobs", "triggers", "next", "sync", "--json")
    assert code == 0, err
    assert re.search(r'"now": "', out) and out.count('"at"') == 5 * len(ids)
    code, out, err = await cli(api, tmp_path, "jobs", "triggers", "next", "sync", "--count", "0")
    assert code == 1 and out == "" and "count" in err

    async with create_client(api.base) as client:
        await client.auth.sign_in_with_password(email="owner@acme.test", password=PASSWORD)
        client.auth.set_org("acme")
        preview = await client.jobs.triggers.next("sync", count=3)
    assert [t.id for t in preview.triggers] == list(ids.values())
    (november,) = [t for t in preview.triggers if t.id == ids["november"]]
    assert len(november.fires) == 3 and all(f.local is not None for f in november.fires)
    assert all(f.at.tzinfo is not None and f.at > preview.now for f in november.fires)
    assert november.timezone == "America/New_York" and november.source == "api"
