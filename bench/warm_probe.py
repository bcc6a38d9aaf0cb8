"""A warmed probe process, as a probe pod runs checks: `hopscope batch`'s own `run_batch`
forks one child per check from a parent that has loaded the engine, so a check pays neither
Python's start nor the imports. Run inside the source's network namespace (`ip netns exec`):
each line of stdin is a ProbeRequest (JSON); each line out is the seconds from that request to
its result, then the connection status.
"""

from __future__ import annotations

import io
import sys
import time

from hopscope_probe.batch import Batch, BatchItem, BatchOutput, run_batch, start_context
from hopscope_probe.engine import Progress, run
from hopscope_probe.models import ProbeRequest


def main() -> None:
    resolv_conf = sys.argv[1]

    def here(item: BatchItem, progress: Progress) -> str:
        # Already in the source's namespace: the batch's runner would enter a pod's or the host's.
        result = run(item.request, resolv_conf=resolv_conf, progress=progress)
        return BatchOutput(id=item.id, result=result).to_json()

    start_context()  # the preload, before the first timed check, as at a probe pod's start
    for line in sys.stdin:
        request = ProbeRequest.model_validate_json(line)
        batch = Batch(checks=[BatchItem(id="bench/warm/1", netns="host", request=request)])
        out = io.StringIO()
        started = time.perf_counter()
        run_batch(batch, out, run=here)
        seconds = time.perf_counter() - started
        output = BatchOutput.model_validate_json(out.getvalue())
        print(f"{seconds:.6f} {output.result.connection_status}", flush=True)


if __name__ == "__main__":
    main()
