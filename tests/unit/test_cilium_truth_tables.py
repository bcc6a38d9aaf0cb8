"""Cilium truth tables: each case is objects, one flow and the expected action and deciding rule.

Pods: shop/web (app=web, 10.0.1.1, node-1), shop/db (app=db, 10.0.1.2, node-2), other/cli
(app=cli, 10.0.2.1, node-1); 203.0.113.9 stands for an outside address (never sent to).
"""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

import pytest

from hopscope_policy.cilium import KINDS, CiliumTier
from hopscope_policy.evaluate import Flow, NetworkPolicyTier, PolicyIndex, PolicyRules
from hopscope_policy.model import Direction, L4Protocol, PodRef, parse_pod, parse_policy
from hopscope_policy.tiers import Action

PODS = [
    ("shop", "web", "10.0.1.1", 1),
    ("shop", "db", "10.0.1.2", 2),
    ("other", "cli", "10.0.2.1", 1),
]
DB = {"matchLabels": {"app": "db"}}


def pod(ns: str, name: str, ip: str, node: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"nodeName": f"node-{node}"},
        "status": {"podIP": ip, "hostIP": f"192.168.0.{node}"},
    }


def cnp(name: str, spec: dict[str, Any], ns: str = "shop") -> dict[str, Any]:
    return {
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def ccnp(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "CiliumClusterwideNetworkPolicy", "metadata": {"name": name}, "spec": spec}


CASES: list[tuple[str, list[dict[str, Any]], str, str, int, str | None, str | None]] = [
    # id, objects, source, destination, port, action (None: no decision), deciding rule
    ("nothing selects", [], "shop/web", "shop/db", 5432, None, None),
    (
        "fromEndpoints same namespace allows",
        [
            cnp(
                "db",
                {
                    "endpointSelector": DB,
                    "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "web"}}]}],
                },
            )
        ],
        "shop/web",
        "shop/db",
        5432,
        "Allow",
        "CiliumNetworkPolicy shop/db ingress[0]",
    ),
    (
        "CNP fromEndpoints is limited to its namespace",
        [cnp("db", {"endpointSelector": DB, "ingress": [{"fromEndpoints": [{}]}]})],
        "other/cli",
        "shop/db",
        5432,
        "Deny",
        "CiliumNetworkPolicy shop/db",
    ),
    (
        "namespace label opens another namespace",
        [
            cnp(
                "db",
                {
                    "endpointSelector": DB,
                    "ingress": [
                        {
                            "fromEndpoints": [
                                {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "other"}}
                            ]
                        }
                    ],
                },
            )
        ],
        "other/cli",
        "shop/db",
        5432,
        "Allow",
        "CiliumNetworkPolicy shop/db ingress[0]",
    ),
    (
        "CCNP fromEndpoints spans namespaces",
        [
            ccnp(
                "db",
                {
                    "endpointSelector": DB,
                    "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "cli"}}]}],
                },
            )
        ],
        "other/cli",
        "shop/db",
        5432,
        "Allow",
        "CiliumClusterwideNetworkPolicy db ingress[0]",
    ),
    (
        "empty rule isolates and allows nothing",
        [cnp("db", {"endpointSelector": DB, "ingress": [{}]})],
        "shop/web",
        "shop/db",
        5432,
        "Deny",
        "CiliumNetworkPolicy shop/db",
    ),
    (
        "enableDefaultDeny false does not isolate",
        [
            cnp(
                "db",
                {"endpointSelector": DB, "ingress": [{}], "enableDefaultDeny": {"ingress": False}},
            )
        ],
        "shop/web",
        "shop/db",
        5432,
        None,
        None,
    ),
    (
        "deny beats allow",
        [
            cnp("allow", {"endpointSelector": DB, "ingress": [{"fromEntities": ["all"]}]}),
            cnp(
                "deny-db",
                {
                    "endpointSelector": DB,
                    "ingressDeny": [{"fromEndpoints": [{"matchLabels": {"app": "web"}}]}],
                },
            ),
        ],
        "shop/web",
        "shop/db",
        5432,
        "Deny",
        "CiliumNetworkPolicy shop/deny-db ingressDeny[0]",
    ),
    (
        "toPorts miss",
        [
            cnp(
                "db",
                {
                    "endpointSelector": DB,
                    "ingress": [{"toPorts": [{"ports": [{"port": "5432", "protocol": "TCP"}]}]}],
                },
            )
        ],
        "shop/web",
        "shop/db",
        80,
        "Deny",
        "CiliumNetworkPolicy shop/db",
    ),
    (
        "toPorts alone allows every peer on the port",
        [
            cnp(
                "db",
                {
                    "endpointSelector": DB,
                    "ingress": [{"toPorts": [{"ports": [{"port": "5000", "endPort": 6000}]}]}],
                },
            )
        ],
        "other/cli",
        "shop/db",
        5432,
        "Allow",
        "CiliumNetworkPolicy shop/db ingress[0]",
    ),
    (
        "L7 rules are Unknown",
        [
            cnp(
                "db",
                {
                    "endpointSelector": DB,
                    "ingress": [
                        {
                            "toPorts": [
                                {
                                    "ports": [{"port": "5432"}],
                                    "rules": {"http": [{"method": "GET"}]},
                                }
                            ]
                        }
                    ],
                },
            )
        ],
        "shop/web",
        "shop/db",
        5432,
        "Unknown",
        "CiliumNetworkPolicy shop/db",
    ),
    (
        "toCIDR matches an outside address",
        [
            cnp(
                "web",
                {
                    "endpointSelector": {"matchLabels": {"app": "web"}},
                    "egress": [
                        {"toCIDRSet": [{"cidr": "203.0.113.0/24", "except": ["203.0.113.128/25"]}]}
                    ],
                },
            )
        ],
        "shop/web",
        "203.0.113.9",
        443,
        "Allow",
        "CiliumNetworkPolicy shop/web egress[0]",
    ),
    (
        "toCIDR never matches a pod",
        [
            cnp(
                "web",
                {
                    "endpointSelector": {"matchLabels": {"app": "web"}},
                    "egress": [{"toCIDR": ["10.0.0.0/8"]}],
                },
            )
        ],
        "shop/web",
        "shop/db",
        5432,
        "Deny",
        "CiliumNetworkPolicy shop/web",
    ),
    (
        "toEntities world is outside the cluster only",
        [
            cnp(
                "web",
                {
                    "endpointSelector": {"matchLabels": {"app": "web"}},
                    "egress": [{"toEntities": ["world"]}],
                },
            )
        ],
        "shop/web",
        "shop/db",
        5432,
        "Deny",
        "CiliumNetworkPolicy shop/web",
    ),
    (
        "toFQDNs is Unknown for an outside address",
        [
            cnp(
                "web",
                {
                    "endpointSelector": {"matchLabels": {"app": "web"}},
                    "egress": [{"toFQDNs": [{"matchName": "example.com"}]}],
                },
            )
        ],
        "shop/web",
        "203.0.113.9",
        443,
        "Unknown",
        "CiliumNetworkPolicy shop/web",
    ),
    (
        "kube-apiserver entity is Unknown",
        [
            cnp(
                "web",
                {
                    "endpointSelector": {"matchLabels": {"app": "web"}},
                    "egress": [{"toEntities": ["kube-apiserver"]}],
                },
            )
        ],
        "shop/web",
        "203.0.113.9",
        443,
        "Unknown",
        "CiliumNetworkPolicy shop/web",
    ),
]


