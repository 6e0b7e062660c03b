"""The peer measurement for memory: DBOS Transact Python 3.4.0 holds N workflows asleep for an hour (async
workflows on one event loop, the cheapest way DBOS Python can hold them) and prints its resident memory in MB
before and after, as JSON.

usage: python sleepers_memory.py DATABASE_URL N
"""
import asyncio
import json
import resource
import sys
import uuid

from dbos import DBOS

url, count = sys.argv[1], int(sys.argv[2])
DBOS(config={"name": "durable-bench-memory-peer", "system_database_url": url, "log_level": "WARNING"})


@DBOS.workflow()
async def sleeper(seconds: float) -> None:
    await DBOS.sleep_async(seconds)


def resident_megabytes() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


async def main() -> None:
    DBOS.launch()
    before = resident_megabytes()
    prefix = str(uuid.uuid4())
    for index in range(count):
        await DBOS.start_workflow_async(sleeper, 3600.0)
    await asyncio.sleep(3)  # let every workflow reach its sleep
    print(json.dumps({"before": before, "after": resident_megabytes()}))
    sys.stdout.flush()


asyncio.run(main())
import os
os._exit(0)  # the sleepers stay PENDING; exiting hard skips DBOS's shutdown wait
