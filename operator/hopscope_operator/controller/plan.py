"""Probe pods: which to create this tick, and the manifest of each.

One pod per (node, tick) runs every due check whose source is on that node (`hopscope batch`),
so the number of pods grows with nodes, not with checks. A pod's name is a hash of its node,
tick and checks: a reconcile retried after a crash computes the same name, gets 409 on create,
and adopts the pod that is already there instead of starting a second one.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import chain, zip_longest
from typing import Any, Literal

from pydantic import Field

from hopscope_operator.api import API_VERSION, CLUSTER_KIND, KIND
from hopscope_operator.controller.resolve import ResolvedSource
from hopscope_operator.controller.runs import (
    MAX_SOURCE_DESCRIPTION,
    RunId,
    batch_variable,
    cgroup_root_variable,
    pod_annotations,
    pod_labels,
    source_entry_bytes,
)
from hopscope_operator.names import (
    DEFAULT_CHECK_BUDGET_SECONDS,
    DEFAULT_MAX_CHECKS_PER_POD,
    DEFAULT_MAX_PROBE_PODS,
    DEFAULT_MAX_PROBE_PODS_PER_NODE,
    NAME_PREFIX,
    SERVICE_ACCOUNT,
)
from hopscope_probe import batch as wire
from hopscope_probe.models import PathMode, ProbeRequest, Protocol, Schema

Manifest = dict[str, Any]
HOST: Literal["host"] = "host"

CONTAINER = "probe"
COMMAND = ["hopscope", "batch"]
HOST_CGROUP = "/host/sys/fs/cgroup"  # the full name, where the label had to be shortened

# Memory from measurement: a full batch (50 checks of every kind, pod and node sources, four at
# once, each in a process forked from the warmed parent) peaks at 73-82 MiB in its memory
# cgroup over runs (bench/probe_memory.py; re-measure with `make bench` after changing what a
# check loads or how many run at once). Request: that peak and 15-30% for what the bench does
# not run (longer path sweeps, larger answers); limit: twice the request. No tight CPU limit:
# CFS throttling would show up as latency.
RESOURCES = {
    "requests": {"cpu": "50m", "memory": "96Mi"},
    "limits": {"cpu": "1", "memory": "192Mi"},
}


class PullPolicy(StrEnum):
    """A container's imagePullPolicy: a mutable tag (latest, a branch) needs Always."""

    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class ProbePodSettings(Schema):
    """What a cluster's operators tune on probe pods (chart values `probes.pod`)."""

    tolerations: list[dict[str, Any]] = Field(
        default_factory=lambda: [{"operator": "Exists"}],
        description="Tainted nodes are worth checking too: all tolerated by default.",
    )
    priority_class_name: str | None = Field(
        default=None, description="A PriorityClass, so probes are not the first evicted."
    )
    resources: dict[str, Any] = Field(
        default_factory=lambda: json.loads(json.dumps(RESOURCES)),
        description="Requests and limits of the probe container. The memory is sized from a"
        " full batch's measured peak (73-82 MiB for 50 checks: bench/probe_memory.py, re-measured"
        " by `make bench`): request it plus 15-30%, limit twice that.",
    )


# activeDeadlineSeconds counts from the pod's start, image pull and interpreter start included.
STARTUP_SECONDS = 60
# Per check, the worst case if every phase ran one after another and every packet timed out:
# DNS forward + reverse lookups, `count` connection probes, one round per TTL of the path sweep.
DNS_ROUNDS = 2
# Per check, on top of its budget: forking its process, and killing it once over.
CHILD_SECONDS = 2

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@dataclass(frozen=True)
class BatchItem:
    """One due check for one probe pod."""

    check: str  # "<namespace>/<name>"; "/<name>" for a ClusterConnectivityCheck
    generation: int
    netns: str  # "host", or the UID of the pod whose network namespace the probe enters
    request: ProbeRequest
    uid: str | None = None  # the check's metadata.uid, for the owner reference

    @property
    def run(self) -> RunId:
        return RunId(self.check, self.generation)

    @property
    def id(self) -> str:
        """The batch id the probe echoes on its result line."""
        return self.run.format()

    @property
    def namespace(self) -> str:
        return self.check.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.check.split("/", 1)[1]


