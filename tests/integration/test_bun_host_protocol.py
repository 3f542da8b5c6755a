"""The real bun host process (reactor_jobs/hosts/bun/host.ts) driven over its Unix socket by
a test playing the worker's side of docs/host-protocol.md: hello, load, invoke, proposals
and acks, recorded replays, a nondeterministic proposal, cancel, errors and process.exit."""

from __future__ import annotations

import asyncio
import base64
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from reactor_jobs.functions.bun_binary import bun_host_command, find_bun
from tests.engine_fixtures import BUNDLES
from tests.host_driver import HostDriver

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(find_bun() is None, reason="no bun executable"),
]
BUNDLE = BUNDLES / "ts-scenarios"


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[HostDriver]:
    command = bun_host_command()
    assert command is not None
    driver = HostDriver(command, tmp_path / "host")
    await driver.start()
    try:
        yield driver
    finally:
        await driver.stop()


@pytest.fixture
async def fn(host: HostDriver) -> str:
    loaded = await host.load(BUNDLE, "ts-scenarios-v1")
    assert loaded == {"t": "loaded", "fn": "ts-scenarios-v1"}
    return "ts-scenarios-v1"


def kinds(messages: list[dict[str, Any]]) -> list[str]:
    return [m["t"] for m in messages]


async def test_hello_carries_the_token_and_the_environment_is_cleaned(host: HostDriver) -> None:
    assert host.hello["t"] == "hello" and host.hello["protocol"] == 1
    assert host.hello["runtime"] == "bun" and host.hello["token"] == host.token
    assert host.process is not None and host.hello["pid"] == host.process.pid


async def test_steps_state_emit_logs_and_the_response(host: HostDriver, fn: str) -> None:
    attempt = await host.invoke(fn, {"mode": "steps", "n": 21}, env={"GREETING": "hi"})
    done, seen = await host.run_acking(attempt)
    assert kinds(seen) == ["log", "step", "state", "emit", "log"]
    log, step, state, emit, info = seen
    # console.log inside a step is an info line of the attempt, tied to that step.
    assert log["level"] == "info" and log["step"] == "a"
    assert log["message"] == f"computing a for run_{attempt}"
    assert step["pos"] == 0 and step["name"] == "a" and step["output"] == {"doubled": 42}
    assert state["key"] == "a" and state["value"] == {"doubled": 42}
    assert emit["pos"] == 1 and emit["name"] == "ts.done"
    assert info["message"] == "emitted" and info["fields"] == {"eventId": f"evt_{emit['req']}"}
    assert len({m["req"] for m in seen if "req" in m}) == 3
    assert done["outcome"] == "completed"
    # A Response's body is the output (functions/messages.py, to_output), as in Python.
    assert done["output"] == {
        "a": {"doubled": 42}, "eventId": f"evt_{emit['req']}", "greeting": "hi", "attempt": 1,
    }  # fmt: skip


async def test_a_proposal_returns_only_after_its_ack(host: HostDriver, fn: str) -> None:
    attempt = await host.invoke(fn, {"mode": "loop"})
    first = await host.next(attempt)
    assert first["t"] == "step" and first["name"] == "item"
    with pytest.raises(TimeoutError):
        await host.next(attempt, timeout=0.3)  # nothing more until the ack
    await host.ack(first)
    done, seen = await host.run_acking(attempt)
    assert [m["name"] for m in seen] == ["item#2", "item#3"]
    assert [m["pos"] for m in seen] == [1, 2]
    assert done["output"] == [0, 1, 2]


async def test_recorded_steps_are_answered_locally(host: HostDriver, fn: str) -> None:
    recorded: list[dict[str, Any]] = [{"kind": "step", "name": "a", "output": {"got": 1}},
                {"kind": "step", "name": "b", "failed": True}]  # fmt: skip
    attempt = await host.invoke(fn, {"mode": "flaky", "ok_on": 2}, attempt=2, recorded=recorded)
    done, seen = await host.run_acking(attempt)
    # "a" is not proposed again; "b" failed before, so it runs again and is proposed.
    proposals = [(m["t"], m["pos"], m["name"], m.get("output")) for m in seen if m["t"] != "log"]
    assert proposals == [("step", 1, "b", 2)]
    assert [(m["message"], m["step"]) for m in seen if m["t"] == "log"] == [("running b", "b")]
    assert done["output"] == {"b": 2, "attempt": 2}


