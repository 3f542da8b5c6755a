"""Structured logs: `--log-format json` (or `[jobs] log_format = "json"`) writes one JSON
object per line to stderr: time, level, logger, message and fields.

`fields` holds what a record carries beyond the message (the access log's method, path,
status…; anything passed as `extra=`), plus trace_id/span_id when a span is current.
Nothing is added that the text log would not show, and a field whose name says it holds a
secret (password, token, secret, authorization, cookie, api_key, dsn) is masked, as is the
password of any URL in the message.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
from opentelemetry import trace

# The attributes every LogRecord has; the rest came in through `extra=`.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_SECRET_NAME = re.compile(
    r"pass(word)?|secret|token|authori[sz]ation|cookie|api[_-]?key|dsn|credential", re.I
)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]+@", re.I)
MASK = "***"


def mask_urls(text: str) -> str:
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)


def _safe(name: str, value: Any) -> Any:
    if _SECRET_NAME.search(name):
        return MASK
    if isinstance(value, str):
        return mask_urls(value)
    if isinstance(value, dict):
        return {str(k): _safe(str(k), v) for k, v in value.items()}
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside values are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask_urls(record.getMessage()),
        }
        fields: dict[str, Any] = {}
        for name, value in record.__dict__.items():
            if name in _STANDARD or name.startswith("_"):
                continue
            if name == "access" and isinstance(value, dict):
                fields.update(_safe("access", value))
            else:
                fields[name] = _safe(name, value)
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            fields["trace_id"] = f"{span.trace_id:032x}"
            fields["span_id"] = f"{span.span_id:016x}"
        if record.exc_info:
            fields["exception"] = mask_urls(self.formatException(record.exc_info))
        if fields:
            out["fields"] = fields
        return orjson.dumps(out, default=str).decode()


def configure_logging(
    log_format: str, *, level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """Text: leave Python's defaults alone (warnings and errors, bare, on stderr). JSON: one
    handler on the root logger writing JsonFormatter lines at `level`."""
    if log_format != "json":
        return
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_reactor_json", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._reactor_json = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
