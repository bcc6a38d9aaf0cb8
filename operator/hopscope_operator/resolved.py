"""What resolution produces and the analysis reads: a check's resolved source and destination,
the L4 protocol a check's packets use, and whether a pod is Ready.

Beside `api.py` at the top of the package, below both the controller (which resolves, in
`controller/resolve.py`) and the analysis (which reads the result): neither imports the other
for these names. It imports only the models (tests/unit/test_layers.py holds the analysis to
never importing the controller).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from hopscope_probe.models import EndpointTarget, SourceInfo
from hopscope_probe.models import Protocol as WireProtocol

Manifest = dict[str, Any]
ObjectKey = tuple[str, str]  # (namespace, name)
SourceKind = Literal["pod", "node", "workload"]

# The L4 protocol a check's packets use, to match it against a Service port's protocol.
L4 = {
    WireProtocol.TCP: "TCP",
    WireProtocol.HTTP: "TCP",
    WireProtocol.HTTPS: "TCP",
    WireProtocol.UDP: "UDP",
    WireProtocol.DNS: "UDP",
}


@dataclass(frozen=True)
class ResolvedSource:
    kind: SourceKind
    node_name: str
    description: str  # which object the run starts from, e.g. "pod shop/web-0 (of 3 Ready …)"
    pod_namespace: str | None = None
    pod_name: str | None = None
    pod_uid: str | None = None
    address: str | None = None
    host_network: bool = False  # a hostNetwork pod shares its node's network namespace

    @property
    def netns(self) -> str:
        """What the probe enters: "host", or the UID of the pod whose namespace it enters. A
        hostNetwork pod is entered too (the node's namespace, then): its processes' resolv.conf
        and cgroup are what the probe must judge, not the probe pod's."""
        if self.kind == "node" or self.pod_uid is None:
            return "host"
        return self.pod_uid

    def info(self) -> SourceInfo:
        return SourceInfo(pod=self.pod_name, node=self.node_name, address=self.address)


@dataclass(frozen=True)
class ResolvedDestination:
    host: str
    port: int | None
    description: str
    addresses: list[str] = field(default_factory=list)
    uri: str | None = None
    ready_endpoints: int | None = None  # Services only: 0 is a finding, not a resolve error
    # The Service or pod the destination names, however it is spelled (a ClusterIP, a DNS
    # name, a URI, a pod IP): what the analysis judges, so every spelling gets one verdict.
    service: ObjectKey | None = None
    pod: ObjectKey | None = None
    endpoints: list[EndpointTarget] = field(default_factory=list)  # a ClusterIP's, probed too


def is_ready(pod: Manifest) -> bool:
    """Running, Ready and not being deleted: what a Service would send traffic to."""
    status = pod.get("status", {})
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", [])
    )
    return (
        status.get("phase") == "Running" and ready and not pod["metadata"].get("deletionTimestamp")
    )


@dataclass(frozen=True)
class ResolvedRun:
    """What planning resolved for one run: where it starts and where it goes. Collect judges
    the run's result against these, not against what the names resolve to by then."""

    source: ResolvedSource
    destination: ResolvedDestination
