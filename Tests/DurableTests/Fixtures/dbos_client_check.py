"""Reads workflows a Durable (Swift) runtime ran, with DBOS Transact 3.4.0's own Python client.

usage: python dbos_client_check.py URL SCHEMA SUCCEEDED_ID FAILED_ID

Prints one JSON object on stdout; DBOSInteropTests.swift checks it. Nothing is asserted here, so a failure shows
what DBOS actually returned:
  result       get_result() of SUCCEEDED_ID (the decoded value), or {"exception": ...} if it raised
  status       get_status() of SUCCEEDED_ID (workflow_id, status, name, executor_id, app_version, input)
  listed       list_workflows(workflow_ids=[both]): workflow_id, status, name, output, error (as text)
  steps        list_workflow_steps(SUCCEEDED_ID): function_id, function_name, output
  failed_steps list_workflow_steps(FAILED_ID): function_id, function_name, output, error (as text)
  failed_error what get_result() of FAILED_ID raised: type and message (null if it returned)
"""

import json
import sys
import traceback

from dbos import DBOSClient


def describe(error):
    return {"type": type(error).__name__, "message": str(error)}


def main():
    url, schema, succeeded_id, failed_id = sys.argv[1:5]
    client = DBOSClient(system_database_url=url, dbos_system_schema=schema)
    report = {}
    try:
        handle = client.retrieve_workflow(succeeded_id)
        try:
            report["result"] = handle.get_result(polling_interval_sec=0.1)
        except Exception as error:  # noqa: BLE001 - reported, not handled
            report["result"] = {"exception": describe(error)}
        status = handle.get_status()
        report["status"] = {
            "workflow_id": status.workflow_id,
            "status": status.status,
            "name": status.name,
            "executor_id": status.executor_id,
            "app_version": status.app_version,
            "input": status.input,
        }
        report["listed"] = [
            {
                "workflow_id": w.workflow_id,
                "status": w.status,
                "name": w.name,
                "output": w.output,
                "error": None if w.error is None else str(w.error),
            }
            for w in client.list_workflows(workflow_ids=[succeeded_id, failed_id])
        ]
        report["steps"] = [
            {"function_id": s["function_id"], "function_name": s["function_name"], "output": s["output"]}
            for s in client.list_workflow_steps(succeeded_id)
        ]
        report["failed_steps"] = [
            {
                "function_id": s["function_id"],
                "function_name": s["function_name"],
                "output": s["output"],
                "error": None if s["error"] is None else str(s["error"]),
            }
            for s in client.list_workflow_steps(failed_id)
        ]
        try:
            value = client.retrieve_workflow(failed_id).get_result(polling_interval_sec=0.1)
            report["failed_error"] = None
            report["failed_value"] = value
        except Exception as error:  # noqa: BLE001 - this is what the test looks at
            report["failed_error"] = describe(error)
    except Exception as error:  # noqa: BLE001
        report["unexpected"] = describe(error)
        report["traceback"] = traceback.format_exc()
    finally:
        client.destroy()
    print(json.dumps(report, default=str))


if __name__ == "__main__":
    main()
