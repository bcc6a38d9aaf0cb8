"""Rules on the pods at both ends: terminating, OOM-killed, crash-looping, restarting, not Ready.

Contract: `rules(input) -> Findings`, pure: the source pod, then a destination pod, each when
the snapshot holds it. Choices (pod state has no issue type of its own): a destination pod
that is not Ready or crash-loops is `PortNotListening` (nothing answers on the port), a
terminating one `Routing` (its address goes away), an OOM-killed container `Memory`; a
terminating or crash-looping source pod is `Probe`: the probe runs in its network namespace.
Readiness does not gate a pod's own outbound traffic, so a source that is not Ready is no
finding; a restart count is a finding from 3 restarts on (one snapshot cannot see growth).
"""

from __future__ import annotations

from hopscope_operator.analysis.inputs import (
    NOTHING,
    PODS,
    AnalysisInput,
    Findings,
    Manifest,
    Side,
    evidence,
    key,
    meta,
    ref,
    why_not_ready,
)
from hopscope_operator.resolved import is_ready
from hopscope_probe.models import IssueType, Severity

CRASH_LOOP = "CrashLoopBackOff"
OOM_KILLED = "OOMKilled"
RESTARTS_WORTH_NOTING = 3


def rules(inp: AnalysisInput) -> Findings:
    if inp.unreadable(PODS):
        return NOTHING
    found = NOTHING
    src = inp.source
    if src.pod_namespace and src.pod_name:
        pod = inp.pods.get((src.pod_namespace, src.pod_name))
        if pod is not None:
            found += pod_state(inp, pod, "source")
    if inp.target_kind == "pod":
        pod = inp.destination_pod()
        if pod is not None:
            found += pod_state(inp, pod, "destination")
    return found


def pod_state(inp: AnalysisInput, pod: Manifest, side: Side) -> Findings:
    name = ref(pod)
    role = f"{side} pod {name}"
    logs = f"Read the last crash: kubectl logs --previous -n {key(pod)[0]} {key(pod)[1]}."
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    looping = [
        c
        for c in statuses
        if ((c.get("state") or {}).get("waiting") or {}).get("reason") == CRASH_LOOP
    ]
    oom = [
        c
        for c in statuses
        if ((c.get("lastState") or {}).get("terminated") or {}).get("reason") == OOM_KILLED
    ]
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    deleting = meta(pod).get("deletionTimestamp")
    found = NOTHING
    if deleting:
        found += inp.issue(
            IssueType.PROBE if side == "source" else IssueType.ROUTING,
            Severity.WARNING,
            side,
            f"{role} is terminating (deletion requested {deleting}): its address goes away",
            "Expected during a rollout; if it stays, look for a stuck finalizer or a long"
            " terminationGracePeriodSeconds.",
            evidence(pod=name, deletionTimestamp=deleting),
        )
    for container in oom:
        found += inp.issue(
            IssueType.MEMORY,
            Severity.WARNING,
            side,
            f"container {container.get('name')} of {role} was OOM-killed"
            f" ({container.get('restartCount', 0)} restarts)",
            "Raise the container's memory limit or find what uses the memory.",
            evidence(pod=name, container=container.get("name"), reason=OOM_KILLED),
        )
    if looping:
        names = ", ".join(str(c.get("name")) for c in looping)
        found += inp.issue(
            IssueType.PROBE if side == "source" else IssueType.PORT_NOT_LISTENING,
            Severity.WARNING if side == "source" else Severity.ERROR,
            side,
            f"{role} is in {CRASH_LOOP} ({names}, {restarts} restarts): "
            + (
                "its network namespace comes and goes"
                if side == "source"
                else "nothing listens while it restarts"
            ),
            logs,
            evidence(pod=name, containers=names, restarts=restarts),
        )
    elif restarts >= RESTARTS_WORTH_NOTING and not oom:
        last = next(
            (
                (c.get("lastState") or {}).get("terminated") or {}
                for c in statuses
                if (c.get("lastState") or {}).get("terminated")
            ),
            {},
        )
        found += inp.issue(
            IssueType.PROBE if side == "source" else IssueType.PORT_NOT_LISTENING,
            Severity.WARNING,
            side,
            f"{role} has restarted {restarts} times"
            + (f" (last: {last.get('reason')}, exit code {last.get('exitCode')})" if last else ""),
            logs,
            evidence(pod=name, restarts=restarts, lastFinishedAt=last.get("finishedAt")),
        )
    if side == "destination" and not deleting and not looping and not is_ready(pod):
        found += inp.issue(
            IssueType.PORT_NOT_LISTENING,
            Severity.WARNING,
            side,
            f"{role} is not Ready ({why_not_ready(pod)}): the server may not be listening yet",
            f"kubectl describe pod -n {key(pod)[0]} {key(pod)[1]}: see its readiness probe"
            " and container states.",
            evidence(pod=name, phase=(pod.get("status") or {}).get("phase")),
        )
    return found
