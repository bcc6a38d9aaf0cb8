"""The defaults the API server gives built-in kinds on create (its defaulting functions and the
default admission plugins), for the fields hopscope or the recordings look at: a Pod's
scheduling fields, default tolerations and Pending status; a Service's type, protocols and
target ports; a NetworkPolicy's empty podSelector and policyTypes."""

from __future__ import annotations

import copy

from hopscope_operator.cluster import NETWORK_POLICIES, PODS, SERVICES, Object, Resource

POD_SPEC: Object = {
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 30,
    "dnsPolicy": "ClusterFirst",
    "serviceAccountName": "default",
    "securityContext": {},
    "schedulerName": "default-scheduler",
    "priority": 0,
    "enableServiceLinks": True,
    "preemptionPolicy": "PreemptLowerPriority",
}
CONTAINER: Object = {
    "resources": {},
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
}
# DefaultTolerationSeconds admission: pods ride out a node's short outage for 5 minutes.
TOLERATIONS = [
    {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
]


def defaulted(resource: Resource, obj: Object) -> Object:
    obj = copy.deepcopy(obj)
    if resource == PODS:
        _pod(obj)
    elif resource == SERVICES:
        _service(obj.setdefault("spec", {}))
    elif resource == NETWORK_POLICIES:
        _network_policy(obj.setdefault("spec", {}))
    return obj


def _pod(pod: Object) -> None:
    spec = pod.setdefault("spec", {})
    for key, value in POD_SPEC.items():
        spec.setdefault(key, copy.deepcopy(value))
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    tolerations = spec.setdefault("tolerations", [])
    for default in TOLERATIONS:
        if not any(t.get("key") == default["key"] for t in tolerations):
            tolerations.append(copy.deepcopy(default))
    containers = spec.get("containers", []) + spec.get("initContainers", [])
    for container in containers:
        for key, value in CONTAINER.items():
            container.setdefault(key, copy.deepcopy(value))
        image = container.get("image", "")
        latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    status = pod.setdefault("status", {})
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", _qos(containers))


def _qos(containers: list[Object]) -> str:
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        r.get("limits")
        and set(r["limits"]) >= {"cpu", "memory"}
        and all(r.get("requests", r["limits"]).get(k) == v for k, v in r["limits"].items())
        for r in resources
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _service(spec: Object) -> None:
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports", []):
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))


def _network_policy(spec: Object) -> None:
    spec.setdefault("podSelector", {})
    if "policyTypes" not in spec:
        spec["policyTypes"] = ["Ingress"] + (["Egress"] if spec.get("egress") else [])
    for rule in spec.get("ingress", []) + spec.get("egress", []):
        for port in rule.get("ports", []):
            port.setdefault("protocol", "TCP")
