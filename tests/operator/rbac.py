"""Kubernetes' RBAC authorizer, over rendered manifests: may a ServiceAccount make a request?

What the API server does: a ClusterRoleBinding grants its ClusterRole's rules in every namespace
and for cluster-scoped kinds; a RoleBinding grants its Role's (or a ClusterRole's) rules in the
binding's own namespace only. Rules match on verb, API group and resource ("*" matches any), and
a rule with resourceNames only on a request that names one of them.
"""

from __future__ import annotations

from typing import Any

Manifest = dict[str, Any]


class Authorizer:
    def __init__(self, docs: list[Manifest]) -> None:
        self.roles = {
            (doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"]): doc["rules"]
            for doc in docs
            if doc["kind"] in ("Role", "ClusterRole")
        }
        self.bindings = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]

    def allows(
        self,
        account: tuple[str, str],
        verb: str,
        resource: str,
        namespace: str | None,
        name: str | None = None,
        *,
        group: str | None = None,
    ) -> bool:
        """`account` is (namespace, name); `namespace` None is a cluster-scoped request or one
        across all namespaces; `name` the object's (None for a list or a create by body);
        `group` the resource's API group ("" core; None: any, for a caller naming a plural)."""
        return any(
            self._binds(binding, account)
            and self._in_scope(binding, namespace)
            and any(_matches(rule, verb, group, resource, name) for rule in self._rules_of(binding))
            for binding in self.bindings
        )

    def _binds(self, binding: Manifest, account: tuple[str, str]) -> bool:
        subject = {"kind": "ServiceAccount", "namespace": account[0], "name": account[1]}
        return any(
            {key: s.get(key) for key in subject} == subject for s in binding.get("subjects", [])
        )

    def _in_scope(self, binding: Manifest, namespace: str | None) -> bool:
        if binding["kind"] == "ClusterRoleBinding":
            return True
        return namespace is not None and namespace == binding["metadata"]["namespace"]

    def _rules_of(self, binding: Manifest) -> list[Manifest]:
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        return self.roles.get((ref["kind"], namespace, ref["name"]), [])


def _matches(rule: Manifest, verb: str, group: str | None, resource: str, name: str | None) -> bool:
    verbs, resources = rule.get("verbs", []), rule.get("resources", [])
    groups, names = rule.get("apiGroups", []), rule.get("resourceNames")
    return (
        (verb in verbs or "*" in verbs)
        and (group is None or group in groups or "*" in groups)
        and (resource in resources or "*" in resources)
        and (not names or name in names)
    )
