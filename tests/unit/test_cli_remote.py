"""The remote commands' local parts: the credentials file and the table layout."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reactor_jobs.cli import build_parser, main
from reactor_jobs.cli.credentials import (
    Credentials,
    credentials_path,
    load_credentials,
    remove_credentials,
    save_credentials,
)
from reactor_jobs.cli.output import render_record, render_table
from reactor_jobs.client import Membership


def test_credentials_live_under_xdg_config_home_readable_by_the_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert credentials_path() == tmp_path / "reactor" / "credentials.json"
    assert load_credentials() is None
    saved = Credentials(url="http://x", access_token="AT-1", refresh_token="RT-1", org="acme")
    path = save_credentials(saved)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_credentials() == saved
    assert "AT-1" not in repr(saved) and "RT-1" not in repr(saved)
    assert remove_credentials() and not remove_credentials()


def test_without_xdg_config_home_they_live_in_dot_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert credentials_path() == tmp_path / ".config" / "reactor" / "credentials.json"


def test_tables_align_their_columns_and_show_missing_values_as_dashes() -> None:
    rows = [Membership(name="acme", role="owner"), Membership(name="a", role="member")]
    assert render_table(rows, [("NAME", "name"), ("ROLE", "role")]).splitlines() == [
        "NAME  ROLE",
        "acme  owner",
        "a     member",
    ]
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    class Row:
        id, when, error = "x", at, None

    assert render_record(Row(), ["id", "when", "error"]).splitlines() == [
        "id     x",
        "when   2026-01-02 03:04:05Z",
        "error  -",
    ]


def test_the_spec_commands_parse_as_spelled() -> None:
    parser = build_parser()
    for argv in (
        "functions create process-order --runtime python",
        "functions deploy process-order --dir ./functions/process-order",
        "functions promote process-order --version 2",
        "jobs create process-order --function process-order",
        "jobs triggers create process-order --kind webhook",
        "jobs runs list process-order --status failed",
        "jobs runs retry process-order run_01HZ",
        "jobs dlq list process-order",
        "jobs dlq retry process-order dlq_01HZ",
        "jobs logs process-order",
        "orgs use acme",
    ):
        args = parser.parse_args(argv.split())
        assert args.remote and args.command.split()[0] == argv.split()[0]
    cron = ["jobs", "triggers", "create", "p", "--kind", "cron", "--schedule", "0 * * * *"]
    assert parser.parse_args(cron).schedule == "0 * * * *"
    assert parser.parse_args([*cron, "--catch-up", "skip"]).catch_up == "skip"
    assert parser.parse_args(["jobs", "logs", "p", "--run", "run_1"]).run == "run_1"
    payload = ["jobs", "trigger", "p", "--payload", '{"orderId":"ord_123"}']
    assert parser.parse_args(payload).payload == {"orderId": "ord_123"}


@pytest.mark.parametrize(
    "argv",
    [
        ["jobs", "trigger", "p", "--payload", "{oops"],
        ["jobs", "triggers", "create", "p", "--kind", "cron"],
        ["jobs", "triggers", "create", "p", "--kind", "webhook", "--topic", "t"],
        ["jobs", "triggers", "create", "p", "--kind", "event", "--topic", "t", "--catch-up", "all"],
        [
            "jobs",
            "triggers",
            "create",
            "p",
            "--kind",
            "cron",
            "--schedule",
            "* * * * *",
            "--catch-up",
            "sometimes",
        ],
        ["jobs", "dlq", "retry", "p"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "error:" in capsys.readouterr().err
