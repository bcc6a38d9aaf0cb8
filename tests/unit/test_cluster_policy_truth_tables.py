"""Truth tables of the Network Policy API's cluster-wide kinds, from its upstream conformance tests.

The world is the conformance suite's (kubernetes-sigs/network-policy-api conformance/base/
manifests.yaml): namespaces network-policy-conformance-{gryffindor,slytherin,hufflepuff,ravenclaw}
(label conformance-house=<house>), two pods each (harry-potter, draco-malfoy, cedric-diggory,
luna-lovegood, -0 and -1, labelled conformance-house=<house>) serving 80 and 8080/TCP, 53 and
5353/UDP, 9003 and 9005/SCTP; pods -0 run on node-0, -1 on node-1 (labels kubernetes.io/os=linux).
The policies are the suite's base manifests (cluster_policy_cases.yaml; cases named after the Go
test), the checks its PokeServer calls, with the deciding rule the suite's comments name. `swap`
reorders rules the way the tests patch them. Each check: `from to SERVICE ACTION [RULE]`, RULE `-`
for "no rule decided: default allow".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hopscope_policy import Flow, L4Protocol, PodRef, PolicyIndex, families
from hopscope_policy.cluster import KINDS, parse_cluster_network_policy
from hopscope_policy.model import ICMP, FieldError, parse_namespace, parse_pod, parse_policy
from hopscope_policy.nodes import parse_node
from hopscope_policy.tiers import Action

HOUSES = {
    "gryffindor": "harry-potter",
    "slytherin": "draco-malfoy",
    "hufflepuff": "cedric-diggory",
    "ravenclaw": "luna-lovegood",
}
HOUSE = "conformance-house"
SHORT = {"g": "gryffindor", "s": "slytherin", "h": "hufflepuff", "r": "ravenclaw"}
NODE_IPS = {0: "192.168.0.10", 1: "192.168.0.11"}
PORTS = [
    ("web", 80, "TCP"),
    ("alt", 8080, "TCP"),
    ("dns", 53, "UDP"),
    ("mdns", 5353, "UDP"),
    ("sctp-a", 9003, "SCTP"),
    ("sctp-b", 9005, "SCTP"),
]


def namespace_name(house: str) -> str:
    return f"network-policy-conformance-{house}"


def world_pods() -> list[dict[str, Any]]:
    pods = []
    for n, (house, stem) in enumerate(HOUSES.items(), start=1):
        for m in (0, 1):
            pods.append(
                {
                    "kind": "Pod",
                    "metadata": {
                        "name": f"{stem}-{m}",
                        "namespace": namespace_name(house),
                        "labels": {"conformance-house": house},
                    },
                    "spec": {
                        "nodeName": f"node-{m}",
                        "containers": [
                            {
                                "name": "server",
                                "ports": [
                                    {"name": name, "containerPort": port, "protocol": proto}
                                    for name, port, proto in PORTS
                                ],
                            }
                        ],
                    },
                    "status": {"podIP": f"10.0.{n}.{m + 1}", "hostIP": NODE_IPS[m]},
                }
            )
    return pods


def world_nodes() -> list[dict[str, Any]]:
    return [
        {
            "kind": "Node",
            "metadata": {"name": f"node-{m}", "labels": {"kubernetes.io/os": "linux"}},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
        }
        for m, ip in NODE_IPS.items()
    ]


def build(documents: list[dict[str, Any]], swap: dict[str, Any] | None = None) -> PolicyIndex:
    namespaces = [
        parse_namespace({"metadata": {"name": namespace_name(h), "labels": {HOUSE: h}}})
        for h in HOUSES
    ]
    core, others = [], []
    for doc in documents:
        if swap and doc["metadata"]["name"] == swap["policy"]:
            rules = doc["spec"][swap["direction"]]
            a, b = swap["rules"]
            rules[a], rules[b] = rules[b], rules[a]
        if doc["kind"] == "NetworkPolicy":
            core.append(parse_policy(doc))
        else:
            others.append(KINDS[(doc["apiVersion"].split("/")[0], doc["kind"])](doc))
    rules = families.rules(namespaces, core, others, [parse_node(n) for n in world_nodes()])
    return PolicyIndex([parse_pod(p) for p in world_pods()], rules)


def endpoint(text: str) -> PodRef | str:
    """`g/harry-potter-0` (house initial / pod), or an address."""
    house, sep, pod = text.partition("/")
    return PodRef(namespace_name(SHORT[house]), pod) if sep else text


def flow(src: str, dst: str, service: str) -> Flow:
    if service == ICMP:
        return Flow(endpoint(src), endpoint(dst), 0, ICMP)
    proto, port = service.split("/")
    return Flow(endpoint(src), endpoint(dst), int(port), L4Protocol(proto))


CASES = yaml.safe_load((Path(__file__).parent / "cluster_policy_cases.yaml").read_text())


def documents(name: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    case = CASES[name]
    base = CASES[case["base"]] if "base" in case else case
    text = base["manifests"]
    text = text.replace("PRIORITY", str(case.get("priority", base.get("priority", 0))))
    text = text.replace("ACTION", str(case.get("action", base.get("action", ""))))
    docs = [doc for doc in yaml.safe_load_all(text) if doc["kind"] != case.get("drop")]
    return docs, case


CHECKS = [
    pytest.param(name, check, id=f"{name}: {' '.join(check.split()[:3])}")
    for name, case in CASES.items()
    for check in case["checks"]
]


@pytest.mark.parametrize(("name", "check"), CHECKS)
def test_conformance_case(name: str, check: str) -> None:
    docs, case = documents(name)
    index = build(docs, case.get("swap"))
    src, dst, service, action, *rule = check.split()
    verdict = index.evaluate(flow(src, dst, service))
    expected_rule = None if rule == ["-"] else " ".join(rule)
    if action == Action.ALLOW:
        assert verdict.allowed, verdict
    elif action == Action.DENY:
        assert not verdict.allowed and not verdict.unknown, verdict
    else:
        assert verdict.unknown and not verdict.allowed, verdict
    decided = verdict.decided_by
    assert (str(decided) if decided else None) == expected_rule, verdict
    if expected_rule is None:
        assert "no rule matched: default allow" in verdict.ingress.reason + verdict.egress.reason


CNP_BASE = {
    "apiVersion": "policy.networking.k8s.io/v1alpha2",
    "kind": "ClusterNetworkPolicy",
    "metadata": {"name": "p"},
}
GOOD_SPEC = {"tier": "Admin", "priority": 1, "subject": {"namespaces": {}}}
INVALID = [
    ({**GOOD_SPEC, "tier": "Middle"}, "spec.tier"),
    ({**GOOD_SPEC, "priority": 1001}, "spec.priority"),
    ({**GOOD_SPEC, "subject": {"namespaces": {}, "pods": {}}}, "spec.subject"),
    ({**GOOD_SPEC, "subject": {"namespace": {}}}, "spec.subject.namespace"),
    (
        {**GOOD_SPEC, "subject": {"namespaces": {"matchLabel": {"a": "b"}}}},
        "spec.subject.namespaces.matchLabel",
    ),
    (
        {**GOOD_SPEC, "ingress": [{"action": "Allow", "from": [{"namespaces": {}}]}]},
        "spec.ingress[0].action",
    ),
    ({**GOOD_SPEC, "ingress": [{"action": "Deny", "from": []}]}, "spec.ingress[0].from"),
    (
        {**GOOD_SPEC, "ingress": [{"action": "Deny", "from": [{"nodes": {}}]}]},
        "spec.ingress[0].from[0].nodes",
    ),
    (
        {**GOOD_SPEC, "egress": [{"action": "Deny", "to": [{"networks": ["10.0.0.1"]}]}]},
        "spec.egress[0].to[0].networks[0]",
    ),
    (
        {**GOOD_SPEC, "egress": [{"action": "Deny", "to": [{"domainNames": ["a.example"]}]}]},
        "spec.egress[0].to[0].domainNames",
    ),
    (
        {
            **GOOD_SPEC,
            "egress": [
                {
                    "action": "Deny",
                    "to": [{"namespaces": {}}],
                    "protocols": [
                        {"tcp": {"destinationPort": {"range": {"start": 90, "end": 80}}}}
                    ],
                }
            ],
        },
        "spec.egress[0].protocols[0].tcp.destinationPort.range.end",
    ),
    (
        {
            **GOOD_SPEC,
            "egress": [
                {
                    "action": "Deny",
                    "to": [{"namespaces": {}}],
                    "ports": [{"portNumber": {"port": 80}}],
                }
            ],
        },
        "spec.egress[0].ports",
    ),
]


@pytest.mark.parametrize(("spec", "field"), INVALID, ids=[field for _, field in INVALID])
def test_malformed_cluster_network_policy_names_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(FieldError) as caught:
        parse_cluster_network_policy({**CNP_BASE, "spec": spec})
    assert caught.value.field == field


def test_baseline_admin_network_policy_is_the_singleton_default() -> None:
    with pytest.raises(FieldError, match="must be named default") as caught:
        KINDS[("policy.networking.k8s.io", "BaselineAdminNetworkPolicy")](
            {
                "apiVersion": "policy.networking.k8s.io/v1alpha1",
                "metadata": {"name": "other"},
                "spec": {"subject": {"namespaces": {}}},
            }
        )
    assert caught.value.field == "metadata.name"


def test_priority_orders_policies_whatever_selects_their_subjects() -> None:
    """Subjects selected by namespace labels, by pod labels or by everything are looked up in
    separate label buckets; the tier still takes them by priority alone."""

    def cnp(name: str, priority: int, subject: dict[str, Any], action: str) -> dict[str, Any]:
        rule = {"action": action, "from": [{"namespaces": {}}]}
        spec = {"tier": "Admin", "priority": priority, "subject": subject, "ingress": [rule]}
        return {**CNP_BASE, "metadata": {"name": name}, "spec": spec}

    by_namespace = {"namespaces": {"matchLabels": {HOUSE: "gryffindor"}}}
    by_pod = {
        "pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {HOUSE: "gryffindor"}}}
    }
    everything = {"namespaces": {}}
    into_gryffindor = flow("r/luna-lovegood-0", "g/harry-potter-0", "TCP/80")
    for first, second in ((by_pod, by_namespace), (by_namespace, by_pod), (everything, by_pod)):
        index = build([cnp("a-accept", 2, second, "Accept"), cnp("z-deny", 1, first, "Deny")])
        verdict = index.evaluate(into_gryffindor)
        assert str(verdict.decided_by) == "ClusterNetworkPolicy z-deny ingress[0]", verdict
