"""The registry's SQL: functions, their versions and jobs. Parameters are always bound;
every statement is scoped by org ($1).
"""

from __future__ import annotations

_FUNCTION_COLUMNS = "org, name, runtime, live_version, created_at, updated_at"
_JOB_COLUMNS = """org, name, function_name, max_attempts, backoff, initial_delay_ms,
    max_delay_ms, max_concurrency, timeout_ms, created_at, updated_at"""

FUNCTIONS_INSERT = f"""
INSERT INTO _reactor_jobs.functions (org, name, runtime) VALUES ($1, $2, $3)
RETURNING {_FUNCTION_COLUMNS}"""
FUNCTIONS_GET = f"""
SELECT {_FUNCTION_COLUMNS} FROM _reactor_jobs.functions WHERE org = $1 AND name = $2"""
FUNCTIONS_LIST = f"""
SELECT {_FUNCTION_COLUMNS} FROM _reactor_jobs.functions WHERE org = $1 ORDER BY name"""
# Serialises deploys of one function so version numbers count up without gaps; NO KEY
# UPDATE does not block the FK checks of concurrent job writes.
FUNCTIONS_LOCK = """
SELECT runtime FROM _reactor_jobs.functions WHERE org = $1 AND name = $2 FOR NO KEY UPDATE"""
VERSIONS_INSERT = """
INSERT INTO _reactor_jobs.function_versions (org, name, version, archive, sha256, manifest)
SELECT $1::text, $2::text, COALESCE(max(v.version), 0) + 1, $3::bytea, $4::bytea, $5::jsonb
  FROM _reactor_jobs.function_versions v WHERE v.org = $1 AND v.name = $2
RETURNING version"""
# $3 NULL promotes the latest version.
VERSIONS_PROMOTE = """
WITH target AS (
    SELECT v.version FROM _reactor_jobs.function_versions v
     WHERE v.org = $1 AND v.name = $2 AND ($3::integer IS NULL OR v.version = $3)
     ORDER BY v.version DESC LIMIT 1)
UPDATE _reactor_jobs.functions f SET live_version = target.version, updated_at = now()
  FROM target WHERE f.org = $1 AND f.name = $2
RETURNING f.live_version"""
VERSIONS_LIST = """
SELECT v.org, v.name, v.version, v.sha256, octet_length(v.archive) AS size,
       (v.version = f.live_version) IS TRUE AS live, v.created_at
  FROM _reactor_jobs.function_versions v
  JOIN _reactor_jobs.functions f ON f.org = v.org AND f.name = v.name
 WHERE v.org = $1 AND v.name = $2 ORDER BY v.version"""
VERSIONS_GET = """
SELECT v.org, v.name, v.version, f.runtime, v.archive, v.sha256, v.manifest, v.created_at
  FROM _reactor_jobs.function_versions v
  JOIN _reactor_jobs.functions f ON f.org = v.org AND f.name = v.name
 WHERE v.org = $1 AND v.name = $2 AND v.version = $3"""
JOBS_INSERT = f"""
INSERT INTO _reactor_jobs.jobs (org, name, function_name, max_attempts, backoff,
    initial_delay_ms, max_delay_ms, max_concurrency, timeout_ms)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING {_JOB_COLUMNS}"""
JOBS_GET = f"""
SELECT {_JOB_COLUMNS} FROM _reactor_jobs.jobs WHERE org = $1 AND name = $2"""
JOBS_GET_FOR_UPDATE = JOBS_GET + " FOR UPDATE"
JOBS_LIST = f"""
SELECT {_JOB_COLUMNS} FROM _reactor_jobs.jobs WHERE org = $1 ORDER BY name"""
JOBS_UPDATE = f"""
UPDATE _reactor_jobs.jobs
   SET function_name = $3, max_attempts = $4, backoff = $5, initial_delay_ms = $6,
       max_delay_ms = $7, max_concurrency = $8, timeout_ms = $9, updated_at = now()
 WHERE org = $1 AND name = $2
RETURNING {_JOB_COLUMNS}"""
JOBS_DELETE = """
DELETE FROM _reactor_jobs.jobs WHERE org = $1 AND name = $2 RETURNING name"""
# The job, its function and the live version's manifest, in one read.
JOBS_RESOLVE = """
SELECT j.org, j.name, j.function_name, j.max_attempts, j.backoff, j.initial_delay_ms,
       j.max_delay_ms, j.max_concurrency, j.timeout_ms, j.created_at, j.updated_at,
       f.runtime, f.live_version, f.created_at AS function_created_at,
       f.updated_at AS function_updated_at, v.manifest
  FROM _reactor_jobs.jobs j
  JOIN _reactor_jobs.functions f ON f.org = j.org AND f.name = j.function_name
  LEFT JOIN _reactor_jobs.function_versions v
    ON v.org = f.org AND v.name = f.name AND v.version = f.live_version
 WHERE j.org = $1 AND j.name = $2"""
# Admission (RunControl.admit): the runs due or running now, against maxConcurrency.
JOBS_RESOLVE_ADMISSION = f"""
SELECT resolved.*,
       (SELECT count(*) FROM _reactor_jobs.runs
         WHERE org = $1 AND job = $2 AND status IN ('queued', 'sleeping', 'retrying')
           AND available_at <= now())
     + (SELECT count(*) FROM _reactor_jobs.runs
         WHERE org = $1 AND job = $2 AND status = 'running') AS active
  FROM ({JOBS_RESOLVE}) AS resolved"""
# Manifest triggers (triggers/manifest_sync.py). A job create or rebind share-locks its
# function's row, a promote locks it exclusively (FUNCTIONS_LOCK), so a job bound while a
# version is being promoted gets that version's triggers, never the one before.
# (Alone, not joined: a row lock that waited re-reads only the locked row, not a join.)
FUNCTIONS_SHARE = """
SELECT live_version FROM _reactor_jobs.functions WHERE org = $1 AND name = $2 FOR SHARE"""
VERSIONS_MANIFEST = """
SELECT manifest FROM _reactor_jobs.function_versions
 WHERE org = $1 AND name = $2 AND version = $3"""
JOBS_OF_FUNCTION_LOCK = """
SELECT name FROM _reactor_jobs.jobs WHERE org = $1 AND function_name = $2
 ORDER BY name FOR NO KEY UPDATE"""
FUNCTIONS_DELETE = """
DELETE FROM _reactor_jobs.functions WHERE org = $1 AND name = $2 RETURNING name"""
