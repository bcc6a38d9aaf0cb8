"""Which kinds of the registered policy families (`hopscope_policy.families.FAMILIES`) the
cluster serves, found by API discovery and looked up again now and then.

`GET /apis` names the groups the cluster serves; for each group a family reads,
`GET /apis/<group>/<version>` names its resources (plural, scope, verbs), the preferred version
first. Only kinds found so are read: a cluster without Cilium gets no request for Cilium's kinds.
Discovery runs again every REDISCOVER (a CRD installed after the operator started) and at the
next read after a list of a kind answered 404 (its CRD was removed). A failed discovery keeps
what the last one found; with none found yet, it raises and the analysis says Unknown.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from hopscope_operator.cluster import ApiError, ClusterApi, Object, Resource
from hopscope_policy import families

REDISCOVER = timedelta(minutes=5)


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


class PolicyKinds:
    """The served policy kinds, discovered at first use and again every REDISCOVER."""

    def __init__(self, api: ClusterApi, clock: Callable[[], datetime]) -> None:
        self.api = api
        self.clock = clock
        self._found: tuple[PolicyKind, ...] | None = None
        self._due: datetime | None = None  # when to discover again

    def served(self) -> tuple[PolicyKind, ...]:
        """The kinds to read; an ApiError when discovery fails before anything was found."""
        now = self.clock()
        if self._found is None or self._due is None or now >= self._due:
            try:
                self._found = discover(self.api)
            except ApiError:
                if self._found is None:
                    raise
            self._due = now + REDISCOVER
        return self._found

    def gone(self) -> None:
        """A kind's list answered 404: its CRD was removed, discover again at the next read."""
        self._due = None


def discover(api: ClusterApi) -> tuple[PolicyKind, ...]:
    wanted = registered()
    listed = api.discovery("/apis") or {}
    found: list[PolicyKind] = []
    for group in listed.get("groups") or []:
        name = group.get("name")
        if name in wanted:
            found += _group_kinds(api, group, wanted[name])
    return tuple(sorted(found, key=lambda kind: kind.part))


def _group_kinds(api: ClusterApi, group: Object, kinds: set[str]) -> list[PolicyKind]:
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
