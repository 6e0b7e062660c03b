"""The peer measurement: DBOS Transact Python 3.4.0 running the same sequential workloads as durable-bench
(workflows of 0, 1 and 10 no-op steps, started one after another and awaited). Prints one JSON object with
the latency samples in milliseconds. durable-bench runs it once per round, between its own measurements.

usage: python sequential_workflows.py DATABASE_URL N0 N1 N10
"""
import json
import sys
import time

from dbos import DBOS

url, n0, n1, n10 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
DBOS(config={"name": "durable-bench-peer", "system_database_url": url, "log_level": "WARNING"})


@DBOS.step()
def noop(index: int) -> int:
    return index


@DBOS.workflow()
def sequential(steps: int) -> int:
    total = 0
    for index in range(steps):
        total += noop(index)
    return total


def measure(steps: int, count: int) -> list:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        sequential(steps)
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


DBOS.launch()
measure(0, 10), measure(1, 10), measure(10, 3)  # warm up connections and caches
print(json.dumps({"0": measure(0, n0), "1": measure(1, n1), "10": measure(10, n10)}))
DBOS.destroy()
