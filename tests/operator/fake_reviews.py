"""SelfSubjectAccessReview and SelfSubjectReview ("kubectl auth can-i / whoami") as the real
API server answers them, for the identities the fake knows.

- an allowed request of the operator's ServiceAccount names the chart binding that allows it,
  ClusterRoleBindings first, as the RBAC authorizer does; a refused one is only
  `allowed: false`; cluster-admin (system:masters) is allowed with no reason;
- /healthz and the other public paths are allowed to anyone authenticated by
  system:public-info-viewer;
- a review that names neither resourceAttributes nor nonResourceAttributes is a 422.
"""

from __future__ import annotations

import copy

from hopscope_operator import names
from hopscope_operator.cluster import Object
from hopscope_operator.install.rbac import ROLE_NAMES, RULES, Scope

from .fake_auth import OPERATOR, PUBLIC_PATHS, Identity
from .fake_status import InvalidError, cause
from .fakeapi import now

PUBLIC = "system:public-info-viewer"
NEITHER = "exactly one of nonResourceAttributes or resourceAttributes must be specified"


def access_review(who: Identity, body: Object) -> Object:
    spec = body.get("spec") or {}
    resource, other = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if (resource is None) == (other is None):
        message = f"Invalid value: null: {NEITHER}"
        causes = [cause("FieldValueInvalid", message, "spec.resourceAttributes")]
        details = {"group": "authorization.k8s.io", "causes": causes}
        raise InvalidError(
            f'.authorization.k8s.io "" is invalid: spec.resourceAttributes: {message}', details
        )
    status: Object
    if other is not None:
        allowed = other.get("path") in PUBLIC_PATHS and other.get("verb") == "get"
        reason = f'ClusterRoleBinding "{PUBLIC}" of ClusterRole "{PUBLIC}" to Group'
        status = {"allowed": True, "reason": f'RBAC: allowed by {reason} "system:authenticated"'}
        status = status if allowed else {"allowed": False}
    else:
        status = _resource_status(who, resource)
    return {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": copy.deepcopy(spec),
        "status": status,
    }


def _resource_status(who: Identity, attributes: Object) -> Object:
    plural = attributes.get("resource", "")
    if attributes.get("subresource"):
        plural += f"/{attributes['subresource']}"
    verb, namespace = attributes.get("verb", ""), attributes.get("namespace") or None
    name, group = attributes.get("name") or None, attributes.get("group", "")
    if not who.may(verb, group, plural, namespace, name):
        return {"allowed": False}
    if who != OPERATOR:
        return {"allowed": True}
    return {
        "allowed": True,
        "reason": f"RBAC: allowed by {_binding(verb, plural, namespace, name)}",
    }


def _binding(verb: str, plural: str, namespace: str | None, name: str | None) -> str:
    """The chart's binding (cluster-wide install) that grants the request, as RBAC names it."""
    account = f'ServiceAccount "{names.NAME}/{names.NAMESPACE}"'
    for scope in (Scope.CLUSTER, Scope.WATCHED, Scope.PROBES):  # ClusterRoleBindings first
        for rule in RULES:
            granted = rule.scope == scope and verb in rule.verbs and plural in rule.resources
            granted = granted and (not rule.names or name in rule.names)
            if granted and (scope != Scope.PROBES or namespace == names.NAMESPACE):
                role = ROLE_NAMES[scope]
                if scope == Scope.PROBES:
                    return f'RoleBinding "{role}/{namespace}" of Role "{role}" to {account}'
                return f'ClusterRoleBinding "{role}" of ClusterRole "{role}" to {account}'
    return "an unknown binding"


def self_review(who: Identity) -> Object:
    groups = list(who.groups)
    if "system:authenticated" not in groups:
        groups.append("system:authenticated")
    return {
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": now()},
        "status": {"userInfo": {"username": who.user, "groups": groups}},
    }
