"""Enqueues workflows onto a Durable (Swift) runtime's queues with DBOS Transact 3.4.0's own Python client, in
the portable format, and waits for their results.

usage: python dbos_client_enqueue.py URL SCHEMA WORKFLOW_NAME PARTITIONED_QUEUE PLAIN_QUEUE

Prints one JSON object on stdout; DBOSInteropTests.swift checks it:
  results  workflow ID -> the value get_result() returned, or {"exception": ...}
  ids      the IDs enqueued: two onto the partitioned queue (partitions "red" and "blue"), one onto the plain one
"""

import json
import sys
import traceback

from dbos import DBOSClient
from dbos._serialization import WorkflowSerializationFormat


def main():
    url, schema, name, partitioned, plain = sys.argv[1:6]
    client = DBOSClient(system_database_url=url, dbos_system_schema=schema)
    report = {"ids": [], "results": {}}
    try:
        handles = []
        for index, (queue, key) in enumerate([(partitioned, "red"), (partitioned, "blue"), (plain, None)]):
            options = {
                "workflow_name": name,
                "queue_name": queue,
                "workflow_id": f"client-enqueued-{index}",
                "serialization_type": WorkflowSerializationFormat.PORTABLE,
            }
            if key is not None:
                options["queue_partition_key"] = key
            handles.append(client.enqueue(options, index + 1))
        for handle in handles:
            report["ids"].append(handle.get_workflow_id())
            try:
                report["results"][handle.get_workflow_id()] = handle.get_result(polling_interval_sec=0.1)
            except Exception as error:  # noqa: BLE001 - reported, not handled
                report["results"][handle.get_workflow_id()] = {"exception": f"{type(error).__name__}: {error}"}
    except Exception as error:  # noqa: BLE001
        report["unexpected"] = f"{type(error).__name__}: {error}"
        report["traceback"] = traceback.format_exc()
    finally:
        client.destroy()
    print(json.dumps(report))


main()
