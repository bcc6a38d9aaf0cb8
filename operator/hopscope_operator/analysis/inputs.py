"""What every analysis rule reads and returns: one frozen `AnalysisInput` in, `Findings` out.

Contract: a rule is a pure function `AnalysisInput -> Findings`. The input (the check, its
resolved source and destination, the `Snapshot` of plain Kubernetes JSON, the probe's
destination hop) never changes; a rule shares no state with another and reports what it
decides in the findings it returns: its issues, whether it leaves part of the verdict unknown,
whether a Service finding already explains missing endpoints. `analysis.analyse` composes them.
Also here: the Snapshot and its parsed policy rules, the names of the parts a snapshot may
fail to read, and small readers of plain JSON the subjects share.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any, Literal

from hopscope_operator.api import ConnectivityCheck, ConnectivityCheckSpec
from hopscope_operator.resolved import (
    L4,
    ObjectKey,
    ResolvedDestination,
    ResolvedSource,
    is_ready,
)
from hopscope_policy import (
    FieldError,
    Pod,
    PolicyRules,
    families,
    parse_namespace,
    parse_pod,
    parse_policy,
)
from hopscope_policy.tiers import RuleName
from hopscope_probe.models import (
    SOURCE_HOP,
    ContextItem,
    Issue,
    IssueType,
    Origin,
    Severity,
    context_of,
)
from hopscope_probe.target import DEFAULT_PORTS

Manifest = dict[str, Any]
Side = Literal["source", "destination"]

# What could not be read -> the part of the analysis it leaves unknown.
POLICIES, NAMESPACES, PODS = "networkpolicies", "namespaces", "pods"
SERVICE, ENDPOINT_SLICES, NODES, DNS = "service", "endpointslices", "nodes", "dns"
POLICY_KINDS = "policy kinds"  # the discovery of the other families' kinds
# The groups of the other families' kinds: an unreadable kind is named `plural.group`.
POLICY_GROUPS = frozenset(group for f in families.FAMILIES for group, _ in f.kinds)


def is_policy_kind(part: str) -> bool:
    """Whether an unreadable part is a policy kind of another family (or their discovery)."""
    return part == POLICY_KINDS or part.partition(".")[2] in POLICY_GROUPS


@dataclass(frozen=True)
class Snapshot:
    """The objects one check's analysis reads, as plain Kubernetes JSON.

    `pods` holds every pod the analysis may name: the source, the destination pod, the pods the
    destination Service selects or its EndpointSlices name, the cluster DNS pods and any pod at
    the destination's address. `unreadable` maps a part (POLICIES, PODS, SERVICE, …) to why it
    could not be read; the parts that depend on it are then left out and the result is Unknown.
    """

    pods: Sequence[Manifest] = ()
    namespaces: Sequence[Manifest] = ()
    policies: Sequence[Manifest] = ()
    # The other families' objects the cluster serves (ClusterNetworkPolicy, CiliumNetworkPolicy…)
    other_policies: Sequence[Manifest] = ()
    service: Manifest | None = None  # the destination Service, if the destination is one
    service_slices: Sequence[Manifest] = ()
    nodes: Mapping[str, Manifest] = field(default_factory=dict)
    dns_service: Manifest | None = None  # kube-system/kube-dns; None: it does not exist
    dns_slices: Sequence[Manifest] = ()
    unreadable: Mapping[str, str] = field(default_factory=dict)
    rules: ParsedRules = field(default_factory=lambda: ParsedRules(), compare=False, repr=False)


class ParsedRules:
    """The `PolicyRules` of a snapshot's namespaces and policies, parsed on first use and then
    remembered. A SnapshotReader gives every snapshot of one tick the same instance: a tick
    of 1,000 checks over 1,000 NetworkPolicies parses them once, not once per check (~60 ms
    each, which made a collecting tick take 100 s of CPU)."""

    def __init__(self) -> None:
        self._parsed: PolicyRules | FieldError | ValueError | None = None
        self._tiers: dict[tuple[str, str], str] = {}  # (kind, name) -> its tier, where it has one

    def of(self, snapshot: Snapshot) -> PolicyRules | FieldError | ValueError:
        """The rules, or the error that names the object that could not be read."""
        if self._parsed is None:
            try:
                others = [parse_other(obj) for obj in snapshot.other_policies]
                self._parsed = families.rules(
                    [parse_namespace(ns) for ns in snapshot.namespaces],
                    [parse_policy(policy) for policy in snapshot.policies],
                    others,
                )
                # Named as RuleName names it: namespace/name (`key`) where the kind has one.
                self._tiers = {
                    (
                        str(getattr(obj, "kind", "")),
                        str(getattr(obj, "key", getattr(obj, "name", ""))),
                    ): str(tier)
                    for obj in others
                    if (tier := getattr(obj, "tier", None)) is not None
                }
            except (FieldError, ValueError) as exc:
                self._parsed = exc
        return self._parsed

    def tier_of(self, rule: RuleName) -> str | None:
        """The tier of the object that holds `rule` (Admin, Baseline), None for a kind without
        tiers: a deny is named with it, as the order of evaluation depends on it."""
        return self._tiers.get((rule.kind, rule.name))


def parse_other(obj: Manifest) -> object:
    """Another family's object, parsed by its family; the error names the kind and object."""
    kind, meta = str(obj.get("kind")), obj.get("metadata") or {}
    name = "/".join(part for part in (meta.get("namespace"), meta.get("name")) if part)
    parser = families.parser(str(obj.get("apiVersion", "")), kind)
    if parser is None:
        raise ValueError(f"{kind} {name}: apiVersion {obj.get('apiVersion')} is read by no family")
    try:
        return parser(obj)
    except FieldError as exc:
        raise ValueError(f"{kind} {name}: {exc}") from None


