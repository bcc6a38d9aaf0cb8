"""The slice of the Kubernetes API the operator uses, as a Protocol.

The reconciler talks only to this, so the same code runs against the real API server
(`kube.py`) and against the in-memory API server of the tests, which honours the same contract:
resourceVersion conflicts, the status subresource, 404/409/422.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

Object = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the API (enough to build its URL)."""

    group: str  # "" for the core group
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


PODS = Resource("", "v1", "pods", "Pod")
NODES = Resource("", "v1", "nodes", "Node")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace")
SERVICES = Resource("", "v1", "services", "Service")
EVENTS = Resource("", "v1", "events", "Event")
ENDPOINT_SLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
STATEFUL_SETS = Resource("apps", "v1", "statefulsets", "StatefulSet")
DAEMON_SETS = Resource("apps", "v1", "daemonsets", "DaemonSet")
NETWORK_POLICIES = Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy")
CHECKS = Resource("hopscope.dev", "v1alpha1", "connectivitychecks", "ConnectivityCheck")
CLUSTER_CHECKS = Resource(
    "hopscope.dev", "v1alpha1", "clusterconnectivitychecks", "ClusterConnectivityCheck"
)
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")
CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")


def check_location(kind: str, namespace: str | None) -> tuple[Resource, str | None]:
    """A check's resource and API namespace: None for a ClusterConnectivityCheck."""
    if kind == CLUSTER_CHECKS.kind:
        return CLUSTER_CHECKS, None
    return CHECKS, namespace


class ApiError(Exception):
    """An API server refusal: `status` is the HTTP code, `reason` Kubernetes' reason."""

    status = 500
    reason = "InternalError"


class NotFound(ApiError):
    status = 404
    reason = "NotFound"


class Conflict(ApiError):
    """AlreadyExists on create, or a stale resourceVersion on update."""

    status = 409
    reason = "Conflict"


class Invalid(ApiError):
    status = 422
    reason = "Invalid"


@dataclass(frozen=True)
class Listing:
    """A list's items (whole objects) and its resourceVersion: where a watch starts."""

    items: list[Object]
    resource_version: str


class Watch(Protocol):
    """An open watch. Its events ({"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object"})
    arrive in resourceVersion order; `poll` returns those that have arrived and never waits."""

    @property
    def ended(self) -> bool:
        """The stream is over (its timeoutSeconds, a dropped connection): polled empty, it is
        opened again from the last resourceVersion seen."""
        ...

    def poll(self) -> list[Object]: ...

    def close(self) -> None: ...


class ClusterApi(Protocol):
    def discovery(self, path: str) -> Object | None:
        """The discovery document at `path` (`/apis`, `/apis/<group>/<version>`); None when the
        server serves no such group or version (its plain-text 404). Every authenticated user
        may read these (the system:discovery ClusterRole): no RBAC rule of the chart's."""
        ...

    def get(self, resource: Resource, namespace: str | None, name: str) -> Object:
        """The object; NotFound when absent."""
        ...

    def list(
        self, resource: Resource, namespace: str | None, labels: dict[str, str] | None = None
    ) -> list[Object]:
        """Objects in a namespace (None: all namespaces) whose labels match."""
        ...

    def list_versioned(
        self, resource: Resource, namespace: str | None, labels: dict[str, str] | None = None
    ) -> Listing:
        """`list`, with the list's resourceVersion (what a watch of it resumes from)."""
        ...

    def watch(
        self,
        resource: Resource,
        namespace: str | None,
        labels: dict[str, str] | None,
        resource_version: str,
    ) -> Watch:
        """The changes after `resource_version`, with bookmarks; a refusal (403) raises here.
        A version the server no longer has comes as an ERROR event with code 410."""
        ...

    def create(self, resource: Resource, namespace: str | None, body: Object) -> Object:
        """The created object; Conflict when the name is taken, Invalid when malformed."""
        ...

    def replace(self, resource: Resource, namespace: str, name: str, body: Object) -> Object:
        """PUT: `body` becomes the object; Conflict when its metadata.resourceVersion is not the
        stored one (someone wrote in between), NotFound when it is gone."""
        ...

    def delete(self, resource: Resource, namespace: str | None, name: str) -> None:
        """Deletes (dependents are garbage-collected); NotFound when absent."""
        ...

    def patch_status(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        status: Object,
        resource_version: str,
    ) -> Object:
        """Merges `status` into .status through the status subresource (RFC 7386 merge patch:
        a null deletes a field, a list is replaced whole); Conflict when the object moved on
        since `resource_version` (a concurrent writer), NotFound when it was deleted. Namespace
        None: a cluster-scoped object."""
        ...

    def pod_log(self, namespace: str, name: str) -> str:
        """The (single) container's log; NotFound when the pod is gone."""
        ...

    def request_token(
        self, namespace: str, service_account: str, audience: str, seconds: int
    ) -> str:
        """A token of the ServiceAccount for `audience` alone, valid `seconds` (>= 600): the
        TokenRequest subresource."""
        ...
