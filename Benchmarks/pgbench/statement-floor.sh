#!/usr/bin/env bash
# How much of a 10-step workflow's cost is the server's own: runs, with pgbench on one connection, the exact
# statements a 10-step workflow sends (start, ten step checkpoints, finish) against eleven raw single-row insert
# commits, side by side. No Swift involved.
#
# usage: Benchmarks/pgbench/statement-floor.sh URL [SECONDS]
#   URL: a database where `scripts/bench` (or any launch) has created the schema durable_bench
#        (e.g. DATABASE_URL=postgresql://... scripts/bench --rounds 1 first).
set -euo pipefail
url=$1
seconds=${2:-8}
s=durable_bench
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
psql -q "$url" -c "CREATE TABLE IF NOT EXISTS $s.raw_commits (id bigserial PRIMARY KEY, v text)"
for _ in $(seq 11); do echo "INSERT INTO $s.raw_commits (v) VALUES ('x');"; done > "$dir/raw11.sql"
{
  echo '\set id random(1, 2000000000)'
  echo "WITH started AS (INSERT INTO $s.workflow_status (workflow_uuid, status, name, executor_id, application_version, recovery_attempts, serialization, creator_xid, owner_xid, priority) VALUES ('pgb-' || :id, 'PENDING', 'bench', 'e', 'v', 1, 'portable_json', 'tok', 'tok', 0) ON CONFLICT (workflow_uuid) DO NOTHING RETURNING workflow_uuid), stored_input AS (INSERT INTO $s.workflow_input (workflow_uuid, inputs) SELECT workflow_uuid, '{\"namedArgs\":{},\"positionalArgs\":[10]}' FROM started ON CONFLICT (workflow_uuid) DO NOTHING) SELECT count(*) FROM started;"
  for step in $(seq 10); do
    echo "WITH written AS (INSERT INTO $s.operation_outputs (workflow_uuid, function_id, function_name, output, error, serialization, started_at_epoch_ms, completed_at_epoch_ms) VALUES ('pgb-' || :id, $step, 'noop', '1', NULL, 'portable_json', 1, 2) ON CONFLICT (workflow_uuid, function_id) DO NOTHING RETURNING 1) SELECT ws.status, ws.owner_xid IS NOT DISTINCT FROM 'tok', (SELECT count(*) FROM written) FROM $s.workflow_status ws WHERE ws.workflow_uuid = 'pgb-' || :id;"
  done
  echo "WITH finished AS (UPDATE $s.workflow_status SET status = 'SUCCESS', updated_at = 1, completed_at = 1, owner_xid = NULL, deduplication_id = NULL WHERE workflow_uuid = 'pgb-' || :id AND status = 'PENDING' AND owner_xid = 'tok' RETURNING 1), stored_output AS (INSERT INTO $s.workflow_output (workflow_uuid, output, error) SELECT 'pgb-' || :id, '45', NULL WHERE EXISTS (SELECT 1 FROM finished) ON CONFLICT (workflow_uuid) DO UPDATE SET output = EXCLUDED.output, error = EXCLUDED.error) SELECT count(*) FROM finished;"
} > "$dir/workflow10.sql"
for round in 1 2; do
  for script in raw11 workflow10; do
    latency=$(pgbench -n -M prepared -c 1 -T "$seconds" -f "$dir/$script.sql" "$url" 2>/dev/null | sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p')
    echo "round $round  $script  $latency ms"
  done
done
