"""Jobs in your own code: `@app.job`, `app.trigger`/`app.run`, `app.worker`; versions derived
from the code, runs pinned to theirs; code jobs and bundle jobs side by side in one org."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from reactor_jobs import App, Retry, RunFailed, event
from reactor_jobs.config import load_config
from reactor_jobs.projections.queries import get_run
from tests.engine_fixtures import ORG, Engine

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parent.parent.parent / "README.md"


def new_app(db_url: str) -> App:
    return App(database_url=db_url, org=ORG, config=load_config(env={}))


async def test_the_readme_example_runs_verbatim(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = README.read_text()
    (code,) = re.findall(r"<!-- app-example -->\n```python\n(.*?)```", text, re.S)
    assert 'database_url="postgresql://' in code
    code = re.sub(r'database_url="[^"]*"', f'database_url="{db_url}"', code)
    code = code.replace("asyncio.run(main())", "")
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(code, "README.md", "exec"), namespace)
    await namespace["main"]()
    assert capsys.readouterr().out.strip().splitlines()[-1] == "{'rows': 42}"


async def test_trigger_run_and_retries_through_app_worker(db_url: str) -> None:
    app = new_app(db_url)
    tries: list[int] = []

    @app.job(retry=Retry(max_attempts=3, initial_delay_ms=10, max_delay_ms=20))
    async def flaky(ctx: Any, payload: Any) -> Any:
        first = await ctx.step("first", lambda: payload["n"] * 2)
        tries.append(ctx.attempt)
        if ctx.attempt < 2:
            raise RuntimeError("fails on the first try")
        return {"doubled": first, "attempt": ctx.attempt}

    @app.job(retry=Retry(max_attempts=1))
    async def broken(ctx: Any, payload: Any) -> None:
        raise ValueError("no")

    async with app, app.running(concurrency=4):
        assert await app.run("flaky", {"n": 21}, timeout=20) == {"doubled": 42, "attempt": 2}
        with pytest.raises(RunFailed, match="ValueError: no"):
            await app.run("broken", None, timeout=20)
        run_id = await app.trigger("flaky", {"n": 1}, idempotency_key="k1")
        assert await app.trigger("flaky", {"n": 1}, idempotency_key="k1") == run_id
    assert tries == [1, 2, 1, 2] or tries[:2] == [1, 2]


async def test_a_run_is_pinned_to_the_version_it_started_on(db_url: str) -> None:
    """A code change is a new version; runs of the old one are claimed only by workers that
    still serve it."""
    old, new = new_app(db_url), new_app(db_url)

    @old.job(name="greet", version="1")
    async def greet_v1(ctx: Any, payload: Any) -> str:
        return "v1"

    async with old:
        pending = await old.trigger("greet")
    async with new:

        @new.job(name="greet", version="2")
        async def greet_v2(ctx: Any, payload: Any) -> str:
            return "v2"

        new._registered = False
        await new.start()
        fresh = await new.trigger("greet")
        async with new.running(concurrency=2):
            assert (await new.wait(fresh, timeout=20)).output == "v2"
            await asyncio.sleep(0.5)
            assert (await get_run(new.node.pool, ORG, pending)).status == "queued"
    async with old, old.running(concurrency=2):
        done = await old.wait(pending, timeout=20)
        assert (done.status, done.output, done.function_version) == ("completed", "v1", 1)


async def test_code_jobs_and_bundle_jobs_emit_to_each_other(engine: Engine, db_url: str) -> None:
    app = new_app(db_url)
    seen: list[Any] = []

    @app.job(triggers=[event("thing.happened")])
    async def listener(ctx: Any, payload: Any) -> None:
        seen.append(payload)
        await ctx.emit("code.replied", {"got": payload})

    async with app:
        await engine.job("bundle-listener")  # scenarios bundle, mode from payload
        await engine.pool.execute(
            "INSERT INTO _reactor_jobs.triggers (id, org, job, kind, topic) "
            "VALUES ('trg_x', $1, 'bundle-listener', 'event', 'code.replied')",
            ORG,
        )
        engine.start_worker()
        async with app.running(concurrency=2):
            emitter = await engine.control.trigger(ORG, "bundle-listener", payload={"mode": "emit"})
            await engine.wait(emitter.id)
            async with asyncio.timeout(20):
                while not seen:
                    await asyncio.sleep(0.05)
            assert seen == [{"n": 1}]
            async with asyncio.timeout(20):  # the code job's emit started the bundle job
                while (
                    len(
                        await engine.pool.fetch(
                            "SELECT 1 FROM _reactor_jobs.runs WHERE job = 'bundle-listener'"
                        )
                    )
                    < 2
                ):
                    await asyncio.sleep(0.05)


async def test_closing_in_any_order_does_not_hang(db_url: str) -> None:
    app = new_app(db_url)

    @app.job()
    async def noop(ctx: Any, payload: Any) -> None:
        return None

    async with asyncio.timeout(15):
        await app.start()
        worker = asyncio.create_task(app.worker(concurrency=2))
        await asyncio.sleep(0.2)
        await app.close()  # the engine first, the worker still running
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)


async def test_code_jobs_are_replayed_and_checked_in_their_app(db_url: str) -> None:
    """The determinism check works for code jobs: in the app, on the app's current code."""
    old = new_app(db_url)

    @old.job(name="ship", version="1")
    async def ship_v1(ctx: Any, payload: Any) -> None:
        await ctx.step("pack", lambda: 1)
        await ctx.sleep("wait", "1h")
        await ctx.step("send", lambda: 2)

    async with old, old.running(concurrency=1):
        run_id = await old.trigger("ship")
        async with asyncio.timeout(20):
            while (await get_run(old.node.pool, ORG, run_id)).status != "sleeping":
                await asyncio.sleep(0.05)
        report = await old.replay(run_id)
        assert report.ok and report.note is not None and "sleeping" in report.note
        # the server cannot run a code job's code: it says where to check it
        from reactor_jobs.projections.auditor import Auditor, CodeJobAudit

        with pytest.raises(CodeJobAudit):
            await Auditor(old.node.journal, old.node.registry, old.node.hosts).replay(ORG, run_id)

    renamed = new_app(db_url)

    @renamed.job(name="ship", version="2")
    async def ship_v2(ctx: Any, payload: Any) -> None:
        await ctx.step("box", lambda: 1)

    async with renamed:
        check = await renamed.check("ship")
    assert (check.safe, check.diverges) == (0, 1)
    assert check.reports[0].divergence == (
        "position 3: recorded step `pack`, code asked for step `box`"
    )
