"""API discovery (/api, /apis, /api/v1, /apis/<group>[/<version>]): what kopf reads at start.

The resources are the fake's own (fake_routes.RESOURCES), the custom resource's names and
subresources come from the hopscope CRD, and `storageVersionHash` is computed as the API
server does (base64 of the first 8 bytes of sha256("group/version/Kind")). Any other group is
served only while a stored CustomResourceDefinition serves it (`crds`), as the API server
serves a CRD's group once the CRD exists and answers `404 page not found` before and after.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
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


def aggregated(path: str, crds: Sequence[Object] = ()) -> Object | None:
    """The apidiscovery.k8s.io/v2 document for /api or /apis: every group with its resources
    (those of the stored CRDs of other groups too)."""
    core = path.rstrip("/") == "/api"
    if path.rstrip("/") not in ("/api", "/apis"):
        return None
    served = {} if core else crd_resources(crds)
    versions = sorted(gv for gv in GROUP_VERSIONS if ("/" not in gv) == core)
    groups: dict[str, list[Object]] = {}
    for gv in [*versions, *served]:
        group, _, version = gv.rpartition("/")
        listed = served[gv] if gv in served else _resources(gv)["resources"]
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


def answer(path: str, host: str, crds: Sequence[Object] = ()) -> Object | None:
    """The discovery document at `path`; None when there is none (a plain 404). `crds`: the
    stored CustomResourceDefinitions, whose groups are served beside the fake's own."""
    parts = path.strip("/").split("/")
    served = crd_resources(crds)
    group_versions = [*sorted(GROUP_VERSIONS), *served]
    groups = sorted({gv.split("/")[0] for gv in GROUP_VERSIONS if "/" in gv})
    groups += [g for g in dict.fromkeys(gv.split("/")[0] for gv in served) if g not in groups]
    if parts == ["api"]:
        address = [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": address}
    if parts == ["apis"]:
        listed = [_group(g, group_versions) for g in groups]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": listed}
    if parts == ["api", "v1"]:
        return _resources("v1")
    if parts[0] == "apis" and len(parts) == 2 and parts[1] in groups:
        return {"kind": "APIGroup", "apiVersion": "v1", **_group(parts[1], group_versions)}
    if parts[0] == "apis" and len(parts) == 3 and f"{parts[1]}/{parts[2]}" in GROUP_VERSIONS:
        return _resources(f"{parts[1]}/{parts[2]}")
    if parts[0] == "apis" and len(parts) == 3 and f"{parts[1]}/{parts[2]}" in served:
        gv = f"{parts[1]}/{parts[2]}"
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": served[gv],
        }
    return None


def _group(group: str, group_versions: Sequence[str]) -> Object:
    versions = [
        {"groupVersion": gv, "version": gv.split("/")[1]}
        for gv in group_versions
        if gv.startswith(f"{group}/")
    ]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


_VERSION = re.compile(r"v(\d+)(?:(alpha|beta)(\d+))?")
_STABILITY = {None: 2, "beta": 1, "alpha": 0}


def version_priority(version: str) -> tuple[int, ...]:
    """Kubernetes' order of a CRD's versions (GA, then beta, then alpha; higher first): the
    order discovery lists them in, the first being the preferred version."""
    match = _VERSION.fullmatch(version)
    if match is None:  # not Kubernetes-like: after all the others, by name
        return (-1, 0, 0)
    major, stability, minor = match.groups()
    return (_STABILITY[stability], int(major), int(minor or 0))


def crd_resources(crds: Sequence[Object]) -> dict[str, list[Object]]:
    """group/version -> the discovery entries of the served versions of other groups' CRDs,
    each group's versions in priority order (hopscope's own group is the fake's already)."""
    served: dict[str, list[Object]] = {}
    for crd in crds:
        spec = crd["spec"]
        group, names = spec["group"], spec["names"]
        namespaced = spec["scope"] == "Namespaced"
        versions = [v for v in spec["versions"] if v.get("served", True)]
        versions.sort(key=lambda v: version_priority(v["name"]), reverse=True)
        for version in versions:
            gv = f"{group}/{version['name']}"
            if gv in GROUP_VERSIONS:
                continue
            resource = Resource(group, version["name"], names["plural"], names["kind"])
            entry: Object = {
                "name": names["plural"],
                "singularName": names.get("singular", names["kind"].lower()),
                "namespaced": namespaced,
                "kind": names["kind"],
                "verbs": CR_VERBS,
                **{k: names[k] for k in ("shortNames", "categories") if names.get(k)},
                "storageVersionHash": storage_version_hash(resource),
            }
            found = served.setdefault(gv, [])
            found.append(entry)
            if "status" in (version.get("subresources") or {}):
                status = {
                    "name": f"{names['plural']}/status",
                    "singularName": "",
                    "namespaced": namespaced,
                    "kind": names["kind"],
                    "verbs": ["get", "patch", "update"],
                }
                found.append(status)
    return served


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


def crd_kinds(crds: Sequence[Object]) -> dict[tuple[str, str], Resource]:
    """(group/version, plural) -> the kind, for every served version of other groups' CRDs."""
    return {
        (gv, entry["name"]): Resource(*gv.split("/"), entry["name"], entry["kind"])
        for gv, entries in crd_resources(crds).items()
        for entry in entries
        if "/" not in entry["name"]
    }
