"""Discovery-lite for `policy-check`: the policy kinds a cluster serves, read with one list each.

Every kind of every family registered in `hopscope_policy.families`, plus core NetworkPolicy,
is listed across the cluster. A 404 on a kind's list means its CRD is not installed: the kind
is absent, silently (a cluster without Cilium has no CiliumNetworkPolicies to miss). Any other
refusal (a 403 most often) is reported by kind: the verdict may then be incomplete. Calico's
policies are read at projectcalico.org/v3; a cluster that serves them only in their storage form
(crd.projectcalico.org/v1, no Calico API server) has them counted: the verdict is incomplete.

A kind with several API versions (ClusterNetworkPolicy v1alpha2, v1beta1) is listed at each
version the parser reads, in order, until one is served.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hopscope_operator.cluster import NETWORK_POLICIES, ApiError, ClusterApi, NotFound, Object
from hopscope_operator.cluster import Resource as ApiResource
from hopscope_policy import calico, cilium, cluster, families

# The API versions each family's parsers read, by group (families register group and kind).
VERSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    cluster.GROUP: dict(cluster.VERSIONS),
    "cilium.io": {kind: ("v2",) for _, kind in cilium.KINDS},
    "projectcalico.org": {kind: ("v3",) for _, kind in calico.KINDS},
}


@dataclass(frozen=True)
class PolicyKind:
    group: str
    kind: str
    versions: tuple[str, ...]

    @property
    def plural(self) -> str:
        # Every registered kind ends in "Policy": the API's plural is "...policies".
        lower = self.kind.lower()
        return lower[:-1] + "ies" if lower.endswith("y") else lower + "s"

    def resources(self) -> list[ApiResource]:
        return [ApiResource(self.group, v, self.plural, self.kind) for v in self.versions]


# Calico's storage form, which no family reads: counted where projectcalico.org/v3 is not
# served, so a verdict they may change is not given as complete.
CALICO_GROUP = "crd.projectcalico.org"
NOT_EVALUATED = [
    PolicyKind(CALICO_GROUP, kind, ("v1",)) for kind in ("NetworkPolicy", "GlobalNetworkPolicy")
]


@dataclass
class PolicyObjects:
    """What the cluster holds: objects with apiVersion and kind set (a list's items lack
    them), the kinds that could not be read, with why, and how many objects of kinds no
    family evaluates it holds."""

    objects: list[Object] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)  # kind -> the API's refusal
    not_evaluated: dict[str, int] = field(default_factory=dict)  # "group kind" -> objects


def registered() -> list[PolicyKind]:
    """Core NetworkPolicy first, then every registered family's kinds in registry order."""
    found = [PolicyKind(NETWORK_POLICIES.group, NETWORK_POLICIES.kind, (NETWORK_POLICIES.version,))]
    for family in families.FAMILIES:
        for group, kind in family.kinds:
            found.append(PolicyKind(group, kind, VERSIONS[group][kind]))
    return found


def read(api: ClusterApi) -> PolicyObjects:
    found = PolicyObjects()
    served: set[str] = set()  # groups with a kind listed
    for kind in registered():
        listed = _list(api, kind, found)
        if listed is not None:
            resource, items = listed
            served.add(kind.group)
            typed = {"apiVersion": resource.api_version, "kind": resource.kind}
            found.objects += [{**item, **typed} for item in items]
    for kind in NOT_EVALUATED if calico.GROUP not in served else ():
        listed = _list(api, kind, found, f"{kind.group} {kind.kind}")
        if listed is not None and listed[1]:
            found.not_evaluated[f"{kind.group} {kind.kind}"] = len(listed[1])
    return found


def _list(
    api: ClusterApi, kind: PolicyKind, found: PolicyObjects, shown: str | None = None
) -> tuple[ApiResource, list[Object]] | None:
    """The kind's objects at the first version served; None when none is (or it is refused,
    noted in `found.unreadable`)."""
    for resource in kind.resources():
        try:
            return resource, api.list(resource, None)
        except NotFound:
            continue  # not served at this version (or at all: the CRD is not installed)
        except ApiError as exc:
            found.unreadable[shown or kind.kind] = str(exc) or type(exc).__name__
            return None
    return None