@dataclass(frozen=True)
class Findings:
    """What a rule found: its issues, in order, and what they decide for the verdict."""

    issues: tuple[Issue, ...] = ()
    unknown: bool = False  # a part of the verdict could not be decided
    service_failed: bool = False  # a Service finding already explains missing endpoints

    def __add__(self, other: Findings) -> Findings:
        return Findings(
            self.issues + other.issues,
            self.unknown or other.unknown,
            self.service_failed or other.service_failed,
        )


NOTHING = Findings()


@dataclass(frozen=True)
class AnalysisInput:
    """One check's analysis input; the derived views below are computed once, on first use."""

    check: ConnectivityCheck
    source: ResolvedSource
    destination: ResolvedDestination
    snapshot: Snapshot
    destination_hop: str | None = None

    @property
    def spec(self) -> ConnectivityCheckSpec:
        return self.check.spec

    @cached_property
    def namespace(self) -> str:
        return str(self.check.metadata.get("namespace", "default"))

    @cached_property
    def pods(self) -> Mapping[tuple[str, str], Manifest]:
        """The snapshot's pods by (namespace, name): no pod is given twice."""
        return {key(p): p for p in self.snapshot.pods}

    @cached_property
    def l4(self) -> str | None:
        return L4.get(self.spec.protocol)

    @cached_property
    def port(self) -> int | None:
        return self.destination.port or DEFAULT_PORTS.get(self.spec.protocol)

    @cached_property
    def spelling(self) -> str:
        """How the check names its destination: pod, service, node, fqdn, uri or ip."""
        dest = self.spec.destination
        for kind in ("pod", "service", "node", "fqdn", "uri", "ip"):
            if getattr(dest, kind) is not None:
                return kind
        return "ip"

    @cached_property
    def service_key(self) -> ObjectKey | None:
        """The Service the destination names however spelled (a ClusterIP, a DNS name, a URI:
        see controller/identify.py), else the one the spec names."""
        ref = self.spec.destination.service
        spec = (ref.namespace or self.namespace, ref.name) if ref else None
        return self.destination.service or spec

    @cached_property
    def pod_key(self) -> ObjectKey | None:
        """The pod the destination names however spelled (its IP, its DNS names), else the
        one the spec names."""
        ref = self.spec.destination.pod
        spec = (ref.namespace or self.namespace, ref.name) if ref else None
        return self.destination.pod or spec

    @cached_property
    def target_kind(self) -> str:
        """What the destination is: "service" or "pod" when it names one, else its spelling."""
        if self.service_key is not None:
            return "service"
        if self.pod_key is not None:
            return "pod"
        return self.spelling

    def unreadable(self, *parts: str) -> bool:
        """Whether any of these parts could not be read."""
        return any(part in self.snapshot.unreadable for part in parts)

    def destination_pod(self) -> Manifest | None:
        """The destination pod's manifest, for a pod destination the snapshot holds."""
        return None if self.pod_key is None else self.pods.get(self.pod_key)

    def issue(
        self,
        type: IssueType,
        severity: Severity,
        side: Side,
        message: str,
        hint: str,
        context: list[ContextItem] | None = None,
        origin: Origin | None = None,
    ) -> Findings:
        """One finding, located at the source hop or the destination hop (when known)."""
        if origin is None:
            origin = Origin.LOCAL if side == "source" else Origin.INBOUND
        return Findings(
            issues=(
                Issue(
                    type=type,
                    severity=severity,
                    origin=origin,
                    hop_id=SOURCE_HOP if side == "source" else self.destination_hop,
                    message=message,
                    hint=hint,
                    context=context or [],
                ),
            )
        )


