"""Calico truth tables: each case is objects, one flow and the expected action and deciding rule,
from the Calico reference's semantics (tiers by order, policies by order then name, the first
matching rule decides, Log goes on, Pass skips to the next tier, end-of-tier deny or the tier's
defaultAction, core NetworkPolicies in the default tier at order 1000).

Pods: shop/web (app=web, 10.0.1.1, node-1), shop/db (app=db, 10.0.1.2, node-2, container port
`pg` TCP/5432), other/cli (app=cli, 10.0.2.1, node-1). Namespaces shop (team=a) and other
(team=b); node-1 at 192.168.0.1. 203.0.113.9 stands for an outside address (never sent to).
"""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

import pytest

from hopscope_policy import families
from hopscope_policy.calico import KINDS, CalicoTiers
from hopscope_policy.calico_model import CalicoPolicy, CalicoTier
from hopscope_policy.cilium_model import parse_cilium_network_policy
from hopscope_policy.evaluate import Flow, NetworkPolicyTier, PolicyIndex, PolicyRules
from hopscope_policy.model import (
    ICMP,
    Direction,
    L4Protocol,
    PodRef,
    parse_namespace,
    parse_pod,
    parse_policy,
)
from hopscope_policy.nodes import parse_node
from hopscope_policy.tiers import Action, Decision

PODS = [
    ("shop", "web", "10.0.1.1", 1),
    ("shop", "db", "10.0.1.2", 2),
    ("other", "cli", "10.0.2.1", 1),
]
NAMESPACES = {"shop": "a", "other": "b"}
DB = "app == 'db'"
WEB = "app == 'web'"
NP_KIND = "NetworkPolicy.projectcalico.org"


def pod(ns: str, name: str, ip: str, node: int) -> dict[str, Any]:
    ports = [{"name": "pg", "containerPort": 5432}] if name == "db" else []
    return {
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"nodeName": f"node-{node}", "containers": [{"name": "c", "ports": ports}]},
        "status": {"podIP": ip, "hostIP": f"192.168.0.{node}"},
    }


