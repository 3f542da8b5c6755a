"""A webhook trigger's secret through the Python client (`secret=`) and the CLI
(`--secret-stdin`): accepted, never printed or returned, and then required of requests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reactor_jobs.client import create_client
from tests.cli_runner import owner_env, run_cli
from tests.http_fixtures import PASSWORD, Api, api
from tests.integration.test_http_webhook_signatures import BODY, JSON, new_secret, post, signed

pytestmark = pytest.mark.integration
__all__ = ["api"]


async def reactor(api: Api, tmp_path: Path, *args: str, stdin: str) -> tuple[int, str, str]:
    env = owner_env(api, tmp_path / "config")
    return await run_cli(*args, cwd=tmp_path, env=env, stdin=stdin)


async def test_the_cli_reads_the_secret_from_stdin_and_never_prints_it(
    api: Api, tmp_path: Path
) -> None:
    job = {"name": "hook", "function_name": "scenarios"}
    assert (await api.call("POST", "/jobs/v1/_admin/jobs", json=job)).status == 201
    secret = new_secret()
    create = ("jobs", "triggers", "create", "hook", "--kind", "webhook", "--secret-stdin")
    code, out, err = await reactor(api, tmp_path, *create, stdin=secret + "\n")
    assert code == 0, err
    assert secret not in out + err and secret.removeprefix("whsec_") not in out + err
    assert re.search(r"^signed +yes$", out, re.MULTILINE), out
    url = next(line.split()[-1] for line in out.splitlines() if "ingress URL" in line)
    assert url.startswith(f"{api.base}/jobs/v1/webhooks/whk_")  # printed whole
    unsigned = await post(api, url, BODY, JSON)
    assert (unsigned.status, unsigned.error_code) == (401, "invalid_signature")
    assert (await post(api, url, BODY, signed(secret, "m1"))).status == 202
    code, out, err = await reactor(api, tmp_path, *create, "--json", stdin="\n")
    assert code == 1 and "secret" in err  # an empty line is no secret
    wrong_kind = ("jobs", "triggers", "create", "hook", "--kind", "manual", "--secret-stdin")
    code, _, err = await reactor(api, tmp_path, *wrong_kind, stdin=secret + "\n")
    assert code == 2 and "--secret-stdin does not apply to --kind manual" in err
    triggers = await api.call("GET", "/jobs/v1/_admin/jobs/hook/triggers")
    assert len(triggers.json["triggers"]) == 1 and secret not in triggers.text


async def test_the_client_passes_the_secret_and_reports_signed(api: Api) -> None:
    async with create_client(api.base) as client:
        await client.auth.sign_in_with_password(email="owner@acme.test", password=PASSWORD)
        client.auth.set_org("acme")
        await client.jobs.create(name="hook", function_name="scenarios")
        secret = new_secret()
        trigger = await client.jobs.triggers.create("hook", kind="webhook", secret=secret)
        plain = await client.jobs.triggers.create("hook", kind="webhook")
        cron = await client.jobs.triggers.create("hook", kind="cron", schedule="0 * * * *")
    assert (trigger.signed, plain.signed, cron.signed) == (True, False, None)
    assert trigger.url is not None and secret not in repr(trigger)
    assert (await post(api, api.base + trigger.url, BODY, signed(secret, "m1"))).status == 202
    assert plain.url is not None
    assert (await post(api, api.base + plain.url, BODY, JSON)).status == 202
