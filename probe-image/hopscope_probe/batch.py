"""`hopscope batch`: every due check of one node in one probe pod.

The operator puts the batch in the pod's `HOPSCOPE_BATCH` environment variable; each check runs
in its own child process (a network namespace is entered per process, and one check's crash
cannot take the others' results with it), a few at a time, and each result is printed as one
JSON line `{"id": ..., "result": ProbeResult}` as soon as it is ready. A check given a budget
is killed when it runs past it: its line then says so, and what it was doing.
"""

from __future__ import annotations

import gc
import importlib
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any, Literal, TextIO

from pydantic import ConfigDict, Field, ValidationError

from hopscope_probe.models import (
    ConnectionStatus,
    DestinationInfo,
    Issue,
    IssueType,
    Origin,
    ProbeRequest,
    ProbeResult,
    Protocol,
    Schema,
    Severity,
)
from hopscope_probe.runner import REQUEST_HINT, Progress, Where, probe_failure, run_in

ENV = "HOPSCOPE_BATCH"
# Probes mostly wait on timeouts, so more run at once than there are cores; each child adds
# ~10 MiB of its own pages (bench/probe_memory.py), which bounds this on a small probe pod.
PARALLEL = 4
# What every check imports, loaded in the parent before its children are forked so that they
# share these pages instead of each loading its own.
PRELOAD = ["hopscope_probe.engine"]
BUDGET_HINT = (
    "Lower probes.count, probes.timeoutSeconds or path.maxHops: the worst case is about"
    " timeoutSeconds * (count + maxHops + 2). Or raise the operator's per-check budget"
    " (HOPSCOPE_CHECK_BUDGET_SECONDS)."
)


class PodNetns(Schema):
    pod_uid: str = Field(pattern=r"^([0-9a-fA-F-]{36}|[0-9a-fA-F]{32})$")  # a static pod's: 32


class BatchItem(Schema):
    id: str = Field(min_length=1, description="<namespace>/<name>/<generation>")
    netns: Literal["host"] | PodNetns
    request: ProbeRequest
    budget_seconds: float | None = Field(
        default=None,
        gt=0,
        description="How long the check may run: past it, its process is killed and its"
        " result says so. None: no limit.",
    )


class Batch(Schema):
    checks: list[BatchItem] = Field(min_length=1)


class BatchOutput(Schema):
    id: str
    result: ProbeResult


class RawBatch(Schema):
    """A batch before its checks are read one by one: one the model refuses fails alone."""

    checks: list[dict[str, Any]] = Field(min_length=1)


class CheckId(Schema):
    """A check's id alone, read from a check the model refuses, to answer under it."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1)


@dataclass(frozen=True)
class Loaded:
    """A batch as read: the checks to run, and the output lines of those the model refused."""

    batch: Batch | None  # None: every check was refused
    refused: list[BatchOutput]


Run = Callable[[BatchItem, Progress], str]


def where_of(item: BatchItem) -> Where:
    if isinstance(item.netns, PodNetns):
        return Where(pod_uid=item.netns.pod_uid)
    return Where(node=True)


def run_item(item: BatchItem, progress: Progress) -> str:
    """In a child process: enter the item's namespace, probe, return the output line."""
    result = run_in(item.request, where_of(item), progress)
    return BatchOutput(id=item.id, result=result).to_json()


@dataclass
class Child:
    """A check's process, and what it last said it was doing (for a budget's verdict)."""

    item: BatchItem
    process: BaseProcess
    started: float
    doing: str = "starting"

    @property
    def ends_by(self) -> float:
        budget = self.item.budget_seconds
        return math.inf if budget is None else self.started + budget


def run_batch(batch: Batch, out: TextIO, parallel: int = PARALLEL, run: Run = run_item) -> None:
    # One fresh child per check (a namespace, once entered, stays), each with its own pipe: a
    # process pool breaks as a whole when one worker is killed, failing every outstanding
    # check; here a kill costs only its own check.
    context = start_context()
    waiting = list(reversed(batch.checks))
    running: dict[Connection, Child] = {}
    while waiting or running:
        while waiting and len(running) < parallel:
            item = waiting.pop()
            reader, writer = context.Pipe(duplex=False)
            process = context.Process(target=send_result, args=(run, item, writer))
            process.start()
            writer.close()  # the child's end only, so that its death is the reader's EOF
            running[reader] = Child(item, process, time.monotonic())
        soonest = min(child.ends_by for child in running.values())
        timeout = None if soonest == math.inf else max(0.0, soonest - time.monotonic())
        for reader in wait(list(running), timeout):
            line = receive(running[reader], reader)
            if line is not None:
                _write(out, line)
                del running[reader]
        for reader, child in list(running.items()):
            if child.ends_by <= time.monotonic():
                _write(out, over_budget(child, reader))
                del running[reader]


