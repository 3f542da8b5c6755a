"""The auditor's CLI commands as users run them (a subprocess talking to a real server through
the Python client): `reactor jobs runs replay|state|lineage` and `reactor functions check`,
their output, --json, and exit codes (1 when a replay or a check finds a divergence)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.audit_fixtures import (
    completed_order,
    create_job,
    deploy,
    sleeping_ledger_runs,
    trigger,
)
from tests.cli_runner import owner_env, run_cli
from tests.http_fixtures import Api, api, publish

pytestmark = pytest.mark.integration
__all__ = ["api"]


class Cli:
    def __init__(self, api: Api, home: Path) -> None:
        self.env, self.home = owner_env(api, home), home

    async def __call__(self, *args: str) -> tuple[int, str, str]:
        return await run_cli(*args, cwd=self.home, env=self.env)

    async def json(self, *args: str) -> tuple[int, Any]:
        code, out, err = await self(*args, "--json")
        assert err == ""
        return code, msgspec.json.decode(out)


@pytest.fixture
def cli(api: Api, tmp_path: Path) -> Cli:
    return Cli(api, tmp_path)


async def test_replay_exits_0_when_it_reproduces_and_1_at_a_divergence(api: Api, cli: Cli) -> None:
    run_id = await completed_order(api)
    await deploy(api, "process-order", "process-order-v2")
    code, out, err = await cli("jobs", "runs", "replay", "process-order", run_id)
    assert (code, err) == (0, "")
    assert out == (
        f"same: run {run_id} on version 1 reproduces its journal (3 of 3 decisions, 6 events)\n"
    )
    code, out, err = await cli("jobs", "runs", "replay", "process-order", run_id, "--version", "2")
    assert (code, err) == (1, "")
    assert out.splitlines() == [
        f"diverges: run {run_id} on version 2 (0 of 3 decisions, 6 events matched before it)",
        "first divergence: position 3: recorded step `validate`, code asked for step `validate-v2`",
    ]
    code, document = await cli.json("jobs", "runs", "replay", "process-order", run_id,
                                     "--version", "2")  # fmt: skip
    assert code == 1
    assert (document["outcome"], document["position"]) == ("diverges", 3)
    code, out, err = await cli("jobs", "runs", "replay", "process-order", run_id, "--version", "8")
    assert (code, out) == (1, "")
    assert err == "error: function process-order has no version 8\n"


async def test_state_at_a_position_and_a_diff(api: Api, cli: Cli) -> None:
    run_id = await completed_order(api)
    code, out, err = await cli("jobs", "runs", "state", "process-order", run_id, "--at", "3")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert f"run          {run_id} (job process-order)" in lines
    assert "position     3 of 6" in lines
    assert "status       running" in lines
    assert 'steps        validate = {"id":"ord_7","total":12}' in lines
    assert "output       -" in lines
    code, head = await cli.json("jobs", "runs", "state", "process-order", run_id)
    assert (code, head["position"], head["status"]) == (0, 6, "completed")
    assert list(head["steps"]) == ["validate", "charge"]

    code, out, err = await cli("jobs", "runs", "state", "process-order", run_id,
                               "--diff", "3", "4")  # fmt: skip
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"run {run_id}: position 3 → 4"
    assert lines[1].split() == ["FIELD", "BEFORE", "AFTER"]
    rows = [line.split() for line in lines[2:]]
    assert ["steps.charge", "-", '{"charged":12,"orderId":"ord_7"}'] in rows
    assert ["position", "3", "4"] in rows
    code, changes = await cli.json("jobs", "runs", "state", "process-order", run_id,
                                   "--diff", "5", "6")  # fmt: skip
    assert (changes["from"], changes["to"]) == (5, 6)
    assert {"field": "status", "before": "running", "after": "completed"} in changes["changes"]

    code, out, err = await cli("jobs", "runs", "state", "process-order", run_id, "--at", "9")
    assert (code, out) == (1, "")
    assert err == "error: at: position 9 is past the run's head (position 6)\n"
    code, _, err = await cli("jobs", "runs", "state", "process-order", run_id, "--at", "2",
                             "--diff", "1", "2")  # fmt: skip
    assert code == 2 and "not allowed with argument" in err


async def test_lineage_prints_an_indented_tree(api: Api, cli: Cli) -> None:
    await deploy_ledger_tree(api)
    root = await trigger(api, "orders", {"amount": 3})
    async with asyncio.timeout(20):
        while True:
            code, tree = await cli.json("jobs", "runs", "lineage", "orders", root)
            assert code == 0
            caused = tree["caused"]
            if len(caused) == 2 and all(c["status"] == "completed" for c in caused):
                break
            await asyncio.sleep(0.1)
    billing, shipping = sorted(caused, key=lambda c: c["job"])
    code, out, err = await cli("jobs", "runs", "lineage", "orders", root)
    assert (code, err) == (0, "")
    event = billing["cause"]["event_id"]
    assert out.splitlines()[0] == f"{root}  orders  completed  ← manual"
    assert f"└─ {billing['run_id']}  billing  completed  ← event orders.done ({event})" in out
    assert f"└─ {shipping['run_id']}  shipping  completed  ← event orders.done" in out
    # Asked of a child, the cause names the emitting run and job.
    code, out, _ = await cli("jobs", "runs", "lineage", "billing", billing["run_id"])
    assert out == (
        f"{billing['run_id']}  billing  completed  ← event orders.done ({event}) "
        f"from run {root} (job orders)\n"
    )


async def deploy_ledger_tree(api: Api) -> None:
    await publish(api, "ledger")
    await create_job(api, "orders", "ledger")
    await create_job(api, "billing", "ledger", topic="orders.done")
    await create_job(api, "shipping", "ledger", topic="orders.done")
    api.engine.start_worker()


async def test_functions_check_summarises_and_exits_1_when_any_diverge(api: Api, cli: Cli) -> None:
    ids = await sleeping_ledger_runs(api, 2)
    await deploy(api, "ledger", "ledger-v2")
    code, out, err = await cli("functions", "check", "ledger", "--version", "1")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "function ledger version 1 against 2 runs in flight",
        "safe      2",
        "diverges  0",
    ]
    code, out, err = await cli("functions", "check", "ledger", "--version", "2")
    assert (code, err) == (1, "")
    lines = out.splitlines()
    assert lines[:3] == [
        "function ledger version 2 against 2 runs in flight",
        "safe      0",
        "diverges  2",
    ]
    divergence = "position 3: recorded step `record`, code asked for step `book`"
    assert sorted(lines[3:]) == sorted(f"  {i} (job orders): {divergence}" for i in ids)
    code, summary = await cli.json("functions", "check", "ledger", "--version", "2")
    assert (code, summary["safe"], summary["diverges"]) == (1, 0, 2)
    code, _, err = await cli("functions", "check", "ledger")
    assert code == 2 and "--version" in err
