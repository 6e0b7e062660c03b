-- Durable migration 0003: one row per running process (an instance of an executor), beside durable_executors.
--
--   durable_executor_instances  which processes hold which executor ID now, and how to tell whether each is
--                               still alive: its host, process ID and the process's start time (so a restart of
--                               the same executor on the same machine sees at once that the old process is
--                               gone), and a heartbeat with the interval it promised. The first 13 characters of
--                               every owner token a process's runs write to workflow_status.owner_xid are its
--                               instance_id, so a workflow's owner can be told live or dead from this table.
--
-- Runs inside one transaction; {{SCHEMA}} is replaced by the runner with the quoted schema name.

CREATE TABLE IF NOT EXISTS {{SCHEMA}}.durable_executor_instances (
    instance_id           text    PRIMARY KEY,
    executor_id           text    NOT NULL,
    application_version   text    NOT NULL,
    host                  text    NOT NULL,
    process_id            integer NOT NULL,
    process_started       text,
    heartbeat_interval_ms bigint  NOT NULL,
    started_at            bigint  NOT NULL DEFAULT (EXTRACT(epoch FROM now()) * 1000.0)::bigint,
    last_heartbeat        bigint  NOT NULL DEFAULT (EXTRACT(epoch FROM now()) * 1000.0)::bigint
);

CREATE INDEX IF NOT EXISTS durable_executor_instances_executor
    ON {{SCHEMA}}.durable_executor_instances (executor_id);
