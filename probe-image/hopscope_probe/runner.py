"""Runs one request from inside the source's network namespace, never losing a result.

Shared by `hopscope probe` (one check) and `hopscope batch` (the operator's probe pods): both
need the same namespace entry and the same "could not run" verdict.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from hopscope_probe import netns, podns
from hopscope_probe.models import Issue, IssueType, Origin, ProbeRequest, ProbeResult, Severity
from hopscope_probe.target import BadTarget, unknown_result

log = logging.getLogger("hopscope")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Where:
    """Which network namespace to probe from; all None: the one this process is in."""

    netns_path: str | None = None
    pid: int | None = None
    pod_uid: str | None = None
    resolv_conf: str | None = None  # None: the source's own (/etc or the process's root)
    # The node as source, probed from a pod: its own cgroup is the probe pod's, so only the
    # node-wide figures (PSI, load) describe the source.
    node: bool = False


PRIVILEGES_HINT = (
    "The probe could not run: check its privileges (CAP_NET_RAW, CAP_SYS_ADMIN to enter a"
    " namespace) and that the source still exists."
)
REQUEST_HINT = "Fix the check's destination: the probe cannot tell what to connect to."


def probe_failure(request: ProbeRequest, message: str, hint: str = PRIVILEGES_HINT) -> ProbeResult:
    return unknown_result(
        request,
        Issue(
            type=IssueType.PROBE,
            severity=Severity.ERROR,
            origin=Origin.LOCAL,
            message=message,
            hint=hint,
        ),
    )


def run_in(
    request: ProbeRequest, where: Where, progress: Progress = lambda _msg: None
) -> ProbeResult:
    """Enter the namespace (this thread and the threads it starts), then run the engine."""
    try:
        pid = where.pid
        if where.pod_uid is not None:
            pid = podns.pid_of_pod(where.pod_uid)
        resolv_conf = where.resolv_conf or "/etc/resolv.conf"
        if pid is not None:
            netns.enter(netns.netns_path_of_pid(pid))
            resolv_conf = where.resolv_conf or netns.resolv_conf_of_pid(pid)
        elif where.netns_path is not None:
            netns.enter(where.netns_path)
        from hopscope_probe import engine  # imported late: dnspython is slow to load

        return engine.run(
            request,
            resolv_conf=resolv_conf,
            pid=pid,
            own_cgroup=not where.node,
            progress=progress,
        )
    except netns.NamespaceError as exc:
        return probe_failure(request, str(exc))
    except BadTarget as exc:
        return probe_failure(request, f"bad request: {exc}", REQUEST_HINT)
    except Exception as exc:  # a result is never lost: an internal error is an Unknown verdict
        log.warning("probe failed", exc_info=True)
        return probe_failure(request, f"internal error: {type(exc).__name__}: {exc}")