@dataclass(frozen=True)
class Batch:
    node: str
    items: tuple[BatchItem, ...]


# Linux refuses to start a process with one environment string over 128 KiB (E2BIG): the
# container would never run, and the same batch would fail again every tick.
MAX_BATCH_BYTES = 96 * 1024
# Kubernetes refuses a pod whose annotations total over 256 KiB (422): every check on the node
# would stay ProbePodRefused. Half of it, so admission webhooks' own annotations fit too.
MAX_ANNOTATION_BYTES = 128 * 1024
# The widest sources-annotation entry Kubernetes' name limits and MAX_SOURCE_DESCRIPTION allow:
# the description all control characters, the widest in UTF-8 JSON (\u00XX, 6 bytes each).
_WIDEST_SOURCE = ResolvedSource(
    kind="workload",
    node_name="n" * 253,
    description="\x00" * MAX_SOURCE_DESCRIPTION,
    pod_namespace="n" * 63,
    pod_name="n" * 253,
    pod_uid="u" * 36,
    address="f" * 45,
    host_network=True,
)


@dataclass(frozen=True)
class Caps:
    max_pods: int = DEFAULT_MAX_PROBE_PODS
    max_pods_per_node: int = DEFAULT_MAX_PROBE_PODS_PER_NODE
    max_checks_per_pod: int = DEFAULT_MAX_CHECKS_PER_POD
    check_budget_seconds: int = DEFAULT_CHECK_BUDGET_SECONDS  # one check's run, at most


@dataclass(frozen=True)
class Planned:
    create: list[Batch]  # make these pods now
    deferred: list[BatchItem]  # over a cap: due again next tick


# ---- grouping -------------------------------------------------------------------------------


def group_by_node(
    due: Iterable[tuple[str, BatchItem]],
    caps: Caps = Caps(),
    in_flight: Mapping[str, int] | None = None,
    riders: frozenset[str] = frozenset(),
) -> Planned:
    """Batches per node from (node, item) pairs, within the caps.

    `in_flight` counts probe pods still running per node; they use up both caps. Nodes are
    served in the order their first item arrives: given the most overdue checks first (as
    `schedule.due` orders them), a deferred check is served first next tick and never starves.
    A node's batches take its namespaces in turn (`fair_order`), so one namespace's hundreds
    of checks do not push another's two out for ticks; `riders` (ids of checks not due yet,
    riding along) come after every check that is due.
    """
    in_flight = in_flight or {}
    by_node: dict[str, list[BatchItem]] = {}
    for node, item in due:
        by_node.setdefault(node, []).append(item)
    free_total = caps.max_pods - sum(in_flight.values())
    create: list[Batch] = []
    deferred: list[BatchItem] = []
    for node, items in by_node.items():
        on_time = [item for item in items if item.id not in riders]
        early = [item for item in items if item.id in riders]
        ordered = fair_order(on_time) + fair_order(early)
        chunks = _chunks(ordered, caps.max_checks_per_pod)
        allowed = max(0, min(caps.max_pods_per_node - in_flight.get(node, 0), free_total))
        create += [Batch(node, chunk) for chunk in chunks[:allowed]]
        deferred += [item for chunk in chunks[allowed:] for item in chunk]
        free_total -= min(allowed, len(chunks))
    return Planned(create, deferred)


def fair_order(items: Sequence[BatchItem]) -> list[BatchItem]:
    """Round-robin across namespaces (in the order each first appears), each namespace's own
    checks in their given order (most overdue first)."""
    by_namespace: dict[str, list[BatchItem]] = {}
    for item in items:
        by_namespace.setdefault(item.namespace, []).append(item)
    rounds = zip_longest(*by_namespace.values())
    return [item for item in chain.from_iterable(rounds) if item is not None]


def annotation_bytes(item: BatchItem) -> int:
    """The most one item adds to its pod's annotations (the checks and sources entries),
    whatever its source resolves to."""
    return len(json.dumps({item.id: item.uid}).encode()) + source_entry_bytes(
        item.id, _WIDEST_SOURCE
    )


