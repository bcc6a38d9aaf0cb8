"""What the controller manager would have made from a scenario's objects before it was
recorded: the EndpointSlice controller's slices for each Service with a selector (ready pods'
addresses; `endpoints: null, ports: null` when no pod matches)."""

from __future__ import annotations

from hopscope_operator.cluster import ENDPOINT_SLICES, PODS, SERVICES, Object

from .fakeapi import FakeApi

MANAGED_BY = "endpointslice-controller.k8s.io"


def make_endpoint_slices(fake: FakeApi, namespace: str) -> None:
    pods = fake.select(PODS, namespace, lambda _: True)
    for service in fake.select(SERVICES, namespace, lambda s: bool(s["spec"].get("selector"))):
        fake.create(ENDPOINT_SLICES, namespace, _slice(service, pods))


def _slice(service: Object, pods: list[Object]) -> Object:
    meta, spec = service["metadata"], service["spec"]
    chosen = [
        p
        for p in pods
        if spec["selector"].items() <= (p["metadata"].get("labels") or {}).items()
        and p.get("status", {}).get("podIP")
    ]
    endpoints = [_endpoint(p) for p in chosen] or None
    ports = [_port(port, chosen[0]) for port in spec.get("ports", [])] if chosen else None
    owner = {
        "apiVersion": "v1",
        "kind": "Service",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "generateName": f"{meta['name']}-",
            "labels": {
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
                "kubernetes.io/service-name": meta["name"],
            },
            "ownerReferences": [owner],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    }


def _endpoint(pod: Object) -> Object:
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )
    meta = pod["metadata"]
    return {
        "addresses": [pod["status"]["podIP"]],
        "conditions": {"ready": ready, "serving": ready, "terminating": False},
        "targetRef": {
            "kind": "Pod",
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
        },
        "nodeName": pod["spec"].get("nodeName"),
    }


def _port(port: Object, pod: Object) -> Object:
    target = port.get("targetPort", port["port"])
    if isinstance(target, str):  # a named container port
        named = [p for c in pod["spec"]["containers"] for p in c.get("ports", [])]
        target = next((p["containerPort"] for p in named if p.get("name") == target), target)
    return {"name": port.get("name", ""), "protocol": port.get("protocol", "TCP"), "port": target}
