-- Durable migration 0001: the DBOS Transact 3.4.0 system-database schema.
--
-- On an empty database this builds, in the schema named by {{SCHEMA}}, exactly the schema that
-- `dbos migrate` (dbos==3.4.0, migrations 1..125, LISTEN/NOTIFY enabled) leaves behind: 13 tables,
-- their keys, foreign keys and indexes, the SQL client functions enqueue_workflow and
-- send_message, and the notifications trigger. It does not write the version row: the runner
-- records version 125 in {{SCHEMA}}.dbos_migrations in the same transaction, which is the value
-- DBOS 3.4.0 itself expects there.
--
-- Rules for this file (it is sent to the server in one PQexec, inside one transaction):
--   * {{SCHEMA}} is replaced by the runner with the double-quoted schema identifier.
--   * No CONCURRENTLY, no BEGIN/COMMIT, no psql meta-commands, no extensions.
--   * Column order matters (it is what `SELECT *` and DBOS's own readers see), so columns are
--     listed in the order DBOS's migrations produce them.
--   * Constraint names are PostgreSQL's defaults (<table>_pkey, <table>_<column>_key,
--     <table>_<column>_fkey), which are the names DBOS's databases carry.

-- The schema itself is created by the runner, and only when it is missing: a role that owns an existing schema
-- but may not create schemas in the database can still migrate it.

-- The single-row version table read by every DBOS SDK. IF NOT EXISTS: `dbos migrate` commits this table (empty)
-- before its first migration, so a DBOS process stopped in between leaves it behind, and this file completes
-- such a schema; the runner gets here only when the table holds no version.
CREATE TABLE IF NOT EXISTS {{SCHEMA}}.dbos_migrations (
    version bigint NOT NULL PRIMARY KEY
);

-- ---------------------------------------------------------------------------------------------
-- Workflows
-- ---------------------------------------------------------------------------------------------

CREATE TABLE {{SCHEMA}}.workflow_status (
    workflow_uuid              text PRIMARY KEY,
    status                     text,
    name                       text,
    authenticated_user         text,
    assumed_role               text,
    authenticated_roles        text,
    request                    text,
    output                     text,
    error                      text,
    executor_id                text,
    created_at                 bigint NOT NULL DEFAULT CAST(extract(epoch FROM now()) * 1000.0 AS bigint),
    updated_at                 bigint NOT NULL DEFAULT CAST(extract(epoch FROM now()) * 1000.0 AS bigint),
    application_version        text,
    application_id             text,
    class_name                 varchar(255) DEFAULT NULL,
    config_name                varchar(255) DEFAULT NULL,
    recovery_attempts          bigint DEFAULT 0,
    queue_name                 text,
    workflow_timeout_ms        bigint,
    workflow_deadline_epoch_ms bigint,
    inputs                     text,
    started_at_epoch_ms        bigint,
    deduplication_id           text,
    priority                   integer NOT NULL DEFAULT 0,
    queue_partition_key        text,
    forked_from                text,
    owner_xid                  text,
    parent_workflow_id         text,
    serialization              text,
    delay_until_epoch_ms       bigint,
    was_forked_from            boolean NOT NULL DEFAULT false,
    rate_limited               boolean NOT NULL DEFAULT false,
    completed_at               bigint,
    attributes                 jsonb,
    schedule_name              text,
    debounce_deadline_epoch_ms bigint,
    is_debounced               boolean NOT NULL DEFAULT false,
    application_name           text,
    creator_xid                text
);

CREATE INDEX workflow_status_created_at_index
    ON {{SCHEMA}}.workflow_status (created_at);
CREATE UNIQUE INDEX uq_workflow_status_dedup_id
    ON {{SCHEMA}}.workflow_status (queue_name, deduplication_id)
    WHERE deduplication_id IS NOT NULL;
CREATE INDEX idx_workflow_status_forked_from
    ON {{SCHEMA}}.workflow_status (forked_from)
    WHERE forked_from IS NOT NULL;