def _chunks(items: list[BatchItem], max_count: int) -> list[tuple[BatchItem, ...]]:
    """The items in order, cut into pods' batches of at most `max_count` checks,
    MAX_BATCH_BYTES of HOPSCOPE_BATCH (a URI or header near the CRD's bounds is kilobytes) and
    MAX_ANNOTATION_BYTES of annotations (the operator's max checks per pod is configurable)."""
    chunks: list[tuple[BatchItem, ...]] = []
    current: list[BatchItem] = []
    env = annotations = 0
    for item in items:
        item_env, item_annotations = len(batch_env([item]).encode()), annotation_bytes(item)
        full = len(current) == max_count or env + item_env > MAX_BATCH_BYTES
        if current and (full or annotations + item_annotations > MAX_ANNOTATION_BYTES):
            chunks.append(tuple(current))
            current, env, annotations = [], 0, 0
        current.append(item)
        env += item_env
        annotations += item_annotations
    if current:
        chunks.append(tuple(current))
    return chunks


# ---- the pod --------------------------------------------------------------------------------


def item_seconds(request: ProbeRequest) -> int:
    rounds = DNS_ROUNDS + request.count
    if request.path_mode != PathMode.NEVER:
        rounds += request.max_hops
    if request.mtu or request.protocol in (Protocol.HTTP, Protocol.HTTPS):
        rounds += 1  # the MTU probe: asked for, or run when a response stalls
    return math.ceil(request.timeout_seconds * rounds)


def budget_seconds(request: ProbeRequest, cap: int = DEFAULT_CHECK_BUDGET_SECONDS) -> int:
    """How long the probe lets a check run: its worst case, clamped to the per-check cap."""
    return min(item_seconds(request), cap)


def deadline_seconds(items: Iterable[BatchItem], cap: int = DEFAULT_CHECK_BUDGET_SECONDS) -> int:
    """STARTUP_SECONDS + the longest the batch can take when each check is killed at its
    budget (+ CHILD_SECONDS) and `hopscope batch` runs wire.PARALLEL at a time.

    In the order given, a check starts as soon as one of the slots is free, so the last one
    starts by sum/slots and runs at most the longest budget: sum/slots + (1 - 1/slots) * max
    (Graham's bound) holds whatever each check really takes up to its budget. So a slow but
    healthy batch is never killed, and a stuck one still ends within minutes.
    """
    spans = [budget_seconds(item.request, cap) + CHILD_SECONDS for item in items]
    slots = wire.PARALLEL
    longest = sum(spans) / slots + (1 - 1 / slots) * max(spans, default=0)
    return STARTUP_SECONDS + math.ceil(longest)


def pod_name(node_name: str, tick: int, items: Iterable[BatchItem]) -> str:
    ids = sorted(item.id for item in items)
    digest = hashlib.sha256("\n".join([node_name, str(tick), *ids]).encode()).hexdigest()
    return f"{NAME_PREFIX}-{digest[:16]}"


def label_value(text: str) -> str:
    """`text` if it is a valid label value, else a stable stand-in (node names reach 253)."""
    if len(text) <= 63 and _LABEL_VALUE.match(text):
        return text
    return f"{text[:46].rstrip('-_.')}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def batch_env(items: Iterable[BatchItem], cap: int = DEFAULT_CHECK_BUDGET_SECONDS) -> str:
    """HOPSCOPE_BATCH, built with the probe's own models so both sides share one contract."""
    return _wire_batch(items, cap).to_json()


def _wire_batch(items: Iterable[BatchItem], cap: int) -> wire.Batch:
    checks = [
        wire.BatchItem(
            id=item.id,
            netns=HOST if item.netns == HOST else wire.PodNetns(pod_uid=item.netns),
            request=item.request,
            budget_seconds=budget_seconds(item.request, cap),
        )
        for item in items
    ]
    return wire.Batch(checks=checks)


def _security(needs_pod_netns: bool) -> tuple[Manifest, Manifest]:
    """(pod-level, container-level) security contexts.

    Root, but with every capability dropped except those named: `allowPrivilegeEscalation:
    false` sets no_new_privs, which disables file capabilities, so a non-root user could not
    use even the NET_RAW that raw sockets need. Entering another pod's namespace adds
    SYS_ADMIN (setns) and SYS_PTRACE (open /proc/<pid>/ns/net of processes of other users).
    """
    capabilities = ["NET_RAW"]
    if needs_pod_netns:
        capabilities += ["SYS_ADMIN", "SYS_PTRACE"]
    pod = {"seccompProfile": {"type": "RuntimeDefault"}}
    container = {
        "runAsUser": 0,
        "runAsNonRoot": False,
        "privileged": False,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"], "add": capabilities},
    }
    return pod, container


