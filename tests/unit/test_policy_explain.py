"""Why a flow is allowed or denied: the policies named, the admitting rule, the nearest miss."""

from __future__ import annotations

import textwrap
from ipaddress import ip_address
from typing import Any

import pytest
import yaml

from hopscope_policy import (
    ICMP,
    Direction,
    Flow,
    L4Protocol,
    PodRef,
    PolicyIndex,
    PolicyRules,
    RuleRef,
    UnknownPod,
    parse_namespace,
    parse_pod,
    parse_policy,
)
from hopscope_policy.evaluate import NetworkPolicyTier
from hopscope_policy.selectors import Operator, Requirement, Selector
from hopscope_policy.tiers import Action, Decision

IPS = {"x/a": "10.0.1.1", "x/b": "10.0.1.2", "y/b": "10.0.2.2", "y/c": "10.0.2.3"}
IPS |= {"z/b": "10.0.3.2", "node/agent": "192.168.0.9"}


def pod(ref: str, ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Pods run on node-1 (192.168.0.1), but y/c and the hostNetwork node/agent on node-9."""
    ns, name = ref.split("/")
    on_9 = ns == "node" or ref == "y/c"
    return {
        "metadata": {"name": name, "namespace": ns, "labels": {"pod": name}},
        "spec": {
            "hostNetwork": ns == "node",
            "nodeName": "node-9" if on_9 else "node-1",
            "containers": [{"name": "app", "ports": ports or []}],
        },
        "status": {"podIP": IPS[ref], "hostIP": "192.168.0.9" if on_9 else "192.168.0.1"},
    }


def index(*policies: str) -> PolicyIndex:
    pods = [pod(ref) for ref in IPS if ref not in ("y/b", "y/c")]
    pods.append(pod("y/b", [{"name": "http", "containerPort": 80}]))
    pods.append(pod("y/c", [{"name": "http", "containerPort": 8080}]))
    namespaces = [{"metadata": {"name": ns, "labels": {"ns": ns}}} for ns in "xyz"]
    rules = PolicyRules(
        [parse_namespace(n) for n in namespaces],
        [parse_policy(yaml.safe_load(textwrap.dedent(text))) for text in policies],
    )
    return PolicyIndex([parse_pod(p) for p in pods], rules)


def netpol(ns: str, name: str, spec: str) -> str:
    body = textwrap.indent(textwrap.dedent(spec).strip(), "  ")
    return f"metadata: {{name: {name}, namespace: {ns}}}\nspec:\n{body}\n"


def flow(src: str, dst: str, port: int = 80, protocol: L4Protocol = L4Protocol.TCP) -> Flow:
    def end(text: str) -> PodRef | Any:
        return PodRef.parse(text) if "/" in text else ip_address(text)

    return Flow(end(src), end(dst), port, protocol)


DENY_Y = netpol("y", "deny-all", "{podSelector: {}, policyTypes: [Ingress]}")
Y_B_FROM_Y_B_HTTP = netpol(
    "y",
    "allow-b",
    """
    podSelector: {matchLabels: {pod: b}}
    ingress:
    - from: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}}]
      ports: [{port: 8080}]
    """,
)


def test_a_pod_no_policy_selects_is_not_isolated() -> None:
    verdict = index().evaluate(flow("x/a", "y/b"))
    assert verdict.allowed
    for side, word in ((verdict.egress, "egress"), (verdict.ingress, "ingress")):
        assert side.allowed and not side.isolated and side.admitted_by is None
        assert "is not isolated for " + word in side.reason


def test_the_admitting_rule_is_named() -> None:
    allow = netpol(
        "y",
        "allow",
        """
        podSelector: {}
        ingress:
        - from: [{podSelector: {matchLabels: {pod: nobody}}}]
        - from: [{namespaceSelector: {matchLabels: {ns: x}}}]
        """,
    )
    verdict = index(allow, DENY_Y).evaluate(flow("x/a", "y/b"))
    assert verdict.allowed
    assert verdict.ingress.policies == ("y/allow", "y/deny-all")
    assert verdict.ingress.admitted_by == RuleRef("y/allow", Direction.INGRESS, 1)
    assert verdict.ingress.reason == (
        "y/b is isolated for ingress by policies y/allow, y/deny-all; y/allow ingress[1] admits it"
    )


def test_a_default_deny_has_no_rule_to_miss() -> None:
    side = index(DENY_Y).evaluate(flow("x/a", "y/b")).ingress
    assert not side.allowed and side.nearest_miss is None
    assert side.reason == (
        "y/b is isolated for ingress by policy y/deny-all and no rule matches "
        "(it has no ingress rules)"
    )


def test_egress_denial_names_every_policy() -> None:
    p1 = netpol("x", "p1", "{podSelector: {}, policyTypes: [Egress]}")
    p2 = netpol(
        "x", "p2", "{podSelector: {matchLabels: {pod: a}}, egress: [{ports: [{port: 53}]}]}"
    )
    verdict = index(p2, p1).evaluate(flow("x/a", "y/b"))
    assert not verdict.allowed and verdict.ingress.allowed
    assert verdict.egress.policies == ("x/p1", "x/p2")
    assert verdict.egress.reason.startswith(
        "x/a is isolated for egress by policies x/p1, x/p2 and no rule matches; nearest miss: "
        "x/p2 egress[0]: y/b matches the rule's peers but not its ports: it allows TCP/53; "
        "the flow is TCP/80"
    )


def test_a_near_miss_matches_on_one_side() -> None:
    miss = index(Y_B_FROM_Y_B_HTTP).evaluate(flow("y/c", "y/b", 8081)).ingress.nearest_miss
    assert miss is None  # y/c misses the pod selector and the port: nothing is near
    miss = index(Y_B_FROM_Y_B_HTTP).evaluate(flow("y/b", "y/b", 80)).ingress.nearest_miss
    assert miss is None  # loopback: allowed, no miss
    side = index(Y_B_FROM_Y_B_HTTP).evaluate(flow("x/b", "y/b", 8080)).ingress
    assert side.nearest_miss is not None and side.nearest_miss.missed == ("namespaceSelector",)


def test_nearest_miss_port_names_rule_ports_and_flow() -> None:
    policy = netpol(
        "y",
        "web",
        "{podSelector: {}, ingress: [{ports: [{port: 8080}, {protocol: UDP, port: 80}]}]}",
    )
    miss = index(policy).evaluate(flow("x/a", "y/b")).ingress.nearest_miss
    assert miss is not None
    assert miss.rule == RuleRef("y/web", Direction.INGRESS, 0)
    assert miss.missed == ("port",)
    assert str(miss) == (
        "y/web ingress[0]: x/a matches the rule's peers but not its ports: "
        "it allows TCP/8080, UDP/80; the flow is TCP/80"
    )


def test_nearest_miss_namespace_of_an_and_peer() -> None:
    policy = netpol(
        "y",
        "from-y-b",
        """
        podSelector: {}
        ingress:
        - from: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}}]
        """,
    )
    miss = index(policy).evaluate(flow("z/b", "y/c")).ingress.nearest_miss
    assert miss is not None and miss.missed == ("namespaceSelector",)
    assert miss.detail == (
        "the port matches but from[0] does not: namespace z "
        "(kubernetes.io/metadata.name=z,ns=z) does not match namespaceSelector ns=y"
    )
    miss = index(policy).evaluate(flow("x/a", "y/c")).ingress.nearest_miss
    assert miss is not None and miss.missed == ("namespaceSelector", "podSelector")


def test_nearest_miss_pod_label() -> None:
    policy = netpol(
        "y",
        "from-b",
        "{podSelector: {}, ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]}",
    )
    miss = index(policy).evaluate(flow("y/c", "y/b")).ingress.nearest_miss
    assert miss is not None and miss.missed == ("podSelector",)
    assert miss.detail.endswith("y/c (pod=c) does not match podSelector pod=b")


def test_nearest_miss_pod_selector_alone_stays_in_its_namespace() -> None:
    policy = netpol(
        "y",
        "from-b",
        "{podSelector: {}, ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]}",
    )
    miss = index(policy).evaluate(flow("x/b", "y/c")).ingress.nearest_miss
    assert miss is not None and miss.missed == ("namespaceSelector",)
    assert miss.detail.endswith(
        "with no namespaceSelector it selects pods in y only, and x/b is in x"
    )


def test_nearest_miss_prefers_fewer_missed_fields() -> None:
    policy = netpol(
        "y",
        "two",
        """
        podSelector: {}
        ingress:
        - from: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}}]
        - from: [{namespaceSelector: {matchLabels: {ns: x}}}]
          ports: [{port: 443}]
        """,
    )
    miss = index(policy).evaluate(flow("x/a", "y/c")).ingress.nearest_miss
    assert miss is not None
    assert (miss.rule.rule, miss.missed) == (1, ("port",))


def test_ip_block_except_and_outside() -> None:
    policy = netpol(
        "y",
        "from-net",
        """
        podSelector: {}
        ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.1.0/24]}}]}]
        """,
    )
    miss = index(policy).evaluate(flow("x/a", "y/b")).ingress.nearest_miss
    assert miss is not None and miss.missed == ("ipBlock",)
    assert miss.detail.endswith("10.0.1.1 is excluded by ipBlock 10.0.0.0/16 except 10.0.1.0/24")
    miss = index(policy).evaluate(flow("172.16.0.1", "y/b")).ingress.nearest_miss
    assert miss is not None and miss.detail.endswith(
        "172.16.0.1 is outside ipBlock 10.0.0.0/16 except 10.0.1.0/24"
    )


def test_named_port_is_explained_on_the_destination() -> None:
    policy = netpol(
        "y", "named", "{podSelector: {}, ingress: [{ports: [{port: http}, {port: metrics}]}]}"
    )
    ours = index(policy)
    assert ours.evaluate(flow("x/a", "y/b", 80)).allowed
    assert ours.evaluate(flow("x/a", "y/c", 8080)).allowed
    miss = ours.evaluate(flow("x/a", "y/c", 80)).ingress.nearest_miss
    assert miss is not None
    assert (
        "it allows TCP/http (= 8080 on y/c), "
        "TCP/metrics (no TCP container port of y/c is named metrics)" in miss.detail
    )


def test_named_port_to_an_outside_address_never_matches() -> None:
    policy = netpol(
        "x", "out", "{podSelector: {}, policyTypes: [Egress], egress: [{ports: [{port: http}]}]}"
    )
    side = index(policy).evaluate(flow("x/a", "1.1.1.1")).egress
    assert not side.allowed and side.nearest_miss is not None
    assert "TCP/http (named ports exist only on pod-network pods)" in side.nearest_miss.detail


def test_outside_addresses_are_not_governed_and_only_ip_blocks_match_them() -> None:
    policy = netpol(
        "y", "from-pods", "{podSelector: {}, ingress: [{from: [{namespaceSelector: {}}]}]}"
    )
    verdict = index(policy).evaluate(flow("203.0.113.7", "y/b"))
    assert verdict.egress.allowed
    assert verdict.egress.reason == "203.0.113.7 is not a pod: no NetworkPolicy governs its egress"
    miss = verdict.ingress.nearest_miss
    assert not verdict.ingress.allowed and miss is not None
    assert miss.detail.endswith("203.0.113.7 is not a pod, which only an ipBlock peer matches")
    assert (
        index()
        .evaluate(flow("x/a", "203.0.113.7"))
        .ingress.reason.startswith("203.0.113.7 is not a pod")
    )


def test_an_address_of_a_pod_is_that_pod() -> None:
    verdict = index(DENY_Y).evaluate(flow("10.0.1.1", "10.0.2.2"))
    assert (verdict.source, verdict.destination) == ("x/a", "y/b")
    assert verdict.ingress.policies == ("y/deny-all",)


def test_host_network_pods_are_node_traffic() -> None:
    deny_node = netpol("node", "deny", "{podSelector: {}, policyTypes: [Ingress, Egress]}")
    ours = index(DENY_Y, deny_node)
    verdict = ours.evaluate(flow("node/agent", "y/b"))
    assert (
        verdict.egress.allowed
        and verdict.egress.reason == "node/agent uses hostNetwork: policies never select it"
    )
    miss = verdict.ingress.nearest_miss
    assert not verdict.ingress.allowed and miss is None
    # y/c runs on the agent's node: traffic from a pod's own node is always let in.
    into_y_c = ours.evaluate(flow("node/agent", "y/c")).ingress
    assert into_y_c.allowed and into_y_c.reason == (
        "y/c is isolated for ingress by policy y/deny-all, but node/agent is on the pod's own "
        "node, which is always let in"
    )


def test_a_pod_reaches_itself() -> None:
    verdict = index(DENY_Y).evaluate(flow("y/b", "y/b"))
    assert verdict.allowed and "loopback" in verdict.ingress.reason


def test_both_directions_must_allow() -> None:
    deny_x_out = netpol("x", "deny-out", "{podSelector: {}, policyTypes: [Egress]}")
    verdict = index(deny_x_out).evaluate(flow("x/a", "y/b"))
    assert not verdict.allowed and not verdict.egress.allowed and verdict.ingress.allowed


def test_unknown_pod() -> None:
    with pytest.raises(UnknownPod, match="no pod q in namespace x"):
        index().evaluate(flow("x/q", "y/b"))


@pytest.mark.parametrize(
    ("selector", "text"),
    [
        (Selector(), "{}"),
        (Selector((("app", "web"),)), "app=web"),
        (
            Selector(
                (("app", "web"),),
                (
                    Requirement("tier", Operator.IN, frozenset({"db", "cache"})),
                    Requirement("env", Operator.NOT_IN, frozenset({"dev"})),
                    Requirement("team", Operator.EXISTS),
                    Requirement("legacy", Operator.DOES_NOT_EXIST),
                ),
            ),
            "app=web,tier in (cache,db),env notin (dev),team,!legacy",
        ),
    ],
)
def test_selectors_print_as_kubectl_label_queries(selector: Selector, text: str) -> None:
    assert str(selector) == text


@pytest.mark.parametrize(
    ("requirement", "labels", "matches"),
    [
        (Requirement("env", Operator.IN, frozenset({"prod"})), {"env": "prod"}, True),
        (Requirement("env", Operator.IN, frozenset({"prod"})), {}, False),
        (Requirement("env", Operator.NOT_IN, frozenset({"prod"})), {}, True),
        (Requirement("env", Operator.NOT_IN, frozenset({"prod"})), {"env": "prod"}, False),
        (Requirement("env", Operator.EXISTS), {"env": ""}, True),
        (Requirement("env", Operator.DOES_NOT_EXIST), {"env": ""}, False),
    ],
)
def test_requirements(requirement: Requirement, labels: dict[str, str], matches: bool) -> None:
    assert requirement.matches(labels) is matches


# ---- ICMP: no port, so only a rule without ports admits it ----------------------------------


def ping(src: str, dst: str) -> Flow:
    return Flow(PodRef.parse(src), PodRef.parse(dst), 0, ICMP)


def test_a_ping_into_an_isolated_pod_is_denied_by_a_rule_with_ports():
    verdict = index(DENY_Y, Y_B_FROM_Y_B_HTTP).evaluate(ping("z/b", "y/b"))
    assert not verdict.ingress.allowed
    assert str(verdict.flow) == "z/b -> y/b ICMP"
    assert verdict.ingress.policies == ("y/allow-b", "y/deny-all")
    # The peer would match a rule naming its namespace; its ports never match ICMP.
    same_ns = index(DENY_Y, Y_B_FROM_Y_B_HTTP.replace("ns: y", "ns: z"))
    missed = same_ns.evaluate(ping("z/b", "y/b")).ingress
    assert not missed.allowed
    assert missed.nearest_miss is not None and missed.nearest_miss.missed == ("port",)
    assert "the flow is ICMP" in missed.nearest_miss.detail


def test_a_rule_without_ports_admits_a_ping_from_its_peers_only():
    any_port = netpol(
        "y",
        "from-z",
        "{podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {ns: z}}}]}]}",
    )
    policies = index(DENY_Y, any_port)
    assert policies.evaluate(ping("z/b", "y/b")).allowed
    assert not policies.evaluate(ping("x/a", "y/b")).allowed


def decide(found: PolicyIndex, src: str, dst: str, direction: Direction) -> Decision | None:
    """The NetworkPolicy tier's decision on one direction of src -> dst (a pod both)."""
    the_flow = flow(src, dst)
    source, destination = found.endpoints(the_flow)
    subject, peer = (
        (source, destination) if direction is Direction.EGRESS else (destination, source)
    )
    target = found.pod(PodRef.parse(dst))
    return NetworkPolicyTier(found).decide(direction, subject, peer, the_flow, target)


def test_network_policies_as_a_tier_name_the_deciding_object_and_rule() -> None:
    allow = netpol(
        "y", "allow-x", "{podSelector: {}, ingress: [{from: [{namespaceSelector: {}}]}]}"
    )
    admitted = decide(index(DENY_Y, allow), "x/a", "y/b", Direction.INGRESS)
    assert admitted is not None and admitted.action is Action.ALLOW
    assert str(admitted.rule) == "NetworkPolicy y/allow-x ingress[0]"
    denied = decide(index(DENY_Y), "x/a", "y/b", Direction.INGRESS)
    assert denied is not None and denied.action is Action.DENY
    assert str(denied.rule) == "NetworkPolicy y/deny-all"
    assert denied.reason.endswith("no ingress rules): default deny of the isolation")
    # Nothing isolates x/a's egress: the tier leaves the decision to the next one.
    assert decide(index(DENY_Y), "x/a", "y/b", Direction.EGRESS) is None
