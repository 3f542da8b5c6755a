-- Reactor Jobs: the whole database, schema _reactor_jobs. Version 6.
-- Idempotent: `reactor db migrate` (and every start) may run it on a live database.
-- Upgrades: a database at an older version runs this whole file again. Sections below the
-- version-1 marker change existing objects only in ways that are idempotent (ADD COLUMN IF
-- NOT EXISTS, CREATE INDEX IF NOT EXISTS), so a fresh install and an upgraded one end equal
-- (tests/integration/test_schema_upgrade.py compares their catalogs).
-- The journal is the truth; runs, dlq and events are projections rebuilt from it.

CREATE SCHEMA IF NOT EXISTS _reactor_jobs;

CREATE TABLE IF NOT EXISTS _reactor_jobs.schema_version (
    version    integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- One row per event. position counts within a run's stream; global_position across all.
-- payload holds the exact canonical bytes the hash covers; data is the same as jsonb for
-- auditors' SQL. recorded_at, tx_id, data, prev_hash and hash are set by journal_chain().
CREATE TABLE IF NOT EXISTS _reactor_jobs.journal (
    global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          text NOT NULL,
    position        integer NOT NULL CHECK (position >= 1),
    org             text NOT NULL,
    type            text NOT NULL,
    version         smallint NOT NULL CHECK (version >= 1),
    payload         bytea NOT NULL,
    data            jsonb NOT NULL,
    recorded_at     timestamptz NOT NULL,
    tx_id           xid8 NOT NULL,
    prev_hash       bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash            bytea NOT NULL CHECK (length(hash) = 32),
    CONSTRAINT journal_stream_position UNIQUE (run_id, position)
);

-- Tailing readers walk (tx_id, global_position) below the oldest running transaction.
CREATE INDEX IF NOT EXISTS journal_tx_order ON _reactor_jobs.journal (tx_id, global_position);
-- Lineage: the runs an emitting run caused, found from their Triggered events.
CREATE INDEX IF NOT EXISTS journal_caused_by ON _reactor_jobs.journal
    ((data -> 'trigger' ->> 'causation_run_id')) WHERE position = 1;

-- Extends the run's hash chain: hash = sha256(prev_hash || header || payload), where the
-- header is run_id, position, org, type, version and recorded_at (epoch microseconds),
-- each followed by a newline. domain/chain.py computes the same bytes for verification.
CREATE OR REPLACE FUNCTION _reactor_jobs.journal_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    prev bytea;
BEGIN
    IF NEW.position = 1 THEN
        prev := decode(repeat('00', 32), 'hex');
    ELSE
        SELECT j.hash INTO prev FROM _reactor_jobs.journal j
         WHERE j.run_id = NEW.run_id AND j.position = NEW.position - 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'run %: position % appended without position %',
                NEW.run_id, NEW.position, NEW.position - 1 USING ERRCODE = 'RJ002';
        END IF;
    END IF;
    NEW.recorded_at := now();
    NEW.tx_id := pg_current_xact_id();
    NEW.data := convert_from(NEW.payload, 'UTF8')::jsonb;
    NEW.prev_hash := prev;
    NEW.hash := sha256(prev || convert_to(
        NEW.run_id || E'\n' || NEW.position || E'\n' || NEW.org || E'\n' || NEW.type
        || E'\n' || NEW.version || E'\n'
        || (extract(epoch FROM NEW.recorded_at) * 1000000)::bigint || E'\n', 'UTF8')
        || NEW.payload);
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION _reactor_jobs.journal_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the run journal is append-only: % on _reactor_jobs.journal refused', TG_OP
        USING ERRCODE = 'RJ001';
END
$$;

CREATE OR REPLACE TRIGGER journal_chain BEFORE INSERT ON _reactor_jobs.journal
    FOR EACH ROW EXECUTE FUNCTION _reactor_jobs.journal_chain();
CREATE OR REPLACE TRIGGER journal_append_only BEFORE UPDATE OR DELETE ON _reactor_jobs.journal
    FOR EACH ROW EXECUTE FUNCTION _reactor_jobs.journal_refuse_change();
CREATE OR REPLACE TRIGGER journal_no_truncate BEFORE TRUNCATE ON _reactor_jobs.journal
    FOR EACH STATEMENT EXECUTE FUNCTION _reactor_jobs.journal_refuse_change();

-- Projection: the run list and the queue. last_position is the stream head that appends
-- check (optimistic concurrency and fencing) in the same statement that inserts events.
CREATE TABLE IF NOT EXISTS _reactor_jobs.runs (
    run_id           text PRIMARY KEY,
    org              text NOT NULL,
    job              text NOT NULL,
    function_name    text NOT NULL,
    function_version integer NOT NULL,
    trigger_kind     text NOT NULL,
    trigger_source   text,
    idempotency_key  text,
    status           text NOT NULL CHECK (status IN
                         ('queued', 'running', 'sleeping', 'retrying',
                          'completed', 'failed', 'cancelled')),
    attempt          integer NOT NULL CHECK (attempt >= 0),
    max_attempts     integer NOT NULL CHECK (max_attempts >= 1),
    timeout_ms       integer NOT NULL CHECK (timeout_ms >= 1),
    max_concurrency  integer NOT NULL CHECK (max_concurrency >= 1),
    available_at     timestamptz,
    sleep_name       text,
    lease_owner      text,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL,
    last_error       jsonb,
    output           jsonb,
    dlq_id           text,
    last_position    integer NOT NULL CHECK (last_position >= 1),
    CONSTRAINT runs_finished_iff_terminal
        CHECK ((status IN ('completed', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    CONSTRAINT runs_running_has_lease
        CHECK (status <> 'running'
               OR (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL
                   AND started_at IS NOT NULL)),
    CONSTRAINT runs_waiting_has_time
        CHECK (status NOT IN ('queued', 'sleeping', 'retrying') OR available_at IS NOT NULL),
    CONSTRAINT runs_failed_has_error CHECK (status <> 'failed' OR last_error IS NOT NULL),
    CONSTRAINT runs_failed_has_dlq CHECK (status <> 'failed' OR dlq_id IS NOT NULL),
    CONSTRAINT runs_sleeping_has_name CHECK ((status = 'sleeping') = (sleep_name IS NOT NULL))
) WITH (fillfactor = 80);

-- The claim path: runnable runs by job and due time, running runs by job. Partial, so
-- millions of finished runs never enter them.
CREATE INDEX IF NOT EXISTS runs_ready ON _reactor_jobs.runs (org, job, available_at)
    WHERE status IN ('queued', 'sleeping', 'retrying');
CREATE INDEX IF NOT EXISTS runs_running ON _reactor_jobs.runs (org, job, lease_expires_at)
    WHERE status = 'running';
-- Workers time their next wake-up to the earliest sleep or retry. Its predicate does not
-- cover the claim's, so the claim cannot wander onto it instead of runs_ready.
CREATE INDEX IF NOT EXISTS runs_waiting ON _reactor_jobs.runs (available_at)
    WHERE status IN ('sleeping', 'retrying');
CREATE INDEX IF NOT EXISTS runs_by_job ON _reactor_jobs.runs (org, job, created_at DESC, run_id DESC);
CREATE UNIQUE INDEX IF NOT EXISTS runs_idempotency ON _reactor_jobs.runs (org, job, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Projection: dead-lettered runs.
CREATE TABLE IF NOT EXISTS _reactor_jobs.dlq (
    dlq_id     text PRIMARY KEY,
    org        text NOT NULL,
    job        text NOT NULL,
    run_id     text NOT NULL,
    attempts   integer NOT NULL,
    error      jsonb,
    status     text NOT NULL CHECK (status IN ('open', 'retried')),
    created_at timestamptz NOT NULL,
    retried_at timestamptz,
    CONSTRAINT dlq_retried_has_time CHECK ((status = 'retried') = (retried_at IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS dlq_by_job ON _reactor_jobs.dlq (org, job, created_at DESC, dlq_id DESC);

-- Projection: events emitted by runs, by topic; consumed once a subscribed job's run
-- was triggered by it.
CREATE TABLE IF NOT EXISTS _reactor_jobs.events (
    event_id    text PRIMARY KEY,
    org         text NOT NULL,
    topic       text NOT NULL,
    payload     jsonb,
    run_id      text NOT NULL,
    job         text NOT NULL,
    emitted_at  timestamptz NOT NULL,
    consumed_at timestamptz,
    fanout      integer NOT NULL DEFAULT 0 CHECK (fanout >= 0),
    CONSTRAINT events_consumed_has_fanout CHECK ((consumed_at IS NULL) = (fanout = 0))
);
CREATE INDEX IF NOT EXISTS events_by_topic ON _reactor_jobs.events (org, topic, emitted_at DESC);
CREATE INDEX IF NOT EXISTS events_unconsumed ON _reactor_jobs.events (org, emitted_at)
    WHERE consumed_at IS NULL;

-- ctx.log lines and lifecycle notes for the SSE log stream. Not run state: the journal
-- does not hold them and rebuild leaves them alone.
CREATE TABLE IF NOT EXISTS _reactor_jobs.run_logs (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org        text NOT NULL,
    job        text NOT NULL,
    run_id     text NOT NULL,
    attempt    integer NOT NULL,
    step       text,
    level      text NOT NULL CHECK (level IN ('debug', 'info', 'warning', 'error')),
    message    text NOT NULL,
    fields     jsonb,
    at         timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS run_logs_by_job ON _reactor_jobs.run_logs (org, job, id);
CREATE INDEX IF NOT EXISTS run_logs_by_run ON _reactor_jobs.run_logs (run_id, id);

-- Configuration, not run history: functions, their immutable versions, and jobs.
CREATE TABLE IF NOT EXISTS _reactor_jobs.functions (
    org          text NOT NULL,
    name         text NOT NULL,
    runtime      text NOT NULL CHECK (runtime IN ('python', 'bun')),
    live_version integer CHECK (live_version >= 1),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org, name)
);

-- A deployed bundle: the archive bytes (function.json + code/) and its parsed manifest.
CREATE TABLE IF NOT EXISTS _reactor_jobs.function_versions (
    org        text NOT NULL,
    name       text NOT NULL,
    version    integer NOT NULL CHECK (version >= 1),
    archive    bytea NOT NULL,
    sha256     bytea NOT NULL CHECK (length(sha256) = 32),
    manifest   jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org, name, version),
    FOREIGN KEY (org, name) REFERENCES _reactor_jobs.functions (org, name) ON DELETE CASCADE
);

-- A job binds a name to a function. Policy columns left NULL come from the live
-- version's manifest `job` block at trigger time; a run records what it got.
CREATE TABLE IF NOT EXISTS _reactor_jobs.jobs (
    org              text NOT NULL,
    name             text NOT NULL,
    function_name    text NOT NULL,
    max_attempts     integer CHECK (max_attempts BETWEEN 1 AND 100),
    backoff          text CHECK (backoff IN ('exponential', 'linear')),
    initial_delay_ms integer CHECK (initial_delay_ms >= 0),
    max_delay_ms     integer CHECK (max_delay_ms >= 0),
    max_concurrency  integer CHECK (max_concurrency >= 1),
    timeout_ms       integer CHECK (timeout_ms >= 1),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org, name),
    FOREIGN KEY (org, function_name) REFERENCES _reactor_jobs.functions (org, name)
);

-- A job's triggers. Webhook triggers keep only the sha256 of their token; the token is
-- shown once, at creation. Manifest triggers are reconciled on promote (source 'manifest').
CREATE TABLE IF NOT EXISTS _reactor_jobs.triggers (
    id         text PRIMARY KEY,
    org        text NOT NULL,
    job        text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('cron', 'event', 'webhook', 'manual')),
    schedule   text,
    timezone   text,
    catch_up   text CHECK (catch_up IN ('latest', 'skip', 'all')),
    topic      text,
    token_hash bytea UNIQUE CHECK (length(token_hash) = 32),
    secret     text,
    source     text NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'manifest')),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- cron: every slot up to this instant has been fired (or skipped by the catch-up policy)
    fired_through timestamptz,
    CONSTRAINT triggers_cron_has_schedule CHECK ((kind = 'cron') = (schedule IS NOT NULL)),
    CONSTRAINT triggers_event_has_topic CHECK ((kind = 'event') = (topic IS NOT NULL)),
    CONSTRAINT triggers_webhook_has_token CHECK ((kind = 'webhook') = (token_hash IS NOT NULL)),
    FOREIGN KEY (org, job) REFERENCES _reactor_jobs.jobs (org, name) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS triggers_by_job ON _reactor_jobs.triggers (org, job);
CREATE INDEX IF NOT EXISTS triggers_by_topic ON _reactor_jobs.triggers (org, topic)
    WHERE kind = 'event';

-- Auth: users, orgs, memberships with roles, refresh tokens and machine API keys.
-- Secrets are stored hashed: passwords with argon2, tokens and keys with sha256.
CREATE TABLE IF NOT EXISTS _reactor_jobs.users (
    id            text PRIMARY KEY,
    email         text NOT NULL UNIQUE CHECK (email = lower(email)),
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS _reactor_jobs.orgs (
    name       text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS _reactor_jobs.memberships (
    org        text NOT NULL REFERENCES _reactor_jobs.orgs (name) ON DELETE CASCADE,
    user_id    text NOT NULL REFERENCES _reactor_jobs.users (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org, user_id)
);

CREATE TABLE IF NOT EXISTS _reactor_jobs.refresh_tokens (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id    text NOT NULL REFERENCES _reactor_jobs.users (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS refresh_tokens_by_user ON _reactor_jobs.refresh_tokens (user_id);

CREATE TABLE IF NOT EXISTS _reactor_jobs.api_keys (
    id         text PRIMARY KEY,
    org        text NOT NULL REFERENCES _reactor_jobs.orgs (name) ON DELETE CASCADE,
    name       text NOT NULL,
    role       text NOT NULL CHECK (role IN ('admin', 'member')),
    key_hash   bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

INSERT INTO _reactor_jobs.schema_version (version) VALUES (1) ON CONFLICT DO NOTHING;

-- ---------------------------------------------------------------------------------------
-- Version 2.

-- The live log tail reads lines in commit-safe order, (tx_id, id) below the oldest running
-- transaction, as it reads the journal: identity ids are taken before commit, so ordering by
-- id alone could skip a line that committed after a higher one was read.
ALTER TABLE _reactor_jobs.run_logs
    ADD COLUMN IF NOT EXISTS tx_id xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX IF NOT EXISTS run_logs_tx_order ON _reactor_jobs.run_logs (org, job, tx_id, id);
DROP INDEX IF EXISTS _reactor_jobs.run_logs_by_job;
-- One run's tail (?run_id=), in the same order.
CREATE INDEX IF NOT EXISTS run_logs_run_tx_order ON _reactor_jobs.run_logs (run_id, tx_id, id);
DROP INDEX IF EXISTS _reactor_jobs.run_logs_by_run;

-- The admin listing of emitted events, newest first, all topics, paged by (emitted_at, id).
CREATE INDEX IF NOT EXISTS events_by_org
    ON _reactor_jobs.events (org, emitted_at DESC, event_id DESC);

-- A promote reconciles the manifest triggers of every job bound to the function.
CREATE INDEX IF NOT EXISTS jobs_by_function ON _reactor_jobs.jobs (org, function_name);

INSERT INTO _reactor_jobs.schema_version (version) VALUES (2) ON CONFLICT DO NOTHING;

-- ---------------------------------------------------------------------------------------
-- Version 3.

-- The claim takes a job's due retries and woken sleeps before its fresh runs, so a backlog
-- of new runs cannot hold them back past their due time (engine/claim.py). `org IS NOT
-- NULL` is always true; it only keeps the workers' next-due scan, which names no org, on
-- runs_waiting (a query keyed by org proves it, one that is not cannot).
CREATE INDEX IF NOT EXISTS runs_resumed ON _reactor_jobs.runs (org, job, available_at)
    WHERE status IN ('sleeping', 'retrying') AND org IS NOT NULL;

-- Auth hardening.
-- A webhook trigger's extra request headers to keep on its runs, beside the defaults
-- (http/webhooks.py); NULL: the defaults only.
ALTER TABLE _reactor_jobs.triggers ADD COLUMN IF NOT EXISTS headers text[];

-- Who created an org through the API, for the per-user limit (max_orgs_per_user); NULL for
-- orgs made by the CLI or before this version.
ALTER TABLE _reactor_jobs.orgs ADD COLUMN IF NOT EXISTS created_by text
    REFERENCES _reactor_jobs.users (id) ON DELETE SET NULL;
CREATE INDEX IF NOT EXISTS orgs_by_creator ON _reactor_jobs.orgs (created_by);

-- Adding a member is an invitation to an email, accepted by whoever signs in with it: the
-- inviter learns nothing about whether the email has an account.
CREATE TABLE IF NOT EXISTS _reactor_jobs.invitations (
    id         text PRIMARY KEY,
    org        text NOT NULL REFERENCES _reactor_jobs.orgs (name) ON DELETE CASCADE,
    email      text NOT NULL CHECK (email = lower(email)),
    role       text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    invited_by text REFERENCES _reactor_jobs.users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    CONSTRAINT invitations_one_per_email UNIQUE (org, email)
);
CREATE INDEX IF NOT EXISTS invitations_by_email ON _reactor_jobs.invitations (email);

INSERT INTO _reactor_jobs.schema_version (version) VALUES (3) ON CONFLICT DO NOTHING;

-- ---------------------------------------------------------------------------------------
-- Version 4.

-- The Data API (reactor_jobs/data/). Each org's tables live in a schema of its own, reached
-- through a role of its own that can see nothing else; the engine provisions both on first
-- use and keeps the role's random password here, where only the engine can read it.
REVOKE ALL ON SCHEMA _reactor_jobs FROM PUBLIC;
CREATE TABLE IF NOT EXISTS _reactor_jobs.data_roles (
    org        text PRIMARY KEY,
    role       text NOT NULL UNIQUE,
    schema     text NOT NULL UNIQUE,
    password   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The key that signs checkpoint grants (HMAC-SHA256; ikey and okey are the key padded to
-- 64 bytes xor 0x36 and 0x5c, so SQL computes the HMAC with sha256() alone: no pgcrypto).
CREATE TABLE IF NOT EXISTS _reactor_jobs.data_keys (
    id   integer PRIMARY KEY CHECK (id = 1),
    key  bytea NOT NULL CHECK (length(key) = 32),
    ikey bytea NOT NULL CHECK (length(ikey) = 64),
    okey bytea NOT NULL CHECK (length(okey) = 64)
);

-- The one thing an org's role may call outside its schema: a ctx.data write's journal
-- entry, committed in the write's own transaction. The grant is signed by the engine and
-- names the run, the head it expects, the fence and the payload's sha256; the fence is
-- checked exactly as the append statement checks it; the DataCalled event is inserted as
-- the engine (journal_chain() fills hash, data, recorded_at). A grant works once: it
-- names the head it moves.
CREATE SCHEMA IF NOT EXISTS _reactor_data;
REVOKE ALL ON SCHEMA _reactor_data FROM PUBLIC;
CREATE OR REPLACE FUNCTION _reactor_data.checkpoint(grant_text text, signature bytea, payload bytea)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    g    jsonb;
    k    record;
    head integer;
    owner_org text;
BEGIN
    SELECT ikey, okey INTO k FROM _reactor_jobs.data_keys WHERE id = 1;
    IF NOT FOUND OR signature IS NULL
       OR sha256(k.okey || sha256(k.ikey || convert_to(grant_text, 'UTF8'))) <> signature THEN
        RAISE EXCEPTION 'data checkpoint refused: the grant is not signed by the engine'
            USING ERRCODE = 'RJ010';
    END IF;
    g := grant_text::jsonb;
    IF encode(sha256(payload), 'hex') <> g ->> 'payload_sha256' THEN
        RAISE EXCEPTION 'data checkpoint refused: the payload is not the granted one'
            USING ERRCODE = 'RJ010';
    END IF;
    UPDATE _reactor_jobs.runs AS r
       SET last_position = r.last_position + 1, updated_at = now()
     WHERE r.run_id = g ->> 'run_id' AND r.org = g ->> 'org'
       AND r.last_position = (g ->> 'expected')::integer
       AND r.status = 'running'
       AND r.attempt = (g ->> 'attempt')::integer
       AND r.lease_owner = g ->> 'owner'
       -- the lease holds by the claim or by the owner's heartbeat (version 5's workers)
       AND (r.lease_expires_at > now()
            OR EXISTS (SELECT 1 FROM _reactor_jobs.workers AS w
                        WHERE w.name = r.lease_owner AND w.expires_at > now()))
    RETURNING r.last_position, r.org INTO head, owner_org;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'run %: the attempt no longer owns the run at position %',
            g ->> 'run_id', g ->> 'expected' USING ERRCODE = 'RJ003';
    END IF;
    INSERT INTO _reactor_jobs.journal (run_id, position, org, type, version, payload)
    VALUES (g ->> 'run_id', head, owner_org, 'DataCalled', (g ->> 'version')::smallint, payload);
    RETURN head;
END
$$;
REVOKE ALL ON FUNCTION _reactor_data.checkpoint(text, bytea, bytea) FROM PUBLIC;

INSERT INTO _reactor_jobs.schema_version (version) VALUES (4) ON CONFLICT DO NOTHING;

-- ---------------------------------------------------------------------------------------
-- Version 5.
--
-- Worker liveness outside the journal (issue 15): one row per worker process, whose
-- heartbeat (every lease/3) moves expires_at on the database clock. A running run's lease
-- holds while its claim's lease (runs.lease_expires_at, from AttemptStarted) or its owner's
-- heartbeat is current, so a run that merely runs writes no journal rows; the journal
-- records the claim (AttemptStarted) and a loss (LeaseExpired), as before. A worker whose
-- row lapsed never revives it: it takes a new name, so a lapsed owner stays fenced out.
-- (_reactor_data.checkpoint above checks the same condition; the whole file runs on every
-- upgrade, so it is replaced along with this section.)
CREATE TABLE IF NOT EXISTS _reactor_jobs.workers (
    name       text PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now(),
    beat_at    timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

INSERT INTO _reactor_jobs.schema_version (version) VALUES (5) ON CONFLICT DO NOTHING;

-- ---------------------------------------------------------------------------------------
-- Version 6.

-- Exactly-once triggering is a fact of the journal, not of a projection: each idempotency
-- key names the run it started. The append statement (engine/write.sql, journal_append)
-- takes the key in the transaction that writes the run's Triggered event and never gives
-- it back; a projection rebuild does not touch this table.
CREATE TABLE IF NOT EXISTS _reactor_jobs.idempotency_keys (
    org        text NOT NULL,
    job        text NOT NULL,
    key        text NOT NULL,
    run_id     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org, job, key)
);
-- Upgrading from before version 6: the keys of existing runs, from their Triggered events
-- (the first run to take a key keeps it). Later upgrades, which run this file again, skip
-- the journal scan.
INSERT INTO _reactor_jobs.idempotency_keys (org, job, key, run_id, created_at)
SELECT org, data ->> 'job', data ->> 'idempotency_key', run_id, recorded_at
  FROM _reactor_jobs.journal
 WHERE position = 1 AND type = 'Triggered' AND data ->> 'idempotency_key' IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM _reactor_jobs.schema_version WHERE version >= 6)
 ORDER BY global_position
ON CONFLICT DO NOTHING;
-- The runs projection's key index now only finds a run by its key; it decides nothing.
DROP INDEX IF EXISTS _reactor_jobs.runs_idempotency;
CREATE INDEX IF NOT EXISTS runs_by_idempotency_key ON _reactor_jobs.runs (org, job, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

INSERT INTO _reactor_jobs.schema_version (version) VALUES (6) ON CONFLICT DO NOTHING;
