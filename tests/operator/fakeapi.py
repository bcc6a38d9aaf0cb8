"""An in-memory Kubernetes API server that honours the contract the operator relies on.

The store, with the rules a real kube-apiserver applies to it (held to recordings of one by
test_kube_api_conformance.py; HttpApi serves it over REST):
- a kind is its API group and plural (`fake_routes.stored_as`), in the store, its watches and
  garbage collection: Calico's networkpolicies are not the core ones;
- every write bumps a cluster-wide resourceVersion; a status write with a stale one is a 409;
- create of a taken name is a 409 AlreadyExists, a missing object a 404, with the real Status
  details (fake_status); a create may name itself by generateName;
- objects are validated on write (422, worded as the API server's): ConnectivityChecks against
  the generated CRD (schema, defaults and CEL), built-in kinds against the Kubernetes OpenAPI
  schema and the server's own rules for Pods, NetworkPolicies, Events and ObjectMeta; built-in
  kinds get the server's defaults; a pod's ServiceAccount must exist;
- the status subresource: a create's status is dropped, a status write changes only .status
  and applies its defaults, a spec change bumps metadata.generation;
- deleting an owner garbage-collects its dependents (ownerReferences);
- every change is recorded as a watch event (ADDED / MODIFIED / DELETED), with the object;
- a pod's log is a 400 while its container has not started (that is not a 404 in Kubernetes);
- a TokenRequest shorter than 10 minutes is a 422; a token names its account and audience.
Tests drive the "kubelet" side with `run_pod` / `finish_pod` / `stick_pod`.
"""

from __future__ import annotations

import copy
import functools
import itertools
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import kubernetes_validate

from hopscope_operator.api import ClusterConnectivityCheck
from hopscope_operator.cluster import (
    CHECKS,
    CLUSTER_CHECKS,
    EVENTS,
    LEASES,
    PODS,
    SERVICE_ACCOUNTS,
    Invalid,
    Listing,
    Object,
    Resource,
)
from hopscope_operator.install.crd import custom_resource_definition

from . import fake_defaults as defaults
from . import fake_discovery as discovery
from . import fake_events as events
from .fake_builtin_validation import causes as builtin_causes
from .fake_crd_causes import causes as crd_causes
from .fake_routes import CRDS, RESOURCES, Kind, stored_as
from .fake_selectors_api import metadata_causes
from .fake_status import (
    BadRequest,
    Forbidden,
    InternalError,
    InvalidError,
    NotFoundError,
    already_exists,
    cause,
    invalid,
    invalid_options,
    modified,
    not_found,
    object_details,
)
from .fake_tokens import Issued
from .fake_watch import MemoryWatch

if TYPE_CHECKING:
    from .conftest import ApiServer

K8S_VERSION = kubernetes_validate.latest_version()
GROUP_AUTHN = "authentication.k8s.io"
NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # what generateName's suffix is made of
# The groups served without a CRD: the built-in kinds', and hopscope's (whose CRDs the stories
# take as installed).
BUILT_IN_GROUPS = frozenset(r.group for r in RESOURCES.values())


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED
    resource: Resource
    namespace: str | None
    name: str
    object: Object | None = field(default=None, compare=False, repr=False)  # as it was then


