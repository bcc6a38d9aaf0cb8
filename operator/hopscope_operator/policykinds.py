"""Which kinds of the registered policy families (`hopscope_policy.families.FAMILIES`) the
cluster serves, found by API discovery: what the operator's analysis and `kubectl hopscope
policy-check` read.

`GET /apis` names the groups the cluster serves; for each group wanted,
`GET /apis/<group>/<version>` names its resources (plural, scope, verbs), the preferred version
first. Only kinds found so are read: a cluster without Cilium gets no request for Cilium's kinds.
Discovery is allowed to every authenticated user (the system:discovery ClusterRole); a failure
is the caller's ApiError.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Set
from dataclasses import dataclass

from hopscope_operator.cluster import ClusterApi, Object, Resource
from hopscope_policy import families


@dataclass(frozen=True)
class PolicyKind:
    resource: Resource
    namespaced: bool

    @property
    def part(self) -> str:
        """The kind as `kubectl get` and RBAC name it: `ciliumnetworkpolicies.cilium.io`."""
        return f"{self.resource.plural}.{self.resource.group}"


def registered() -> dict[str, set[str]]:
    """API group -> the kinds some registered family parses."""
    kinds: dict[str, set[str]] = defaultdict(set)
    for family in families.FAMILIES:
        for group, kind in family.kinds:
            kinds[group].add(kind)
    return kinds


def discover(
    api: ClusterApi, wanted: Mapping[str, Set[str]] | None = None
) -> tuple[PolicyKind, ...]:
    """The served kinds of `wanted` (API group -> kinds; None: `registered()`), by name."""
    wanted = registered() if wanted is None else wanted
    listed = api.discovery("/apis") or {}
    found: list[PolicyKind] = []
    for group in listed.get("groups") or []:
        name = group.get("name")
        if name in wanted:
            found += _group_kinds(api, group, wanted[name])
    return tuple(sorted(found, key=lambda kind: kind.part))


def _group_kinds(api: ClusterApi, group: Object, kinds: Set[str]) -> list[PolicyKind]:
    """Each wanted kind at the first version that serves it, the preferred version first."""
    preferred = (group.get("preferredVersion") or {}).get("version")
    versions = [v["version"] for v in group.get("versions") or []]
    versions.sort(key=lambda version: version != preferred)  # stable: the server's order after
    found: dict[str, PolicyKind] = {}
    for version in versions:
        if kinds <= found.keys():
            break
        document = api.discovery(f"/apis/{group['name']}/{version}")
        for entry in (document or {}).get("resources") or []:
            kind = entry.get("kind")
            listable = "list" in (entry.get("verbs") or [])
            if "/" in entry["name"] or kind not in kinds or kind in found or not listable:
                continue
            resource = Resource(group["name"], version, entry["name"], kind)
            found[kind] = PolicyKind(resource, bool(entry.get("namespaced")))
    return list(found.values())
