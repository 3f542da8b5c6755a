"""Loads `reactor.toml` and REACTOR_* environment overrides into one validated, frozen Config.

Unknown or wrongly typed keys fail at start, naming the key. Secrets never appear in reprs.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from reactor_jobs.domain.errors import ReactorError
from reactor_jobs.domain.signature import signing_key

DEFAULT_CONFIG_FILE = "reactor.toml"


class ConfigError(ReactorError):
    """The configuration is invalid."""

    code = "config_error"


START_TIMEOUT_S = 10.0  # a function host that has not said hello by then is killed


class HostSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Function hosts: how local ones are started, or where a remote service is
    ([jobs.functions] in reactor.toml)."""

    user: str = "reactor-fn"  # the unprivileged user hosts run as (created if missing); "": none
    sandbox: str = "auto"  # auto | bwrap | none
    network: bool = True  # False: no network at all inside the sandbox (bwrap only)
    memory_mb: int = 1024  # RLIMIT_DATA of a host
    max_open_files: int = 1024
    max_processes: int = 512  # RLIMIT_NPROC, per host user
    idle_s: float = 300.0  # an idle host is stopped after this long
    start_timeout_s: float = START_TIMEOUT_S  # a host that has not said hello by then is killed
    single_tenant: bool = False  # allow several orgs' code without any isolation
    url: str | None = None  # a remote host service instead of local hosts
    api_key: str | None = None

    def __repr__(self) -> str:
        fields = {name: getattr(self, name) for name in self.__struct_fields__}
        if fields["api_key"] is not None:
            fields["api_key"] = "***"
        return "HostSettings(" + ", ".join(f"{k}={v!r}" for k, v in fields.items()) + ")"


class ServiceConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An internal service Jobs calls (Functions, Data)."""

    url: str | None = None
    api_key: str | None = None

    def __repr__(self) -> str:
        key = None if self.api_key is None else "***"
        return f"ServiceConfig(url={self.url!r}, api_key={key!r})"


class HttpConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1_048_576  # larger request bodies get 413 (deploys: 50 MiB)
    # Per webhook trigger, per process (a token bucket); 0 turns the limit off.
    webhook_rate_per_second: float = 50.0
    webhook_burst: int = 100
    # A connection must send a complete request head within this (and may idle this long
    # between requests) or it is closed.
    header_timeout_s: float = 10.0


class AuthConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """JWT settings, sign-in limits and who may create orgs. Without jwt_secret, a random
    one is kept in <data_dir>/jwt_secret."""

    jwt_secret: str | None = None
    access_ttl_s: int = 3600
    refresh_ttl_s: int = 30 * 24 * 3600
    issuer: str = "reactor-jobs"
    audience: str = "reactor"
    # Failed sign-ins allowed per email and per client address in the window (per process).
    sign_in_failures_per_email: int = 5
    sign_in_failures_per_address: int = 50
    sign_in_window_s: int = 900
    # argon2 runs on its own threads; past threads + queue waiting calls a sign-in gets 503.
    password_hash_threads: int = 2
    password_hash_queue: int = 64
    # Who may create orgs over the API: "any" signed-in user, or only "admins" (the emails in
    # server_admins). Unset: "any" in dev mode (reactor serve --dev, embedded Postgres),
    # "admins" otherwise. `reactor orgs create` on the server's database is always allowed.
    org_creation: Literal["any", "admins"] | None = None
    server_admins: tuple[str, ...] = ()
    max_orgs_per_user: int = 10
    invitation_ttl_s: int = 7 * 24 * 3600

    def __repr__(self) -> str:
        fields = {name: getattr(self, name) for name in self.__struct_fields__}
        if fields["jwt_secret"] is not None:
            fields["jwt_secret"] = "***"
        body = ", ".join(f"{name}={value!r}" for name, value in fields.items())
        return f"AuthConfig({body})"


class MetricsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Prometheus `/metrics` ([jobs.metrics]): on `reactor serve`'s HTTP port, and on a
    listener of its own when `port` is set (the only way for `reactor worker`)."""

    enabled: bool = True
    port: int | None = None  # a separate listener for /metrics; 0: any free port
    host: str = "127.0.0.1"
    # Unset: /metrics answers anyone who reaches it (it holds no payloads or secrets: counts
    # by org, job and status). Set: `Authorization: Bearer <token>` is required.
    bearer_token: str | None = None
    # At most this many (org, job) label pairs per metric; the rest count under "_other".
    max_series: int = 200

    def __repr__(self) -> str:
        fields = {name: getattr(self, name) for name in self.__struct_fields__}
        if fields["bearer_token"] is not None:
            fields["bearer_token"] = "***"
        body = ", ".join(f"{name}={value!r}" for name, value in fields.items())
        return f"MetricsConfig({body})"


class TelemetryConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """OpenTelemetry traces ([jobs.telemetry]). No endpoint here and no
    OTEL_EXPORTER_OTLP_ENDPOINT: no spans are made or exported."""

    otlp_endpoint: str | None = None  # an OTLP/HTTP collector, e.g. http://localhost:4318
    service_name: str = "reactor-jobs"


class JobsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    worker_count: int = 4
    scheduler_interval_ms: int = 1000
    default_timeout_ms: int = 600_000
    max_timeout_ms: int = 3_600_000
    webhook_secret: str | None = None
    max_concurrency_cap: int = 10
    lease_ms: int = 30_000
    database_url: str | None = None
    # The embedded Postgres keeps its files in <data_dir>/pgdata.
    data_dir: str = ".reactor"
    # "text": Python's default stderr output; "json": one JSON object per line on stderr.
    log_format: Literal["text", "json"] = "text"
    http: HttpConfig = msgspec.field(default_factory=HttpConfig)
    auth: AuthConfig = msgspec.field(default_factory=AuthConfig)
    functions: HostSettings = msgspec.field(default_factory=HostSettings)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    telemetry: TelemetryConfig = msgspec.field(default_factory=TelemetryConfig)
    # An external Data service for ctx.data; unset: the built-in Data API (same database,
    # exactly-once writes). Through an external service writes are at least once.
    data: ServiceConfig = msgspec.field(default_factory=ServiceConfig)

    def __repr__(self) -> str:
        # Only the fields that can hold a secret are masked; the rest are useful in logs.
        fields = {name: getattr(self, name) for name in self.__struct_fields__}
        for name in ("webhook_secret", "database_url"):
            if fields[name] is not None:
                fields[name] = "***"
        body = ", ".join(f"{name}={value!r}" for name, value in fields.items())
        return f"JobsConfig({body})"


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    jobs: JobsConfig = msgspec.field(default_factory=JobsConfig)


# Environment variable → (path inside the TOML document, whether the value is an integer).
ENV_OVERRIDES: dict[str, tuple[tuple[str, ...], bool]] = {
    "REACTOR_DATABASE_URL": (("jobs", "database_url"), False),
    "REACTOR_WORKER_COUNT": (("jobs", "worker_count"), True),
    "REACTOR_SCHEDULER_INTERVAL_MS": (("jobs", "scheduler_interval_ms"), True),
    "REACTOR_DATA_DIR": (("jobs", "data_dir"), False),
    "REACTOR_HTTP_HOST": (("jobs", "http", "host"), False),
    "REACTOR_HTTP_PORT": (("jobs", "http", "port"), True),
    "REACTOR_WEBHOOK_SECRET": (("jobs", "webhook_secret"), False),
    "REACTOR_JWT_SECRET": (("jobs", "auth", "jwt_secret"), False),
    "REACTOR_LEASE_MS": (("jobs", "lease_ms"), True),
    "REACTOR_LOG_FORMAT": (("jobs", "log_format"), False),
    "REACTOR_METRICS_PORT": (("jobs", "metrics", "port"), True),
    "REACTOR_METRICS_TOKEN": (("jobs", "metrics", "bearer_token"), False),
}