async def test_recorded_emit_and_done_sleep_resume_after_the_sleep(
    host: HostDriver, fn: str
) -> None:
    recorded: list[dict[str, Any]] = [{"kind": "step", "name": "before", "output": "x"},
                {"kind": "sleep", "name": "nap", "done": True}]  # fmt: skip
    attempt = await host.invoke(fn, {"mode": "sleep"}, recorded=recorded)
    done, seen = await host.run_acking(attempt)
    assert [(m["t"], m["pos"], m["name"]) for m in seen] == [("step", 2, "after")]
    assert done["outcome"] == "completed" and done["output"] == "xy"

    recorded = [{"kind": "step", "name": "a", "output": {"doubled": 2}},
                {"kind": "emit", "name": "ts.done", "event_id": "evt_recorded"}]  # fmt: skip
    attempt = await host.invoke(fn, {"mode": "steps", "n": 1}, recorded=recorded,
                                state={"a": {"doubled": 2}})  # fmt: skip
    done, seen = await host.run_acking(attempt)
    assert kinds(seen) == ["log"]  # no step, no state (unchanged), no emit
    assert done["output"]["eventId"] == "evt_recorded"


async def test_a_sleep_suspends_the_attempt_after_its_ack(host: HostDriver, fn: str) -> None:
    attempt = await host.invoke(fn, {"mode": "sleep", "seconds": 2})
    done, seen = await host.run_acking(attempt)
    assert [(m["t"], m["name"]) for m in seen] == [("step", "before"), ("sleep", "nap")]
    assert seen[1]["ms"] == 2000 and seen[1]["pos"] == 1
    assert done == {"t": "done", "id": attempt, "outcome": "suspended"}


async def test_a_different_decision_is_proposed_and_a_nack_fails_it(
    host: HostDriver, fn: str
) -> None:
    recorded: list[dict[str, Any]] = [{"kind": "step", "name": "charge", "output": 1}]
    attempt = await host.invoke(fn, {"mode": "flaky"}, recorded=recorded)
    assert (await host.next(attempt))["message"] == "running a"
    proposal = await host.next(attempt)
    assert (proposal["t"], proposal["pos"], proposal["name"]) == ("step", 0, "a")
    message = "position 0: recorded step `charge`, code asked for step `a`"
    await host.send({"t": "nack", "id": attempt, "req": proposal["req"],
                     "error": {"type": "nondeterministic", "message": message}})  # fmt: skip
    done = await host.next(attempt)
    assert done["outcome"] == "failed"
    assert done["error"]["type"] == "nondeterministic" and done["error"]["message"] == message


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("nonretryable", {"type": "NonRetryableError", "message": "the order is gone",
                          "retryable": False}),
        ("throw-string", {"type": "Error", "message": "boom", "retryable": True}),
        ("throw-object", {"type": "Error", "message": 'a non-Error value was thrown: {"a":1}',
                          "retryable": True}),
        ("bad-output", {"type": "StepOutputError", "retryable": False,
                        "message": "the output of step 'when' cannot be stored as JSON: "
                                   "a Date at $ (store date.toISOString())"}),
    ],
)  # fmt: skip
async def test_errors(host: HostDriver, fn: str, mode: str, error: dict[str, Any]) -> None:
    done, seen = await host.run_acking(await host.invoke(fn, {"mode": mode}))
    assert seen == [] and done["outcome"] == "failed"
    assert {k: v for k, v in done["error"].items() if k != "traceback"} == error


async def test_a_failing_step_is_proposed_then_rethrown_with_user_frames(
    host: HostDriver, fn: str
) -> None:
    done, seen = await host.run_acking(await host.invoke(fn, {"mode": "step-fails"}))
    [step] = seen
    assert step["name"] == "charge" and "output" not in step
    assert step["error"]["type"] == "TypeError" and step["error"]["message"] == "card declined"
    assert done["error"]["type"] == "TypeError" and done["error"]["retryable"] is True
    traceback = done["error"]["traceback"]
    assert "code/index.ts:" in traceback
    assert "hosts/bun" not in traceback and str(BUNDLES) not in traceback


async def test_cancel_stops_an_attempt_that_awaits(host: HostDriver, fn: str) -> None:
    attempt = await host.invoke(fn, {"mode": "wait-forever"})
    started = await host.next(attempt)
    await host.ack(started)
    await host.send({"t": "cancel", "id": attempt})
    done = await host.next(attempt, timeout=1)
    assert done["outcome"] == "failed" and done["error"]["type"] == "Cancelled"
    # The host goes on serving other attempts.
    done, _ = await host.run_acking(await host.invoke(fn, {"mode": "loop"}))
    assert done["output"] == [0, 1, 2]


