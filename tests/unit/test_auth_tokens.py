"""Access JWTs (HS256 pinned; exp, iss, aud, sub required), opaque token formats, and the
JWT secret file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import threading
import time
from pathlib import Path

import jwt
import pytest

from reactor_jobs.auth.principal import Unauthorized
from reactor_jobs.auth.tokens import (
    AccessTokens,
    is_api_key,
    jwt_secret,
    load_or_create_secret,
    new_api_key,
    new_refresh_token,
    token_hash,
)
from reactor_jobs.config import AuthConfig, ConfigError, JobsConfig

SECRET = "s" * 64
OTHER_SECRET = "o" * 64


def tokens(secret: str = SECRET, **overrides: object) -> AccessTokens:
    settings: dict[str, object] = {"issuer": "reactor-jobs", "audience": "reactor", "ttl_s": 60}
    settings.update(overrides)
    return AccessTokens(secret, **settings)  # type: ignore[arg-type]


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "sub": "usr_1",
        "iss": "reactor-jobs",
        "aud": "reactor",
        "iat": now,
        "exp": now + 60,
        "jti": "j1",
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(payload: dict[str, object], alg: str = "none") -> str:
    header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(payload).encode())}."


def hmac_signed_as(alg: str, payload: dict[str, object]) -> str:
    """Key confusion: an HMAC over the secret under another algorithm's name (e.g. RS256)."""
    header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    signing_input = f"{header}.{b64(json.dumps(payload).encode())}"
    mac = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def test_issue_then_verify() -> None:
    access = tokens()
    token = access.issue("usr_42")
    assert access.verify(token) == "usr_42"
    decoded = jwt.decode(token, options={"verify_signature": False})
    assert decoded["iss"] == "reactor-jobs"
    assert decoded["aud"] == "reactor"
    assert decoded["exp"] - decoded["iat"] == 60
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert (
        decoded["jti"]
        != jwt.decode(access.issue("usr_42"), options={"verify_signature": False})["jti"]
    )


def test_expired_token_is_refused() -> None:
    access = tokens()
    token = access.issue("usr_1", now=int(time.time()) - 61)
    with pytest.raises(Unauthorized, match="expired"):
        access.verify(token)


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param(lambda: unsigned(claims()), id="alg-none"),
        pytest.param(lambda: unsigned(claims(), alg="None"), id="alg-None"),
        pytest.param(
            lambda: jwt.encode(claims(), OTHER_SECRET, algorithm="HS256"), id="other-secret"
        ),
        pytest.param(lambda: jwt.encode(claims(), SECRET, algorithm="HS512"), id="other-hmac-alg"),
        pytest.param(lambda: hmac_signed_as("RS256", claims()), id="rs256-hmac-confusion"),
        pytest.param(lambda: jwt.encode(claims(aud="elsewhere"), SECRET), id="wrong-aud"),
        pytest.param(lambda: jwt.encode(claims(iss="someone"), SECRET), id="wrong-iss"),
        pytest.param(lambda: jwt.encode(claims(exp=None), SECRET), id="no-exp"),
        pytest.param(lambda: jwt.encode(claims(aud=None), SECRET), id="no-aud"),
        pytest.param(lambda: jwt.encode(claims(iss=None), SECRET), id="no-iss"),
        pytest.param(lambda: jwt.encode(claims(sub=None), SECRET), id="no-sub"),
        pytest.param(lambda: jwt.encode(claims(sub="key_1"), SECRET), id="sub-not-a-user"),
        pytest.param(
            lambda: jwt.encode(claims(iat=int(time.time()) + 600), SECRET), id="future-iat"
        ),
        pytest.param(lambda: "not.a.jwt", id="garbage"),
        pytest.param(lambda: "", id="empty"),
    ],
)
def test_forged_or_foreign_tokens_are_refused(forged: object) -> None:
    assert callable(forged)
    with pytest.raises(Unauthorized) as caught:
        tokens().verify(forged())
    assert caught.value.code == "unauthorized"


def test_the_forger_makes_valid_tokens_under_hs256() -> None:
    # So the RS256 case above fails for its algorithm alone, not for a malformed signature.
    assert tokens().verify(hmac_signed_as("HS256", claims())) == "usr_1"


def test_issuer_and_audience_come_from_config() -> None:
    mine = tokens(issuer="me", audience="us")
    with pytest.raises(Unauthorized):
        tokens().verify(mine.issue("usr_1"))
    assert mine.verify(mine.issue("usr_1")) == "usr_1"


def test_repr_hides_the_secret() -> None:
    assert SECRET not in repr(tokens())


def test_opaque_tokens_carry_256_bits_and_a_prefix() -> None:
    refresh, key = new_refresh_token(), new_api_key()
    assert refresh.startswith("rt_") and len(refresh) == 3 + 43
    assert key.startswith("rk_") and len(key) == 3 + 43
    assert is_api_key(key) and not is_api_key(refresh)
    assert new_api_key() != key
    assert len(token_hash(key)) == 32
    assert token_hash(key) == token_hash(key) != token_hash(refresh)


def test_configured_secret_wins(tmp_path: Path) -> None:
    jobs = JobsConfig(data_dir=str(tmp_path / "data"), auth=AuthConfig(jwt_secret=SECRET))
    assert jwt_secret(jobs) == SECRET
    assert not (tmp_path / "data").exists()


def test_short_configured_secret_is_a_config_error(tmp_path: Path) -> None:
    jobs = JobsConfig(data_dir=str(tmp_path), auth=AuthConfig(jwt_secret="hunter2"))
    with pytest.raises(ConfigError, match="jwt_secret") as caught:
        jwt_secret(jobs)
    assert "hunter2" not in str(caught.value)


def test_generated_secret_is_kept_private_and_reused(tmp_path: Path) -> None:
    jobs = JobsConfig(data_dir=str(tmp_path / "new" / "dir"))
    first = jwt_secret(jobs)
    path = tmp_path / "new" / "dir" / "jwt_secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 64
    assert jwt_secret(jobs) == first
    assert [p.name for p in path.parent.iterdir()] == ["jwt_secret"]


def test_a_readable_secret_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "jwt_secret"
    path.write_text("k" * 48 + "\n")
    os.chmod(path, 0o644)
    assert load_or_create_secret(tmp_path) == "k" * 48
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_concurrent_first_starts_agree_on_one_secret(tmp_path: Path) -> None:
    results: list[str] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        results.append(load_or_create_secret(tmp_path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and len(set(results)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["jwt_secret"]