def load_config(path: str | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file (argument, else REACTOR_CONFIG, else ./reactor.toml if present)."""
    env = os.environ if env is None else env
    raw = _read_toml(_config_path(path, env))
    _apply_env(raw, env)
    config = _convert(raw)
    _check_ranges(config.jobs)
    return config


def check_config(config: Config) -> None:
    """Refuse values out of range, e.g. after the command line replaced some."""
    _check_ranges(config.jobs)


def _config_path(path: str | None, env: Mapping[str, str]) -> Path | None:
    chosen = path or env.get("REACTOR_CONFIG")
    if chosen:
        if not Path(chosen).is_file():
            raise ConfigError(f"config error: file {chosen} not found")
        return Path(chosen)
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def _read_toml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config error: {path}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config error: cannot read {path}: {exc.strerror}") from None


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, (key_path, is_int) in ENV_OVERRIDES.items():
        value = env.get(name)
        if value is None or value == "":
            continue
        table = raw
        for key in key_path[:-1]:
            table = table.setdefault(key, {})
            if not isinstance(table, dict):
                return  # the TOML's own shape is wrong; _convert reports it
        table[key_path[-1]] = _env_int(name, value) if is_int else value


def _env_int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"config error: {name}: expected an integer, got {value!r}") from None


_AT_PATH = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<key>[^`]*)`$")


def _convert(raw: dict[str, Any]) -> Config:
    try:
        return msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(_describe(str(exc))) from None


def _describe(error: str) -> str:
    """Turn msgspec's "Expected `int`, got `str` - at `$.jobs.x`" into "jobs.x: Expected int…"."""
    match = _AT_PATH.match(error)
    message, path = (match["message"], match["path"] or "") if match else (error, "")
    path = path.lstrip(".")
    unknown = _UNKNOWN.match(message)
    if unknown:
        path = f"{path}.{unknown['key']}" if path else unknown["key"]
        message = "unknown key"
    message = message.replace("`", "")
    return f"config error: {path}: {message}" if path else f"config error: {message}"


def _check_ranges(jobs: JobsConfig) -> None:
    minimums = {
        "worker_count": 1,
        "scheduler_interval_ms": 1,
        "default_timeout_ms": 1,
        "max_timeout_ms": 1,
        "max_concurrency_cap": 1,
        "lease_ms": 1,
    }
    if jobs.http.max_body_bytes < 1024:
        raise ConfigError("config error: jobs.http.max_body_bytes: must be >= 1024")
    _check_webhooks(jobs)
    if jobs.auth.access_ttl_s < 1 or jobs.auth.refresh_ttl_s < 1:
        raise ConfigError("config error: jobs.auth: token lifetimes must be >= 1 second")
    _check_auth(jobs.auth)
    for name, minimum in minimums.items():
        if getattr(jobs, name) < minimum:
            raise ConfigError(f"config error: jobs.{name}: must be >= {minimum}")
    if jobs.default_timeout_ms > jobs.max_timeout_ms:
        raise ConfigError(
            "config error: jobs.default_timeout_ms: must be <= jobs.max_timeout_ms "
            f"({jobs.default_timeout_ms} > {jobs.max_timeout_ms})"
        )
    if not 0 <= jobs.http.port <= 65535:
        raise ConfigError("config error: jobs.http.port: must be between 0 and 65535")
    if not jobs.data_dir:
        raise ConfigError("config error: jobs.data_dir: must not be empty")
    _check_metrics(jobs.metrics)


def _check_metrics(metrics: MetricsConfig) -> None:
    if metrics.port is not None and not 0 <= metrics.port <= 65535:
        raise ConfigError("config error: jobs.metrics.port: must be between 0 and 65535")
    if metrics.max_series < 1:
        raise ConfigError("config error: jobs.metrics.max_series: must be >= 1")
    if metrics.bearer_token is not None and len(metrics.bearer_token) < 16:
        raise ConfigError("config error: jobs.metrics.bearer_token: must be 16 characters or more")


def _check_webhooks(jobs: JobsConfig) -> None:
    rate = jobs.http.webhook_rate_per_second
    if not 0 <= rate < float("inf"):
        raise ConfigError("config error: jobs.http.webhook_rate_per_second: must be >= 0 (0: off)")
    if not 0 < jobs.http.header_timeout_s <= 3600:
        raise ConfigError("config error: jobs.http.header_timeout_s: must be > 0 and <= 3600")
    if jobs.http.webhook_burst < 1:
        raise ConfigError("config error: jobs.http.webhook_burst: must be >= 1")
    if jobs.webhook_secret is not None:
        try:
            signing_key(jobs.webhook_secret)
        except ValueError as exc:  # its message never quotes the secret
            raise ConfigError(f"config error: jobs.webhook_secret: {exc}") from None


def _check_auth(auth: AuthConfig) -> None:
    minimums = {
        "sign_in_failures_per_email": 1,
        "sign_in_failures_per_address": 1,
        "sign_in_window_s": 1,
        "password_hash_threads": 1,
        "password_hash_queue": 0,
        "max_orgs_per_user": 0,
        "invitation_ttl_s": 60,
    }
    for name, minimum in minimums.items():
        if getattr(auth, name) < minimum:
            raise ConfigError(f"config error: jobs.auth.{name}: must be >= {minimum}")
