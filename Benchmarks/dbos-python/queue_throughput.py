"""The peer measurement for queues: DBOS Transact Python 3.4.0 enqueues N one-step workflows on a queue and
runs them in the same process (its default polling, once a second). Prints JSON with the throughput
(workflows started and finished per second, from the first enqueue to the last result).

usage: python queue_throughput.py DATABASE_URL N
"""
import json
import sys
import time

from dbos import DBOS

url, count = sys.argv[1], int(sys.argv[2])
DBOS(config={"name": "durable-bench-queue-peer", "system_database_url": url, "log_level": "WARNING"})

@DBOS.step()
def noop(index: int) -> int:
    return index


@DBOS.workflow()
def one_step(index: int) -> int:
    return noop(index)


DBOS.launch()
queue = DBOS.register_queue("bench-peer-queue")
start = time.perf_counter()
handles = [queue.enqueue(one_step, index) for index in range(count)]
for handle in handles:
    handle.get_result()
elapsed = time.perf_counter() - start
print(json.dumps({"count": count, "seconds": elapsed, "per_second": count / elapsed}))
DBOS.destroy()
