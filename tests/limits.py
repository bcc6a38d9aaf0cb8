"""Memory and time limits for tests of hostile input: a regression must fail, not take the
machine (a 1.4 KB YAML file took 900 MB; /dev/zero as a resolv.conf 5.4 GB; a FIFO forever)."""

from __future__ import annotations

import resource
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MIB = 1024 * 1024
TRACEBACK = "Traceback (most recent call last)"


def run_cli(
    argv: list[str], *, memory: int = 1024 * MIB, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """`hopscope ARGV` in a child with at most `memory` bytes of address space; past `timeout`
    seconds the child is killed and subprocess.TimeoutExpired fails the test."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run(
        [sys.executable, "-m", "hopscope_probe", *argv],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@contextmanager
def memory_cap(extra: int) -> Iterator[None]:
    """This process may grow by at most `extra` bytes (a MemoryError past that) inside the
    block: for in-process property tests, where a child per example would be too slow."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    pages = int(Path("/proc/self/statm").read_text().split()[0])
    cap = pages * resource.getpagesize() + extra
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
