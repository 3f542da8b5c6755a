"""Telemetry settings ([jobs] log_format, [jobs.metrics], [jobs.telemetry]) and the JSON log
format: one valid JSON object per line, secrets masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from reactor_jobs.cli import _config, build_parser
from reactor_jobs.config import ConfigError, load_config
from reactor_jobs.telemetry.logs import JsonFormatter, configure_logging


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "reactor.toml"
    path.write_text(text)
    return str(path)


def test_telemetry_settings_from_the_file_and_the_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[jobs]\nlog_format = "json"\n[jobs.metrics]\nport = 9464\n'
        'bearer_token = "a-long-metrics-token"\nmax_series = 50\n'
        '[jobs.telemetry]\notlp_endpoint = "http://collector:4318"\n',
    )
    jobs = load_config(path, env={}).jobs
    assert jobs.log_format == "json"
    assert (jobs.metrics.port, jobs.metrics.max_series, jobs.metrics.enabled) == (9464, 50, True)
    assert jobs.telemetry.otlp_endpoint == "http://collector:4318"
    assert "a-long-metrics-token" not in repr(jobs)
    env = {"REACTOR_LOG_FORMAT": "text", "REACTOR_METRICS_PORT": "9000",
           "REACTOR_METRICS_TOKEN": "another-long-token"}  # fmt: skip
    jobs = load_config(path, env=env).jobs
    assert (jobs.log_format, jobs.metrics.port) == ("text", 9000)
    assert jobs.metrics.bearer_token == "another-long-token"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[jobs]\nlog_format = "xml"', "jobs.log_format"),
        ("[jobs.metrics]\nport = 70000", "jobs.metrics.port"),
        ('[jobs.metrics]\nbearer_token = "short"', "jobs.metrics.bearer_token"),
        ("[jobs.metrics]\nmax_series = 0", "jobs.metrics.max_series"),
        ("[jobs.telemetry]\nendpoint = 1", "jobs.telemetry.endpoint"),
    ],
)
def test_bad_telemetry_settings_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(write(tmp_path, toml), env={})


def test_cli_flags_override_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("REACTOR_CONFIG", "REACTOR_LOG_FORMAT", "REACTOR_METRICS_PORT"):
        monkeypatch.delenv(name, raising=False)
    args = build_parser().parse_args(["--log-format", "json", "worker", "--metrics-port", "9100"])
    jobs = _config(args).jobs
    assert (jobs.log_format, jobs.metrics.port) == ("json", 9100)
    assert _config(build_parser().parse_args(["serve"])).jobs.metrics.port is None


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    out = io.StringIO()
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    configure_logging("json", stream=out)
    try:
        yield out
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def test_json_logs_are_one_valid_object_per_line(json_log: io.StringIO) -> None:
    log = logging.getLogger("reactor_jobs.test")
    log.info("plain %s", "message")
    log.warning("database unreachable (postgresql://app:s3cret@db/x); retrying\nsecond line")
    log.info("with fields", extra={"run_id": "run_1", "api_key": "rk_live", "n": 3})
    logging.getLogger("aiohttp.access").info(
        "GET /x 200", extra={"access": {"method": "GET", "path": "/x", "status": 200}}
    )
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("it failed")
    lines = json_log.getvalue().splitlines()
    assert len(lines) == 5
    records = [json.loads(line) for line in lines]
    for record in records:
        assert set(record) >= {"time", "level", "logger", "message"}
        assert record["time"].endswith("+00:00")
    assert records[0] == {**records[0], "level": "info", "message": "plain message"}
    assert "s3cret" not in lines[1] and "app:***@db" in records[1]["message"]
    assert records[2]["fields"] == {"run_id": "run_1", "api_key": "***", "n": 3}
    assert records[3]["fields"] == {"method": "GET", "path": "/x", "status": 200}
    assert (
        records[4]["level"] == "error" and "ValueError: boom" in records[4]["fields"]["exception"]
    )


def test_text_format_changes_nothing() -> None:
    root = logging.getLogger()
    before = list(root.handlers), root.level
    configure_logging("text")
    assert (list(root.handlers), root.level) == before


def test_the_formatter_never_breaks_a_line() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "a\nb\r\nc", (), None)
    record.odd = object()  # not JSON: written as its str()
    line = JsonFormatter().format(record)
    assert "\n" not in line and json.loads(line)["message"] == "a\nb\r\nc"