def _owner_references(items: list[BatchItem], namespace: str) -> list[Manifest]:
    """The check owns a single-check pod, so deleting it deletes the pod.

    Only within one namespace, or from a ClusterConnectivityCheck (a cluster-scoped owner
    may own namespaced pods): Kubernetes treats a cross-namespace owner as absent and would
    garbage-collect the pod at once. Pods in the operator's namespace carry the annotation.
    """
    if len(items) != 1 or items[0].uid is None or items[0].namespace not in ("", namespace):
        return []
    return [
        {
            "apiVersion": API_VERSION,
            "kind": KIND if items[0].namespace else CLUSTER_KIND,
            "name": items[0].name,
            "uid": items[0].uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def probe_pod(
    node_name: str,
    items: list[BatchItem],
    *,
    image: str,
    namespace: str,
    tick: int,
    settings: ProbePodSettings | None = None,
    pull_policy: PullPolicy = PullPolicy.IF_NOT_PRESENT,
    sources: Mapping[str, ResolvedSource] | None = None,
    budget: int = DEFAULT_CHECK_BUDGET_SECONDS,
) -> Manifest:
    """The probe pod for a batch of checks on one node (`tick`: the tick's Unix time;
    `sources`: run id -> the source it was resolved to, kept on the pod for collect;
    `budget`: the most any one check may run)."""
    if not items:
        raise ValueError("a probe pod needs at least one check")
    settings = settings or ProbePodSettings()
    needs_pod_netns = any(item.netns != HOST for item in items)
    needs_host_netns = any(item.netns == HOST for item in items)
    pod_security, container_security = _security(needs_pod_netns)
    metadata: Manifest = {
        "name": pod_name(node_name, tick, items),
        "namespace": namespace,
        "labels": pod_labels(label_value(node_name), tick),
        "annotations": pod_annotations({item.id: item.uid for item in items}, node_name, sources),
    }
    owners = _owner_references(items, namespace)
    if owners:
        metadata["ownerReferences"] = owners
    spec: Manifest = {
        "nodeName": node_name,  # the source's node, whatever the scheduler would think
        "restartPolicy": "Never",  # a rerun is the next tick's job, with fresh inputs
        "activeDeadlineSeconds": deadline_seconds(items, budget),
        "terminationGracePeriodSeconds": 5,
        "serviceAccountName": SERVICE_ACCOUNT,
        "automountServiceAccountToken": False,  # the probe never calls the API
        "enableServiceLinks": False,
        "tolerations": settings.tolerations,
        "securityContext": pod_security,
        "containers": [
            {
                "name": CONTAINER,
                "image": image,
                "imagePullPolicy": str(pull_policy),
                "command": COMMAND,
                "env": [batch_variable(_wire_batch(items, budget))],
                "resources": settings.resources,
                "securityContext": container_security,
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }
        ],
        # The root filesystem is read-only; Python and the resolver may still want scratch.
        "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}],
    }
    if settings.priority_class_name:
        spec["priorityClassName"] = settings.priority_class_name
    if needs_host_netns:
        # Node sources probe from the node's own network namespace; cluster DNS still works.
        spec["hostNetwork"] = True
        spec["dnsPolicy"] = "ClusterFirstWithHostNet"
    if needs_pod_netns:
        spec["hostPID"] = True  # pod UID → PID through /proc/*/cgroup, then setns
        # The source pod's CPU and memory limits and pressure: the probe's own /sys/fs/cgroup
        # shows only the probe pod, so the host's hierarchy is mounted, read-only.
        container = spec["containers"][0]
        container["volumeMounts"].append(
            {"name": "host-cgroup", "mountPath": HOST_CGROUP, "readOnly": True}
        )
        container["env"].append(cgroup_root_variable(HOST_CGROUP))
        spec["volumes"].append(
            {"name": "host-cgroup", "hostPath": {"path": "/sys/fs/cgroup", "type": "Directory"}}
        )
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
