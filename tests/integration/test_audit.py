"""Audit: replay checks reproduce a run on its own version and name the first divergence of
another; an altered export fails offline; time travel equals folding the prefix."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from reactor_jobs.domain.replay import fold
from reactor_jobs.functions.bundle import pack_dir
from reactor_jobs.functions.records import FunctionVersion
from reactor_jobs.projections.auditor import Auditor
from reactor_jobs.projections.export import export_runs, verify_export
from reactor_jobs.projections.replay_check import diff, replay_check, state_at
from tests.engine_fixtures import BUNDLES, ORG, Engine

pytestmark = pytest.mark.integration


async def completed_quickstart(engine: Engine) -> str:
    await engine.deploy("process-order")
    await engine.job("process-order", "process-order")
    engine.start_worker()
    run = await engine.control.trigger(ORG, "process-order", payload={"orderId": "ord_7"})
    assert (await engine.wait(run.id)).status == "completed"
    return run.id


async def test_a_run_replays_exactly_on_its_pinned_version(engine: Engine) -> None:
    run_id = await completed_quickstart(engine)
    auditor = Auditor(engine.journal, engine.registry, engine.hosts)
    before = await engine.pool.fetchval("SELECT count(*) FROM _reactor_jobs.journal")
    report = await auditor.replay(ORG, run_id)
    assert (report.ok, report.checked, report.version) == (True, 3, 1)
    assert report.divergence is None
    assert await engine.pool.fetchval("SELECT count(*) FROM _reactor_jobs.journal") == before
    assert await engine.effects(run_id) == []  # step functions were not called


VARIANT = """
import asyncio

from reactor_jobs.functions import Response

KIND = {kind!r}


async def fetch(request, env, ctx):
    payload = await request.json()
    if KIND == "hang":  # awaits something outside its steps
        await asyncio.sleep(3600)
    if KIND == "reorder":
        await ctx.step("charge", lambda: None)
    name = "check" if KIND == "rename" else "validate"
    order = await ctx.step(name, lambda: None)
    if KIND != "reorder":
        await ctx.step("charge", lambda: None)
    if KIND == "sleep":
        await ctx.sleep("cool-off", "1h")
    if KIND != "drop-emit":
        await ctx.emit("order.processed", {{"orderId": order["id"]}})
    answer = {{"success": True, "orderId": payload["orderId"]}}
    if KIND == "output":
        answer["extra"] = 1
    return Response.json(answer)
"""


async def variant(engine: Engine, kind: str) -> FunctionVersion:
    """The quickstart, changed one way, deployed as a new version (not promoted)."""
    source = engine.tmp / f"variant-{kind}"
    shutil.copytree(BUNDLES / "process-order", source)
    (source / "code" / "index.py").write_text(VARIANT.format(kind=kind))
    version = await engine.registry.deploy(ORG, "process-order", pack_dir(source))
    return await engine.registry.get_version(ORG, "process-order", version)


async def replay_variant(engine: Engine, run_id: str, kind: str, **options: Any) -> Any:
    records = await engine.journal.read_stream(run_id)
    fv = await variant(engine, kind)
    host = await engine.hosts.host(ORG, fv.runtime)
    return await replay_check(records, host, fv, version=fv.version, **options)


async def test_code_that_waits_outside_its_steps_is_cut_off_and_reported(
    engine: Engine,
) -> None:
    run_id = await completed_quickstart(engine)
    report = await replay_variant(engine, run_id, "hang", timeout_s=0.2)
    assert not report.ok and report.position == 3
    assert report.divergence == (
        "position 3: recorded step `validate`, but the code was still running after 0.2 s "
        "of replay (it awaits something outside its steps)"
    )


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("rename", "position 3: recorded step `validate`, code asked for step `check`"),
        ("reorder", "position 3: recorded step `validate`, code asked for step `charge`"),
        ("sleep", "position 5: recorded emit `order.processed`, code asked for sleep `cool-off`"),
        ("drop-emit", "position 5: recorded emit `order.processed`, but the code finished"),
        ("output", "position 6: the code returned a different output"),
    ],
)
async def test_a_changed_version_is_reported_at_its_first_divergence(
    engine: Engine, kind: str, message: str
) -> None:
    run_id = await completed_quickstart(engine)
    report = await replay_variant(engine, run_id, kind)
    assert not report.ok
    assert report.divergence is not None and report.divergence.startswith(message)


async def test_check_function_counts_in_flight_runs(engine: Engine) -> None:
    await engine.job("sleepy")
    engine.start_worker()
    run = await engine.control.trigger(ORG, "sleepy", payload={"mode": "sleep", "seconds": 3600})
    await engine.wait(run.id, lambda r: r.status == "sleeping")
    auditor = Auditor(engine.journal, engine.registry, engine.hosts)
    check = await auditor.check_function(ORG, "scenarios", 1)
    assert (check.safe, check.diverges) == (1, 0)
    # Triggered, AttemptStarted, StepCompleted "before", SleepScheduled: it waits at 4
    assert check.reports[0].note == "the recording ends at position 4 (the run is sleeping)"


async def test_an_export_altered_by_one_byte_fails_offline_naming_the_event(
    engine: Engine,
) -> None:
    run_id = await completed_quickstart(engine)
    since, until = await engine.pool.fetchrow("SELECT now() - interval '1 hour', now()")
    lines = [line async for line in export_runs(engine.pool, ORG, "process-order", since, until)]
    assert len(lines) == 6
    assert [r.ok for r in verify_export(lines)] == [True]
    tampered = list(lines)
    tampered[3] = tampered[3].replace(b'"charge"', b'"chargf"')
    (result,) = verify_export(tampered)
    assert (result.ok, result.run_id, result.first_bad_position) == (False, run_id, 4)
    with pytest.raises(ValueError, match="line 2"):
        list(verify_export([lines[0], b"{not json\n"]))


async def test_time_travel_at_each_position_equals_folding_the_prefix(engine: Engine) -> None:
    run_id = await completed_quickstart(engine)
    records = await engine.journal.read_stream(run_id)
    for position in range(1, len(records) + 1):
        assert state_at(records, position) == fold(records[:position])
    changes = diff(state_at(records, 2), state_at(records, 4))
    assert set(changes) == {
        "steps.validate",
        "steps.charge",
        "decisions.0",
        "decisions.1",
        "position",
        "updated_at",
        "last_hash",
    }


async def test_cli_exports_and_verifies_offline(engine: Engine, tmp_path: Any) -> None:
    import subprocess
    import sys

    run_id = await completed_quickstart(engine)
    out = tmp_path / "export.ndjson"
    cli = [sys.executable, "-m", "reactor_jobs.cli", "--database-url", engine.db_url]
    exported = subprocess.run(
        [*cli, "journal", "export", "--org", ORG, "--job", "process-order", "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert exported.returncode == 0, exported.stderr
    assert "exported 6 events" in exported.stderr
    offline = [
        sys.executable,
        "-m",
        "reactor_jobs.cli",
        "--database-url",
        "postgresql://nowhere:1/x",
    ]
    ok = subprocess.run(
        [*offline, "journal", "verify", "--file", str(out)], capture_output=True, text=True
    )
    assert ok.returncode == 0 and "verified 1 runs, 6 events" in ok.stdout
    out.write_bytes(out.read_bytes().replace(b'"ord_7"', b'"ord_8"', 1))
    bad = subprocess.run(
        [*offline, "journal", "verify", "--file", str(out)], capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert f"TAMPERED {run_id} at position 1" in bad.stdout
