"""Webhook signatures in the Standard Webhooks style (standardwebhooks.com): an HMAC-SHA256
over `{webhook-id}.{webhook-timestamp}.{raw body}`, sent as `webhook-signature: v1,<base64>`
(several space-separated entries allowed, e.g. while a secret is rotated).

Pure functions: the caller passes the headers, the body and the current time."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping

from reactor_jobs.domain.errors import ReactorError

SECRET_PREFIX = "whsec_"
TOLERANCE_S = 5 * 60
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
_SIGNED_HEADERS = (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
MESSAGE_ID = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII: it becomes an idempotency key
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_ENTRY = re.compile(r"(?P<version>v[0-9a-z]+),(?P<value>\S+)")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_MAX_ENTRIES = 16


class InvalidSignature(ReactorError):
    """The webhook request is not signed correctly."""

    code = "invalid_signature"


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: `whsec_<base64>` is the decoded bytes, anything else its
    UTF-8 bytes. ValueError (which never quotes the secret) if a whsec_ secret is not base64."""
    if not secret:
        raise ValueError("must not be empty")
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode()
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError(f"a {SECRET_PREFIX}… secret must be base64 after the prefix") from None
    if not key:
        raise ValueError(f"a {SECRET_PREFIX}… secret must hold at least one byte")
    return key


def sign(key: bytes, message_id: str, timestamp: str, body: bytes) -> str:
    """The base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` (without the `v1,` prefix)."""
    content = f"{message_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def verify(key: bytes, headers: Mapping[str, str], body: bytes, now: float) -> str:
    """The request's message id if one of its v1 signatures matches and its timestamp is
    within TOLERANCE_S of `now` (unix seconds); InvalidSignature otherwise."""
    message_id, timestamp, signatures = _required(headers)
    if not MESSAGE_ID.fullmatch(message_id):
        raise InvalidSignature(f"{ID_HEADER} must be 1 to 255 visible ASCII characters")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise InvalidSignature(f"{TIMESTAMP_HEADER} must be unix time in whole seconds")
    if abs(now - int(timestamp)) > TOLERANCE_S:
        raise InvalidSignature(
            f"{TIMESTAMP_HEADER} is more than {TOLERANCE_S // 60} minutes away from the "
            "server's clock (a stale or replayed request, or a skewed clock)"
        )
    candidates = _v1_signatures(signatures)
    expected = sign(key, message_id, timestamp, body).encode()
    matched = False
    for candidate in candidates:  # every entry is compared, in constant time each
        matched |= hmac.compare_digest(expected, candidate.encode())
    if not matched:
        raise InvalidSignature(
            f"no {SIGNATURE_HEADER} entry matches: check the secret, and that the body is "
            "signed exactly as sent"
        )
    return message_id


def _required(headers: Mapping[str, str]) -> tuple[str, str, str]:
    values = {name: headers.get(name) or "" for name in _SIGNED_HEADERS}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise InvalidSignature(f"this webhook is signed; missing header {', '.join(missing)}")
    return values[ID_HEADER], values[TIMESTAMP_HEADER], values[SIGNATURE_HEADER]


def _v1_signatures(header: str) -> list[str]:
    """The v1 entries' values; entries of other versions (e.g. v1a) are not ours to check."""
    entries = header.split()
    if len(entries) > _MAX_ENTRIES:
        raise InvalidSignature(f"{SIGNATURE_HEADER} has more than {_MAX_ENTRIES} entries")
    found = []
    for entry in entries:
        match = _ENTRY.fullmatch(entry)
        if match is None:
            raise InvalidSignature(
                f"{SIGNATURE_HEADER} must be space-separated entries of the form v1,<base64>"
            )
        if match["version"] == "v1":
            if not _BASE64.fullmatch(match["value"]):
                raise InvalidSignature(f"a v1 entry of {SIGNATURE_HEADER} is not base64")
            found.append(match["value"])
    if not found:
        raise InvalidSignature(f"{SIGNATURE_HEADER} has no v1 entry")
    return found
