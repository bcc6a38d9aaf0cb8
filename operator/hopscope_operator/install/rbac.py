"""The chart's least-privilege RBAC, derived from what the operator does.

`RULES` is the single list: every API call the operator makes is one of them, with why and where
(`Scope`) it is granted; a test replays the operator's stories against the in-memory API server
and fails if it made a call these rules do not grant (`allows`). `manifests()` and
`watch_bindings()` write them as the roles and bindings of templates/rbac.yaml.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

import yaml

from hopscope_operator.api import GROUP, ClusterConnectivityCheck, ConnectivityCheck
from hopscope_operator.install.values import Manifest, meta, values_ref
from hopscope_operator.names import AGENT_TOKEN_REVIEWER, DNS_NAMESPACE, LEASE, NAME, NAMESPACE
from hopscope_policy import families


class Scope(StrEnum):
    """Where a rule is granted."""

    CLUSTER = "cluster"  # cluster-scoped kinds: a ClusterRoleBinding
    WATCHED = "watched"  # every namespace, or with watch.namespaces a RoleBinding in each
    PROBES = "probes"  # the probe namespace only
    CLUSTER_DNS = "clusterDns"  # with watch.namespaces: what the DNS analysis reads in kube-system


@dataclass(frozen=True)
class Rule:
    group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str
    scope: Scope = Scope.WATCHED
    names: tuple[str, ...] = ()  # resourceNames: only these objects

    def as_rbac(self) -> Manifest:
        rule: Manifest = {
            "apiGroups": [self.group],
            "resources": list(self.resources),
            "verbs": list(self.verbs),
        }
        if self.names:
            rule["resourceNames"] = list(self.names)
        return rule


# The other policy families' kinds (hopscope_policy.families) as their CRDs or API servers
# define them: (group, kind) -> (plural, namespaced). The chart is rendered before any cluster
# is discovered, so these are written down; only registered kinds are granted, and a registered
# kind missing here fails the chart's generation. Calico's are projectcalico.org/v3, served by
# its aggregated API server or by its native v3 CRDs (crd.projectcalico.org/v1 is the API
# server's internal storage: not read).
POLICY_KINDS: dict[tuple[str, str], tuple[str, bool]] = {
    ("policy.networking.k8s.io", "ClusterNetworkPolicy"): ("clusternetworkpolicies", False),
    ("policy.networking.k8s.io", "AdminNetworkPolicy"): ("adminnetworkpolicies", False),
    ("policy.networking.k8s.io", "BaselineAdminNetworkPolicy"): (
        "baselineadminnetworkpolicies",
        False,
    ),
    ("cilium.io", "CiliumNetworkPolicy"): ("ciliumnetworkpolicies", True),
    ("cilium.io", "CiliumClusterwideNetworkPolicy"): ("ciliumclusterwidenetworkpolicies", False),
    ("projectcalico.org", "NetworkPolicy"): ("networkpolicies", True),
    ("projectcalico.org", "GlobalNetworkPolicy"): ("globalnetworkpolicies", False),
    ("projectcalico.org", "Tier"): ("tiers", False),
}


def policy_kind_rules() -> tuple[Rule, ...]:
    """list/watch on every registered kind: a namespaced kind where NetworkPolicies are read
    (the watched namespaces and kube-system's, which may block DNS), a cluster-scoped one by
    the ClusterRoleBinding every install has (its policies select the watched pods too)."""
    plurals: dict[tuple[str, Scope], list[str]] = {}
    for family in families.FAMILIES:
        for key in sorted(family.kinds):
            if key not in POLICY_KINDS:
                raise ValueError(f"no RBAC for {key[1]} ({key[0]}): add it to POLICY_KINDS")
            plural, namespaced = POLICY_KINDS[key]
            scopes = (Scope.WATCHED, Scope.CLUSTER_DNS) if namespaced else (Scope.CLUSTER,)
            for scope in scopes:
                plurals.setdefault((key[0], scope), []).append(plural)
    why = {
        Scope.WATCHED: "policies that may block a flow",
        Scope.CLUSTER_DNS: "policies that may block DNS",
        Scope.CLUSTER: "cluster-wide policies that may block a flow",
    }
    return tuple(
        Rule(group, tuple(found), ("list", "watch"), why[scope], scope)
        for (group, scope), found in plurals.items()
    )


RULES = (
    Rule(GROUP, (ConnectivityCheck.plural,), ("get", "list", "watch"), "read and watch checks"),
    Rule(GROUP, (f"{ConnectivityCheck.plural}/status",), ("patch",), "write results"),
    # Cluster-scoped, yet WATCHED: bound cluster-wide they are granted; by the RoleBindings of
    # a namespaced install they are not (a RoleBinding grants no cluster-scoped kind).
    Rule(
        GROUP,
        (ClusterConnectivityCheck.plural,),
        ("get", "list", "watch"),
        "read and watch cluster-scoped checks",
    ),
    Rule(GROUP, (f"{ClusterConnectivityCheck.plural}/status",), ("patch",), "write results"),
    # Pods, Services, EndpointSlices, NetworkPolicies, namespaces and nodes are read from
    # watch-fed caches (controller/analysis_cache.py): listed once, then watched; never a get.
    Rule("", ("pods",), ("list", "watch"), "resolve pod sources and destinations"),
    Rule("", ("services",), ("list", "watch"), "Service destinations, by name or ClusterIP"),
    Rule("discovery.k8s.io", ("endpointslices",), ("list", "watch"), "a Service's ready endpoints"),
    Rule("apps", ("deployments", "statefulsets", "daemonsets"), ("get",), "workload sources"),
    Rule(
        "networking.k8s.io", ("networkpolicies",), ("list", "watch"), "which policy blocks a flow"
    ),
    Rule("", ("events",), ("create",), "Events for a first run, a new outcome, a transition"),
    Rule("", ("configmaps",), ("get",), "a check's CA bundle (spec.http.caBundle)"),
    Rule("", ("nodes",), ("list", "watch"), "node sources and destinations", Scope.CLUSTER),
    Rule("", ("namespaces",), ("list", "watch"), "policy selectors; kopf's scan", Scope.CLUSTER),
    Rule(
        "apiextensions.k8s.io",
        ("customresourcedefinitions",),
        ("list", "watch"),
        "kopf",
        Scope.CLUSTER,
    ),
    Rule("", ("pods",), ("create", "delete"), "probe pods", Scope.PROBES),
    Rule("", ("pods/log",), ("get",), "read a probe pod's result", Scope.PROBES),
    Rule(
        "",
        ("serviceaccounts/token",),
        ("create",),
        "its own token for one agent pod (that pod's audience alone)",
        Scope.PROBES,
        names=(NAME,),
    ),
    # Leader election (controller/leader.py). A create cannot be limited by name; a read
    # of the namespace's Leases shows no more than which replica leads.
    Rule("coordination.k8s.io", ("leases",), ("get", "create"), "the leader Lease", Scope.PROBES),
    Rule(
        "coordination.k8s.io",
        ("leases",),
        ("update",),
        "renew, take over or release the leader Lease",
        Scope.PROBES,
        names=(LEASE,),
    ),
    # The analysis caches' reads in kube-system for a namespaced install: the same kinds.
    Rule("", ("services",), ("list", "watch"), "the cluster DNS Service", Scope.CLUSTER_DNS),
    Rule(
        "discovery.k8s.io",
        ("endpointslices",),
        ("list", "watch"),
        "its endpoints",
        Scope.CLUSTER_DNS,
    ),
    Rule(
        "",
        ("pods",),
        ("list", "watch"),
        "the DNS pods, for policies' selectors",
        Scope.CLUSTER_DNS,
    ),
    Rule(
        "networking.k8s.io",
        ("networkpolicies",),
        ("list", "watch"),
        "policies that may block DNS",
        Scope.CLUSTER_DNS,
    ),
    *policy_kind_rules(),
)


def allows(
    verb: str,
    plural: str,
    namespace: str | None,
    name: str | None = None,
    *,
    group: str | None = None,
    watched: Collection[str] = (),
) -> bool:
    """Whether the chart's RBAC grants `verb` on `plural` (as the API would see it) of API
    `group` (None: any, for a caller that names only the plural) in `namespace` (None: across
    all namespaces, or a cluster-scoped kind) of the object `name` (None: unnamed, as a list
    is), for an install that watches `watched` (`reconcile.Settings.watched`; empty:
    cluster-wide)."""
    return any(
        verb in rule.verbs
        and (group is None or group == rule.group)
        and plural in rule.resources
        and (not rule.names or name in rule.names)
        and _granted_in(rule.scope, namespace, watched)
        for rule in RULES
    )


def _granted_in(scope: Scope, namespace: str | None, watched: Collection[str]) -> bool:
    if scope == Scope.CLUSTER:
        return True
    if scope == Scope.WATCHED:
        return not watched or namespace in watched
    if scope == Scope.PROBES:
        return namespace == NAMESPACE
    return bool(watched) and namespace == DNS_NAMESPACE


def manifests() -> list[Manifest]:
    """The documents of templates/rbac.yaml before `watch_bindings()`."""
    return [
        *_role(Scope.CLUSTER, "ClusterRole", "ClusterRoleBinding"),
        _role(Scope.WATCHED, "ClusterRole")[0],  # bound by the template of `watch_bindings`
        *_role(Scope.PROBES, "Role", "RoleBinding", NAMESPACE),
        # For gateway workloads' ServiceAccounts, bound by their owners (the sidecar snippet
        # says how): all a probe sidecar asks the API is whether a caller's token is valid.
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": meta(AGENT_TOKEN_REVIEWER, None),
            "rules": [
                {
                    "apiGroups": ["authentication.k8s.io"],
                    "resources": ["tokenreviews"],
                    "verbs": ["create"],
                }
            ],
        },
    ]


# For people, not the operator: a namespace's editors and admins may create checks there, its
# viewers read them. Safe to hand out with `edit` only under the default tenancy values (a
# check then reaches no further than `pods/exec` on that namespace's pods), hence the switch.
# ClusterConnectivityChecks probe from any node or namespace: their admin role is aggregated
# into no default role, it is bound to whom the cluster's owner chooses.
WRITE_VERBS = ("create", "delete", "deletecollection", "get", "list", "watch", "update", "patch")
USER_ROLES = {
    f"{NAME}-checks-edit": ((ConnectivityCheck.plural,), WRITE_VERBS, ("edit", "admin")),
    f"{NAME}-checks-view": (
        (ConnectivityCheck.plural, ClusterConnectivityCheck.plural),
        ("get", "list", "watch"),
        ("view",),
    ),
    f"{NAME}-cluster-checks-admin": ((ClusterConnectivityCheck.plural,), WRITE_VERBS, ()),
}
AGGREGATE_LABEL = "rbac.authorization.k8s.io/aggregate-to-{role}"


def user_roles() -> str:
    """The ClusterRoles for people (text: the aggregation labels are behind a value)."""
    switch = values_ref("tenancy.aggregateToDefaultRoles")
    out = ""
    for name, (resources, verbs, aggregated) in USER_ROLES.items():
        role = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": meta(name, None),
            "rules": [{"apiGroups": [GROUP], "resources": list(resources), "verbs": list(verbs)}],
        }
        text = yaml.safe_dump(role, sort_keys=False)
        if not aggregated:
            out += f"---\n{text}"
            continue
        labels = "".join(f'    {AGGREGATE_LABEL.format(role=r)}: "true"\n' for r in aggregated)
        # Under metadata.labels, which meta() always writes first.
        anchor = "  labels:\n"
        text = text.replace(anchor, f"{anchor}{{{{- if {switch} }}}}\n{labels}{{{{- end }}}}\n", 1)
        out += f"---\n{text}"
    return out


# In a namespaced install: the namespaces listed and the release's own (probe pods live there),
# as reconcile.Settings.watched has them.
WATCHED_NAMESPACES = f"append {values_ref('watch.namespaces')} .Release.Namespace | uniq"
ROLE_NAMES = {
    Scope.CLUSTER: NAME,
    Scope.WATCHED: f"{NAME}-watch",
    Scope.PROBES: NAME,
    Scope.CLUSTER_DNS: f"{NAME}-cluster-dns",
}


def _role(
    scope: Scope, kind: str, binding_kind: str | None = None, namespace: str | None = None
) -> list[Manifest]:
    """The role holding the rules of `scope`, and a binding of it to the operator's account."""
    name = ROLE_NAMES[scope]
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta(name, namespace),
        "rules": [rule.as_rbac() for rule in RULES if rule.scope == scope],
    }
    if binding_kind is None:
        return [role]
    return [role, _binding(binding_kind, kind, name, namespace)]


