"""The policies `policy-check` reads: core NetworkPolicies, and the registered families' kinds
the cluster serves, found by the operator's discovery (`hopscope_operator.policykinds`), each
listed across the cluster.

A kind's list refused (a 403 most often) is reported by kind: the verdict may then be
incomplete; a 404 means its CRD went since discovery, and the kind is absent. A failed
discovery leaves only the core NetworkPolicies read, and says so. Calico's policies are read at
projectcalico.org/v3; a cluster that serves them only in their storage form
(crd.projectcalico.org/v1, no Calico API server) has them counted: the verdict is incomplete.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hopscope_operator.cluster import NETWORK_POLICIES, ApiError, ClusterApi, NotFound, Object
from hopscope_operator.cluster import Resource as ApiResource
from hopscope_operator.policykinds import discover, registered
from hopscope_policy import calico

# Calico's storage form, which no family reads: counted where projectcalico.org/v3 is not
# served, so a verdict they may change is not given as complete.
STORAGE_GROUP = "crd.projectcalico.org"
NOT_EVALUATED = {STORAGE_GROUP: {"NetworkPolicy", "GlobalNetworkPolicy"}}


@dataclass
class PolicyObjects:
    """What the cluster holds: objects with apiVersion and kind set (a list's items lack
    them), the kinds that could not be read, with why, how many objects of kinds no family
    evaluates it holds, and why discovery failed (empty: it did not)."""

    objects: list[Object] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)  # Kind.group -> the API's refusal
    not_evaluated: dict[str, int] = field(default_factory=dict)  # "group kind" -> objects
    undiscovered: str = ""


def read(api: ClusterApi) -> PolicyObjects:
    found = PolicyObjects()
    _add(api, NETWORK_POLICIES, found)  # built in: served by every cluster, no discovery
    try:
        kinds = discover(api, {**registered(), **NOT_EVALUATED})
    except ApiError as exc:
        found.undiscovered = str(exc) or type(exc).__name__
        return found
    evaluated = [kind.resource for kind in kinds if kind.resource.group != STORAGE_GROUP]
    for resource in evaluated:
        _add(api, resource, found)
    if any(resource.group == calico.GROUP for resource in evaluated):
        return found  # the storage form lists the very policies read at v3
    for kind in kinds:
        if kind.resource.group == STORAGE_GROUP and (items := _list(api, kind.resource, found)):
            found.not_evaluated[f"{STORAGE_GROUP} {kind.resource.kind}"] = len(items)
    return found


def _add(api: ClusterApi, resource: ApiResource, found: PolicyObjects) -> None:
    typed = {"apiVersion": resource.api_version, "kind": resource.kind}
    found.objects += [{**item, **typed} for item in _list(api, resource, found)]


def _list(api: ClusterApi, resource: ApiResource, found: PolicyObjects) -> list[Object]:
    """The kind's objects; none when it is not served (or refused, noted in `found`)."""
    try:
        return api.list(resource, None)
    except NotFound:
        return []  # its CRD was removed since discovery
    except ApiError as exc:
        found.unreadable[f"{resource.kind}.{resource.group}"] = str(exc) or type(exc).__name__
        return []
