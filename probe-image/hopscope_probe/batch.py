"""`hopscope batch`: every due check of one node in one probe pod.

The operator puts the batch in the pod's `HOPSCOPE_BATCH` environment variable; each check runs
in its own child process (a network namespace is entered per process, and one check's crash
cannot take the others' results with it), a few at a time, and each result is printed as one
JSON line `{"id": ..., "result": ProbeResult}` as soon as it is ready.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
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


def run_batch(
    batch: Batch,
    out: TextIO,
    parallel: int = PARALLEL,
    run: Callable[[BatchItem], str] = run_item,
) -> None:
    # One fresh child per check (a namespace, once entered, stays), forked from a clean
    # forkserver, each with its own pipe: a process pool breaks as a whole when one worker is
    # killed, failing every outstanding check; here a kill costs only its own check.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["hopscope_probe.engine"])
    waiting = list(reversed(batch.checks))
    running: dict[Connection, tuple[BatchItem, BaseProcess]] = {}
    while waiting or running:
        while waiting and len(running) < parallel:
            item = waiting.pop()
            reader, writer = context.Pipe(duplex=False)
            child = context.Process(target=send_result, args=(run, item, writer))
            child.start()
            writer.close()  # the child's end only, so that its death is the reader's EOF
            running[reader] = (item, child)
        for reader in wait(list(running)):
            item, child = running.pop(reader)
            out.write(collect(item, reader, child) + "\n")
            out.flush()


def send_result(run: Callable[[BatchItem], str], item: BatchItem, writer: Connection) -> None:
    writer.send(run(item))


def collect(item: BatchItem, reader: Connection, child: BaseProcess) -> str:
    """The child's line, or a probe failure naming how it died."""
    # Read before joining: a child blocks writing a result larger than the pipe's buffer.
    line: str | None
    try:
        line = reader.recv()
    except (EOFError, OSError):  # nothing, or cut short: the child died
        line = None
    finally:
        reader.close()
    child.join()
    if line is None:
        failed = probe_failure(item.request, f"probe process failed: {death(child.exitcode)}")
        line = BatchOutput(id=item.id, result=failed).to_json()
    return line


def death(exitcode: int | None) -> str:
    if exitcode is None or exitcode >= 0:
        return f"exited with code {exitcode} without a result"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:  # a real-time signal has no name
        name = f"signal {-exitcode}"
    # The kernel's OOM killer (cgroup v1, or kubelet's singleProcessOOMKill) sends SIGKILL.
    return f"killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")


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