def _binding(kind: str, role_kind: str, role: str, namespace: str | None) -> Manifest:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta(role, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
    }


def watch_bindings() -> str:
    """Where the WATCHED rules apply: everywhere (a ClusterRoleBinding), or with
    watch.namespaces a RoleBinding in each of them and the release namespace, plus the
    kube-system reads the DNS analysis needs."""
    watched = ROLE_NAMES[Scope.WATCHED]
    per_namespace = _binding("RoleBinding", "ClusterRole", watched, "{{ $namespace }}")
    everywhere = _binding("ClusterRoleBinding", "ClusterRole", watched, None)
    listed = values_ref("watch.namespaces")
    return (
        f"{{{{- if {listed} }}}}\n"
        f"{{{{- range $namespace := {WATCHED_NAMESPACES} }}}}\n"
        f"---\n{yaml.safe_dump(per_namespace, sort_keys=False)}"
        "{{- end }}\n"
        + "".join(
            f"---\n{yaml.safe_dump(doc, sort_keys=False)}"
            for doc in _role(Scope.CLUSTER_DNS, "Role", "RoleBinding", DNS_NAMESPACE)
        )
        + f"{{{{- else }}}}\n---\n{yaml.safe_dump(everywhere, sort_keys=False)}{{{{- end }}}}\n"
    )
