"""What the analysis caches keep of each object: one declared function per kind.

Like client-go's SetTransform: an informer stores each object cut to the fields the analysis
(`analysis/`, `hopscope_policy`'s model and evaluators, `identify`) reads, so a cluster's
pods cost their labels, addresses and states, not their containers' commands, env,
volumes and managedFields. A field a reader starts to use must be kept here: the test
(tests/operator/test_trim.py) runs the analysis on trimmed and untrimmed objects and wants
the same verdicts.

Pods are also what resolution reads (`resolve`: a pod source or destination, a selector's Ready
pods; `sidecar`: which pod runs the agent), so their trim keeps that too.

Every kind keeps metadata's name, namespace, uid, resourceVersion (the informer orders events
by it), labels and deletionTimestamp; of annotations only a static pod's mirror one (its
kubelet UID, which resolution reads).
"""

from __future__ import annotations

import sys
from typing import Any

from hopscope_operator.cluster import Object
from hopscope_operator.controller.resolve import MIRROR_ANNOTATION

META = ("name", "namespace", "uid", "resourceVersion", "labels", "deletionTimestamp")
POD_SPEC = ("nodeName", "hostNetwork", "dnsPolicy", "hostname", "subdomain")
CONTAINER = ("name", "ports")  # named ports; the agent sidecar's name and port
INIT_CONTAINER = ("name", "restartPolicy", "ports")  # a native sidecar is one (Always)
POD_STATUS = ("phase", "podIP", "podIPs", "hostIP", "hostIPs")
CONTAINER_STATUS = ("name", "ready", "restartCount", "state", "lastState")
CONDITION = ("type", "status", "reason", "message")  # not its probe and transition times
NODE_STATUS = ("addresses", "conditions")


INTERNED = 64  # strings up to this long are shared: keys, label values, "True", "Running"


def interned(obj: Any) -> Any:
    """`obj` with its keys and short strings interned: the same label or condition in
    thousands of pods is then one string (a quarter of a trimmed pod's memory)."""
    if isinstance(obj, dict):
        return {sys.intern(key): interned(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [interned(value) for value in obj]
    if isinstance(obj, str) and len(obj) <= INTERNED:
        return sys.intern(obj)
    return obj


def _picked(obj: Any, keys: tuple[str, ...]) -> Object:
    """`obj`'s `keys` that it has (nothing when it is not a mapping)."""
    if not isinstance(obj, dict):
        return {}
    return {key: obj[key] for key in keys if key in obj}


def _head(obj: Object) -> Object:
    head = {key: obj[key] for key in ("apiVersion", "kind") if key in obj}
    return {**head, "metadata": _picked(obj.get("metadata"), META)}


def _with(obj: Object, *parts: str) -> Object:
    """Metadata trimmed, these top-level parts whole."""
    return {**_head(obj), **_picked(obj, parts)}


def pod(obj: Object) -> Object:
    """Labels, node, network mode, DNS policy, hostname; containers' names and ports (named
    target ports, policies' named ports, the agent's); addresses, phase, Ready, container
    states; a static pod's mirror annotation."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    containers = [_picked(c, CONTAINER) for c in spec.get("containers") or []]
    statuses = [_picked(c, CONTAINER_STATUS) for c in status.get("containerStatuses") or []]
    trimmed_spec = {**_picked(spec, POD_SPEC), "containers": containers}
    if spec.get("initContainers"):
        trimmed_spec["initContainers"] = [
            _picked(c, INIT_CONTAINER) for c in spec["initContainers"]
        ]
    trimmed_status = _picked(status, POD_STATUS)
    ready = [_picked(c, CONDITION) for c in status.get("conditions") or [] if _is_ready(c)]
    if ready:  # the one condition read (Ready: is_ready, why_not_ready)
        trimmed_status["conditions"] = ready
    if statuses:
        trimmed_status["containerStatuses"] = statuses
    head = _head(obj)
    mirror = _picked(obj["metadata"].get("annotations"), (MIRROR_ANNOTATION,))
    if mirror:
        head["metadata"]["annotations"] = mirror
    return {**head, "spec": trimmed_spec, "status": trimmed_status}


def _is_ready(condition: Any) -> bool:
    return isinstance(condition, dict) and condition.get("type") == "Ready"


def service(obj: Object) -> Object:
    return _with(obj, "spec")


def endpoint_slice(obj: Object) -> Object:
    return _with(obj, "addressType", "endpoints", "ports")


def policy(obj: Object) -> Object:
    """A policy's spec whole (the evaluators read all of it; so does the policy-kind parser,
    which also wants apiVersion and kind)."""
    return _with(obj, "spec", "specs")


def namespace(obj: Object) -> Object:
    return _head(obj)


def node(obj: Object) -> Object:
    """Addresses and conditions: not its images, capacity, nodeInfo or volumes."""
    return {**_with(obj, "spec"), "status": _picked(obj.get("status"), NODE_STATUS)}