async def test_a_busy_loop_does_not_answer_cancel_so_the_worker_kills_it(
    host: HostDriver, fn: str
) -> None:
    attempt = await host.invoke(fn, {"mode": "busy"})
    await host.ack(await host.next(attempt))
    assert (await host.next(attempt))["message"] == "spinning"
    await host.send({"t": "cancel", "id": attempt})
    with pytest.raises(TimeoutError):
        await host.next(attempt, timeout=1)  # the protocol's 1 s: the worker kills the host
    assert host.process is not None
    host.process.kill()
    assert await host.process.wait() != 0


async def test_many_attempts_share_one_connection(host: HostDriver, fn: str) -> None:
    attempts = [await host.invoke(fn, {"mode": "loop"}) for _ in range(5)]
    results = await asyncio.gather(*(host.run_acking(a) for a in attempts))
    assert [done["output"] for done, _ in results] == [[0, 1, 2]] * 5


async def test_process_exit_ends_only_the_host(host: HostDriver, fn: str) -> None:
    await host.invoke(fn, {"mode": "exit"})
    assert host.process is not None
    async with asyncio.timeout(5):
        assert await host.process.wait() == 3
        await host.closed.wait()


async def test_load_failures(host: HostDriver, tmp_path: Path) -> None:
    await host.send({"t": "load", "fn": "bad-sha", "name": "x", "version": 1, "sha256": "0" * 64,
                     "archive": base64.b64encode(b"not a bundle").decode()})  # fmt: skip
    failed = await host.next(None)
    assert failed["t"] == "load_failed" and "sha256" in failed["error"]["message"]

    broken = tmp_path / "broken"
    (broken / "code").mkdir(parents=True)
    (broken / "function.json").write_text("{}")
    (broken / "code" / "index.ts").write_text("export default { notFetch() {} };\n")
    failed = await host.load(broken, "no-fetch")
    assert failed["t"] == "load_failed" and "export default" in failed["error"]["message"]
    attempt = await host.invoke("no-fetch", {})
    done = await host.next(attempt)
    assert done["error"]["retryable"] is False


async def test_an_unknown_message_ends_the_connection(host: HostDriver) -> None:
    await host.send({"t": "no-such-message"})
    async with asyncio.timeout(5):
        await host.closed.wait()


async def test_the_spec_quickstart_bundle_runs_in_the_host(host: HostDriver) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "process-order-ts"
    assert (await host.load(example, "process-order-v1"))["t"] == "loaded"
    done, seen = await host.run_acking(await host.invoke("process-order-v1", {"orderId": "o1"}))
    assert [(m["t"], m["pos"], m["name"]) for m in seen] == [
        ("step", 0, "validate"), ("step", 1, "charge"), ("emit", 2, "order.processed"),
    ]  # fmt: skip
    assert seen[2]["payload"] == {"orderId": "o1"}
    assert done["output"] == {"success": True, "orderId": "o1"}


async def test_the_host_serves_workers_over_tcp(tmp_path: Path) -> None:
    """`--listen HOST:PORT`: the same session behind a TCP listener; the connecting worker
    says hello with the token, as to a remote host service."""
    command = bun_host_command()
    assert command is not None
    process = await asyncio.create_subprocess_exec(
        *command, "--listen", "127.0.0.1:0", cwd=tmp_path, stderr=asyncio.subprocess.PIPE,
        env={"REACTOR_HOST_TOKEN": "the-api-key"},
    )  # fmt: skip
    try:
        assert process.stderr is not None
        async with asyncio.timeout(10):
            line = (await process.stderr.readline()).decode()
        port = int(line.rsplit(":", 1)[1])
        refused_reader, refused = await asyncio.open_connection("127.0.0.1", port)
        refused.write(frame({"t": "hello", "protocol": 1, "runtime": "bun", "token": "wrong"}))
        assert await refused_reader.read() == b""  # closed without a welcome
        refused.close()
        await refused.wait_closed()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        hello = {"t": "hello", "protocol": 1, "runtime": "bun", "org": "o", "token": "the-api-key"}
        writer.write(frame(hello))
        async with asyncio.timeout(10):
            assert await read_frame(reader) == {"t": "welcome", "protocol": 1}
        writer.close()
        await writer.wait_closed()
    finally:
        process.kill()
        await process.wait()


def frame(message: dict[str, Any]) -> bytes:
    body = msgspec.json.encode(message)
    return struct.pack(">I", len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> Any:
    (size,) = struct.unpack(">I", await reader.readexactly(4))
    return msgspec.json.decode(await reader.readexactly(size))
