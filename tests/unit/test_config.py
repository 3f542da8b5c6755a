"""Config: the spec's defaults, environment overrides, and errors that name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from reactor_jobs.config import Config, ConfigError, load_config


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "reactor.toml"
    path.write_text(text)
    return str(path)


def test_defaults_are_the_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no reactor.toml here
    jobs = load_config(env={}).jobs
    assert (jobs.worker_count, jobs.scheduler_interval_ms) == (4, 1000)
    assert (jobs.default_timeout_ms, jobs.max_timeout_ms) == (600_000, 3_600_000)
    assert (jobs.max_concurrency_cap, jobs.lease_ms) == (10, 30_000)
    assert jobs.webhook_secret is None
    assert jobs.database_url is None
    assert jobs.data_dir == ".reactor"
    assert (jobs.http.host, jobs.http.port) == ("127.0.0.1", 8080)
    assert load_config(env={}) == Config()


def test_reads_the_specs_example_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [jobs]
        worker_count = 8
        webhook_secret = "s3cret"
        [jobs.functions]
        url = "http://localhost:8004"
        api_key = "internal-functions-api-key"
        [jobs.data]
        url = "http://localhost:8002"
        api_key = "internal-data-api-key"
        """,
    )
    config = load_config(path, env={})
    assert config.jobs.worker_count == 8
    assert config.jobs.functions.api_key == "internal-functions-api-key"
    assert config.jobs.data.url == "http://localhost:8002"
    assert "s3cret" not in repr(config)
    assert "internal-data-api-key" not in repr(config)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[jobs]\nworker_count = 2\n")
    env = {
        "REACTOR_CONFIG": path,
        "REACTOR_WORKER_COUNT": "6",
        "REACTOR_SCHEDULER_INTERVAL_MS": "250",
        "REACTOR_DATABASE_URL": "postgresql://u:pw@db:5432/reactor",
        "REACTOR_DATA_DIR": "/var/lib/reactor",
        "REACTOR_HTTP_HOST": "0.0.0.0",
        "REACTOR_HTTP_PORT": "9000",
        "REACTOR_WEBHOOK_SECRET": "whsec",
    }
    jobs = load_config(env=env).jobs
    assert (jobs.worker_count, jobs.scheduler_interval_ms) == (6, 250)
    assert jobs.database_url == "postgresql://u:pw@db:5432/reactor"
    assert jobs.data_dir == "/var/lib/reactor"
    assert (jobs.http.host, jobs.http.port) == ("0.0.0.0", 9000)
    assert jobs.webhook_secret == "whsec"
    assert "pw@" not in repr(jobs)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[jobs]\nworker_count = 'four'\n",
            "config error: jobs.worker_count: Expected int, got str",
        ),
        ("[jobs]\nworkers = 4\n", "config error: jobs.workers: unknown key"),
        ("[jobs.functions]\ntoken = 'x'\n", "config error: jobs.functions.token: unknown key"),
        ("[job]\n", "config error: job: unknown key"),
        ("[jobs]\nworker_count = 0\n", "config error: jobs.worker_count: must be >= 1"),
        (
            "[jobs]\ndefault_timeout_ms = 7200000\n",
            "config error: jobs.default_timeout_ms: must be <= jobs.max_timeout_ms",
        ),
    ],
)
def test_bad_file_fails_naming_the_key(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, toml), env={})
    assert str(raised.value).startswith(message)


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="REACTOR_HTTP_PORT: expected an integer, got 'http'"):
        load_config(env={"REACTOR_HTTP_PORT": "http"})


def test_missing_or_malformed_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "nope.toml"), env={})
    with pytest.raises(ConfigError, match=r"reactor\.toml"):
        load_config(write(tmp_path, "[jobs\n"), env={})
