"""An in-memory Kubernetes API server that honours the contract the operator relies on.

- every write bumps a cluster-wide resourceVersion; a status write with a stale one is a 409;
- create of a taken name is a 409 (AlreadyExists), a missing object a 404;
- objects are validated on write (422): ConnectivityChecks against the generated CRD (schema,
  defaults and CEL), Pods against the real Kubernetes OpenAPI schema (kubernetes-validate);
- the status subresource only changes .status; a spec change bumps metadata.generation;
- deleting an owner garbage-collects its dependents (ownerReferences);
- every change is recorded as a watch event (ADDED / MODIFIED / DELETED);
- a pod's log is a 400 while its container has not started (that is not a 404 in Kubernetes);
- a TokenRequest shorter than 10 minutes is a 422; a token names its account and audience.
Tests drive the "kubelet" side with `run_pod` / `finish_pod` / `stick_pod`.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import kubernetes_validate

from hopscope_operator.cluster import (
    CHECKS,
    EVENTS,
    PODS,
    ApiError,
    Conflict,
    Invalid,
    NotFound,
    Object,
    Resource,
)

if TYPE_CHECKING:
    from .conftest import ApiServer

K8S_VERSION = kubernetes_validate.latest_version()


class BadRequest(ApiError):
    status = 400
    reason = "BadRequest"


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED
    resource: Resource
    namespace: str | None
    name: str


class FakeApi:
    def __init__(self, check_schema: ApiServer, *, validate: bool = True) -> None:
        self._validating = validate  # off only for benchmarks, which measure the operator
        self._store: dict[str, dict[tuple[str | None, str], Object]] = {}  # by plural
        self._versions = itertools.count(1000)
        self._check_schema = check_schema
        self.logs: dict[tuple[str, str], str] = {}
        self.watch_events: list[WatchEvent] = []
        self.tokens_issued: list[tuple[str, str, str]] = []  # (namespace, account, audience)
        # (verb, resource, namespace[, name]) as RBAC sees each request the operator made
        self.calls: list[tuple[str | None, ...]] = []

    # ---- the ClusterApi contract -------------------------------------------------------

    def get(self, resource: Resource, namespace: str | None, name: str) -> Object:
        self.calls.append(("get", resource.plural, namespace))
        return copy.deepcopy(self.stored(resource, namespace, name))

    def list(
        self, resource: Resource, namespace: str | None, labels: dict[str, str] | None = None
    ) -> list[Object]:
        self.calls.append(("list", resource.plural, namespace))
        objects = self._store.get(resource.plural, {})
        return [
            copy.deepcopy(obj)
            for (ns, _), obj in sorted(objects.items(), key=lambda item: str(item[0]))
            if (namespace is None or ns == namespace)
            and all(
                obj["metadata"].get("labels", {}).get(k) == v for k, v in (labels or {}).items()
            )
        ]

    def create(self, resource: Resource, namespace: str | None, body: Object) -> Object:
        self.calls.append(("create", resource.plural, namespace))
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if namespace is not None:
            meta["namespace"] = namespace
        objects = self._store.setdefault(resource.plural, {})
        key = (namespace, meta.get("name", ""))
        if key in objects:
            raise Conflict(f"{resource.plural} {namespace}/{key[1]} already exists")
        obj.setdefault("apiVersion", resource.api_version)
        obj.setdefault("kind", resource.kind)
        self._validate(resource, obj)
        meta.update(
            uid=str(uuid.uuid4()),
            resourceVersion=str(next(self._versions)),
            creationTimestamp=now(),
            generation=1,
        )
        if resource == CHECKS:
            obj = self._check_schema.defaulted(obj)
        objects[key] = obj
        self._emit("ADDED", resource, obj)
        return copy.deepcopy(obj)

    def delete(self, resource: Resource, namespace: str | None, name: str) -> None:
        self.calls.append(("delete", resource.plural, namespace))
        obj = self.stored(resource, namespace, name)
        del self._store[resource.plural][(namespace, name)]
        self._emit("DELETED", resource, obj)
        self._collect_garbage(obj["metadata"]["uid"])

    def patch_status(
        self, resource: Resource, namespace: str, name: str, status: Object, resource_version: str
    ) -> Object:
        self.calls.append(("patch", f"{resource.plural}/status", namespace))
        obj = self.stored(resource, namespace, name)
        if obj["metadata"]["resourceVersion"] != resource_version:
            raise Conflict(
                f"{resource.plural} {namespace}/{name}: the object has been modified "
                f"(resourceVersion {resource_version} is stale)"
            )
        changed = copy.deepcopy(obj)
        changed["status"] = merge_patch(changed.get("status", {}), status)
        # Validation ratcheting (Kubernetes >= 1.30): a status write is judged on the status,
        # so a spec stored before a rule existed does not block it.
        self._validate(resource, changed, only="status")
        changed["metadata"]["resourceVersion"] = str(next(self._versions))
        self._store[resource.plural][(namespace, name)] = changed
        self._emit("MODIFIED", resource, changed)
        return copy.deepcopy(changed)

    def request_token(
        self, namespace: str, service_account: str, audience: str, seconds: int
    ) -> str:
        # RBAC sees the account's name: the rule for it carries resourceNames.
        self.calls.append(("create", "serviceaccounts/token", namespace, service_account))
        if seconds < 600:
            raise Invalid("spec.expirationSeconds: may not specify a duration less than 10 minutes")
        self.tokens_issued.append((namespace, service_account, audience))
        return f"token/{namespace}/{service_account}/{audience}"

    def pod_log(self, namespace: str, name: str) -> str:
        self.calls.append(("get", "pods/log", namespace))
        statuses = self.stored(PODS, namespace, name).get("status", {}).get("containerStatuses")
        states = [status.get("state") or {} for status in statuses or []]
        if not any("running" in state or "terminated" in state for state in states):
            raise BadRequest(f'container "probe" in pod "{name}" is waiting to start')
        return self.logs.get((namespace, name), "")

    # ---- what a user or the kubelet does ------------------------------------------------

    def apply_spec(self, namespace: str, name: str, change: Callable[[Object], None]) -> Object:
        """A user edits the spec (kubectl apply): generation moves on, status stays."""
        obj = copy.deepcopy(self.stored(CHECKS, namespace, name))
        change(obj["spec"])
        self._validate(CHECKS, obj)
        obj["metadata"]["generation"] += 1
        obj["metadata"]["resourceVersion"] = str(next(self._versions))
        self._store[CHECKS.plural][(namespace, name)] = obj
        self._emit("MODIFIED", CHECKS, obj)
        return copy.deepcopy(obj)

    def set_pod_status(self, namespace: str, name: str, status: Object) -> None:
        obj = self.stored(PODS, namespace, name)
        obj["status"] = status
        obj["metadata"]["resourceVersion"] = str(next(self._versions))
        self._emit("MODIFIED", PODS, obj)

    def finish_pod(self, namespace: str, name: str, log: str, exit_code: int = 0) -> None:
        self.logs[(namespace, name)] = log
        phase = "Succeeded" if exit_code == 0 else "Failed"
        terminated = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "finishedAt": now(),  # the kubelet says when; a made-up state for a lost one does not
        }
        self.set_pod_status(
            namespace,
            name,
            {"phase": phase, "containerStatuses": [container_status({"terminated": terminated})]},
        )

    def objects(self, resource: Resource, namespace: str | None = None) -> list[Object]:
        return self.list(resource, namespace)

    def events_for(self, name: str) -> list[Object]:
        return [e for e in self.objects(EVENTS) if e["involvedObject"]["name"] == name]

    def put(self, resource: Resource, obj: Object) -> None:
        """Store an object the operator never writes (a Node), as the cluster has it."""
        meta = obj["metadata"]
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("resourceVersion", str(next(self._versions)))
        objects = self._store.setdefault(resource.plural, {})
        objects[(meta.get("namespace"), meta["name"])] = obj

    def stored(self, resource: Resource, namespace: str | None, name: str) -> Object:
        """The stored object itself (not a copy): tests edit it to play what the API allows."""
        try:
            return self._store[resource.plural][(namespace, name)]
        except KeyError:
            raise NotFound(f"{resource.plural} {namespace}/{name} not found") from None

    # ---- internals ------------------------------------------------------------------------

    def _validate(self, resource: Resource, obj: Object, only: str = "") -> None:
        if not self._validating:
            return
        if resource == CHECKS:
            errors = [e for e in self._check_schema.errors(obj) if e.startswith(only)]
            if errors:
                raise Invalid("; ".join(errors))
        elif resource in (PODS, EVENTS):
            try:
                kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                raise Invalid(f"{resource.kind} {obj['metadata'].get('name')}: {exc}") from exc

    def _collect_garbage(self, owner_uid: str) -> None:
        for plural, objects in self._store.items():
            for key, obj in list(objects.items()):
                owners = obj["metadata"].get("ownerReferences", [])
                if any(ref["uid"] == owner_uid for ref in owners) and key in objects:
                    del objects[key]
                    self._emit("DELETED", Resource("", "v1", plural, obj.get("kind", "")), obj)
                    self._collect_garbage(obj["metadata"]["uid"])

    def _emit(self, kind: str, resource: Resource, obj: Object) -> None:
        meta = obj["metadata"]
        self.watch_events.append(WatchEvent(kind, resource, meta.get("namespace"), meta["name"]))


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def container_status(state: Object) -> Object:
    return {
        "name": "probe",
        "image": "hopscope-probe",
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "state": state,
    }


def merge_patch(target: object, patch: object) -> object:
    """RFC 7386: what the API server does with application/merge-patch+json."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged
