"""The registry of policy families beyond core NetworkPolicy, and the order of their tiers.

A family registers the kinds it parses (`(apiGroup, kind) -> parser`), the type(s) of what its
parsers return (so `PolicyRules` can hand each family its objects), and how it builds its tiers,
each at a `Stage` of the chain the Network Policy API defines: Admin → the tier that holds the
cluster's NetworkPolicies (a CNI family evaluating them beside its own kinds is given the core
`NetworkPolicyTier` as `kubernetes` and replaces it) → Baseline. Two such families (two CNIs)
are refused together. A new family is a few lines here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import partial
from typing import Any

from hopscope_policy import calico, cilium, cluster
from hopscope_policy.calico_model import CalicoPolicy, CalicoTier
from hopscope_policy.cilium_model import CiliumPolicy
from hopscope_policy.evaluate import PolicyRules
from hopscope_policy.model import Namespace, Policy
from hopscope_policy.tiers import Node, Tier


class Stage(IntEnum):
    ADMIN = 0
    NETWORK_POLICY = 1  # core NetworkPolicies, alone or inside a CNI's tiers
    BASELINE = 2


TierBuilder = Callable[[Sequence[Any], Tier], Iterable[tuple[Stage, Tier]]]


@dataclass(frozen=True)
class Family:
    name: str
    kinds: Mapping[tuple[str, str], Callable[[Mapping[str, Any]], object]]
    types: tuple[type, ...]  # what the parsers return
    tiers: TierBuilder  # (this family's objects, the core NetworkPolicy tier) -> staged tiers
    holds_network_policies: bool = False  # its tiers evaluate `kubernetes` in its place


def _cluster_tiers(objects: Sequence[Any], kubernetes: Tier) -> list[tuple[Stage, Tier]]:
    return [
        (Stage.ADMIN, cluster.ClusterTier(objects, cluster.PolicyTier.ADMIN)),
        (Stage.BASELINE, cluster.ClusterTier(objects, cluster.PolicyTier.BASELINE)),
    ]


def _cilium_tiers(objects: Sequence[Any], kubernetes: Tier) -> list[tuple[Stage, Tier]]:
    # Cilium enforces the cluster's NetworkPolicies beside its own kinds, as one allow set.
    return [(Stage.NETWORK_POLICY, cilium.CiliumTier(objects, kubernetes=kubernetes))]


def _calico_tiers(objects: Sequence[Any], kubernetes: Tier) -> list[tuple[Stage, Tier]]:
    # Calico puts the cluster's NetworkPolicies in its default tier, at order 1000.
    policies = [obj for obj in objects if isinstance(obj, CalicoPolicy)]
    tiers = [obj for obj in objects if isinstance(obj, CalicoTier)]
    return [(Stage.NETWORK_POLICY, calico.CalicoTiers(policies, kubernetes, tiers))]


FAMILIES: tuple[Family, ...] = (
    Family("network-policy-api", cluster.KINDS, (cluster.ClusterPolicy,), _cluster_tiers),
    Family("cilium", cilium.KINDS, (CiliumPolicy,), _cilium_tiers, holds_network_policies=True),
    Family(
        "calico",
        calico.KINDS,
        (CalicoPolicy, CalicoTier),
        _calico_tiers,
        holds_network_policies=True,
    ),
)


class CNIConflict(ValueError):
    """Objects of two families that each enforce the cluster's NetworkPolicies (two CNIs)."""


def check_one_cni(found: Iterable[str]) -> None:
    """Refuse objects of two CNI families: a cluster's NetworkPolicies are enforced by one CNI,
    and Cilium (an allow union) and Calico (ordered tiers) give them different meanings, so no
    verdict over both could be right."""
    holders = sorted(
        family.name
        for family in FAMILIES
        if family.holds_network_policies and family.name in set(found)
    )
    if len(holders) > 1:
        raise CNIConflict(
            f"policies of {' and '.join(holders)} are given together: one CNI enforces a "
            "cluster's NetworkPolicies, so evaluate each CNI's policies on their own"
        )


def parser(api_version: str, kind: str) -> Callable[[Mapping[str, Any]], object] | None:
    """The parser of a registered kind; None for a kind no family reads."""
    group = api_version.rpartition("/")[0]
    for family in FAMILIES:
        if (group, kind) in family.kinds:
            return family.kinds[(group, kind)]
    return None


def family_of(obj: object) -> Family:
    for family in FAMILIES:
        if isinstance(obj, family.types):
            return family
    raise TypeError(f"{type(obj).__name__} is no registered policy family's object")


def chain(objects: Mapping[str, Sequence[Any]], kubernetes: Tier) -> list[Tier]:
    """Every tier in evaluation order. `objects` maps a family's name to its parsed objects;
    the core tier stands alone unless a family that holds NetworkPolicies has objects."""
    staged: list[tuple[Stage, int, Tier]] = []
    replaced = False
    for order, family in enumerate(FAMILIES):
        found = objects.get(family.name, ())
        if not found:
            continue
        replaced |= family.holds_network_policies
        staged += [(stage, order, tier) for stage, tier in family.tiers(found, kubernetes)]
    if not replaced:
        staged.append((Stage.NETWORK_POLICY, -1, kubernetes))
    staged.sort(key=lambda item: (item[0], item[1]))
    return [tier for _, _, tier in staged]


def rules(
    namespaces: Iterable[Namespace],
    policies: Iterable[Policy],
    objects: Iterable[object] = (),
    nodes: Iterable[Node] = (),
) -> PolicyRules:
    """`PolicyRules` whose chain holds the other families' parsed `objects` in their tiers."""
    grouped: dict[str, list[Any]] = defaultdict(list)
    for obj in objects:
        grouped[family_of(obj).name].append(obj)
    check_one_cni(grouped)
    return PolicyRules(namespaces, policies, nodes=nodes, chain=partial(chain, grouped))
