"""Cilium truth tables: each case is objects, one flow and the expected action and deciding rule.

Pods: shop/web (app=web, 10.0.1.1, node-1), shop/db (app=db, 10.0.1.2, node-2), other/cli
(app=cli, 10.0.2.1, node-1), kube-system/agent (hostNetwork on node-3, which no Node object
describes); nodes node-1 (192.168.0.1, role=worker) and node-2 (192.168.0.2, role=edge);
203.0.113.9 stands for an outside address (never sent to). A port of "ICMP" is a ping.
"""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

import pytest

from hopscope_policy.cilium import KINDS, CiliumTier
from hopscope_policy.evaluate import Flow, NetworkPolicyTier, PolicyIndex, PolicyRules
from hopscope_policy.model import ICMP, Direction, L4Protocol, PodRef, parse_pod, parse_policy
from hopscope_policy.tiers import Action, Node

PODS = [
    ("shop", "web", "10.0.1.1", 1),
    ("shop", "db", "10.0.1.2", 2),
    ("other", "cli", "10.0.2.1", 1),
]
DB = {"matchLabels": {"app": "db"}}
NODES = [
    Node("node-1", {"role": "worker"}, (ip_address("192.168.0.1"),)),
    Node("node-2", {"role": "edge"}, (ip_address("192.168.0.2"),)),
]
AGENT = {  # a hostNetwork pod: its traffic is its node's
    "metadata": {"name": "agent", "namespace": "kube-system", "labels": {"app": "agent"}},
    "spec": {"nodeName": "node-3", "hostNetwork": True},
    "status": {"podIP": "192.168.0.3", "hostIP": "192.168.0.3"},
}


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