CREATE INDEX idx_workflow_status_parent_workflow_id
    ON {{SCHEMA}}.workflow_status (parent_workflow_id)
    WHERE parent_workflow_id IS NOT NULL;
CREATE INDEX idx_workflow_status_delayed
    ON {{SCHEMA}}.workflow_status (delay_until_epoch_ms)
    WHERE status = 'DELAYED';
CREATE INDEX idx_workflow_status_pending
    ON {{SCHEMA}}.workflow_status (created_at)
    WHERE status = 'PENDING';
CREATE INDEX idx_workflow_status_failed
    ON {{SCHEMA}}.workflow_status (status, created_at)
    WHERE status IN ('ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED');
CREATE INDEX idx_workflow_status_rate_limited
    ON {{SCHEMA}}.workflow_status (queue_name, started_at_epoch_ms)
    WHERE rate_limited = true;
CREATE INDEX idx_workflow_status_completed_at
    ON {{SCHEMA}}.workflow_status (completed_at)
    WHERE completed_at IS NOT NULL;
CREATE INDEX idx_workflow_status_started_at
    ON {{SCHEMA}}.workflow_status (started_at_epoch_ms)
    WHERE started_at_epoch_ms IS NOT NULL;
CREATE INDEX idx_workflow_status_attributes
    ON {{SCHEMA}}.workflow_status USING gin (attributes)
    WHERE attributes IS NOT NULL;
CREATE INDEX idx_workflow_status_schedule_name
    ON {{SCHEMA}}.workflow_status (schedule_name)
    WHERE schedule_name IS NOT NULL;
-- Queue dequeue paths: application_name is an INCLUDE column, not a key column.
CREATE INDEX idx_workflow_status_in_flight_v2
    ON {{SCHEMA}}.workflow_status (queue_name, status, priority, created_at)
    INCLUDE (application_name)
    WHERE status IN ('ENQUEUED', 'PENDING');
CREATE INDEX idx_workflow_status_partition_dequeue_v3
    ON {{SCHEMA}}.workflow_status (queue_name, status, queue_partition_key, priority, created_at, workflow_uuid)
    INCLUDE (application_name)
    WHERE status IN ('ENQUEUED', 'PENDING') AND queue_partition_key IS NOT NULL;
-- Timeout sweep: only live workflows that carry a deadline.
CREATE INDEX idx_workflow_status_deadline
    ON {{SCHEMA}}.workflow_status (workflow_deadline_epoch_ms)
    WHERE status IN ('ENQUEUED', 'PENDING', 'DELAYED') AND workflow_deadline_epoch_ms IS NOT NULL;

-- Inputs and outcomes live beside workflow_status (no foreign key, by design of DBOS 3.4.0).
CREATE TABLE {{SCHEMA}}.workflow_input (
    workflow_uuid       text NOT NULL PRIMARY KEY,
    inputs              text,
    retention_timestamp bigint NOT NULL DEFAULT CAST(extract(epoch FROM now()) * 1000.0 AS bigint)
);
CREATE INDEX idx_workflow_input_retention
    ON {{SCHEMA}}.workflow_input (retention_timestamp);

CREATE TABLE {{SCHEMA}}.workflow_output (
    workflow_uuid       text NOT NULL PRIMARY KEY,
    output              text,
    error               text,
    retention_timestamp bigint NOT NULL DEFAULT CAST(extract(epoch FROM now()) * 1000.0 AS bigint)
);
CREATE INDEX idx_workflow_output_retention
    ON {{SCHEMA}}.workflow_output (retention_timestamp);

-- ---------------------------------------------------------------------------------------------
-- Steps (no foreign key to workflow_status since DBOS migration 112)
-- ---------------------------------------------------------------------------------------------

