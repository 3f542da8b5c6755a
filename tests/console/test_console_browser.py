"""The console in a real headless Chromium against the real app on a real port and a real
database, with a worker running the test bundles in function hosts: sign in, trigger a run
from the console and watch it complete, open its timeline (attempts, a failed step with its
traceback, the retry), move the state slider (the shown state changes), follow an emit to
the run it caused, retry a DLQ entry (the entry is retried), see a member's promote refused
with the API's 403 message, and show user data as text, never as markup.

Screenshots: docs/console-*.png with REACTOR_CONSOLE_SCREENSHOTS=docs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from reactor_jobs.functions.bundle import pack_dir
from tests.console.browser import browser, shots_dir
from tests.engine_fixtures import BUNDLES, ORG
from tests.http_fixtures import PASSWORD, Api, api

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
__all__ = ["api", "browser"]

WAIT_MS = 20_000


async def setup_jobs(api: Api) -> None:
    """Jobs on the engine fixture's `scenarios` function, an event subscriber and a cron."""
    for body in (
        {"name": "orders", "function_name": "scenarios", "max_attempts": 3},
        {"name": "fragile", "function_name": "scenarios", "max_attempts": 1},
        {"name": "listener", "function_name": "scenarios"},
    ):
        reply = await api.call("POST", "/jobs/v1/_admin/jobs", json=body)
        assert reply.status == 201, reply.text
    triggers = (
        ("listener", {"kind": "event", "topic": "order.placed"}),
        ("orders", {"kind": "cron", "schedule": "0 6 * * *", "timezone": "Europe/Paris"}),
    )
    for job, trigger in triggers:
        reply = await api.call("POST", f"/jobs/v1/_admin/jobs/{job}/triggers", json=trigger)
        assert reply.status == 201, reply.text


