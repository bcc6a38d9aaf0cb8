"""API discovery (/api, /apis, /api/v1, /apis/<group>[/<version>]): what kopf reads at start.

The resources are the fake's own (fake_routes.RESOURCES), the custom resource's names and
subresources come from the hopscope CRD, and `storageVersionHash` is computed as the API
server does (base64 of the first 8 bytes of sha256("group/version/Kind")).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from hopscope_operator.api import ClusterConnectivityCheck, ConnectivityCheck
from hopscope_operator.cluster import CHECKS, CLUSTER_CHECKS, Resource
from hopscope_operator.install.crd import custom_resource_definition

from .fake_routes import CLUSTER_SCOPED, GROUP_VERSIONS, RESOURCES

Object = dict[str, Any]
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
# The CRD's verbs, in the order the API server lists a custom resource's.
CR_VERBS = ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"]
SUBRESOURCES: dict[str, list[Object]] = {
    "pods": [
        {"name": "log", "kind": "Pod", "verbs": ["get"]},
        {"name": "status", "kind": "Pod", "verbs": ["get", "patch", "update"]},
    ],
    "serviceaccounts": [  # a subresource of another group's kind
        {
            "name": "token",
            "group": "authentication.k8s.io",
            "version": "v1",
            "kind": "TokenRequest",
            "verbs": ["create"],
        },
    ],
}


AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def wants_aggregated(accept: str | None) -> bool:
    """kubectl's Accept puts the v2 document first; the server answers with it."""
    first = (accept or "").split(",")[0].replace(" ", "")
    return first == AGGREGATED


def aggregated(path: str) -> Object | None:
    """The apidiscovery.k8s.io/v2 document for /api or /apis: every group with its resources."""
    core = path.rstrip("/") == "/api"
    if path.rstrip("/") not in ("/api", "/apis"):
        return None
    versions = sorted(gv for gv in GROUP_VERSIONS if ("/" not in gv) == core)
    groups: dict[str, list[Object]] = {}
    for gv in versions:
        group, _, version = gv.rpartition("/")
        listed = _resources(gv)["resources"]
        resources = [
            {
                "resource": r["name"],
                "responseKind": {"group": group, "version": version, "kind": r["kind"]},
                "scope": "Namespaced" if r["namespaced"] else "Cluster",
                "singularResource": r["singularName"],
                "verbs": r["verbs"],
            }
            for r in listed
            if "/" not in r["name"]
        ]
        groups.setdefault(group, []).append(
            {"version": version, "resources": resources, "freshness": "Current"}
        )
    items = [{"metadata": {"name": g}, "versions": v} for g, v in groups.items()]
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }


def answer(path: str, host: str) -> Object | None:
    """The discovery document at `path`; None when there is none (a plain 404)."""
    parts = path.strip("/").split("/")
    groups = sorted({gv.split("/")[0] for gv in GROUP_VERSIONS if "/" in gv})
    if parts == ["api"]:
        address = [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": address}
    if parts == ["apis"]:
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(g) for g in groups]}
    if parts == ["api", "v1"]:
        return _resources("v1")
    if parts[0] == "apis" and len(parts) == 2 and parts[1] in groups:
        return {"kind": "APIGroup", "apiVersion": "v1", **_group(parts[1])}
    if parts[0] == "apis" and len(parts) == 3 and f"{parts[1]}/{parts[2]}" in GROUP_VERSIONS:
        return _resources(f"{parts[1]}/{parts[2]}")
    return None


def _group(group: str) -> Object:
    versions = [
        {"groupVersion": gv, "version": gv.split("/")[1]}
        for gv in sorted(GROUP_VERSIONS)
        if gv.startswith(f"{group}/")
    ]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def _resources(group_version: str) -> Object:
    found: list[Object] = []
    for (api_version, _), resource in sorted(RESOURCES.items()):
        if api_version == group_version:
            found += _entries(resource)
    body: Object = {"kind": "APIResourceList", "groupVersion": group_version, "resources": found}
    if "/" in group_version:
        body = {"kind": "APIResourceList", "apiVersion": "v1", **body}
    return body


CUSTOM_RESOURCES = {CHECKS: ConnectivityCheck, CLUSTER_CHECKS: ClusterConnectivityCheck}


def _entries(resource: Resource) -> list[Object]:
    namespaced = resource.plural not in CLUSTER_SCOPED
    model = CUSTOM_RESOURCES.get(resource)
    if model is not None:
        names = custom_resource_definition(model)["spec"]["names"]
        main = {
            "name": resource.plural,
            "singularName": names["singular"],
            "namespaced": namespaced,
            "kind": resource.kind,
            "verbs": CR_VERBS,
            "shortNames": names["shortNames"],
            "categories": names["categories"],
            "storageVersionHash": storage_version_hash(resource),
        }
        status = {
            "name": f"{resource.plural}/status",
            "singularName": "",
            "namespaced": namespaced,
            "kind": resource.kind,
            "verbs": ["get", "patch", "update"],
        }
        return [main, status]
    main = {
        "name": resource.plural,
        "singularName": resource.kind.lower(),
        "namespaced": namespaced,
        "kind": resource.kind,
        "verbs": VERBS,
        "storageVersionHash": storage_version_hash(resource),
    }
    subs = [
        {
            **sub,
            "name": f"{resource.plural}/{sub['name']}",
            "singularName": "",
            "namespaced": namespaced,
        }
        for sub in SUBRESOURCES.get(resource.plural, [])
    ]
    return [main, *subs]


def storage_version_hash(resource: Resource) -> str:
    digest = hashlib.sha256(f"{resource.group}/{resource.version}/{resource.kind}".encode())
    return base64.b64encode(digest.digest()[:8]).decode()