CREATE TABLE {{SCHEMA}}.operation_outputs (
    workflow_uuid         text NOT NULL,
    function_id           integer NOT NULL,
    function_name         text NOT NULL DEFAULT '',
    output                text,
    error                 text,
    child_workflow_id     text,
    started_at_epoch_ms   bigint,
    completed_at_epoch_ms bigint,
    serialization         text,
    application_name      text,
    retention_timestamp   bigint NOT NULL DEFAULT CAST(extract(epoch FROM now()) * 1000.0 AS bigint),
    PRIMARY KEY (workflow_uuid, function_id)
);
CREATE INDEX idx_operation_outputs_completed_at_function_name_v2
    ON {{SCHEMA}}.operation_outputs (completed_at_epoch_ms, function_name)
    INCLUDE (application_name);
CREATE INDEX idx_operation_outputs_retention
    ON {{SCHEMA}}.operation_outputs (retention_timestamp);

-- ---------------------------------------------------------------------------------------------
-- Messages, events, streams
-- ---------------------------------------------------------------------------------------------

CREATE TABLE {{SCHEMA}}.notifications (
    message_uuid            text NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    destination_uuid        text NOT NULL
        REFERENCES {{SCHEMA}}.workflow_status (workflow_uuid) ON UPDATE CASCADE ON DELETE CASCADE,
    topic                   text,
    message                 text NOT NULL,
    created_at_epoch_ms     bigint NOT NULL DEFAULT CAST(extract(epoch FROM now()) * 1000.0 AS bigint),
    serialization           text,
    consumed                boolean NOT NULL DEFAULT false,
    consumed_by_function_id integer
);
CREATE INDEX idx_workflow_topic
    ON {{SCHEMA}}.notifications (destination_uuid, topic);

CREATE TABLE {{SCHEMA}}.workflow_events (
    workflow_uuid text NOT NULL
        REFERENCES {{SCHEMA}}.workflow_status (workflow_uuid) ON UPDATE CASCADE ON DELETE CASCADE,
    key           text NOT NULL,
    value         text NOT NULL,
    serialization text,
    PRIMARY KEY (workflow_uuid, key)
);

CREATE TABLE {{SCHEMA}}.workflow_events_history (
    workflow_uuid text NOT NULL
        REFERENCES {{SCHEMA}}.workflow_status (workflow_uuid) ON UPDATE CASCADE ON DELETE CASCADE,
    function_id   integer NOT NULL,
    key           text NOT NULL,
    value         text NOT NULL,
    serialization text,
    PRIMARY KEY (workflow_uuid, function_id, key)
);

CREATE TABLE {{SCHEMA}}.streams (
    workflow_uuid text NOT NULL
        REFERENCES {{SCHEMA}}.workflow_status (workflow_uuid) ON UPDATE CASCADE ON DELETE CASCADE,
    key           text NOT NULL,
    value         text NOT NULL,
    "offset"      integer NOT NULL,
    function_id   integer NOT NULL DEFAULT 0,
    serialization text,
    PRIMARY KEY (workflow_uuid, key, "offset")
);

-- ---------------------------------------------------------------------------------------------
-- Event receivers, schedules, application versions, queues
-- ---------------------------------------------------------------------------------------------

CREATE TABLE {{SCHEMA}}.event_dispatch_kv (
    service_name     text NOT NULL,
    workflow_fn_name text NOT NULL,
    key              text NOT NULL,
    value            text,
    update_seq       numeric(38, 0),
    update_time      numeric(38, 15),
    PRIMARY KEY (service_name, workflow_fn_name, key)
);

CREATE TABLE {{SCHEMA}}.workflow_schedules (
    schedule_id         text PRIMARY KEY,
    schedule_name       text NOT NULL UNIQUE,
    workflow_name       text NOT NULL,
    workflow_class_name text,
    schedule            text NOT NULL,
    status              text NOT NULL DEFAULT 'ACTIVE',
    context             text NOT NULL,
    last_fired_at       text,
    automatic_backfill  boolean NOT NULL DEFAULT false,
    cron_timezone       text,
    queue_name          text,
    application_name    text
);

