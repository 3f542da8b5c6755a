"""HTTP test fixtures: `reactor serve`'s application on a real localhost port (AppRunner and
TCPSite, as serve starts it), a real aiohttp client, real users, orgs, JWTs and API keys,
and the engine fixture's workers and deployed bundles on the same database.

Org "acme" has an owner, an admin and a member; org "globex" has its own owner. Test modules
import the `api` fixture from here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest
from aiohttp import web
from multidict import CIMultiDict

from reactor_jobs.auth.service import AuthService
from reactor_jobs.config import AuthConfig, Config, HttpConfig, JobsConfig
from reactor_jobs.database import create_pool
from reactor_jobs.functions.bundle import pack_dir
from reactor_jobs.http.app import app_runner, create_app
from reactor_jobs.node import Node
from tests.engine_fixtures import BUNDLES, Engine

SECRET = "s" * 64
PASSWORD = "correct horse battery"
MAX_BODY = 64 * 1024
# Every table a request could change; `snapshot` fingerprints them all.
TABLES = (
    "journal", "runs", "dlq", "events", "run_logs", "functions", "function_versions",
    "jobs", "triggers", "users", "orgs", "memberships", "refresh_tokens", "api_keys",
    "invitations",
)  # fmt: skip


class Reply(msgspec.Struct, frozen=True):
    status: int
    headers: Mapping[str, str]
    text: str

    @property
    def json(self) -> Any:
        return msgspec.json.decode(self.text)

    @property
    def error_code(self) -> str:
        code = self.json["error"]["code"]
        assert isinstance(code, str)
        return code


class Api:
    """The server's base URL, a client, credentials by name, and the engine."""

    def __init__(
        self,
        base: str,
        session: aiohttp.ClientSession,
        node: Node,
        engine: Engine,
        auth: AuthService,
        app: web.Application,
    ) -> None:
        self.base, self.session, self.node, self.engine = base, session, node, engine
        self.auth, self.app = auth, app
        self.headers: dict[str, dict[str, str]] = {}
        self.users: dict[str, str] = {}  # caller name → user id

    async def call(
        self,
        method: str,
        path: str,
        *,
        as_: str | None = "owner",
        json: Any = None,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """One request; `as_` names a caller from `self.headers` (None: no credentials)."""
        sent = dict(self.headers[as_]) if as_ else {}
        sent.update(headers or {})
        if json is not None:
            data = msgspec.json.encode(json)
            sent.setdefault("Content-Type", "application/json")
        async with self.session.request(method, self.base + path, data=data, headers=sent) as r:
            return Reply(r.status, CIMultiDict(r.headers), await r.text())

    async def add_caller(self, name: str, org: str, role: str, *, owner_of: bool = False) -> None:
        """A user with `role` in `org` (its creator when owner_of), signed in."""
        user_id = await self.auth.create_user(f"{name}@{org}.test", PASSWORD)
        if owner_of:
            await self.auth.create_org(org, user_id)
        else:
            await self.auth.add_member(org, user_id, role)
        token = (await self.auth.issue_tokens(user_id)).access_token
        self.users[name] = user_id
        self.headers[name] = {"Authorization": f"Bearer {token}", "X-Reactor-Org": org}

    async def add_api_key(self, name: str, org: str, role: str) -> str:
        _, key = await self.auth.create_api_key(org, name, role)
        self.headers[name] = {"Authorization": f"Bearer {key}"}
        return key

    async def snapshot(self) -> dict[str, str]:
        """A fingerprint of every table: equal snapshots mean nothing changed."""
        out = {}
        for table in TABLES:
            out[table] = await self.node.pool.fetchval(
                f"SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY"
                f" t::text)), '') FROM _reactor_jobs.{table} AS t"
            )
        return out

    async def journal_rows(self) -> int:
        count = await self.node.pool.fetchval("SELECT count(*) FROM _reactor_jobs.journal")
        return int(count)

    async def wait_run(self, job: str, run_id: str, until: tuple[str, ...]) -> dict[str, Any]:
        async with asyncio.timeout(20):
            while True:
                run = (await self.call("GET", f"/jobs/v1/_admin/jobs/{job}/runs/{run_id}")).json
                if run["status"] in until:
                    return dict(run)
                await asyncio.sleep(0.05)


def http_config(tmp_path: Path, max_body: int = MAX_BODY) -> Config:
    jobs = JobsConfig(
        data_dir=str(tmp_path),
        auth=AuthConfig(jwt_secret=SECRET, org_creation="any"),  # as in dev mode
        http=HttpConfig(port=0, max_body_bytes=max_body),
        max_concurrency_cap=10,
    )
    return Config(jobs=jobs)


@pytest.fixture
async def api(engine: Engine, db_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    config = http_config(tmp_path)
    pool: asyncpg.Pool = await create_pool(db_url, min_size=1, max_size=12)
    node = Node(config, db_url, pool)
    app = create_app(node, config)
    runner = app_runner(app, config, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    session = aiohttp.ClientSession()
    api = Api(f"http://127.0.0.1:{port}", session, node, engine, AuthService(pool, config), app)
    try:
        await api.add_caller("owner", "acme", "owner", owner_of=True)
        await api.add_caller("admin", "acme", "admin")
        await api.add_caller("member", "acme", "member")
        await api.add_caller("outsider", "globex", "owner", owner_of=True)
        yield api
    finally:
        await session.close()
        await runner.cleanup()
        await node.close()


async def publish(api: Api, bundle: str, name: str | None = None) -> dict[str, Any]:
    """Create, deploy and promote a function over HTTP, as the CLI does."""
    name = name or bundle
    created = await api.call("POST", "/functions/v1/_admin/functions", json={"name": name})
    assert created.status == 201, created.text
    deployed = await api.call(
        "POST",
        f"/functions/v1/_admin/functions/{name}/deploy",
        data=pack_dir(BUNDLES / bundle),
        headers={"Content-Type": "application/gzip"},
    )
    assert deployed.status == 201, deployed.text
    promoted = await api.call("POST", f"/functions/v1/_admin/functions/{name}/promote")
    assert promoted.status == 200, promoted.text
    return dict(promoted.json)