# The analysis' evidence: the probe's context builder, leaving out empty values too.
evidence = partial(context_of, skip_empty=True)


# ---- readers of plain JSON ------------------------------------------------------------------


def meta(obj: Manifest) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def key(obj: Manifest) -> tuple[str, str]:
    data = meta(obj)
    return str(data.get("namespace", "default")), str(data.get("name", ""))


def ref(obj: Manifest) -> str:
    return "/".join(key(obj))


def condition(obj: Manifest, kind: str) -> Mapping[str, Any] | None:
    for found in (obj.get("status") or {}).get("conditions") or []:
        if found.get("type") == kind:
            return found
    return None


def _selects(selector: Mapping[str, str], pod: Manifest) -> bool:
    labels = meta(pod).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def selected_pods(service: Manifest, pods: Iterable[Manifest]) -> list[Manifest]:
    """The pods a Service's (map) selector picks in its namespace; [] without a selector."""
    selector = (service.get("spec") or {}).get("selector") or {}
    namespace = key(service)[0]
    if not selector:
        return []
    return sorted((p for p in pods if key(p)[0] == namespace and _selects(selector, p)), key=key)


def ready_endpoints(slices: Iterable[Manifest]) -> list[tuple[str, tuple[str, str] | None]]:
    """(address, pod key or None) of every ready endpoint; ready unset counts as ready."""
    found = []
    for endpoint_slice in slices:
        namespace = key(endpoint_slice)[0]
        for endpoint in endpoint_slice.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            target = endpoint.get("targetRef") or {}
            pod = None
            if target.get("kind") == "Pod" and target.get("name"):
                pod = (str(target.get("namespace") or namespace), str(target["name"]))
            found += [(address, pod) for address in endpoint.get("addresses") or []]
    return found


def published(service: Manifest, pod: Manifest) -> bool:
    """Whether the endpoint controller makes the pod a ready endpoint of the Service: when it
    is Ready, or always with publishNotReadyAddresses (StatefulSet peers find each other so)."""
    return bool((service.get("spec") or {}).get("publishNotReadyAddresses")) or is_ready(pod)


def why_not_ready(pod: Manifest) -> str:
    status = pod.get("status") or {}
    if meta(pod).get("deletionTimestamp"):
        return "terminating"
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return str(waiting["reason"])
    if status.get("phase") != "Running":
        return str(status.get("phase") or "Pending")
    ready = condition(pod, "Ready")
    return str((ready or {}).get("reason") or "readiness probe failing")


def parsed(pod: Manifest) -> Pod | None:
    try:
        return parse_pod(pod)
    except FieldError:
        return None