CREATE TABLE {{SCHEMA}}.application_versions (
    version_id        text NOT NULL PRIMARY KEY,
    version_name      text NOT NULL UNIQUE,
    version_timestamp bigint NOT NULL DEFAULT CAST(extract(epoch FROM now()) * 1000.0 AS bigint),
    created_at        bigint NOT NULL DEFAULT CAST(extract(epoch FROM now()) * 1000.0 AS bigint),
    application_name  text
);
-- A version name is unique per owning application; unclaimed rows (NULL owner) form one more owner.
CREATE UNIQUE INDEX uq_application_versions_owner_version
    ON {{SCHEMA}}.application_versions (application_name, version_name)
    WHERE application_name IS NOT NULL;
CREATE UNIQUE INDEX uq_application_versions_unclaimed_version
    ON {{SCHEMA}}.application_versions (version_name)
    WHERE application_name IS NULL;
CREATE INDEX idx_application_versions_timestamp
    ON {{SCHEMA}}.application_versions (version_timestamp DESC);
CREATE INDEX idx_application_versions_owner_timestamp
    ON {{SCHEMA}}.application_versions (application_name, version_timestamp DESC);

CREATE TABLE {{SCHEMA}}.queues (
    queue_id                        text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    name                            text NOT NULL UNIQUE,
    concurrency                     integer,
    worker_concurrency              integer,
    rate_limit_max                  integer,
    rate_limit_period_sec           double precision,
    priority_enabled                boolean NOT NULL DEFAULT false,
    partition_queue                 boolean NOT NULL DEFAULT false,
    polling_interval_sec            double precision NOT NULL DEFAULT 1.0,
    created_at                      bigint NOT NULL DEFAULT CAST(extract(epoch FROM now()) * 1000.0 AS bigint),
    updated_at                      bigint NOT NULL DEFAULT CAST(extract(epoch FROM now()) * 1000.0 AS bigint),
    application_name                text,
    partition_concurrency           integer,
    partition_worker_concurrency    integer,
    partition_rate_limit_max        integer,
    partition_rate_limit_period_sec double precision
);

-- ---------------------------------------------------------------------------------------------
-- Functions and the notifications trigger.
--
-- The functions below are the SQL-callable client API that other DBOS SDKs invoke by name. Their
-- signatures, validation messages, error codes and the columns they write match DBOS 3.4.0's; the
-- bodies are our own. A non-default dollar-quote tag is used so a schema name containing "$$"
-- cannot end a body early.
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION {{SCHEMA}}.notifications_function()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $durable_fn$
BEGIN
    -- Wake whoever waits for messages to this workflow and topic.
    PERFORM pg_notify('dbos_notifications_channel', NEW.destination_uuid || '::' || NEW.topic);
    RETURN NEW;
END;
$durable_fn$;

CREATE TRIGGER dbos_notifications_trigger
    AFTER INSERT ON {{SCHEMA}}.notifications
    FOR EACH ROW
    EXECUTE FUNCTION {{SCHEMA}}.notifications_function();

CREATE FUNCTION {{SCHEMA}}.send_message(
    destination_id text,
    message        json,
    topic          text DEFAULT NULL,
    message_id     text DEFAULT NULL
)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $durable_fn$
BEGIN
    -- A repeated message_id is a retry of the same send: it delivers once.
    INSERT INTO {{SCHEMA}}.notifications (message_uuid, destination_uuid, topic, message, serialization)
    VALUES (COALESCE(message_id, gen_random_uuid()::text), destination_id,
            COALESCE(topic, '__null__topic__'), message, 'portable_json')
    ON CONFLICT (message_uuid) DO NOTHING;
EXCEPTION
    WHEN foreign_key_violation THEN
        RAISE EXCEPTION 'DBOS non-existent workflow'
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = 'Destination workflow ' || destination_id || ' does not exist';
END;
$durable_fn$;

