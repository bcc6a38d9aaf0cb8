"""The verbs behind the fake's REST paths (list, create, PUT, PATCH, DELETE, TokenRequest),
with the request options and answer shapes of the real API server; the store's own rules
(resourceVersions, validation, the status subresource) stay in FakeApi."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from hopscope_operator.cluster import CHECKS, NAMESPACES, PODS, SERVICE_ACCOUNTS, Object, Resource

from . import fake_fields as fields
from . import fake_negotiation as negotiation
from .fake_lists import check_version_match, continue_token, page
from .fake_patches import frozen, json_patch, strategic_merge
from .fake_routes import GROUP_VERSIONS, Route
from .fake_selectors_api import SelectorError, parse_field_selector, parse_label_selector
from .fake_status import (
    BadRequest,
    ConflictError,
    InvalidError,
    UnsupportedMediaType,
    cause,
    invalid_options,
    modified,
    object_details,
    qualified,
)
from .fake_tokens import API_AUDIENCE
from .fakeapi import FakeApi, merge_patch, now

PROPAGATION = ("Foreground", "Background", "Orphan")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def _dry_run(query: dict[str, str], options: str) -> bool:
    """dryRun=All; any other value is a 422 on the request's options (`dryRun=true` too)."""
    if "dryRun" not in query:
        return False
    if query["dryRun"] != "All":
        message = f'Unsupported value: ["{query["dryRun"]}"]: supported values: "All"'
        raise invalid_options(options, "dryRun", "FieldValueNotSupported", message)
    return True


def _version_in(patch: Any) -> str | None:
    """The resourceVersion a patch names: a precondition."""
    meta = patch.get("metadata") if isinstance(patch, dict) else None
    return meta.get("resourceVersion") if isinstance(meta, dict) else None


def built_in(resource: Resource) -> bool:
    """A kind with Go types (core, apps, ...) rather than a custom resource (hopscope's, or
    another group's served by a stored CRD)."""
    return resource.group != CHECKS.group and resource.api_version in GROUP_VERSIONS


