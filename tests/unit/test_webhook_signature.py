"""Standard Webhooks signatures: the key from a secret, the signed content, the 5-minute
window, the header forms accepted and refused. Expected values are computed here with the
hmac module, and one is the example published with the Standard Webhooks specification."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from reactor_jobs.domain.signature import (
    InvalidSignature,
    sign,
    signing_key,
    verify,
)

# The Standard Webhooks specification's example (secret, id, timestamp, body → signature).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID, SPEC_TIMESTAMP = "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330"
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

KEY = b"plain secret"
BODY = b'{"orderId": "ord_1"}'
NOW = 1_700_000_000


def expected(key: bytes, message_id: str, timestamp: str, body: bytes) -> str:
    content = message_id.encode() + b"." + timestamp.encode() + b"." + body
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def headers(signature: str, message_id: str = "msg_1", timestamp: int = NOW) -> dict[str, str]:
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": signature}  # fmt: skip


def test_signing_key_decodes_whsec_secrets_and_takes_others_as_utf8() -> None:
    assert signing_key(SPEC_SECRET) == base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert signing_key("héllo") == "héllo".encode()
    assert signing_key("whsec") == b"whsec"  # no underscore: not the base64 form
    refusals = [("whsec_not base64!", "must be base64"), ("whsec_", "at least one byte"),
                ("", "must not be empty")]  # fmt: skip
    for bad, message in refusals:
        with pytest.raises(ValueError, match=message) as raised:
            signing_key(bad)
        assert "not base64!" not in str(raised.value)  # a secret is never quoted


def test_sign_matches_the_specifications_example_and_an_independent_hmac() -> None:
    assert sign(signing_key(SPEC_SECRET), SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    assert sign(KEY, "msg_1", str(NOW), BODY) == expected(KEY, "msg_1", str(NOW), BODY)
    assert sign(KEY, "msg_1", str(NOW), BODY) != sign(KEY, "msg_2", str(NOW), BODY)


def test_a_matching_signature_within_the_window_returns_the_message_id() -> None:
    good = expected(KEY, "msg_1", str(NOW), BODY)
    assert verify(KEY, headers(f"v1,{good}"), BODY, now=NOW) == "msg_1"
    # Any one matching v1 entry suffices (rotation); other versions are skipped.
    rotated = f"v1,{expected(b'old', 'msg_1', str(NOW), BODY)} v1a,c2lnbmVk v1,{good}"
    assert verify(KEY, headers(rotated), BODY, now=NOW) == "msg_1"
    for skew in (-300, 300):  # the window's edges are inside it
        signed = expected(KEY, "msg_1", str(NOW + skew), BODY)
        assert verify(KEY, headers(f"v1,{signed}", timestamp=NOW + skew), BODY, now=NOW)
    spec = {"webhook-id": SPEC_ID, "webhook-timestamp": SPEC_TIMESTAMP,
            "webhook-signature": f"v1,{SPEC_SIGNATURE}"}  # fmt: skip
    key = signing_key(SPEC_SECRET)
    assert verify(key, spec, SPEC_BODY, now=int(SPEC_TIMESTAMP) + 10) == SPEC_ID


def signed(key: bytes = KEY, timestamp: int = NOW, **changed: str) -> dict[str, str]:
    """Headers of BODY signed with `key` as msg_1 at `timestamp`, then `changed` (by name,
    with _ for -) replacing some of them."""
    sent = headers("v1," + expected(key, "msg_1", str(timestamp), BODY), timestamp=timestamp)
    return sent | {name.replace("_", "-"): value for name, value in changed.items()}


NO_MATCH, WINDOW, FORM = "no webhook-signature entry matches", "more than 5 minutes", "v1,<base64>"


@pytest.mark.parametrize(
    ("sent", "body", "message"),
    [
        (signed(b"other"), BODY, NO_MATCH),
        (signed(), BODY + b" ", NO_MATCH),
        (signed(webhook_id="msg_2"), BODY, NO_MATCH),
        (signed(timestamp=NOW - 301), BODY, WINDOW),
        (signed(timestamp=NOW + 301), BODY, WINDOW),
        ({"webhook-id": "msg_1", "webhook-timestamp": str(NOW)}, BODY,
         "missing header webhook-signature"),
        ({"webhook-signature": "v1,abc="}, BODY, "missing header webhook-id, webhook-timestamp"),
        (signed(webhook_timestamp="soon"), BODY, "unix time"),
        (signed(webhook_timestamp="1.7e9"), BODY, "unix time"),
        (signed(webhook_signature=expected(KEY, "msg_1", str(NOW), BODY)), BODY, FORM),
        (signed(webhook_signature="v1,"), BODY, FORM),
        (signed(webhook_signature="v1,not-base64!"), BODY, "is not base64"),
        (signed(webhook_signature="v1a,c2lnbmVk"), BODY, "has no v1 entry"),
        (signed(webhook_signature=" ".join(["v1,YQ=="] * 17)), BODY, "more than 16 entries"),
        (signed(webhook_id="msg 1"), BODY, "visible ASCII"),
    ],
)  # fmt: skip
def test_refusals_name_the_problem(sent: dict[str, str], body: bytes, message: str) -> None:
    with pytest.raises(InvalidSignature) as raised:
        verify(KEY, sent, body, now=NOW)
    assert message in raised.value.message
    assert raised.value.code == "invalid_signature"
    assert KEY.decode() not in raised.value.message