CREATE FUNCTION {{SCHEMA}}.enqueue_workflow(
    workflow_name        text,
    queue_name           text,
    positional_args      json[] DEFAULT ARRAY[]::json[],
    named_args           json   DEFAULT '{}'::json,
    class_name           text   DEFAULT NULL,
    config_name          text   DEFAULT NULL,
    workflow_id          text   DEFAULT NULL,
    app_version          text   DEFAULT NULL,
    timeout_ms           bigint DEFAULT NULL,
    deadline_epoch_ms    bigint DEFAULT NULL,
    deduplication_id     text   DEFAULT NULL,
    priority             integer DEFAULT NULL,
    queue_partition_key  text   DEFAULT NULL,
    authenticated_user   text   DEFAULT NULL,
    authenticated_roles  text   DEFAULT NULL,
    delay_until_epoch_ms bigint DEFAULT NULL,
    application_name     text   DEFAULT NULL
)
    RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $durable_fn$
DECLARE
    new_id text := COALESCE(workflow_id, gen_random_uuid()::text);
    now_ms bigint := (EXTRACT(epoch FROM now()) * 1000)::bigint;
BEGIN
    IF workflow_name IS NULL OR workflow_name = '' THEN
        RAISE EXCEPTION 'Workflow name cannot be null or empty';
    ELSIF queue_name IS NULL OR queue_name = '' THEN
        RAISE EXCEPTION 'Queue name cannot be null or empty';
    ELSIF named_args IS NOT NULL AND json_typeof(named_args) <> 'object' THEN
        RAISE EXCEPTION 'Named args must be a JSON object';
    ELSIF workflow_id = '' THEN
        RAISE EXCEPTION 'Workflow ID cannot be an empty string if provided.';
    ELSIF delay_until_epoch_ms < 0 THEN
        RAISE EXCEPTION 'delay_until_epoch_ms must be >= 0';
    END IF;

    -- An existing ID is left as it is (only touched), so enqueueing is idempotent by workflow ID.
    INSERT INTO {{SCHEMA}}.workflow_status (
        workflow_uuid, status, name, class_name, config_name,
        queue_name, deduplication_id, priority, queue_partition_key, application_version,
        created_at, updated_at, recovery_attempts, workflow_timeout_ms, workflow_deadline_epoch_ms,
        parent_workflow_id, owner_xid, serialization, authenticated_user, authenticated_roles,
        delay_until_epoch_ms, application_name)
    VALUES (
        new_id, CASE WHEN delay_until_epoch_ms IS NULL THEN 'ENQUEUED' ELSE 'DELAYED' END,
        workflow_name, class_name, config_name,
        queue_name, deduplication_id, COALESCE(priority, 0), queue_partition_key, app_version,
        now_ms, now_ms, 0, timeout_ms, deadline_epoch_ms,
        NULL, gen_random_uuid()::text, 'portable_json', authenticated_user, authenticated_roles,
        delay_until_epoch_ms, application_name)
    ON CONFLICT (workflow_uuid) DO UPDATE SET updated_at = EXCLUDED.updated_at;

    INSERT INTO {{SCHEMA}}.workflow_input (workflow_uuid, inputs, retention_timestamp)
    VALUES (new_id, json_build_object('positionalArgs', positional_args, 'namedArgs', named_args)::text, now_ms)
    ON CONFLICT (workflow_uuid) DO NOTHING;

    RETURN new_id;
EXCEPTION
    WHEN unique_violation THEN
        -- Only the partial unique index on (queue_name, deduplication_id) can fire here.
        RAISE EXCEPTION 'DBOS queue duplicated'
            USING ERRCODE = 'unique_violation',
                  DETAIL = format('Workflow %s with queue %s and deduplication ID %s already exists',
                                  new_id, queue_name, deduplication_id);
END;
$durable_fn$;
