"""What job code may record, checked the same way in a function host and in the worker:
JSON values of at most 1 MiB, durations, names. Pure; no I/O."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import msgspec

from reactor_jobs.domain.errors import ReactorError

MAX_OUTPUT_BYTES = 1024 * 1024
MAX_SLEEP = timedelta(days=365)
MAX_NAME = 200
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


class StepOutputError(ReactorError):
    """A step's output cannot be recorded."""

    code = "step_output"


class DataClientUnavailable(ReactorError):
    """ctx.data (the Data client) is not built yet in this version of Reactor Jobs."""

    code = "not_built"


def to_json_value(value: Any, what: str) -> Any:
    """The value as it will come back from the journal (a JSON round trip), size-checked."""
    try:
        raw = msgspec.json.encode(value)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise StepOutputError(f"{what} cannot be stored as JSON: {exc}") from None
    return checked_json(raw, what)


def checked_json(raw: bytes, what: str) -> Any:
    """Encoded JSON as a value, if it is small enough and storable (no NUL characters)."""
    if len(raw) > MAX_OUTPUT_BYTES:
        raise StepOutputError(f"{what} is {len(raw)} bytes; the limit is {MAX_OUTPUT_BYTES}")
    if b"\\u0000" in raw:
        raise StepOutputError(f"{what} contains a NUL character, which cannot be stored")
    return msgspec.json.decode(raw)


def parse_duration(duration: str | float | timedelta) -> timedelta:
    """'500ms', '30s', '15m', '24h', '7d', a number of seconds, or a timedelta (<= 365 days)."""
    if isinstance(duration, timedelta):
        span = duration
    elif isinstance(duration, int | float) and not isinstance(duration, bool):
        span = timedelta(seconds=duration)
    elif isinstance(duration, str) and (match := _DURATION.match(duration)):
        span = timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    else:
        raise ValueError(f"cannot read {duration!r} as a duration: use '30s', '15m', '24h', '7d'")
    if span < timedelta(0) or span > MAX_SLEEP:
        raise ValueError(f"a sleep must last between 0 and 365 days, not {span}")
    return span


def check_name(name: object, kind: str) -> str:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or "\x00" in name:
        raise ValueError(
            f"a {kind} name must be a non-empty string of at most {MAX_NAME} characters"
        )
    return name
