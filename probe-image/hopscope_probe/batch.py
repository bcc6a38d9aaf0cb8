"""`hopscope batch`: every due check of one node in one probe pod.

The operator puts the batch in the pod's `HOPSCOPE_BATCH` environment variable; each check runs
in its own child process (a network namespace is entered per process, and one check's crash
cannot take the others' results with it), a few at a time, and each result is printed as one
JSON line `{"id": ..., "result": ProbeResult}` as soon as it is ready.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Literal, TextIO

from pydantic import Field

from hopscope_probe.models import ProbeRequest, ProbeResult, Schema
from hopscope_probe.runner import Where, probe_failure, run_in

ENV = "HOPSCOPE_BATCH"
# Probes mostly wait on timeouts, so more run at once than there are cores; each child holds
# its own interpreter (~40 MiB), which bounds this on a small probe pod.
PARALLEL = 4


class PodNetns(Schema):
    pod_uid: str = Field(pattern=r"^([0-9a-fA-F-]{36}|[0-9a-fA-F]{32})$")  # a static pod's: 32


class BatchItem(Schema):
    id: str = Field(min_length=1, description="<namespace>/<name>/<generation>")
    netns: Literal["host"] | PodNetns
    request: ProbeRequest


class Batch(Schema):
    checks: list[BatchItem] = Field(min_length=1)


class BatchOutput(Schema):
    id: str
    result: ProbeResult


def where_of(item: BatchItem) -> Where:
    if isinstance(item.netns, PodNetns):
        return Where(pod_uid=item.netns.pod_uid)
    return Where(node=True)


def run_item(item: BatchItem) -> str:
    """In a child process: enter the item's namespace, probe, return the output line."""
    result = run_in(item.request, where_of(item))
    return BatchOutput(id=item.id, result=result).to_json()


def run_batch(batch: Batch, out: TextIO, parallel: int = PARALLEL) -> None:
    # One fresh child per check (a namespace, once entered, stays): forked from a clean
    # forkserver, since fork itself cannot recycle children.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["hopscope_probe.engine"])
    with ProcessPoolExecutor(parallel, mp_context=context, max_tasks_per_child=1) as pool:
        futures = {pool.submit(run_item, item): item for item in batch.checks}
        for future in as_completed(futures):
            item = futures[future]
            try:
                line = future.result()
            except Exception as exc:  # the child died (OOM kill, signal): say so, keep going
                failed = probe_failure(item.request, f"probe process failed: {exc!r}")
                line = BatchOutput(id=item.id, result=failed).to_json()
            out.write(line + "\n")
            out.flush()


def load(source: str | None) -> Batch:
    """The batch from a file path, '-' for stdin, or the environment."""
    if source == "-":
        text = sys.stdin.read()
    elif source:
        with open(source) as handle:
            text = handle.read()
    else:
        text = os.environ.get(ENV, "")
        if not text:
            raise ValueError(f"no batch: set {ENV} or pass --input")
    return Batch.model_validate_json(text)
