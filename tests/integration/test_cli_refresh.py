"""`reactor` processes share one stored sign-in. The refresh token is single-use (a second
use revokes the whole sign-in), so they refresh in turn, under a lock, each starting from
the newest stored token, and store the new pair at once."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from reactor_jobs.cli.credentials import Credentials, load_credentials, save_credentials
from reactor_jobs.cli.remote import Remote
from tests.http_fixtures import Api, api

pytestmark = pytest.mark.integration
__all__ = ["api"]


def args(url: str) -> argparse.Namespace:
    return argparse.Namespace(url=url, org=None, json=False)


async def test_two_processes_holding_one_refresh_token_both_refresh(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("REACTOR_TOKEN", raising=False)
    signed_in = await api.auth.issue_tokens(await api.auth.user_id_for_email("owner@acme.test"))
    save_credentials(
        Credentials(url=api.base, access_token=signed_in.access_token,
                    refresh_token=signed_in.refresh_token, org="acme")
    )  # fmt: skip
    # Both load the same stored pair, as two `reactor` commands started together do.
    first, second = Remote(args(api.base)), Remote(args(api.base))
    async with first, second:
        await first.client.auth.refresh()
        stored = load_credentials()
        assert stored is not None and stored.refresh_token != signed_in.refresh_token
        # The second still holds the spent token; it must take the stored one instead.
        await second.client.auth.refresh()
        assert [j.name for j in await second.client.jobs.list()] == []
        assert [j.name for j in await first.client.jobs.list()] == []
    final = load_credentials()
    assert final is not None and final.org == "acme"
    session = second.client.auth.session
    assert session is not None and final.refresh_token == session.refresh_token
    # The stored sign-in still works: nothing was presented twice, nothing revoked.
    third = Remote(args(api.base))
    async with third:
        assert await third.client.auth.refresh() is not None
