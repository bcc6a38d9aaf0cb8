"""Kubernetes' REST paths: which resource a URL names, and what the server says when it names
none (an unknown group/version is a plain-text `404 page not found`, an unknown resource in a
known one a JSON 404)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from hopscope_operator import cluster
from hopscope_operator.cluster import NAMESPACES, ApiError, Resource

from .fake_status import NotFoundError

CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
SECRETS = Resource("", "v1", "secrets", "Secret")
EVENTS_V1 = Resource("events.k8s.io", "v1", "events", "Event")
TOKEN_REVIEWS = Resource("authentication.k8s.io", "v1", "tokenreviews", "TokenReview")
CRDS = Resource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition"
)
ACCESS_REVIEWS = Resource(
    "authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview"
)
SELF_REVIEWS = Resource("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview")
ANYONE_MAY_CREATE = {ACCESS_REVIEWS, SELF_REVIEWS}  # system:basic-user's, for the authenticated
KNOWN = [NAMESPACES, CONFIG_MAPS, SECRETS, EVENTS_V1, TOKEN_REVIEWS, CRDS, *ANYONE_MAY_CREATE]
RESOURCES: dict[tuple[str, str], Resource] = {
    (r.api_version, r.plural): r
    for r in [*vars(cluster).values(), *KNOWN]
    if isinstance(r, Resource)
}
GROUP_VERSIONS = {api_version for api_version, _ in RESOURCES}
CLUSTER_SCOPED = {"nodes", "namespaces", "tokenreviews", "customresourcedefinitions"}
CLUSTER_SCOPED |= {cluster.CLUSTER_CHECKS.plural}
CLUSTER_SCOPED |= {r.plural for r in ANYONE_MAY_CREATE}


Kind = tuple[str, str]  # (group, plural)


def stored_as(resource: Resource) -> Kind:
    """What the server knows a kind by in its store, watches and RBAC: group and plural (a
    plural alone is ambiguous: networkpolicies are networking.k8s.io's and projectcalico.org's)."""
    return (resource.group, resource.plural)


class PageNotFound(ApiError):
    """Not an API path at all: the real server answers text/plain."""

    status = 404
    reason = "NotFound"


@dataclass(frozen=True)
class Route:
    resource: Resource
    namespace: str | None
    name: str | None
    sub: str | None

    @property
    def plural(self) -> str:
        """As RBAC sees it: `pods/log`, `connectivitychecks/status`."""
        return f"{self.resource.plural}/{self.sub}" if self.sub else self.resource.plural


def route(path: str, custom: Mapping[tuple[str, str], Resource] | None = None) -> Route:
    """`custom`: the kinds stored CRDs of other groups serve, by (group/version, plural)."""
    segments = [unquote(s) for s in path.strip("/").split("/")]
    if segments[0] == "api" and len(segments) >= 3:
        api_version, rest = segments[1], segments[2:]
    elif segments[0] == "apis" and len(segments) >= 4:
        api_version, rest = f"{segments[1]}/{segments[2]}", segments[3:]
    else:
        raise PageNotFound("404 page not found")
    known = {**RESOURCES, **(custom or {})}
    if api_version not in GROUP_VERSIONS | {gv for gv, _ in known}:
        raise PageNotFound("404 page not found")
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource = known.get((api_version, rest[0]))
    if resource is None or len(rest) > 3:
        raise NotFoundError("the server could not find the requested resource", {})
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    return Route(resource, namespace, name, sub)