class Writes:
    def __init__(self, fake: FakeApi) -> None:
        self.fake = fake

    # ---- reads ------------------------------------------------------------------------------

    def matcher(self, where: Route, query: dict[str, str]) -> Callable[[Object], bool]:
        """The query's label and field selectors; a bad one is a 400 with no details."""
        try:
            labels = parse_label_selector(query.get("labelSelector", ""))
            fields = parse_field_selector(query.get("fieldSelector", ""), where.resource.plural)
        except SelectorError as exc:
            raise BadRequest(str(exc)) from None
        return lambda obj: labels(obj["metadata"].get("labels") or {}) and fields(obj)

    def list(self, where: Route, query: dict[str, str]) -> Object:
        resource = where.resource
        check_version_match(query)
        items = self.fake.select(resource, where.namespace, self.matcher(where, query))
        if built_in(resource):  # a typed list's items carry no apiVersion or kind
            for item in items:
                item.pop("apiVersion", None)
                item.pop("kind", None)
        meta: Object = {"resourceVersion": self.fake.resource_version()}
        items, left = page(items, query, meta["resourceVersion"])
        if left:
            meta["continue"] = continue_token(int(meta["resourceVersion"]), items[-1])
            meta["remainingItemCount"] = left
        elif not built_in(resource):
            meta["continue"] = ""
        return {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.api_version,
            "metadata": meta,
            "items": items,
        }

    # ---- writes -----------------------------------------------------------------------------

    def _body(
        self, where: Route, query: dict[str, str], data: bytes, options: str, warned: list[str]
    ) -> Object:
        """The request body after fieldValidation: unknown and duplicate fields refused
        (Strict), or dropped with a Warning (Warn, the default) or without (Ignore)."""
        mode = fields.mode(query, options)
        try:
            body, duplicates = fields.decode(data)
        except ValueError as exc:
            raise BadRequest(f"the object provided is unrecognized: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequest("the object provided is unrecognized: not an object")
        unknown = fields.unknown(where.resource, body, self.fake.schema_of(where.resource))
        problems = [f'duplicate field "{d}"' for d in duplicates]
        problems += [f'unknown field "{u}"' for u in unknown]
        if problems and mode == "Strict":
            raise fields.refuse_on_create(where.resource, problems)
        if mode == "Warn":
            warned += [fields.warning(p) for p in problems]
        return fields.prune(body, unknown)

    def create(self, where: Route, query: dict[str, str], data: bytes, warned: list[str]) -> Object:
        dry = _dry_run(query, "CreateOptions")
        body = self._body(where, query, data, "CreateOptions", warned)
        kind = body.get("kind")
        if built_in(where.resource) and kind and kind != where.resource.kind:
            version, to = where.resource.version, where.resource.kind
            raise BadRequest(
                f'{kind} in version "{version}" cannot be handled as a {to}: converting '
                f"({version}.{kind}) to (core.{to}): unknown conversion"
            )
        if where.namespace is not None:  # a namespace's objects need the namespace
            self.fake.stored(NAMESPACES, None, where.namespace)
        sent = body.get("metadata", {}).get("namespace")
        if where.namespace and sent and sent != where.namespace:
            raise BadRequest(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        return self.fake.create(where.resource, where.namespace, body, dry=dry)

    def replace(
        self, where: Route, query: dict[str, str], data: bytes, warned: list[str]
    ) -> Object:
        resource, namespace, name = where.resource, where.namespace, where.name or ""
        body = self._body(where, query, data, "UpdateOptions", warned)
        sent = body.get("metadata", {}).get("name")
        if sent != name:
            raise BadRequest(
                f"the name of the object ({sent}) does not match the name on the URL ({name})"
            )
        stored = self.fake.stored(resource, namespace, name)
        version = body.get("metadata", {}).get("resourceVersion")
        if not version and not built_in(resource):  # pods allow unconditional updates
            message = "Invalid value: 0: must be specified for an update"
            field = "metadata.resourceVersion"
            details = {
                **object_details(resource, name),
                "causes": [cause("FieldValueInvalid", message, field)],
            }
            said = f'{qualified(resource)} "{name}" is invalid: {field}: {message}'
            raise InvalidError(said, details)  # details.kind is the plural here, as recorded
        if version and version != stored["metadata"]["resourceVersion"]:
            raise modified(resource, name)
        if where.sub == "status":
            return self.fake.replace_status(resource, namespace, name, body.get("status"))
        return self._update(resource, namespace, name, stored, body)

    def patch(
        self, where: Route, query: dict[str, str], kind: str, data: bytes, warned: list[str]
    ) -> Object:
        resource, namespace, name = where.resource, where.namespace, where.name or ""
        dry = _dry_run(query, "PatchOptions")
        mode = fields.mode(query, "PatchOptions")
        if kind == negotiation.APPLY:
            if not query.get("fieldManager"):
                message = "Required value: is required for apply patch"
                raise invalid_options("PatchOptions", "fieldManager", "FieldValueRequired", message)
            raise UnsupportedMediaType("the fake does not implement server-side apply")
        try:
            patch = json.loads(data)
        except ValueError as exc:
            said = "unexpected end of JSON input" if exc.pos >= len(data.strip()) else str(exc)  # type: ignore[attr-defined]
            raise BadRequest(f"error decoding patch: {said}") from None
        stored = self.fake.stored(resource, namespace, name)
        if kind == negotiation.JSON_PATCH:
            changed = json_patch(stored, patch)
        elif kind == negotiation.STRATEGIC:
            changed = strategic_merge(stored, patch)
        else:
            changed = merge_patch(stored, patch)
        assert isinstance(changed, dict)
        unknown = fields.unknown(resource, changed, self.fake.schema_of(resource))
        problems = [f'unknown field "{u}"' for u in unknown]
        if problems and mode == "Strict":
            raise fields.refuse_on_patch(changed, problems)
        if mode == "Warn":
            warned += [fields.warning(p) for p in problems]
        changed = fields.prune(changed, unknown)
        if where.sub == "status":
            version = _version_in(patch)
            status = changed.get("status") or {}
            return self.fake.patch_status(
                resource, namespace, name, status, version, whole=True, dry=dry
            )
        version = _version_in(patch)
        if version and version != stored["metadata"]["resourceVersion"]:
            raise modified(resource, name)
        return self._update(resource, namespace, name, stored, changed, dry=dry)

    def _update(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        stored: Object,
        new: Object,
        *,
        dry: bool = False,
    ) -> Object:
        if resource == PODS and frozen(stored.get("spec", {})) != frozen(new.get("spec", {})):
            message = (
                "Forbidden: pod updates may not change fields other than "
                "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
                "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if "
                "it was previously negative)"
            )
            details = {
                **object_details(resource, name, resource.kind),
                "causes": [cause("FieldValueForbidden", message, "spec")],
            }
            raise InvalidError(f'Pod "{name}" is invalid: spec: {message}', details)
        return self.fake.update(resource, namespace, name, new, dry=dry)

    def delete(self, where: Route, query: dict[str, str], body: Object | None) -> Object:
        # With a DeleteOptions body, the query's options are not read at all.
        options = body if body is not None else query
        policy = options.get("propagationPolicy")
        if policy is not None and policy not in PROPAGATION:
            supported = ", ".join(f'"{p}"' for p in (*PROPAGATION, "nil"))
            message = f'Unsupported value: "{policy}": supported values: {supported}'
            raise invalid_options(
                "DeleteOptions", "propagationPolicy", "FieldValueNotSupported", message
            )
        resource, namespace, name = where.resource, where.namespace, where.name or ""
        stored = self.fake.stored(resource, namespace, name)
        self._preconditions(resource, name, stored, options.get("preconditions") or {})
        dry = options.get("dryRun") in ("All", ["All"])
        return self.fake.terminate(resource, namespace, name, policy=policy, dry=dry)

    def _preconditions(self, resource: Resource, name: str, stored: Object, wanted: Object) -> None:
        meta = stored["metadata"]
        said = f'Operation cannot be fulfilled on {resource.kind}.{resource.group} "{name}"'
        if resource.group == "":
            said = f'Operation cannot be fulfilled on {resource.plural} "{name}"'
        details = object_details(resource, name, resource.kind)
        if "uid" in wanted and wanted["uid"] != meta["uid"]:
            raise ConflictError(
                f"{said}: the UID in the precondition ({wanted['uid']}) does not match the UID "
                f"in record ({meta['uid']}). The object might have been deleted and then "
                "recreated",
                details,
            )
        if "resourceVersion" in wanted and wanted["resourceVersion"] != meta["resourceVersion"]:
            raise ConflictError(
                f"{said}: the ResourceVersion in the precondition ({wanted['resourceVersion']}) "
                f"does not match the ResourceVersion in record ({meta['resourceVersion']}). "
                "The object might have been modified",
                details,
            )

    def token_request(self, where: Route, body: Object) -> Object:
        namespace, account = where.namespace or "", where.name or ""
        self.fake.stored(SERVICE_ACCOUNTS, namespace, account)
        spec = body.get("spec") or {}
        audiences = spec.get("audiences") or [API_AUDIENCE]
        seconds = spec.get("expirationSeconds", 3600)
        bound = spec.get("boundObjectRef")
        if bound is not None:
            pod = self.fake.stored(PODS, namespace, bound.get("name", ""))
            if pod.get("spec", {}).get("serviceAccountName", "default") != account:
                raise BadRequest(
                    f'cannot bind token for serviceaccount "{account}" to pod running with '
                    "different serviceaccount name."
                )
            uid = pod["metadata"]["uid"]
            bound = {"kind": "Pod", "apiVersion": "v1", "name": bound["name"], "uid": uid}
        pod = (bound["name"], bound["uid"]) if bound else None
        token = self.fake.request_token(
            namespace, account, ",".join(audiences), seconds, audiences=tuple(audiences), pod=pod
        )
        expires = datetime.now(UTC) + timedelta(seconds=seconds)
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {
                "name": account,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": now(),
            },
            "spec": {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": bound},
            "status": {"token": token, "expirationTimestamp": expires.strftime(TIME_FORMAT)},
        }
