"""Identifiers: a prefix and a ULID (time-ordered, 80 random bits), e.g. run_01HZ…"""

from __future__ import annotations

import os
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(now_ms: int | None = None) -> str:
    """26 Crockford base32 characters: 48 bits of milliseconds, then 80 random bits."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def new_id(prefix: str) -> str:
    return f"{prefix}_{ulid()}"


# Idempotency keys the engine makes for its own fires: one per cron slot, one per webhook
# delivery. A caller's key may not start with these, or it could answer for a fire ahead.
CRON_KEY_PREFIX = "cron:"
WEBHOOK_KEY_PREFIX = "webhook:"
ENGINE_KEY_PREFIXES = (CRON_KEY_PREFIX, WEBHOOK_KEY_PREFIX)


def webhook_key(trigger_id: str, message_id: str) -> str:
    """The idempotency key of a webhook delivery: its trigger and its webhook-id."""
    return f"{WEBHOOK_KEY_PREFIX}{trigger_id}:{message_id}"