async def open_console(browser: Any, api: Api, who: str, errors: list[str]) -> Any:
    context = await browser.new_context(viewport={"width": 1360, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.on("pageerror", lambda exc: errors.append(f"{who}: {exc}"))
    page.on("console", lambda msg: _console_error(msg, who, errors))
    page.on("dialog", lambda dialog: dialog.accept())
    await page.goto(api.base + "/console/")
    await page.fill("#email", f"{who}@acme.test")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_selector("table.jobs")
    return page


def _console_error(message: Any, who: str, errors: list[str]) -> None:
    """Script errors count; Chromium's own line for a refused request (an expected 403) does
    not."""
    if message.type == "error" and not message.text.startswith("Failed to load resource"):
        errors.append(f"{who}: {message.text}")


async def trigger_from_console(page: Any, payload: str) -> str:
    await page.fill("#payload", payload)
    await page.click("text=Trigger run")
    link = page.locator(".notice.ok a").first
    await link.wait_for()
    run_id: str = await link.inner_text()
    return run_id


async def test_sign_in_run_timeline_slider_lineage_and_dlq_retry(
    browser: Any, api: Api, tmp_path: Path
) -> None:
    await setup_jobs(api)
    api.engine.start_worker()
    errors: list[str] = []
    shots = shots_dir(tmp_path)
    page = await open_console(browser, api, "owner", errors)
    assert await page.locator("#org").input_value() == "acme"
    assert {"orders", "fragile", "listener"} <= set(
        await page.locator("table.jobs tbody tr td:first-child").all_inner_texts()
    )

    # A run that fails its step once, retries and completes: triggered from the console,
    # watched in the live runs list until it completes.
    await page.click("table.jobs >> text=orders")
    await page.wait_for_selector("#runs table")
    assert await page.locator("ul.fires li").count() == 5  # the cron trigger's next fires
    run_id = await trigger_from_console(page, '{"mode": "flaky", "ok_on": 2}')
    row = page.locator(f'tr[data-run="{run_id}"]')
    await row.locator(".badge", has_text="completed").wait_for()
    await page.locator("input[name=status-failed]").check()
    await page.locator(f'tr[data-run="{run_id}"]').wait_for(state="detached")
    await page.locator("input[name=status-failed]").uncheck()
    await page.locator("input[name=status-completed]").check()
    await row.wait_for()
    await page.screenshot(path=str(shots / "console-runs.png"))

    # Its timeline: two attempts, the failed step with its traceback, the retry, the output.
    await row.locator("a").click()
    await page.wait_for_selector("#timeline .attempt")
    timeline = page.locator("#timeline")
    titles = await timeline.locator(".attempt-title").all_inner_texts()
    assert titles[0] == "Before the first attempt"
    assert [t.split(" on ")[0] for t in titles[1:]] == ["Attempt 1", "Attempt 2"]
    failed = timeline.locator("li.t-StepFailed")
    assert "b fails on attempt 1" in await failed.inner_text()
    assert 'File "code/index.py"' in await failed.locator("pre.traceback").inner_text()
    assert await timeline.locator("li.t-RetryScheduled").count() == 1
    assert re.search(
        r"\d+(\.\d+)? ms", await timeline.locator("li.t-StepCompleted").first.inner_text()
    )
    completed = await timeline.locator("li.t-Completed").inner_text()
    assert '"b":2' in completed.replace(" ", "")

    # The state slider: at the head the run is completed with both steps; at position 1
    # (Triggered) it is queued with none; the diff from 1 to the head names the steps.
    view = page.locator("#state-view")
    await view.locator(".badge", has_text="completed").wait_for()
    head = int(await page.locator("#state-slider").get_attribute("max"))
    assert head == len(await api.engine.types(run_id)) >= 8
    await page.locator("#state-slider").fill("1")
    await view.locator(".badge", has_text="queued").wait_for()
    assert "Position 1 of" in await page.locator("#state-position").inner_text()
    assert await view.locator("table.kv").count() == 0  # no steps, no state yet
    # Clicking an event's position moves the slider there.
    step_a = timeline.locator("li.t-StepCompleted").first
    await step_a.locator("button.pos").click()
    position = await step_a.get_attribute("data-position")
    assert await page.locator("#state-slider").input_value() == position
    await view.locator("code", has_text="a").first.wait_for()
    await page.locator("#state-changed").locator("code", has_text="steps.a").wait_for()
    await page.fill("#diff-from", "1")
    await page.fill("#diff-to", str(head))
    await page.click("text=Compare")
    await page.locator("#diff-view td", has_text="steps.b").wait_for()
    diff_fields = await page.locator("#diff-view td:first-child").all_inner_texts()
    assert {"status", "steps.a", "steps.b"} <= set(diff_fields)
    await page.locator("#state-slider").fill(str(head))
    await view.locator(".badge", has_text="completed").wait_for()
    # The failure's event: the state there is retrying, with the error it recorded.
    await timeline.locator("li.t-Failed button.pos").click()
    await view.locator(".badge", has_text="retrying").wait_for()
    await page.locator("#state-changed td", has_text="last_error").wait_for()
    await page.screenshot(
        path=str(shots / "console-run.png"),
        full_page=True,
        clip={"x": 0, "y": 0, "width": 1360, "height": 1560},
    )

    # A sleeping run, opened while it sleeps: the page shows the wake time and follows the
    # run live (the job's SSE stream) until it completes.
    sleeper = (
        await api.call(
            "POST", "/jobs/v1/orders/trigger", json={"payload": {"mode": "sleep", "seconds": 2}}
        )
    ).json["id"]
    await api.wait_run("orders", sleeper, ("sleeping",))
    await page.goto(f"{api.base}/console/#/jobs/orders/runs/{sleeper}")
    nap = page.locator("#timeline li.t-SleepScheduled")
    await nap.wait_for()
    assert re.search(r"nap until \d{4}-\d\d-\d\d .* UTC \(2\.00 s\)", await nap.inner_text())
    assert await page.locator("#timeline li.t-Completed").count() == 0
    await page.locator("#timeline li.t-SleepCompleted").wait_for()
    await page.locator("#timeline li.t-Completed").wait_for()
    await page.locator("#run-status .badge", has_text="completed").wait_for()

    # An emit: the timeline links the run it started (lineage), which opens.
    await page.goto(api.base + "/console/#/jobs/orders")
    emitter = await trigger_from_console(page, '{"mode": "emit", "topic": "order.placed"}')
    await api.wait_run("orders", emitter, ("completed",))
    await page.goto(f"{api.base}/console/#/jobs/orders/runs/{emitter}")
    caused = page.locator("li.t-Emitted .caused a")
    await caused.wait_for()
    assert (await caused.inner_text()).startswith("listener run_")
    assert await page.locator("#lineage ul.tree a", has_text="listener").count() == 1
    logs = page.locator("#timeline li.log")
    await logs.first.wait_for()  # ctx.log.info("emitted", …), interleaved
    assert "emitted" in await logs.first.inner_text()
    await caused.click()
    await page.locator("#lineage p", has_text="Caused by event order.placed").wait_for()

    # Cancel a slow run from its page, then retry it (both through the run routes).
    slow = (
        await api.call(
            "POST", "/jobs/v1/orders/trigger", json={"payload": {"mode": "slow", "seconds": 30}}
        )
    ).json["id"]
    await api.wait_run("orders", slow, ("running",))
    await page.goto(f"{api.base}/console/#/jobs/orders/runs/{slow}")
    await page.locator("#run-status .badge", has_text="running").wait_for()
    await page.locator(".title-row button", has_text="Cancel").click()
    await page.locator(".notice.ok", has_text="cancelled").wait_for()
    await page.locator("#timeline li.t-Cancelled").wait_for()
    await page.locator(".title-row button", has_text="Retry").click()
    await page.locator(".notice.ok", has_text="Queued again").wait_for()
    assert (await api.call("POST", f"/jobs/v1/_admin/jobs/orders/runs/{slow}/cancel")).status == 200

    # An expired access token: the console refreshes it (the refresh token) and carries on.
    await page.evaluate(
        """() => {
        const s = JSON.parse(sessionStorage.getItem("reactor-console"));
        s.access = "expired.or.revoked";
        sessionStorage.setItem("reactor-console", JSON.stringify(s));
    }"""
    )

    # A dead letter: a non-retryable failure; retried from the DLQ page.
    dead = (
        await api.call("POST", "/jobs/v1/fragile/trigger", json={"payload": {"mode": "fatal"}})
    ).json
    failed_run = await api.wait_run("fragile", dead["id"], ("failed",))
    dlq_id = failed_run["dlq_id"]
    await page.goto(api.base + "/console/#/dlq")
    entry = page.locator(f'tr[data-dlq="{dlq_id}"]')
    await entry.wait_for()
    assert "do not retry this" in await entry.inner_text()
    await page.screenshot(path=str(shots / "console-dlq.png"))
    token = await page.evaluate("JSON.parse(sessionStorage.getItem('reactor-console')).access")
    assert token != "expired.or.revoked"  # refreshed
    await entry.locator("button", has_text="Retry").click()
    await page.locator(".notice.ok", has_text="Retried").wait_for()
    await entry.wait_for(state="detached")  # no longer open
    listed = await api.call("GET", "/jobs/v1/_admin/jobs/fragile/dlq?status=retried")
    assert [e["id"] for e in listed.json["entries"]] == [dlq_id]
    assert "Retried" in await api.engine.types(dead["id"])

    # The replay check of the live version against the runs in flight (none are left).
    await page.goto(api.base + "/console/#/functions/scenarios")
    await page.locator('tr[data-version="1"] button', has_text="Check").click()
    await page.locator("#check-out .notice.ok", has_text="safe to promote").wait_for()

    # Events: the one the listener's trigger consumed, and one nobody subscribes to, marked.
    lonely = {"payload": {"mode": "emit", "topic": "nobody.listens"}}
    lonely_run = (await api.call("POST", "/jobs/v1/orders/trigger", json=lonely)).json["id"]
    await api.wait_run("orders", lonely_run, ("completed",))
    await page.goto(api.base + "/console/#/events")
    consumed = page.locator("#events tr[data-event]", has_text="order.placed")
    unconsumed = page.locator("#events tr[data-event]", has_text="nobody.listens")
    await unconsumed.wait_for()
    assert await unconsumed.get_attribute("class") == "unconsumed"
    assert "unconsumed" in await unconsumed.locator(".badge").inner_text()
    assert await consumed.get_attribute("class") == ""
    assert "started 1 run" in await consumed.inner_text()
    await page.locator("#unconsumed").check()
    await consumed.wait_for(state="detached")
    assert await page.locator("#events tr[data-event]").count() == 1
    assert errors == []


async def test_a_member_sees_the_apis_403_and_data_is_text_not_markup(
    browser: Any, api: Api, tmp_path: Path
) -> None:
    await setup_jobs(api)
    # A second version of the function, not promoted.
    await api.engine.registry.deploy(ORG, "scenarios", pack_dir(BUNDLES / "scenarios"))
    hostile = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    reply = await api.call(
        "POST", "/jobs/v1/orders/trigger", json={"payload": {"mode": hostile, "note": hostile}}
    )
    run_id = reply.json["id"]
    api.engine.start_worker()
    await api.wait_run("orders", run_id, ("completed", "failed"))
    errors: list[str] = []
    page = await open_console(browser, api, "member", errors)
    assert "member" in await page.locator("#top .who").inner_text()

    await page.goto(api.base + "/console/#/functions/scenarios")
    promote = page.locator('tr[data-version="2"] button', has_text="Promote")
    await promote.click()
    refused = page.locator(".notice.error")
    await refused.wait_for()
    expected = await api.call(
        "POST", "/functions/v1/_admin/functions/scenarios/promote", as_="member", json={}
    )
    assert expected.status == 403
    assert await refused.inner_text() == f"403 forbidden: {expected.json['error']['message']}"
    assert (await api.call("GET", "/functions/v1/_admin/functions/scenarios")).json[
        "live_version"
    ] == 1
    await page.screenshot(path=str(shots_dir(tmp_path) / "console-function.png"))

    # The hostile payload and output (the bundle answers 400 with the unknown mode) are
    # shown as the text they are.
    await page.goto(f"{api.base}/console/#/jobs/orders/runs/{run_id}")
    await page.locator("#timeline li.t-Triggered").wait_for()
    shown = await page.locator("#timeline").inner_text()
    assert "<img src=x" in shown
    assert await page.locator("#page img").count() == 0
    assert await page.locator("#page script").count() == 0
    assert await page.evaluate("window.pwned") is None
    assert errors == []
