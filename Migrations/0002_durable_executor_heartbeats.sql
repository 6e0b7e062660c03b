-- Durable migration 0002: tables of our own, beside DBOS's (whose tables stay exactly as DBOS 3.4.0 has them).
--
--   durable_migrations  which of our own migrations (0002 and later) have run; 0001 is tracked by DBOS's
--                       dbos_migrations version row instead.
--   durable_executors   one heartbeat row per live executor. When an executor stays silent past the configured
--                       limit, a live executor of the same application version takes over its PENDING workflows.
--
-- Runs inside one transaction; {{SCHEMA}} is replaced by the runner with the quoted schema name.

CREATE TABLE IF NOT EXISTS {{SCHEMA}}.durable_migrations (
    version    integer PRIMARY KEY,
    applied_at bigint  NOT NULL DEFAULT (EXTRACT(epoch FROM now()) * 1000.0)::bigint
);

CREATE TABLE IF NOT EXISTS {{SCHEMA}}.durable_executors (
    executor_id         text   PRIMARY KEY,
    application_version text   NOT NULL,
    started_at          bigint NOT NULL DEFAULT (EXTRACT(epoch FROM now()) * 1000.0)::bigint,
    last_heartbeat      bigint NOT NULL DEFAULT (EXTRACT(epoch FROM now()) * 1000.0)::bigint
);