CASES: list[tuple[str, list[dict[str, Any]], str, str, int | str, str | None, str | None]] = [
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
    (
        "CCNP nodeSelector allows into a node it selects",
        [
            ccnp(
                "edge",
                {
                    "nodeSelector": {"matchLabels": {"role": "edge"}},
                    "ingress": [
                        {"fromEntities": ["cluster"], "toPorts": [{"ports": [{"port": "22"}]}]}
                    ],
                },
            )
        ],
        "shop/web",
        "192.168.0.2",
        22,
        "Allow",
        "CiliumClusterwideNetworkPolicy edge ingress[0]",
    ),
    (
        "CCNP nodeSelector isolates the node it selects",
        [
            ccnp(
                "edge",
                {
                    "nodeSelector": {"matchLabels": {"role": "edge"}},
                    "ingress": [
                        {"fromEntities": ["cluster"], "toPorts": [{"ports": [{"port": "22"}]}]}
                    ],
                },
            )
        ],
        "203.0.113.9",
        "192.168.0.2",
        22,
        "Deny",
        "CiliumClusterwideNetworkPolicy edge",
    ),
    (
        "CCNP nodeSelector never selects a pod on that node",
        [ccnp("edge", {"nodeSelector": {"matchLabels": {"role": "edge"}}, "ingress": [{}]})],
        "shop/web",
        "shop/db",
        5432,
        None,
        None,
    ),
    (
        "CCNP nodeSelector on a node not described is Unknown",
        [ccnp("all-nodes", {"nodeSelector": {}, "ingress": [{}]})],
        "shop/web",
        "kube-system/agent",
        22,
        "Unknown",
        "CiliumClusterwideNetworkPolicy all-nodes",
    ),
    (
        "fromEntities host is the subject's own node",
        [cnp("db", {"endpointSelector": DB, "ingress": [{"fromEntities": ["host"]}]})],
        "192.168.0.2",
        "shop/db",
        5432,
        "Allow",
        "CiliumNetworkPolicy shop/db ingress[0]",
    ),
    (
        "fromEntities host is not another node",
        [cnp("db", {"endpointSelector": DB, "ingress": [{"fromEntities": ["host"]}]})],
        "192.168.0.1",
        "shop/db",
        5432,
        "Deny",
        "CiliumNetworkPolicy shop/db",
    ),
    (
        "fromEntities remote-node is another node",
        [cnp("db", {"endpointSelector": DB, "ingress": [{"fromEntities": ["remote-node"]}]})],
        "192.168.0.1",
        "shop/db",
        5432,
        "Allow",
        "CiliumNetworkPolicy shop/db ingress[0]",
    ),
    (
        "remote-node is not the own node, which allow-localhost lets in",
        [cnp("db", {"endpointSelector": DB, "ingress": [{"fromEntities": ["remote-node"]}]})],
        "192.168.0.2",
        "shop/db",
        5432,
        "Allow",
        "None",
    ),
    (
        "toEntities host from a pod is its own node",
        [
            cnp(
                "web",
                {
                    "endpointSelector": {"matchLabels": {"app": "web"}},
                    "egress": [{"toEntities": ["host"]}],
                },
            )
        ],
        "shop/web",
        "192.168.0.1",
        10250,
        "Allow",
        "CiliumNetworkPolicy shop/web egress[0]",
    ),
    (
        "toEntities host is not the other node",
        [
            cnp(
                "web",
                {
                    "endpointSelector": {"matchLabels": {"app": "web"}},
                    "egress": [{"toEntities": ["host"]}],
                },
            )
        ],
        "shop/web",
        "192.168.0.2",
        10250,
        "Deny",
        "CiliumNetworkPolicy shop/web",
    ),
    (
        "toEntities remote-node reaches a hostNetwork pod on another node",
        [
            cnp(
                "web",
                {
                    "endpointSelector": {"matchLabels": {"app": "web"}},
                    "egress": [{"toEntities": ["remote-node"]}],
                },
            )
        ],
        "shop/web",
        "kube-system/agent",
        9100,
        "Allow",
        "CiliumNetworkPolicy shop/web egress[0]",
    ),
    (
        "icmps type 8 admits a ping",
        [
            cnp(
                "db",
                {"endpointSelector": DB, "ingress": [{"icmps": [{"fields": [{"type": 8}]}]}]},
            )
        ],
        "shop/web",
        "shop/db",
        "ICMP",
        "Allow",
        "CiliumNetworkPolicy shop/db ingress[0]",
    ),
    (
        "icmps EchoRequest by name admits a ping",
        [
            cnp(
                "db",
                {
                    "endpointSelector": DB,
                    "ingress": [
                        {"icmps": [{"fields": [{"type": "EchoRequest", "family": "IPv4"}]}]}
                    ],
                },
            )
        ],
        "shop/web",
        "shop/db",
        "ICMP",
        "Allow",
        "CiliumNetworkPolicy shop/db ingress[0]",
    ),
    (
        "icmps of ICMPv6 does not admit an IPv4 ping",
        [
            cnp(
                "db",
                {
                    "endpointSelector": DB,
                    "ingress": [{"icmps": [{"fields": [{"type": 128, "family": "IPv6"}]}]}],
                },
            )
        ],
        "shop/web",
        "shop/db",
        "ICMP",
        "Deny",
        "CiliumNetworkPolicy shop/db",
    ),
    (
        "icmps alone admits no TCP",
        [
            cnp(
                "db",
                {"endpointSelector": DB, "ingress": [{"icmps": [{"fields": [{"type": 8}]}]}]},
            )
        ],
        "shop/web",
        "shop/db",
        5432,
        "Deny",
        "CiliumNetworkPolicy shop/db",
    ),
    (
        "toPorts alone admits no ping",
        [
            cnp(
                "db",
                {"endpointSelector": DB, "ingress": [{"toPorts": [{"ports": [{"port": "5432"}]}]}]},
            )
        ],
        "shop/web",
        "shop/db",
        "ICMP",
        "Deny",
        "CiliumNetworkPolicy shop/db",
    ),
    (
        "icmps in ingressDeny denies a ping",
        [
            cnp("allow", {"endpointSelector": DB, "ingress": [{"fromEntities": ["all"]}]}),
            cnp(
                "no-ping",
                {"endpointSelector": DB, "ingressDeny": [{"icmps": [{"fields": [{"type": 8}]}]}]},
            ),
        ],
        "shop/web",
        "shop/db",
        "ICMP",
        "Deny",
        "CiliumNetworkPolicy shop/no-ping ingressDeny[0]",
    ),
    (
        "specs: the rule is named with its spec",
        [
            {
                "kind": "CiliumNetworkPolicy",
                "metadata": {"name": "multi", "namespace": "shop"},
                "specs": [
                    {"endpointSelector": {"matchLabels": {"app": "web"}}, "ingress": [{}]},
                    {
                        "endpointSelector": DB,
                        "ingress": [
                            {"fromEndpoints": [{"matchLabels": {"app": "cli"}}]},
                            {"fromEndpoints": [{"matchLabels": {"app": "web"}}]},
                        ],
                    },
                ],
            }
        ],
        "shop/web",
        "shop/db",
        5432,
        "Allow",
        "CiliumNetworkPolicy shop/multi specs[1].ingress[1]",
    ),
    (
        "specs: the isolating spec is named",
        [
            {
                "kind": "CiliumNetworkPolicy",
                "metadata": {"name": "multi", "namespace": "shop"},
                "specs": [
                    {"endpointSelector": {"matchLabels": {"app": "web"}}, "ingress": [{}]},
                    {
                        "endpointSelector": DB,
                        "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "cli"}}]}],
                    },
                ],
            }
        ],
        "shop/db",
        "shop/web",
        8080,
        "Deny",
        "CiliumNetworkPolicy shop/multi specs[0]",
    ),
]


def tier(
    objects: list[dict[str, Any]], core: list[dict[str, Any]] | None = None
) -> tuple[CiliumTier, PolicyIndex]:
    pods = [parse_pod(pod(*p)) for p in PODS] + [parse_pod(AGENT)]
    rules = PolicyRules([], [parse_policy(p) for p in core or []], nodes=NODES)
    index = PolicyIndex(pods, rules)
    policies = [KINDS[("cilium.io", obj["kind"])](obj) for obj in objects]
    return CiliumTier(policies, NetworkPolicyTier(index)), index


def decide(
    objects: list[dict[str, Any]],
    src: str,
    dst: str,
    port: int | str,
    core: list[dict[str, Any]] | None = None,
):
    cilium, index = tier(objects, core)
    ends = [PodRef.parse(t) if "/" in t else ip_address(t) for t in (src, dst)]
    flow = Flow(*ends, 0, ICMP) if port == ICMP else Flow(*ends, int(port), L4Protocol.TCP)
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
    case: str,
    objects: list,
    src: str,
    dst: str,
    port: int | str,
    action: str | None,
    rule: str | None,
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
