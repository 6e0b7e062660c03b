"""The peer measurement for throughput: DBOS Transact Python 3.4.0 runs one-step workflows back to back from
C threads at once, for a fixed time, at each concurrency given (as durable-bench scale does with tasks). Its
system-database pool is sized to the concurrency, so the pool is not what limits it. Prints one JSON object:
workflows finished per second, by concurrency.

usage: python throughput.py DATABASE_URL SECONDS C1 [C2 ...]
"""
import json
import sys
import threading
import time

from dbos import DBOS

url, seconds = sys.argv[1], float(sys.argv[2])
concurrencies = [int(value) for value in sys.argv[3:]]
DBOS(config={
    "name": "durable-bench-throughput-peer",
    "system_database_url": url,
    "log_level": "WARNING",
    "sys_db_pool_size": max(concurrencies) + 4,
})


@DBOS.step()
def noop(index: int) -> int:
    return index


@DBOS.workflow()
def one_step(index: int) -> int:
    return noop(index)


def rate(concurrency: int) -> float:
    deadline = time.perf_counter() + seconds
    done = [0] * concurrency

    def worker(lane: int) -> None:
        while time.perf_counter() < deadline:
            one_step(lane)
            done[lane] += 1

    threads = [threading.Thread(target=worker, args=(lane,)) for lane in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / seconds


DBOS.launch()
for _ in range(20):  # warm up connections and caches
    one_step(0)
print(json.dumps({str(c): rate(c) for c in concurrencies}))
DBOS.destroy()
