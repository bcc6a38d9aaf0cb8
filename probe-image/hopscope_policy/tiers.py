"""What every policy family answers about one direction of a flow: the contract between them.

A cluster can hold more than core NetworkPolicies: the Network Policy API's cluster-wide kinds
(ClusterNetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy) and a CNI's own kinds
(Cilium's, Calico's). Each family is evaluated as one or more `Tier`s; a direction's verdict is
the first tier's `Decision` that is not `Pass`, in the order the Network Policy API defines:
the Admin tier (by priority), then the CNI's tiers (which hold the cluster's NetworkPolicies, as
Cilium and Calico enforce them beside their own kinds), then the Baseline tier. A tier that has
nothing selecting the subject answers None and the next one decides; when none decides, the flow
is allowed by default, and the verdict says so.

`Unknown` is a decision: a construct the evaluator does not model (an L7 rule, an FQDN rule, a
selector on identities from outside the cluster) decides nothing, and the verdict names the
construct and the object instead of guessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from hopscope_policy.model import Direction, Flow, IPAddress, Pod


class Action(StrEnum):
    ALLOW = "Allow"  # ClusterNetworkPolicy's Accept, Calico's Allow
    DENY = "Deny"
    PASS = "Pass"  # skip the rest of this tier: the next tier decides
    UNKNOWN = "Unknown"  # a construct the evaluator does not model decides this flow


@dataclass(frozen=True, slots=True)
class RuleName:
    """The object (with its kind) and the rule in it that decided, as a user looks it up:
    `CiliumNetworkPolicy shop/deny-db ingressDeny[0]`, `ClusterNetworkPolicy isolate-tenants`."""

    kind: str
    name: str  # namespace/name for namespaced kinds, the name alone for cluster-scoped ones
    rule: str | None = None  # e.g. "ingress[2]"; None when the object decides as a whole

    def __str__(self) -> str:
        return f"{self.kind} {self.name}" + (f" {self.rule}" if self.rule else "")


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str  # one sentence a user reads, naming the rule or the default that decided
    rule: RuleName | None = None  # None only for a default no object states


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ips: tuple[IPAddress, ...] = ()  # status.addresses: InternalIP and ExternalIP


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One side of a flow as policies see it."""

    ip: IPAddress | None
    pod: Pod | None = None  # the pod at this address; hostNetwork pods included
    namespace_labels: Mapping[str, str] | None = None  # of the pod's namespace
    node: Node | None = None  # the node at this address (a node IP or a hostNetwork pod's)

    @property
    def selectable(self) -> Pod | None:
        """The pod as pod selectors see it: a hostNetwork pod is its node's traffic."""
        return self.pod if self.pod is not None and not self.pod.host_network else None

    def __str__(self) -> str:
        return str(self.pod.ref) if self.pod is not None else str(self.ip)


class Tier(Protocol):
    def decide(
        self,
        direction: Direction,
        subject: Endpoint,
        peer: Endpoint,
        flow: Flow,
        target: Pod | None,
    ) -> Decision | None:
        """Whether `subject` may send (egress) or receive (ingress) `flow` to/from `peer`.

        `target` is the destination pod whose container ports give named ports their number.
        None: nothing in this tier selects the subject in this direction.
        """
        ...


@runtime_checkable
class Selective(Protocol):
    """A tier that can say what its decision for a subject rests on besides the peer and the
    flow: `hopscope policy diff` evaluates only the flows where that differs between the two
    sets of manifests. A tier without it is compared on every pair (correct, slower)."""

    def selection(self, direction: Direction, subject: Endpoint) -> tuple[object, ...]:
        """The content (comparable between two loads, never identities) of what in this tier
        selects the subject in this direction, in the order it is evaluated; () for nothing."""
        ...