@functools.cache
def cluster_check_schema(server: type[ApiServer]) -> ApiServer:
    """The ClusterConnectivityCheck CRD's schema, built once (it caches its CEL programs)."""
    crd = custom_resource_definition(ClusterConnectivityCheck)
    return server(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


class FakeApi:
    def __init__(self, check_schema: ApiServer, *, validate: bool = True) -> None:
        self._validating = validate  # off only for benchmarks, which measure the operator
        # by kind, (group, plural): a plural alone names core and Calico NetworkPolicies alike
        self._store: dict[Kind, dict[tuple[str | None, str], Object]] = {}
        # Garbage collection without a scan of the store: (kind, key) by owner uid, and when
        # each stored object entered the store (the order a scan would meet them in).
        self._dependents: dict[str, set[tuple[Kind, tuple[str | None, str]]]] = {}
        self._entered: dict[tuple[Kind, tuple[str | None, str]], int] = {}
        self._entries = itertools.count()
        self._version = 999  # the last resourceVersion written
        self._check_schema = check_schema
        # The custom resources: each CRD's schema, defaults and status subresource.
        self._schemas = {
            CHECKS: check_schema,
            CLUSTER_CHECKS: cluster_check_schema(type(check_schema)),
        }
        self.logs: dict[tuple[str, str], str] = {}  # (namespace, pod): its one container's
        self.container_logs: dict[tuple[str, str, str], str] = {}  # (namespace, pod, container)
        self.watch_events: list[WatchEvent] = []
        self.bookmarks: list[str] = []  # the resourceVersion of each bookmark() sent
        self.compacted = 0  # watches from an older resourceVersion get an ERROR 410
        self.watch_epoch = 0  # end_watches() moves it on: the in-memory watches open end
        self.changed = threading.Condition()  # notified on every watch event (HTTP watches)
        self._serving = threading.RLock()  # one request at a time (`_one_at_a_time`)
        self.tokens_issued: list[tuple[str, str, str]] = []  # (namespace, account, audience)
        self.issued: dict[str, Issued] = {}  # every token minted, by token
        # (verb, resource, namespace[, name]) as RBAC sees each request the operator made
        self.calls: list[tuple[str | None, ...]] = []
        # The discovery paths read: non-resource URLs, which every authenticated user may GET
        # (the system:discovery ClusterRole), so they are not RBAC calls.
        self.discovered: list[str] = []

    @property
    def schema(self) -> ApiServer:
        """The ConnectivityCheck schema it validates against."""
        return self._check_schema

    def schema_of(self, resource: Resource) -> ApiServer | None:
        """The CRD schema of a custom resource; None for a built-in kind."""
        return self._schemas.get(resource)

    # ---- the ClusterApi contract -------------------------------------------------------

    def discovery(self, path: str) -> Object | None:
        self.discovered.append(path)
        return discovery.answer(path, "", self.select(CRDS, None, lambda _: True))

    def get(self, resource: Resource, namespace: str | None, name: str) -> Object:
        self.calls.append(("get", resource.plural, namespace))
        self._served(resource)
        return copy.deepcopy(self.stored(resource, namespace, name))

    def list(
        self, resource: Resource, namespace: str | None, labels: dict[str, str] | None = None
    ) -> list[Object]:
        self.calls.append(("list", resource.plural, namespace))
        self._served(resource)
        objects = self._store.get(stored_as(resource), {})
        return [
            copy.deepcopy(obj)
            for (ns, _), obj in sorted(objects.items(), key=lambda item: str(item[0]))
            if (namespace is None or ns == namespace)
            and all(
                obj["metadata"].get("labels", {}).get(k) == v for k, v in (labels or {}).items()
            )
        ]

    def list_versioned(
        self, resource: Resource, namespace: str | None, labels: dict[str, str] | None = None
    ) -> Listing:
        # Through list, so a test that refuses `list` refuses this too.
        return Listing(self.list(resource, namespace, labels), self.resource_version())

    def watch(
        self,
        resource: Resource,
        namespace: str | None,
        labels: dict[str, str] | None,
        resource_version: str,
    ) -> MemoryWatch:
        self.calls.append(("watch", resource.plural, namespace))
        self._served(resource)
        return MemoryWatch(self, resource, namespace, labels or {}, resource_version)

    def compact(self) -> None:
        """What etcd compaction does: history up to now is gone, so a watch resuming from an
        older resourceVersion is told 410 Expired (and must list again)."""
        with self.changed:
            self.compacted = self._version + 1

    def end_watches(self) -> None:
        """Every in-memory watch open now ends (a dropped connection, an API server restart):
        the watcher opens it again, from the last resourceVersion it saw."""
        with self.changed:
            self.watch_epoch += 1

    def bookmark(self) -> None:
        """A BOOKMARK to every watch that allows them, at the current resourceVersion (a real
        server sends them about once a minute)."""
        with self.changed:
            self.bookmarks.append(self.resource_version())
            self.changed.notify_all()

    def create(
        self, resource: Resource, namespace: str | None, body: Object, *, dry: bool = False
    ) -> Object:
        """`dry`: dryRun=All, everything but the write (no resourceVersion, nothing stored)."""
        self.calls.append(("create", resource.plural, namespace))
        self._served(resource)
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if namespace is not None:
            meta["namespace"] = namespace
        causes = metadata_causes(obj, resource.kind) + builtin_causes(resource, obj)
        if causes:
            raise invalid(resource, meta.get("name") or None, causes)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choices(NAME_CHARS, k=5))
        if not meta.get("name"):
            said = "Required value: name or generateName is required"
            raise invalid(resource, None, [cause("FieldValueRequired", said, "metadata.name")])
        objects = self._store.setdefault(stored_as(resource), {})
        key = (namespace, meta["name"])
        if key in objects:
            raise already_exists(resource, key[1])
        if resource in self._schemas:  # the status subresource: a create's status is dropped
            obj.pop("status", None)
        if resource == EVENTS:
            obj = events.created(obj, namespace)
        if resource == PODS:
            self._admit_service_account(namespace or "", obj)
        obj = defaults.defaulted(resource, obj)
        meta = obj["metadata"]
        obj.setdefault("apiVersion", resource.api_version)
        obj.setdefault("kind", resource.kind)
        self._validate(resource, obj)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
        if resource in self._schemas:
            obj = self._schemas[resource].defaulted(obj)
        if dry:
            return copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = self._bump()
        self._keep(stored_as(resource), key, obj)
        self._emit("ADDED", resource, obj)
        return copy.deepcopy(obj)

    def delete(self, resource: Resource, namespace: str | None, name: str) -> None:
        self.calls.append(("delete", resource.plural, namespace))
        obj = self.stored(resource, namespace, name)
        self._remove(stored_as(resource), (namespace, name))
        self._emit("DELETED", resource, obj)
        self._collect_garbage(obj["metadata"]["uid"])
        if resource == CRDS:  # the API server stops serving its kind: its watches end
            self.end_watches()

    def patch_status(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        status: Object,
        resource_version: str | None,
        *,
        whole: bool = False,
        dry: bool = False,
    ) -> Object:
        """A merge patch of .status (`whole`: `status` is the new .status); only status
        changes, whatever else the patch says. `resource_version` None: no precondition."""
        self.calls.append(("patch", f"{resource.plural}/status", namespace))
        obj = self.stored(resource, namespace, name)
        if resource_version is not None:
            if not resource_version.isdigit():  # the real server fails to parse it: a 500
                raise InternalError(
                    f'strconv.ParseUint: parsing "{resource_version}": invalid syntax'
                )
            if obj["metadata"]["resourceVersion"] != resource_version:
                raise modified(resource, name)
        changed = copy.deepcopy(obj)
        merged = status if whole else merge_patch(changed.get("status", {}), status)
        return self._write_status(resource, namespace, name, changed, merged, dry=dry)

    def replace_status(
        self, resource: Resource, namespace: str | None, name: str, status: Object | None
    ) -> Object:
        """PUT /status: .status replaced whole, nothing else."""
        changed = copy.deepcopy(self.stored(resource, namespace, name))
        return self._write_status(resource, namespace, name, changed, status)

    def _write_status(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        changed: Object,
        status: object,
        *,
        dry: bool = False,
    ) -> Object:
        changed["status"] = status
        if changed["status"] is None:
            del changed["status"]
        if resource in self._schemas:  # the schema's status defaults apply on every status write
            changed = self._schemas[resource].defaulted(changed)
        # Validation ratcheting (Kubernetes >= 1.30): a status write is judged on the status,
        # so a spec stored before a rule existed does not block it.
        self._validate(resource, changed, only="status")
        if dry:
            return copy.deepcopy(changed)
        changed["metadata"]["resourceVersion"] = self._bump()
        self._keep(stored_as(resource), (namespace, name), changed)
        self._emit("MODIFIED", resource, changed)
        return copy.deepcopy(changed)

    def request_token(
        self,
        namespace: str,
        service_account: str,
        audience: str,
        seconds: int,
        *,
        audiences: tuple[str, ...] | None = None,
        pod: tuple[str, str] | None = None,
    ) -> str:
        """`audiences` (HTTP: any number of them) and `pod` (bound to it) beyond the contract."""
        # RBAC sees the account's name: the rule for it carries resourceNames.
        self.calls.append(("create", "serviceaccounts/token", namespace, service_account))
        if seconds < 600:
            raise _token_invalid(seconds, "may not specify a duration less than 10 minutes")
        if seconds > 2**32:
            raise _token_invalid(seconds, "may not specify a duration larger than 2^32 seconds")
        self.tokens_issued.append((namespace, service_account, audience))
        return self.mint(namespace, service_account, audiences or (audience,), pod)

    def mint(
        self,
        namespace: str,
        account: str,
        audiences: tuple[str, ...],
        pod: tuple[str, str] | None = None,
    ) -> str:
        """A token of the account, which the fake then knows (API calls, TokenReview)."""
        token = f"token/{namespace}/{account}/{','.join(audiences)}"
        token += f"/pod/{pod[0]}" if pod else ""
        accounts = self._store.get(stored_as(SERVICE_ACCOUNTS), {})
        uid = accounts.get((namespace, account), {}).get("metadata", {}).get("uid", "")
        self.issued[token] = Issued(namespace, account, uid, audiences, pod)
        return token

    def log_of(self, namespace: str, pod: str, container: str) -> str | None:
        """What the kubelet serves for one container of a pod."""
        found = self.container_logs.get((namespace, pod, container))
        return self.logs.get((namespace, pod)) if found is None else found

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
        obj["metadata"]["resourceVersion"] = self._bump()
        self._keep(stored_as(CHECKS), (namespace, name), obj)
        self._emit("MODIFIED", CHECKS, obj)
        return copy.deepcopy(obj)

    def edit(
        self, resource: Resource, namespace: str | None, name: str, change: Callable[[Object], None]
    ) -> Object:
        """A change a test plays that the API makes (a kubelet's, a controller's, one written
        around admission): made to the stored object, a write with its own resourceVersion and
        watch event, as every change a real server stores is."""
        obj = self.stored(resource, namespace, name)
        change(obj)
        obj["metadata"]["resourceVersion"] = self._bump()
        self._emit("MODIFIED", resource, obj)
        return copy.deepcopy(obj)

    def set_pod_status(self, namespace: str, name: str, status: Object) -> None:
        obj = self.stored(PODS, namespace, name)
        obj["status"] = status
        obj["metadata"]["resourceVersion"] = self._bump()
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
        """Store an object as the cluster has it (a Node; one written around admission): a
        write all the same, with a new resourceVersion and its watch event."""
        meta = obj["metadata"]
        meta.setdefault("uid", str(uuid.uuid4()))
        meta["resourceVersion"] = self._bump()
        objects = self._store.setdefault(stored_as(resource), {})
        key = (meta.get("namespace"), meta["name"])
        self._emit("MODIFIED" if key in objects else "ADDED", resource, obj)
        self._keep(stored_as(resource), key, obj)

    def stored(self, resource: Resource, namespace: str | None, name: str) -> Object:
        """The stored object itself (not a copy): tests edit it to play what the API allows."""
        try:
            return self._store[stored_as(resource)][(namespace, name)]
        except KeyError:
            raise not_found(resource, name) from None

    def select(
        self, resource: Resource, namespace: str | None, match: Callable[[Object], bool]
    ) -> list[Object]:
        """Copies of the objects in `namespace` (None: all) that `match`, in name order."""
        objects = self._store.get(stored_as(resource), {})
        return [
            copy.deepcopy(obj)
            for (ns, _), obj in sorted(objects.items(), key=lambda item: str(item[0]))
            if (namespace is None or ns == namespace) and match(obj)
        ]

    def resource_version(self) -> str:
        """The cluster's current resourceVersion (a list's)."""
        return str(self._version)

    def _bump(self) -> str:
        self._version += 1
        return str(self._version)

    def replace(self, resource: Resource, namespace: str, name: str, body: Object) -> Object:
        """PUT of the main resource, as the real server answers it: a stale
        metadata.resourceVersion is a 409 (11-update-put records it); none is an unconditional
        write, which only built-in kinds allow (fake_writes.Writes.replace says so for HTTP)."""
        stored = self.stored(resource, namespace, name)
        version = body.get("metadata", {}).get("resourceVersion")
        if resource == CHECKS and not version:
            raise Invalid(f"{resource.kind} {name}: metadata.resourceVersion: must be specified")
        if version and version != stored["metadata"]["resourceVersion"]:
            raise modified(resource, name)
        return self.update(resource, namespace, name, body)

    def update(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        body: Object,
        *,
        dry: bool = False,
    ) -> Object:
        """A write of the main resource (PUT, PATCH): the status subresource's status stays,
        a spec change moves the generation on, and an object being deleted goes once its last
        finalizer is gone."""
        # RBAC sees the name: the Lease's rule carries resourceNames.
        self.calls.append(("update", resource.plural, namespace, name))
        stored = self.stored(resource, namespace, name)
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        for key in ("uid", "creationTimestamp", "generation", "namespace", "deletionTimestamp"):
            if key in stored["metadata"]:
                meta[key] = stored["metadata"][key]
        meta["name"] = name
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        if resource in self._schemas:
            obj.pop("status", None)
            if "status" in stored:
                obj["status"] = copy.deepcopy(stored["status"])
            obj = self._schemas[resource].defaulted(obj)
            meta = obj["metadata"]
        self._validate(resource, obj)
        if obj.get("spec") != stored.get("spec"):
            meta["generation"] = stored["metadata"].get("generation", 1) + 1
        if dry:
            return copy.deepcopy(obj)
        meta["resourceVersion"] = self._bump()
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(stored_as(resource), (namespace, name))
            self._emit("DELETED", resource, obj)
        else:
            self._keep(stored_as(resource), (namespace, name), obj)
            self._emit("MODIFIED", resource, obj)
        return copy.deepcopy(obj)

    def terminate(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        *,
        policy: str | None = None,
        dry: bool = False,
    ) -> Object:
        """DELETE as the real server answers it: a Pod comes back terminating (and stays
        until "the kubelet" confirms, unless it never ran or has ended); an object with
        finalizers comes back with a deletionTimestamp; anything else is gone, and the answer
        is a Status."""
        stored = self.stored(resource, namespace, name)
        obj = copy.deepcopy(stored)
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if policy == "Foreground" and resource != PODS:
            finalizers.append("foregroundDeletion")
        if resource == PODS:
            phase = obj.get("status", {}).get("phase")
            running = obj.get("spec", {}).get("nodeName") and phase not in ("Succeeded", "Failed")
            grace = obj.get("spec", {}).get("terminationGracePeriodSeconds", 30) if running else 0
            again = "deletionTimestamp" in meta
            meta.setdefault("deletionTimestamp", now())
            meta.setdefault("deletionGracePeriodSeconds", grace)
            if not again:
                meta["generation"] = meta.get("generation", 1) + 1
            if not dry:
                if grace and not again and not finalizers:
                    meta["resourceVersion"] = self._bump()
                    self._keep(stored_as(resource), (namespace, name), obj)
                    self._emit("MODIFIED", resource, obj)
                else:
                    self.delete(resource, namespace, name)
            return copy.deepcopy(obj)
        if finalizers:
            meta["finalizers"] = finalizers
            if "deletionTimestamp" not in meta:
                meta["deletionTimestamp"] = now()
                meta["deletionGracePeriodSeconds"] = 0
                meta["generation"] = meta.get("generation", 1) + 1
            if not dry:
                meta["resourceVersion"] = self._bump()
                self._keep(stored_as(resource), (namespace, name), obj)
                self._emit("MODIFIED", resource, obj)
            return copy.deepcopy(obj)
        if not dry:
            self.delete(resource, namespace, name)
        details = {**object_details(resource, name), "uid": meta["uid"]}
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",  # and no `code`, unlike a refusal's Status
            "details": details,
        }

    # ---- internals ------------------------------------------------------------------------

    def _served(self, resource: Resource) -> None:
        """A group this server does not build in is served only by an installed CRD. Without
        one a real server answers 404, as recorded: `404 page not found` for a group/version
        it does not serve (24-discovery, 23-list-shapes), `the server could not find the
        requested resource` for an unknown resource of one it does (23-list-shapes)."""
        if resource.group in BUILT_IN_GROUPS:
            return
        plurals = set()
        for crd in self._store.get(stored_as(CRDS), {}).values():
            spec = crd.get("spec") or {}
            versions = [v.get("name") for v in spec.get("versions") or [] if v.get("served")]
            if spec.get("group") == resource.group and resource.version in versions:
                plurals.add((spec.get("names") or {}).get("plural"))
        if resource.plural in plurals:
            return
        message = "the server could not find the requested resource"
        raise NotFoundError(message if plurals else "404 page not found", {})

    def _validate(self, resource: Resource, obj: Object, only: str = "") -> None:
        if not self._validating:
            return
        schema = self._schemas.get(resource)
        if schema is not None:
            errors = [e for e in schema.errors(obj) if e.startswith(only)]
            if errors:  # the schema says no: say it as the API server words it
                defaulted = schema.defaulted(obj)
                causes = crd_causes(schema, defaulted, only)
                if not causes:
                    raise Invalid("; ".join(errors))
                raise invalid(resource, obj.get("metadata", {}).get("name"), causes)
        elif resource in (PODS, EVENTS, LEASES):
            try:
                kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                raise Invalid(f"{resource.kind} {obj['metadata'].get('name')}: {exc}") from exc

    def _admit_service_account(self, namespace: str, pod: Object) -> None:
        """The ServiceAccount admission plugin: a pod's account must exist ("default" is
        made in every namespace by a controller), even for a dry run."""
        account = pod.get("spec", {}).get("serviceAccountName") or "default"
        if account == "default" or (namespace, account) in self._store.get(
            stored_as(SERVICE_ACCOUNTS), {}
        ):
            return
        name = pod["metadata"]["name"]
        raise Forbidden(
            f'pods "{name}" is forbidden: error looking up service account '
            f'{namespace}/{account}: serviceaccount "{account}" not found',
            object_details(PODS, name),
        )

    def _keep(self, kind: Kind, key: tuple[str | None, str], obj: Object) -> None:
        """Store an object, indexing it under each owner it names (garbage collection)."""
        objects = self._store.setdefault(kind, {})
        if key not in objects:
            self._entered[(kind, key)] = next(self._entries)
        objects[key] = obj
        for ref in obj["metadata"].get("ownerReferences", []):
            self._dependents.setdefault(ref["uid"], set()).add((kind, key))

    def _remove(self, kind: Kind, key: tuple[str | None, str]) -> None:
        del self._store[kind][key]
        del self._entered[(kind, key)]

    def _collect_garbage(self, owner_uid: str) -> None:
        """Delete what names `owner_uid` among its ownerReferences, and what depends on that,
        in store order (kind by kind, each in the order stored). The index may name objects
        since deleted or rewritten without the reference: what is stored now decides."""
        kinds = {kind: index for index, kind in enumerate(self._store)}
        named = self._dependents.pop(owner_uid, set())
        stored = sorted(
            (entry for entry in named if entry in self._entered),
            key=lambda entry: (kinds[entry[0]], self._entered[entry]),
        )
        for (group, plural), key in stored:
            obj = self._store[(group, plural)].get(key)
            owners = obj["metadata"].get("ownerReferences", []) if obj else []
            if any(ref["uid"] == owner_uid for ref in owners):
                self._remove((group, plural), key)
                version = obj.get("apiVersion", "v1").rpartition("/")[2]
                resource = Resource(group, version, plural, obj.get("kind", ""))
                self._emit("DELETED", resource, obj)
                self._collect_garbage(obj["metadata"]["uid"])

    def _emit(self, kind: str, resource: Resource, obj: Object) -> None:
        meta = obj["metadata"]
        then = copy.deepcopy(obj)
        if kind == "DELETED":  # a deletion is a write too: it has its own resourceVersion
            then["metadata"]["resourceVersion"] = self._bump()
        event = WatchEvent(kind, resource, meta.get("namespace"), meta["name"], then)
        with self.changed:
            self.watch_events.append(event)
            self.changed.notify_all()


def _one_at_a_time(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def serialized(fake: FakeApi, *args: Any, **kwargs: Any) -> Any:
        with fake._serving:
            return method(fake, *args, **kwargs)

    return serialized


# The operator's writes overlap (a pool of threads, controller/writes.py), as do HTTP requests
# and the tests' kubelet side: each request runs whole, one after another, as a real server
# commits each write at its own resourceVersion; never kinder (no two requests served at once).
_SERVED = ("discovery", "get", "list", "list_versioned", "watch", "create", "delete",
           "patch_status", "replace_status", "replace", "update", "pod_log", "request_token",
           "put", "edit", "apply_spec", "set_pod_status", "finish_pod", "terminate")  # fmt: skip
for _name in _SERVED:
    setattr(FakeApi, _name, _one_at_a_time(getattr(FakeApi, _name)))


def _token_invalid(seconds: int, rule: str) -> InvalidError:
    message = f"Invalid value: {seconds}: {rule}"
    field = "spec.expirationSeconds"
    return invalid_options("TokenRequest", field, "FieldValueInvalid", message, GROUP_AUTHN)


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
