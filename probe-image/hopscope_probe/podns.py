"""Finding a pod's network namespace on its node from the pod's UID.

The kubelet puts every container of a pod in a cgroup named after the pod UID, with dashes
(cgroupfs driver: `.../pod<uid>/<container>`) or underscores (systemd driver:
`...-pod<uid_with_underscores>.slice`). All containers of a pod share one network namespace, so
any of its processes will do; the lowest PID (usually the pause container) is the stable choice.
"""

from __future__ import annotations

import re
from pathlib import Path

from hopscope_probe.netns import NamespaceError

# An API pod's UID, or a static pod's (the kubelet's hash of its file: 32 hex digits).
UID = re.compile(r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})$")


def pid_of_pod(pod_uid: str, proc: Path = Path("/proc")) -> int:
    """The lowest PID whose cgroup belongs to the pod; NamespaceError when none does."""
    uid = pod_uid.lower()
    if not UID.match(uid):
        raise NamespaceError(f"pod UID {pod_uid!r} is not a Kubernetes UID")
    markers = (f"pod{uid}", f"pod{uid.replace('-', '_')}")
    pids = sorted(int(p.name) for p in proc.iterdir() if p.name.isdigit())
    for pid in pids:
        try:
            cgroups = (proc / str(pid) / "cgroup").read_text()
        except OSError:
            continue  # the process exited while we looked, or is not ours to read
        if any(marker in cgroups for marker in markers):
            return pid
    raise NamespaceError(
        f"no process of pod {pod_uid} on this node: is the pod running here, and does the probe "
        "pod share the host's PID namespace (hostPID)?"
    )