def np(name: str, spec: dict[str, Any], ns: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "projectcalico.org/v3",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def gnp(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "projectcalico.org/v3",
        "kind": "GlobalNetworkPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


def tier(name: str, order: float | None = None, action: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {} if order is None else {"order": order}
    if action is not None:
        spec["defaultAction"] = action
    return {
        "apiVersion": "projectcalico.org/v3",
        "kind": "Tier",
        "metadata": {"name": name},
        "spec": spec,
    }


def knp(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A core networking.k8s.io/v1 NetworkPolicy in shop."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": spec,
    }


def ingress(*rules: dict[str, Any], selector: str = DB, **spec: Any) -> dict[str, Any]:
    return {"selector": selector, "ingress": list(rules), **spec}


def egress(*rules: dict[str, Any], selector: str = WEB, **spec: Any) -> dict[str, Any]:
    return {"selector": selector, "egress": list(rules), **spec}


ALLOW, DENY, LOG, PASS = ({"action": a} for a in ("Allow", "Deny", "Log", "Pass"))
FROM_WEB = {"action": "Allow", "source": {"selector": WEB}}
TCP = {"protocol": "TCP"}
KNP_WEB = knp(
    "np",
    {
        "podSelector": {"matchLabels": {"app": "db"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}],
    },
)
KNP_ISOLATE = knp("np", {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"]})

Case = tuple[str, list[dict[str, Any]], str, str | None, str | None]
CASES: list[Case] = [
    # id, objects, flow "src dst port[/proto]", action (None: nothing decides), deciding rule
    ("nothing selects", [], "shop/web shop/db 5432", None, None),
    (
        "source selector allows",
        [np("db", ingress(FROM_WEB))],
        "shop/web shop/db 5432",
        "Allow",
        f"{NP_KIND} shop/db ingress[0]",
    ),
    (
        "a NetworkPolicy's source selector is limited to its namespace: end-of-tier deny",
        [np("db", ingress({"action": "Allow", "source": {"selector": "has(app)"}}))],
        "other/cli shop/db 5432",
        "Deny",
        f"{NP_KIND} shop/db",
    ),
    (
        "namespaceSelector opens another namespace",
        [
            np(
                "db",
                ingress(
                    {
                        "action": "Allow",
                        "source": {"namespaceSelector": "team == 'b'", "selector": "app == 'cli'"},
                    }
                ),
            )
        ],
        "other/cli shop/db 5432",
        "Allow",
        f"{NP_KIND} shop/db ingress[0]",
    ),
    (
        "namespaceSelector on projectcalico.org/name",
        [
            np(
                "db",
                ingress(
                    {
                        "action": "Allow",
                        "source": {"namespaceSelector": "projectcalico.org/name == 'other'"},
                    }
                ),
            )
        ],
        "other/cli shop/db 5432",
        "Allow",
        f"{NP_KIND} shop/db ingress[0]",
    ),
    (
        "namespaceSelector global() scopes to non-namespaced resources: no pod matches",
        [np("db", ingress({"action": "Allow", "source": {"namespaceSelector": "global()"}}))],
        "shop/web shop/db 5432",
        "Deny",
        f"{NP_KIND} shop/db",
    ),
    (
        "GlobalNetworkPolicy selector reads namespace labels as pcns.",
        [gnp("team-a", ingress(DENY, selector="pcns.team == 'a'"))],
        "other/cli shop/db 5432",
        "Deny",
        "GlobalNetworkPolicy team-a ingress[0]",
    ),
    (
        "GlobalNetworkPolicy selector on projectcalico.org/namespace",
        [gnp("shop-db", ingress(DENY, selector="projectcalico.org/namespace == 'shop' && " + DB))],
        "shop/web shop/db 5432",
        "Deny",
        "GlobalNetworkPolicy shop-db ingress[0]",
    ),
    (
        "GlobalNetworkPolicy namespaceSelector picks the subject's namespace",
        [gnp("other-only", ingress(DENY, selector="all()", namespaceSelector="team == 'b'"))],
        "shop/web shop/db 5432",
        None,
        None,
    ),
    (
        "lower order first: deny at 10 beats allow at 20",
        [
            np("deny-web", ingress({"action": "Deny", "source": {"selector": WEB}}, order=10)),
            np("allow-all", ingress(ALLOW, order=20)),
        ],
        "shop/web shop/db 5432",
        "Deny",
        f"{NP_KIND} shop/deny-web ingress[0]",
    ),
    (
        "lower order first: allow at 5 beats deny at 10",
        [
            np("deny-web", ingress({"action": "Deny", "source": {"selector": WEB}}, order=10)),
            np("allow-all", ingress(ALLOW, order=5)),
        ],
        "shop/web shop/db 5432",
        "Allow",
        f"{NP_KIND} shop/allow-all ingress[0]",
    ),
    (
        "a policy without order comes after ordered ones",
        [np("a", ingress(ALLOW)), np("z", ingress(DENY, order=100))],
        "shop/web shop/db 5432",
        "Deny",
        f"{NP_KIND} shop/z ingress[0]",
    ),
    (
        "equal order: by name",
        [np("b", ingress(DENY, order=1)), np("a", ingress(ALLOW, order=1))],
        "shop/web shop/db 5432",
        "Allow",
        f"{NP_KIND} shop/a ingress[0]",
    ),
    (
        "Log goes on to the next rule",
        [np("db", ingress(LOG, DENY))],
        "shop/web shop/db 5432",
        "Deny",
        f"{NP_KIND} shop/db ingress[1]",
    ),
    (
        "Log alone decides nothing: end-of-tier deny",
        [np("db", ingress(LOG))],
        "shop/web shop/db 5432",
        "Deny",
        f"{NP_KIND} shop/db",
    ),
    (
        "Pass skips the rest of its tier: the default tier decides",
        [
            tier("security", 100),
            np("security.db", ingress(PASS, tier="security")),
            np("db", ingress(ALLOW)),
        ],
        "shop/web shop/db 5432",
        "Allow",
        f"{NP_KIND} shop/db ingress[0]",
    ),
    (
        "Pass skips later policies of the same tier",
        [
            tier("security", 100),
            np("security.a", ingress(PASS, tier="security", order=1)),
            np("security.b", ingress(DENY, tier="security", order=2)),
        ],
        "shop/web shop/db 5432",
        "Pass",
        f"{NP_KIND} shop/security.a ingress[0]",
    ),
    (
        "tiers by order: security (100) before platform (200)",
        [
            tier("platform", 200),
            tier("security", 100),
            np("platform.db", ingress(ALLOW, tier="platform")),
            np("security.db", ingress(DENY, tier="security")),
        ],
        "shop/web shop/db 5432",
        "Deny",
        f"{NP_KIND} shop/security.db ingress[0]",
    ),
    (
        "a tier that selects but matches nothing denies, whatever later tiers say",
        [
            tier("security", 100),
            np(
                "security.db",
                ingress({"action": "Allow", "source": {"selector": "app == 'x'"}}, tier="security"),
            ),
            np("db", ingress(ALLOW)),
        ],
        "shop/web shop/db 5432",
        "Deny",
        f"{NP_KIND} shop/security.db",
    ),
    (
        "a tier with defaultAction Pass hands an unmatched flow on",
        [
            tier("security", 100, "Pass"),
            np(
                "security.db",
                ingress({"action": "Allow", "source": {"selector": "app == 'x'"}}, tier="security"),
            ),
            np("db", ingress(FROM_WEB)),
        ],
        "shop/web shop/db 5432",
        "Allow",
        f"{NP_KIND} shop/db ingress[0]",
    ),
    (
        "a tier that selects nothing is skipped (no end-of-tier deny)",
        [tier("security", 100), np("security.web", ingress(DENY, selector=WEB, tier="security"))],
        "shop/web shop/db 5432",
        None,
        None,
    ),
    (
        "a Calico policy at order 500 comes before the core NetworkPolicies (1000)",
        [
            KNP_WEB,
            np("deny-web", ingress({"action": "Deny", "source": {"selector": WEB}}, order=500)),
        ],
        "shop/web shop/db 5432",
        "Deny",
        f"{NP_KIND} shop/deny-web ingress[0]",
    ),
    (
        "a core NetworkPolicy admits before a Calico policy at order 2000",
        [KNP_WEB, np("deny-all", ingress(DENY, order=2000))],
        "shop/web shop/db 5432",
        "Allow",
        "NetworkPolicy shop/np ingress[0]",
    ),
    (
        "a core isolation without a match goes on to later policies of the default tier",
        [KNP_ISOLATE, np("allow-web", ingress(FROM_WEB, order=2000))],
        "shop/web shop/db 5432",
        "Allow",
        f"{NP_KIND} shop/allow-web ingress[0]",
    ),
    (
        "a core isolation alone ends in the default tier's deny",
        [KNP_ISOLATE, np("web-only", egress(ALLOW))],
        "shop/web shop/db 5432",
        "Deny",
        "NetworkPolicy shop/np",
    ),
    (
        "a core NetworkPolicy does not outrank a lower tier's deny",
        [KNP_WEB, tier("security", 100), np("security.db", ingress(DENY, tier="security"))],
        "shop/web shop/db 5432",
        "Deny",
        f"{NP_KIND} shop/security.db ingress[0]",
    ),
    (
        "nets match the destination address",
        [np("web", egress({"action": "Allow", "destination": {"nets": ["203.0.113.0/24"]}}))],
        "shop/web 203.0.113.9 443",
        "Allow",
        f"{NP_KIND} shop/web egress[0]",
    ),
    (
        "nets outside: end-of-tier deny",
        [np("web", egress({"action": "Allow", "destination": {"nets": ["198.51.100.0/24"]}}))],
        "shop/web 203.0.113.9 443",
        "Deny",
        f"{NP_KIND} shop/web",
    ),
    (
        "nets match pod addresses too",
        [np("web", egress({"action": "Deny", "destination": {"nets": ["10.0.1.2/32"]}}))],
        "shop/web shop/db 5432",
        "Deny",
        f"{NP_KIND} shop/web egress[0]",
    ),
    (
        "notNets: outside the listed nets",
        [np("web", egress({"action": "Allow", "destination": {"notNets": ["10.0.0.0/8"]}}))],
        "shop/web 203.0.113.9 443",
        "Allow",
        f"{NP_KIND} shop/web egress[0]",
    ),
    (
        "notNets: inside a listed net does not match",
        [np("web", egress({"action": "Allow", "destination": {"notNets": ["10.0.0.0/8"]}}))],
        "shop/web shop/db 5432",
        "Deny",
        f"{NP_KIND} shop/web",
    ),
    (
        "source nets on ingress",
        [np("db", ingress({"action": "Deny", "source": {"nets": ["10.0.2.0/24"]}}, ALLOW))],
        "other/cli shop/db 5432",
        "Deny",
        f"{NP_KIND} shop/db ingress[0]",
    ),
    (
        "destination port",
        [np("db", ingress({**TCP, "action": "Allow", "destination": {"ports": [5432]}}))],
        "shop/web shop/db 5432",
        "Allow",
        f"{NP_KIND} shop/db ingress[0]",
    ),
    (
        "another port: end-of-tier deny",
        [np("db", ingress({**TCP, "action": "Allow", "destination": {"ports": [5432]}}))],
        "shop/web shop/db 80",
        "Deny",
        f"{NP_KIND} shop/db",
    ),
    (
        "port range start:end",
        [np("db", ingress({**TCP, "action": "Allow", "destination": {"ports": ["5000:6000"]}}))],
        "shop/web shop/db 5432",
        "Allow",
        f"{NP_KIND} shop/db ingress[0]",
    ),
    (
        "named port resolves on the destination pod",
        [np("db", ingress({**TCP, "action": "Allow", "destination": {"ports": ["pg"]}}))],
        "shop/web shop/db 5432",
        "Allow",
        f"{NP_KIND} shop/db ingress[0]",
    ),
    (
        "named port on the wrong protocol does not resolve",
        [
            np(
                "db",
                ingress({"protocol": "UDP", "action": "Allow", "destination": {"ports": ["pg"]}}),
            )
        ],
        "shop/web shop/db 5432/UDP",
        "Deny",
        f"{NP_KIND} shop/db",
    ),
    (
        "notPorts excludes the port",
        [np("db", ingress({**TCP, "action": "Allow", "destination": {"notPorts": [5432]}}))],
        "shop/web shop/db 5432",
        "Deny",
        f"{NP_KIND} shop/db",
    ),
    (
        "notPorts admits another port",
        [np("db", ingress({**TCP, "action": "Allow", "destination": {"notPorts": ["5000:6000"]}}))],
        "shop/web shop/db 80",
        "Allow",
        f"{NP_KIND} shop/db ingress[0]",
    ),
    (
        "protocol UDP does not match TCP",
        [np("db", ingress({"action": "Allow", "protocol": "UDP"}))],
        "shop/web shop/db 5432",
        "Deny",
        f"{NP_KIND} shop/db",
    ),
    (
        "protocol as a number (6 is TCP)",
        [np("db", ingress({"action": "Allow", "protocol": 6}))],
        "shop/web shop/db 5432",
        "Allow",
        f"{NP_KIND} shop/db ingress[0]",
    ),
    (
        "notProtocol TCP does not match TCP",
        [np("db", ingress({"action": "Allow", "notProtocol": "TCP"}))],
        "shop/web shop/db 5432",
        "Deny",
        f"{NP_KIND} shop/db",
    ),
    (
        "protocol ICMP matches a ping",
        [np("db", ingress({"action": "Allow", "protocol": "ICMP"}))],
        "shop/web shop/db 0/ICMP",
        "Allow",
        f"{NP_KIND} shop/db ingress[0]",
    ),
    (
        "ipVersion 6 does not match an IPv4 flow",
        [np("db", ingress({"action": "Allow", "ipVersion": 6}))],
        "shop/web shop/db 5432",
        "Deny",
        f"{NP_KIND} shop/db",
    ),
    (
        "types default: egress rules alone do not select for ingress",
        [np("db", egress(DENY, selector=DB))],
        "shop/web shop/db 5432",
        None,
        None,
    ),
    (
        "types given: Ingress with no ingress rules denies",
        [np("db", egress(DENY, selector=DB, types=["Ingress", "Egress"]))],
        "shop/web shop/db 5432",
        "Deny",
        f"{NP_KIND} shop/db",
    ),
    (
        "types default: no rules at all is an Ingress policy",
        [np("db", {"selector": DB})],
        "shop/web shop/db 5432",
        "Deny",
        f"{NP_KIND} shop/db",
    ),
    (
        "notSelector excludes matching endpoints in scope",
        [np("db", ingress({"action": "Allow", "source": {"notSelector": WEB}}))],
        "shop/web shop/db 5432",
        "Deny",
        f"{NP_KIND} shop/db",
    ),
    (
        "notSelector of a NetworkPolicy excludes only its namespace's endpoints",
        [np("db", ingress({"action": "Allow", "source": {"notSelector": "has(app)"}}))],
        "other/cli shop/db 5432",
        "Allow",
        f"{NP_KIND} shop/db ingress[0]",
    ),
    (
        "a rule without a selector matches an outside address",
        [np("db", ingress(ALLOW))],
        "203.0.113.9 shop/db 5432",
        "Allow",
        f"{NP_KIND} shop/db ingress[0]",
    ),
    # --- Unknown: constructs hopscope does not model, named with the policy ---
    (
        "a source selector on an address that is no pod (NetworkSets are not read)",
        [np("db", ingress({"action": "Allow", "source": {"selector": "role == 'x'"}}))],
        "203.0.113.9 shop/db 5432",
        "Unknown",
        f"{NP_KIND} shop/db ingress[0]",
    ),
    (
        "a GlobalNetworkPolicy on a node (HostEndpoints are not read)",
        [gnp("deny-all", ingress(DENY, selector="all()"))],
        "shop/web 192.168.0.1 22",
        "Unknown",
        "GlobalNetworkPolicy deny-all",
    ),
    (
        "http match",
        [np("db", ingress({"action": "Allow", "http": {"methods": ["GET"]}}))],
        "shop/web shop/db 5432",
        "Unknown",
        f"{NP_KIND} shop/db ingress[0]",
    ),
    (
        "an unknown construct behind a protocol that does not match decides nothing",
        [np("db", ingress({"action": "Allow", "protocol": "UDP", "http": {"methods": ["GET"]}}))],
        "shop/web shop/db 5432",
        "Deny",
        f"{NP_KIND} shop/db",
    ),
    (
        "serviceAccounts match",
        [np("db", ingress({"action": "Allow", "source": {"serviceAccounts": {"names": ["api"]}}}))],
        "shop/web shop/db 5432",
        "Unknown",
        f"{NP_KIND} shop/db ingress[0]",
    ),
    (
        "services match",
        [np("web", egress({"action": "Allow", "destination": {"services": {"name": "db"}}}))],
        "shop/web shop/db 5432",
        "Unknown",
        f"{NP_KIND} shop/web egress[0]",
    ),
    (
        "source ports",
        [np("db", ingress({**TCP, "action": "Allow", "source": {"ports": [1234]}}))],
        "shop/web shop/db 5432",
        "Unknown",
        f"{NP_KIND} shop/db ingress[0]",
    ),
    (
        "icmp type match",
        [np("db", ingress({"action": "Allow", "protocol": "ICMP", "icmp": {"type": 8}}))],
        "shop/web shop/db 0/ICMP",
        "Unknown",
        f"{NP_KIND} shop/db ingress[0]",
    ),
    (
        "serviceAccountSelector",
        [np("db", ingress(ALLOW, serviceAccountSelector="role == 'db'"))],
        "shop/web shop/db 5432",
        "Unknown",
        f"{NP_KIND} shop/db",
    ),
    (
        "a selector on the service account label",
        [np("db", ingress(DENY, selector="projectcalico.org/serviceaccount == 'db'"))],
        "shop/web shop/db 5432",
        "Unknown",
        f"{NP_KIND} shop/db",
    ),
    (
        "doNotTrack",
        [gnp("raw", ingress(DENY, doNotTrack=True))],
        "shop/web shop/db 5432",
        "Unknown",
        "GlobalNetworkPolicy raw",
    ),
    (
        "a policy in a tier no Tier object gives",
        [np("security.db", ingress(DENY, tier="security"))],
        "shop/web shop/db 5432",
        "Unknown",
        f"{NP_KIND} shop/security.db",
    ),
]


def parse_flow(text: str) -> Flow:
    src, dst, port = text.split()
    number, _, protocol = port.partition("/")
    ends = [PodRef.parse(t) if "/" in t else ip_address(t) for t in (src, dst)]
    proto = ICMP if protocol == "ICMP" else L4Protocol(protocol or "TCP")
    return Flow(ends[0], ends[1], int(number), proto)


def decide(objects: list[dict[str, Any]], flow_text: str) -> Decision | None:
    """What the Calico tiers decide: the egress decision unless it allows, then the ingress."""
    core = [parse_policy(o) for o in objects if o["apiVersion"] == "networking.k8s.io/v1"]
    parsed = [
        KINDS[("projectcalico.org", o["kind"])](o)
        for o in objects
        if o["apiVersion"] == "projectcalico.org/v3"
    ]
    namespaces = [
        parse_namespace({"metadata": {"name": ns, "labels": {"team": team}}})
        for ns, team in NAMESPACES.items()
    ]
    node = parse_node(
        {
            "metadata": {"name": "node-1"},
            "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.1"}]},
        }
    )
    index = PolicyIndex(
        [parse_pod(pod(*p)) for p in PODS], PolicyRules(namespaces, core, nodes=[node])
    )
    tiers = CalicoTiers(
        [p for p in parsed if isinstance(p, CalicoPolicy)],
        NetworkPolicyTier(index),
        [t for t in parsed if isinstance(t, CalicoTier)],
    )
    flow = parse_flow(flow_text)
    source, destination = index.endpoints(flow)
    target = destination.selectable
    egress = tiers.decide(Direction.EGRESS, source, destination, flow, target)
    if egress is not None and egress.action is not Action.ALLOW:
        return egress
    ingress = tiers.decide(Direction.INGRESS, destination, source, flow, target)
    return ingress if ingress is not None else egress


@pytest.mark.parametrize(
    ("case", "objects", "flow", "action", "rule"), CASES, ids=[c[0] for c in CASES]
)
def test_truth_table(
    case: str, objects: list, flow: str, action: str | None, rule: str | None
) -> None:
    decision = decide(objects, flow)
    if action is None:
        assert decision is None, decision
        return
    assert decision is not None, case
    assert (decision.action, str(decision.rule)) == (action, rule), decision.reason


def test_unknown_names_the_construct_and_the_policy() -> None:
    decision = decide(
        [np("db", ingress({"action": "Allow", "http": {"methods": ["GET"]}}))],
        "shop/web shop/db 5432",
    )
    assert decision is not None
    assert decision.reason == f"ingress[0].http of {NP_KIND} shop/db ingress[0] is not modelled"


def test_end_of_tier_deny_says_the_tier() -> None:
    decision = decide([np("db", ingress(LOG))], "shop/web shop/db 5432")
    assert decision is not None
    assert decision.reason == (
        f"shop/db is selected for ingress by {NP_KIND} shop/db in tier default, and no rule "
        "matched shop/web -> shop/db TCP/5432: the tier's default deny"
    )


def test_a_pass_names_what_passed_before_the_decision() -> None:
    decision = decide(
        [
            tier("security", 100),
            np("security.db", ingress(PASS, tier="security")),
            np("db", ingress(DENY)),
        ],
        "shop/web shop/db 5432",
    )
    assert decision is not None
    assert decision.reason.startswith(f"{NP_KIND} shop/security.db ingress[0] passes")
    assert decision.reason.endswith(
        f"{NP_KIND} shop/db ingress[0] denies shop/web -> shop/db TCP/5432"
    )


def test_every_passing_tier_is_named_once() -> None:
    decision = decide(
        [
            tier("a", 1),
            tier("b", 2, "Pass"),
            np("a.db", ingress(PASS, tier="a")),
            np("b.db", ingress({"action": "Deny", "protocol": "UDP"}, tier="b")),
            np("db", ingress(ALLOW)),
        ],
        "shop/web shop/db 5432",
    )
    assert decision is not None and decision.action is Action.ALLOW
    assert decision.reason.split("; ") == [
        f"{NP_KIND} shop/a.db ingress[0] passes shop/web -> shop/db TCP/5432 to the next tier",
        "no rule of tier b matched shop/web -> shop/db TCP/5432: its defaultAction is Pass",
        f"{NP_KIND} shop/db ingress[0] allows shop/web -> shop/db TCP/5432",
    ]


def test_cilium_and_calico_objects_together_are_refused() -> None:
    cilium = parse_cilium_network_policy(
        {"metadata": {"name": "c", "namespace": "shop"}, "spec": {"endpointSelector": {}}}
    )
    calico = KINDS[("projectcalico.org", "NetworkPolicy")](np("db", ingress(ALLOW)))
    with pytest.raises(families.CNIConflict, match="policies of calico and cilium are given"):
        families.rules([], [], [cilium, calico])