def start_context() -> BaseContext:
    """Children forked from this warmed process: a full batch peaks at 73-82 MiB this way,
    126 MiB from a forkserver (its own interpreter and a resource tracker's beside this one;
    figures of bench/probe_memory.py). Safe as `hopscope batch` starts no thread before it forks."""
    for module in PRELOAD:
        importlib.import_module(module)
    gc.freeze()  # the collector leaves these objects be, so that a child copies fewer pages
    return multiprocessing.get_context("fork")


def _write(out: TextIO, line: str) -> None:
    out.write(line + "\n")
    out.flush()  # the operator reads a running pod's log: each result is taken as it comes


def send_result(run: Run, item: BatchItem, writer: Connection) -> None:
    lock = threading.Lock()  # the engine reports progress from more than one thread

    def send(kind: str, text: str) -> None:
        with lock:
            writer.send((kind, text))

    send("result", run(item, lambda message: send("progress", message)))


def receive(child: Child, reader: Connection) -> str | None:
    """The child's line once it is done (or a probe failure naming how it died); None when it
    only said what it is doing."""
    # Read before joining: a child blocks writing a result larger than the pipe's buffer.
    try:
        kind, text = reader.recv()
    except (EOFError, OSError):  # nothing, or cut short: the child died
        kind, text = "died", ""
    if kind == "progress":
        child.doing = text
        return None
    reader.close()
    child.process.join()
    if kind == "result":
        return text
    failed = probe_failure(child.item.request, f"probe process failed: {death(child.process)}")
    return BatchOutput(id=child.item.id, result=failed).to_json()


def over_budget(child: Child, reader: Connection) -> str:
    """Kill a check that ran past its budget; its line says so and what it was doing."""
    child.process.kill()
    child.process.join()
    reader.close()
    message = (
        f"the check exceeded its budget of {child.item.budget_seconds:g} s and was stopped"
        f" while {child.doing}"
    )
    failed = probe_failure(child.item.request, message, BUDGET_HINT)
    return BatchOutput(id=child.item.id, result=failed).to_json()


def death(process: BaseProcess) -> str:
    exitcode = process.exitcode
    if exitcode is None or exitcode >= 0:
        return f"exited with code {exitcode} without a result"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:  # a real-time signal has no name
        name = f"signal {-exitcode}"
    # The kernel's OOM killer (cgroup v1, or kubelet's singleProcessOOMKill) sends SIGKILL.
    return f"killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")


def load(source: str | None) -> Loaded:
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
    return read(text)


def read(text: str) -> Loaded:
    """Each check on its own: one that the model refuses (a URI without a host, a bad port) is
    an Unknown result naming the field, and the others run. ValidationError: the batch itself
    is malformed, or a check has no id to answer under."""
    raw = RawBatch.model_validate_json(text)
    checks: list[BatchItem] = []
    refused: list[BatchOutput] = []
    for check in raw.checks:
        try:
            checks.append(BatchItem.model_validate(check))
        except ValidationError as exc:
            refused.append(refusal(CheckId.model_validate(check).id, check, exc))
    return Loaded(Batch(checks=checks) if checks else None, refused)


def refusal(check_id: str, check: dict[str, Any], exc: ValidationError) -> BatchOutput:
    """A refused check's result: Unknown, its destination as far as it can be read."""
    request = check.get("request") if isinstance(check.get("request"), dict) else {}
    host = request.get("host") if isinstance(request.get("host"), str) else ""
    port = request.get("port") if isinstance(request.get("port"), int) else None
    protocols = {protocol.value: protocol for protocol in Protocol}
    protocol = protocols.get(str(request.get("protocol", "")), Protocol.TCP)
    errors = "; ".join(
        f"{'.'.join(str(part) for part in err['loc'])}: {err['msg']}"
        for err in exc.errors(include_url=False)
    )
    issue = Issue(
        type=IssueType.PROBE,
        severity=Severity.ERROR,
        origin=Origin.LOCAL,
        message=f"bad request: {errors}"[:1000],
        hint=REQUEST_HINT,
    )
    result = ProbeResult(
        connection_status=ConnectionStatus.UNKNOWN,
        protocol=protocol,
        destination=DestinationInfo(host=host[:253], port=port),
        issues=[issue],
    )
    return BatchOutput(id=check_id, result=result)