def tier(
    objects: list[dict[str, Any]], core: list[dict[str, Any]] | None = None
) -> tuple[CiliumTier, PolicyIndex]:
    pods = [parse_pod(pod(*p)) for p in PODS]
    index = PolicyIndex(pods, PolicyRules([], [parse_policy(p) for p in core or []]))
    policies = [KINDS[("cilium.io", obj["kind"])](obj) for obj in objects]
    return CiliumTier(policies, NetworkPolicyTier(index)), index


def decide(
    objects: list[dict[str, Any]],
    src: str,
    dst: str,
    port: int,
    core: list[dict[str, Any]] | None = None,
):
    cilium, index = tier(objects, core)
    flow = Flow(
        *(PodRef.parse(t) if "/" in t else ip_address(t) for t in (src, dst)), port, L4Protocol.TCP
    )
    source, destination = index.endpoints(flow)
    egress = cilium.decide(Direction.EGRESS, source, destination, flow, destination.selectable)
    if egress is not None and egress.action is not Action.ALLOW:
        return egress
    ingress = cilium.decide(Direction.INGRESS, destination, source, flow, destination.selectable)
    return ingress if ingress is not None else egress


@pytest.mark.parametrize(
    ("case", "objects", "src", "dst", "port", "action", "rule"), CASES, ids=[c[0] for c in CASES]
)
def test_truth_table(
    case: str, objects: list, src: str, dst: str, port: int, action: str | None, rule: str | None
) -> None:
    decision = decide(objects, src, dst, port)
    if action is None:
        assert decision is None
        return
    assert decision is not None, case
    assert (decision.action, str(decision.rule)) == (action, rule), decision.reason


def test_core_network_policy_allow_is_unioned_with_cilium_isolation() -> None:
    core = [
        {
            "metadata": {"name": "np", "namespace": "shop"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "db"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}],
            },
        }
    ]
    objects = [cnp("db", {"endpointSelector": DB, "ingress": [{}]})]
    decision = decide(objects, "shop/web", "shop/db", 5432, core)
    assert decision is not None
    assert (decision.action, str(decision.rule)) == ("Allow", "NetworkPolicy shop/np ingress[0]")
    denied = decide(
        [cnp("d", {"endpointSelector": DB, "ingressDeny": [{"fromEntities": ["cluster"]}]})],
        "shop/web",
        "shop/db",
        5432,
        core,
    )
    assert denied is not None and str(denied.rule) == "CiliumNetworkPolicy shop/d ingressDeny[0]"
