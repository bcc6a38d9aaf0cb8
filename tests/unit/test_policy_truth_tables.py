"""NetworkPolicy truth tables in the style of Kubernetes' network-policy conformance tests.

Namespaces x, y, z (labels ns=x, …) each hold pods a, b, c (labels pod=a, …; pods c also carry
tier=db). Pod IPs are 10.0.N.M (N: x=1, y=2, z=3; M: a=1, b=2, c=3); pods a, b, c run on
node-1, node-2, node-3 (192.168.0.1-3). Every pod serves 80/TCP (serve-80-tcp), 81/TCP
(serve-81-tcp), 80/UDP (serve-80-udp), 80/SCTP (serve-80-sctp), and the named port `web`: 80
on pods a and b, 8080 on pods c.

Each case states its full 9x9 matrix per flow: rows are sources, columns destinations, in the
order x/a x/b x/c | y/a y/b y/c | z/a z/b z/c; `.` allowed, `X` denied. A pod always reaches
itself (the conformance tests' AllowLoopback).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from hopscope_policy import (
    L4Protocol,
    PolicyIndex,
    PolicyRules,
    parse_namespace,
    parse_pod,
    parse_policy,
)

NAMESPACES = "xyz"
PODS = "abc"
ORDER = [f"{ns}/{pod}" for ns in NAMESPACES for pod in PODS]
WEB_PORT = {"a": 80, "b": 80, "c": 8080}


def pod_json(ns: str, name: str, host_network: bool) -> dict[str, Any]:
    n, m = NAMESPACES.index(ns) + 1, PODS.index(name) + 1
    host_ip = f"192.168.0.{m}"
    labels = {"pod": name, **({"tier": "db"} if name == "c" else {})}
    ports = [
        {"name": "serve-80-tcp", "containerPort": 80},
        {"name": "serve-81-tcp", "containerPort": 81, "protocol": "TCP"},
        {"name": "serve-80-udp", "containerPort": 80, "protocol": "UDP"},
        {"name": "serve-80-sctp", "containerPort": 80, "protocol": "SCTP"},
        {"name": "web", "containerPort": WEB_PORT[name]},
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {
            "nodeName": f"node-{m}",
            "hostNetwork": host_network,
            "containers": [{"name": "server", "ports": ports}],
        },
        "status": {"podIP": host_ip if host_network else f"10.0.{n}.{m}", "hostIP": host_ip},
    }


def policy(ns: str, name: str, spec: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": yaml.safe_load(textwrap.dedent(spec)),
    }


@dataclass(frozen=True)
class Case:
    name: str
    policies: list[dict[str, Any]]
    expect: dict[str, str]  # "TCP/80" -> grid
    host_network: tuple[str, ...] = field(default=())


def build(case: Case) -> PolicyIndex:
    pods = [
        parse_pod(pod_json(ns, name, f"{ns}/{name}" in case.host_network))
        for ns in NAMESPACES
        for name in PODS
    ]
    namespaces = [parse_namespace({"metadata": {"name": ns, "labels": {"ns": ns}}}) for ns in "xyz"]
    return PolicyIndex(pods, PolicyRules(namespaces, [parse_policy(p) for p in case.policies]))


def parse_grid(text: str) -> dict[str, dict[str, bool]]:
    rows = {}
    for line in textwrap.dedent(text).strip().splitlines():
        label, *groups = line.split()
        marks = "".join(groups)
        assert len(marks) == len(ORDER) and set(marks) <= {".", "X"}, line
        rows[label] = {dst: mark == "." for dst, mark in zip(ORDER, marks, strict=True)}
    assert list(rows) == ORDER
    return rows


def show(matrix: dict[str, dict[str, bool]]) -> str:
    lines = []
    for src in ORDER:
        marks = "".join("." if matrix[src][dst] else "X" for dst in ORDER)
        lines.append(f"{src} {marks[:3]} {marks[3:6]} {marks[6:]}")
    return "\n".join(lines)


OPEN = """
    x/a ... ... ...
    x/b ... ... ...
    x/c ... ... ...
    y/a ... ... ...
    y/b ... ... ...
    y/c ... ... ...
    z/a ... ... ...
    z/b ... ... ...
    z/c ... ... ...
"""
X_INGRESS_CLOSED = """
    x/a .XX ... ...
    x/b X.X ... ...
    x/c XX. ... ...
    y/a XXX ... ...
    y/b XXX ... ...
    y/c XXX ... ...
    z/a XXX ... ...
    z/b XXX ... ...
    z/c XXX ... ...
"""
X_EGRESS_CLOSED = """
    x/a .XX XXX XXX
    x/b X.X XXX XXX
    x/c XX. XXX XXX
    y/a ... ... ...
    y/b ... ... ...
    y/c ... ... ...
    z/a ... ... ...
    z/b ... ... ...
    z/c ... ... ...
"""
XA_INGRESS_CLOSED = """
    x/a ... ... ...
    x/b X.. ... ...
    x/c X.. ... ...
    y/a X.. ... ...
    y/b X.. ... ...
    y/c X.. ... ...
    z/a X.. ... ...
    z/b X.. ... ...
    z/c X.. ... ...
"""
DENY_X_INGRESS = policy("x", "deny-ingress", "{podSelector: {}, policyTypes: [Ingress]}")
DENY_X_EGRESS = policy("x", "deny-egress", "{podSelector: {}, policyTypes: [Egress]}")


def only_a(rules: str, types: str = "[Ingress]") -> str:
    return f"{{podSelector: {{matchLabels: {{pod: a}}}}, policyTypes: {types}, {rules}}}"


CASES = [
    Case("no policies: everything is allowed", [], {"TCP/80": OPEN}),
    Case("default deny ingress, policyTypes given", [DENY_X_INGRESS], {"TCP/80": X_INGRESS_CLOSED}),
    Case(
        "default deny ingress, policyTypes defaulted to Ingress",
        [policy("x", "deny", "{podSelector: {}}")],
        {"TCP/80": X_INGRESS_CLOSED},
    ),
    Case("default deny egress", [DENY_X_EGRESS], {"TCP/80": X_EGRESS_CLOSED}),
    Case(
        "default deny both directions",
        [policy("x", "deny-all", "{podSelector: {}, policyTypes: [Ingress, Egress]}")],
        {
            "TCP/80": """
                x/a .XX XXX XXX
                x/b X.X XXX XXX
                x/c XX. XXX XXX
                y/a XXX ... ...
                y/b XXX ... ...
                y/c XXX ... ...
                z/a XXX ... ...
                z/b XXX ... ...
                z/c XXX ... ...
            """
        },
    ),
    Case(
        "allow-all ingress beside a default deny: the union allows",
        [DENY_X_INGRESS, policy("x", "allow-all", "{podSelector: {}, ingress: [{}]}")],
        {"TCP/80": OPEN},
    ),
    Case(
        "allow-all egress beside a default deny: the union allows",
        [
            DENY_X_EGRESS,
            policy("x", "allow-all", "{podSelector: {}, policyTypes: [Egress], egress: [{}]}"),
        ],
        {"TCP/80": OPEN},
    ),
    Case(
        "empty from list admits every source",
        [DENY_X_INGRESS, policy("x", "open-a", only_a("ingress: [{from: []}]"))],
        {
            "TCP/80": """
                x/a .XX ... ...
                x/b ..X ... ...
                x/c .X. ... ...
                y/a .XX ... ...
                y/b .XX ... ...
                y/c .XX ... ...
                z/a .XX ... ...
                z/b .XX ... ...
                z/c .XX ... ...
            """
        },
    ),
    Case(
        "empty ingress list admits nothing",
        [policy("x", "closed-a", "{podSelector: {matchLabels: {pod: a}}, ingress: []}")],
        {"TCP/80": XA_INGRESS_CLOSED},
    ),
    Case(
        "absent from with ports: every source on those ports only",
        [policy("x", "port-80", only_a("ingress: [{ports: [{port: 80}]}]"))],
        {"TCP/80": OPEN, "TCP/81": XA_INGRESS_CLOSED, "UDP/80": XA_INGRESS_CLOSED},
    ),
    Case(
        "podSelector peer selects in the policy's namespace only",
        [
            policy(
                "x", "from-b", only_a("ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]")
            )
        ],
        {
            "TCP/80": """
                x/a ... ... ...
                x/b ... ... ...
                x/c X.. ... ...
                y/a X.. ... ...
                y/b X.. ... ...
                y/c X.. ... ...
                z/a X.. ... ...
                z/b X.. ... ...
                z/c X.. ... ...
            """
        },
    ),
    Case(
        "namespaceSelector peer selects every pod of matching namespaces",
        [
            policy(
                "x",
                "from-y",
                only_a("ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}]}]"),
            )
        ],
        {
            "TCP/80": """
                x/a ... ... ...
                x/b X.. ... ...
                x/c X.. ... ...
                y/a ... ... ...
                y/b ... ... ...
                y/c ... ... ...
                z/a X.. ... ...
                z/b X.. ... ...
                z/c X.. ... ...
            """
        },
    ),
    Case(
        "namespaceSelector and podSelector in one peer: AND",
        [
            policy(
                "x",
                "from-y-b",
                only_a(
                    "ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}, "
                    "podSelector: {matchLabels: {pod: b}}}]}]"
                ),
            )
        ],
        {
            "TCP/80": """
                x/a ... ... ...
                x/b X.. ... ...
                x/c X.. ... ...
                y/a X.. ... ...
                y/b ... ... ...
                y/c X.. ... ...
                z/a X.. ... ...
                z/b X.. ... ...
                z/c X.. ... ...
            """
        },
    ),
    Case(
        "namespaceSelector and podSelector as two peers: OR",
        [
            policy(
                "x",
                "from-y-or-b",
                only_a(
                    "ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}, "
                    "{podSelector: {matchLabels: {pod: b}}}]}]"
                ),
            )
        ],
        {
            "TCP/80": """
                x/a ... ... ...
                x/b ... ... ...
                x/c X.. ... ...
                y/a ... ... ...
                y/b ... ... ...
                y/c ... ... ...
                z/a X.. ... ...
                z/b X.. ... ...
                z/c X.. ... ...
            """
        },
    ),
    Case(
        "empty namespaceSelector: every namespace",
        [
            policy(
                "x",
                "from-any-c",
                only_a(
                    "ingress: [{from: [{namespaceSelector: {}, "
                    "podSelector: {matchLabels: {pod: c}}}]}]"
                ),
            )
        ],
        {
            "TCP/80": """
                x/a ... ... ...
                x/b X.. ... ...
                x/c ... ... ...
                y/a X.. ... ...
                y/b X.. ... ...
                y/c ... ... ...
                z/a X.. ... ...
                z/b X.. ... ...
                z/c ... ... ...
            """
        },
    ),
    Case(
        "empty podSelector peer: every pod of the policy's namespace",
        [policy("x", "from-x", only_a("ingress: [{from: [{podSelector: {}}]}]"))],
        {
            "TCP/80": """
                x/a ... ... ...
                x/b ... ... ...
                x/c ... ... ...
                y/a X.. ... ...
                y/b X.. ... ...
                y/c X.. ... ...
                z/a X.. ... ...
                z/b X.. ... ...
                z/c X.. ... ...
            """
        },
    ),
    Case(
        "matchExpressions NotIn on the namespace name label the API server sets",
        [
            policy(
                "x",
                "not-from-y",
                """
                podSelector: {}
                ingress:
                - from:
                  - namespaceSelector:
                      matchExpressions:
                      - {key: kubernetes.io/metadata.name, operator: NotIn, values: [y]}
                """,
            )
        ],
        {
            "TCP/80": """
                x/a ... ... ...
                x/b ... ... ...
                x/c ... ... ...
                y/a XXX ... ...
                y/b XXX ... ...
                y/c XXX ... ...
                z/a ... ... ...
                z/b ... ... ...
                z/c ... ... ...
            """
        },
    ),
    Case(
        "matchExpressions In, Exists and NotIn",
        [
            policy(
                "y",
                "a-b-from-not-a",
                """
                podSelector:
                  matchExpressions: [{key: pod, operator: In, values: [a, b]}]
                ingress:
                - from:
                  - namespaceSelector:
                      matchExpressions: [{key: ns, operator: Exists}]
                    podSelector:
                      matchExpressions: [{key: pod, operator: NotIn, values: [a]}]
                """,
            )
        ],
        {
            "TCP/80": """
                x/a ... XX. ...
                x/b ... ... ...
                x/c ... ... ...
                y/a ... .X. ...
                y/b ... ... ...
                y/c ... ... ...
                z/a ... XX. ...
                z/b ... ... ...
                z/c ... ... ...
            """
        },
    ),
    Case(
        "matchExpressions DoesNotExist selects the pods without the label",
        [
            policy(
                "z",
                "deny-untiered",
                """
                podSelector:
                  matchExpressions: [{key: tier, operator: DoesNotExist}]
                policyTypes: [Ingress]
                """,
            )
        ],
        {
            "TCP/80": """
                x/a ... ... XX.
                x/b ... ... XX.
                x/c ... ... XX.
                y/a ... ... XX.
                y/b ... ... XX.
                y/c ... ... XX.
                z/a ... ... .X.
                z/b ... ... X..
                z/c ... ... XX.
            """
        },
    ),
    Case(
        "a policy selects pods in its own namespace only",
        [policy("y", "deny-a", "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress]}")],
        {
            "TCP/80": """
                x/a ... X.. ...
                x/b ... X.. ...
                x/c ... X.. ...
                y/a ... ... ...
                y/b ... X.. ...
                y/c ... X.. ...
                z/a ... X.. ...
                z/b ... X.. ...
                z/c ... X.. ...
            """
        },
    ),
    Case(
        "ipBlock with except matches pod IPs (ingress)",
        [
            policy(
                "x",
                "not-from-y-net",
                only_a(
                    "ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.2.0/24]}}]}]"
                ),
            )
        ],
        {
            "TCP/80": """
                x/a ... ... ...
                x/b ... ... ...
                x/c ... ... ...
                y/a X.. ... ...
                y/b X.. ... ...
                y/c X.. ... ...
                z/a ... ... ...
                z/b ... ... ...
                z/c ... ... ...
            """
        },
    ),
    Case(
        "ipBlock with a /32 except (egress)",
        [
            policy(
                "x",
                "to-z-net",
                only_a(
                    "egress: [{to: [{ipBlock: {cidr: 10.0.3.0/24, except: [10.0.3.2/32]}}]}]",
                    "[Egress]",
                ),
            )
        ],
        {
            "TCP/80": """
                x/a .XX XXX .X.
                x/b ... ... ...
                x/c ... ... ...
                y/a ... ... ...
                y/b ... ... ...
                y/c ... ... ...
                z/a ... ... ...
                z/b ... ... ...
                z/c ... ... ...
            """
        },
    ),
    Case(
        "egress to the internet only: 0.0.0.0/0 except the cluster",
        [
            policy(
                "x",
                "internet-only",
                """
                podSelector: {}
                policyTypes: [Egress]
                egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]}]
                """,
            )
        ],
        {"TCP/80": X_EGRESS_CLOSED},
    ),
    Case(
        "named port resolves on the destination pod (ingress)",
        [policy("x", "web", "{podSelector: {}, ingress: [{ports: [{port: web}]}]}")],
        {
            "TCP/80": """
                x/a ..X ... ...
                x/b ..X ... ...
                x/c ... ... ...
                y/a ..X ... ...
                y/b ..X ... ...
                y/c ..X ... ...
                z/a ..X ... ...
                z/b ..X ... ...
                z/c ..X ... ...
            """,
            "TCP/8080": """
                x/a .X. ... ...
                x/b X.. ... ...
                x/c XX. ... ...
                y/a XX. ... ...
                y/b XX. ... ...
                y/c XX. ... ...
                z/a XX. ... ...
                z/b XX. ... ...
                z/c XX. ... ...
            """,
        },
    ),
    Case(
        "named port resolves on the destination pod (egress)",
        [
            policy(
                "x",
                "web-out",
                "{podSelector: {}, policyTypes: [Egress], egress: [{ports: [{port: web}]}]}",
            )
        ],
        {
            "TCP/80": """
                x/a ..X ..X ..X
                x/b ..X ..X ..X
                x/c ... ..X ..X
                y/a ... ... ...
                y/b ... ... ...
                y/c ... ... ...
                z/a ... ... ...
                z/b ... ... ...
                z/c ... ... ...
            """,
            "TCP/8080": """
                x/a .X. XX. XX.
                x/b X.. XX. XX.
                x/c XX. XX. XX.
                y/a ... ... ...
                y/b ... ... ...
                y/c ... ... ...
                z/a ... ... ...
                z/b ... ... ...
                z/c ... ... ...
            """,
        },
    ),
    Case(
        "named port is looked up on the rule's protocol",
        [
            policy(
                "x",
                "udp-names",
                """
                podSelector: {matchExpressions: [{key: pod, operator: In, values: [a, b]}]}
                ingress:
                - ports: [{protocol: UDP, port: serve-80-tcp}]
                """,
            ),
            policy(
                "x",
                "b-udp",
                """
                podSelector: {matchLabels: {pod: b}}
                ingress:
                - ports: [{protocol: UDP, port: serve-80-udp}]
                """,
            ),
        ],
        {
            "TCP/80": """
                x/a .X. ... ...
                x/b X.. ... ...
                x/c XX. ... ...
                y/a XX. ... ...
                y/b XX. ... ...
                y/c XX. ... ...
                z/a XX. ... ...
                z/b XX. ... ...
                z/c XX. ... ...
            """,
            "UDP/80": XA_INGRESS_CLOSED,
        },
    ),
    Case(
        "endPort ranges include both ends",
        [policy("x", "range", only_a("ingress: [{ports: [{port: 75, endPort: 80}]}]"))],
        {
            "TCP/75": OPEN,
            "TCP/80": OPEN,
            "TCP/74": XA_INGRESS_CLOSED,
            "TCP/81": XA_INGRESS_CLOSED,
        },
    ),
    Case(
        "UDP rule does not admit TCP",
        [policy("x", "udp-80", only_a("ingress: [{ports: [{protocol: UDP, port: 80}]}]"))],
        {"UDP/80": OPEN, "TCP/80": XA_INGRESS_CLOSED},
    ),
    Case(
        "SCTP rule admits SCTP only",
        [policy("x", "sctp-80", only_a("ingress: [{ports: [{protocol: SCTP, port: 80}]}]"))],
        {"SCTP/80": OPEN, "TCP/80": XA_INGRESS_CLOSED, "UDP/80": XA_INGRESS_CLOSED},
    ),
    Case(
        "protocol without a port admits every port of that protocol",
        [policy("x", "any-udp", only_a("ingress: [{ports: [{protocol: UDP}]}]"))],
        {"UDP/5353": OPEN, "UDP/80": OPEN, "TCP/80": XA_INGRESS_CLOSED},
    ),
    Case(
        "peers and ports pair up per rule, never across rules",
        [
            policy(
                "x",
                "two-rules",
                only_a(
                    """ingress: [
                      {from: [{podSelector: {matchLabels: {pod: b}}}], ports: [{port: 81}]},
                      {from: [{namespaceSelector: {matchLabels: {ns: z}}}], ports: [{port: 80}]}
                    ]"""
                ),
            )
        ],
        {
            "TCP/80": """
                x/a ... ... ...
                x/b X.. ... ...
                x/c X.. ... ...
                y/a X.. ... ...
                y/b X.. ... ...
                y/c X.. ... ...
                z/a ... ... ...
                z/b ... ... ...
                z/c ... ... ...
            """,
            "TCP/81": """
                x/a ... ... ...
                x/b ... ... ...
                x/c X.. ... ...
                y/a X.. ... ...
                y/b X.. ... ...
                y/c X.. ... ...
                z/a X.. ... ...
                z/b X.. ... ...
                z/c X.. ... ...
            """,
        },
    ),
    Case(
        "several policies selecting one pod: the union of their rules",
        [
            policy(
                "x", "from-b", only_a("ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]")
            ),
            policy(
                "x",
                "from-z",
                only_a("ingress: [{from: [{namespaceSelector: {matchLabels: {ns: z}}}]}]"),
            ),
        ],
        {
            "TCP/80": """
                x/a ... ... ...
                x/b ... ... ...
                x/c X.. ... ...
                y/a X.. ... ...
                y/b X.. ... ...
                y/c X.. ... ...
                z/a ... ... ...
                z/b ... ... ...
                z/c ... ... ...
            """
        },
    ),
    Case(
        "a flow needs the source's egress and the destination's ingress",
        [
            DENY_X_INGRESS,
            policy(
                "x",
                "from-y",
                """
                podSelector: {}
                ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}]}]
                """,
            ),
            policy("y", "deny-egress", "{podSelector: {}, policyTypes: [Egress]}"),
        ],
        {
            "TCP/80": """
                x/a .XX ... ...
                x/b X.X ... ...
                x/c XX. ... ...
                y/a XXX .XX XXX
                y/b XXX X.X XXX
                y/c XXX XX. XXX
                z/a XXX ... ...
                z/b XXX ... ...
                z/c XXX ... ...
            """
        },
    ),
    Case(
        "policyTypes [Egress] ignores the policy's ingress rules",
        [
            policy(
                "x",
                "egress-only",
                only_a(
                    "ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}], egress: [{}]",
                    "[Egress]",
                ),
            )
        ],
        {"TCP/80": OPEN},
    ),
    Case(
        "egress rules without policyTypes default it to Ingress and Egress",
        [
            policy(
                "x",
                "to-y",
                """
                podSelector: {matchLabels: {pod: a}}
                egress: [{to: [{namespaceSelector: {matchLabels: {ns: y}}}]}]
                """,
            )
        ],
        {
            "TCP/80": """
                x/a .XX ... XXX
                x/b X.. ... ...
                x/c X.. ... ...
                y/a X.. ... ...
                y/b X.. ... ...
                y/c X.. ... ...
                z/a X.. ... ...
                z/b X.. ... ...
                z/c X.. ... ...
            """
        },
    ),
    Case(
        "an empty egress list does not default policyTypes to Egress",
        [
            policy(
                "x",
                "ingress-open",
                "{podSelector: {matchLabels: {pod: a}}, ingress: [{}], egress: []}",
            )
        ],
        {"TCP/80": OPEN},
    ),
    Case(
        "DNS egress on 53 over UDP and TCP",
        [
            policy(
                "x",
                "dns-only",
                """
                podSelector: {}
                policyTypes: [Egress]
                egress:
                - to:
                  - namespaceSelector: {matchLabels: {ns: z}}
                    podSelector: {matchLabels: {pod: c}}
                  ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]
                """,
            )
        ],
        {
            "UDP/53": """
                x/a .XX XXX XX.
                x/b X.X XXX XX.
                x/c XX. XXX XX.
                y/a ... ... ...
                y/b ... ... ...
                y/c ... ... ...
                z/a ... ... ...
                z/b ... ... ...
                z/c ... ... ...
            """,
            "TCP/53": """
                x/a .XX XXX XX.
                x/b X.X XXX XX.
                x/c XX. XXX XX.
                y/a ... ... ...
                y/b ... ... ...
                y/c ... ... ...
                z/a ... ... ...
                z/b ... ... ...
                z/c ... ... ...
            """,
            "TCP/80": X_EGRESS_CLOSED,
        },
    ),
    Case(
        "DNS egress on UDP only breaks the TCP fallback",
        [
            policy(
                "x",
                "dns-udp",
                """
                podSelector: {}
                policyTypes: [Egress]
                egress:
                - to: [{namespaceSelector: {matchLabels: {ns: z}}}]
                  ports: [{protocol: UDP, port: 53}]
                """,
            )
        ],
        {
            "UDP/53": """
                x/a .XX XXX ...
                x/b X.X XXX ...
                x/c XX. XXX ...
                y/a ... ... ...
                y/b ... ... ...
                y/c ... ... ...
                z/a ... ... ...
                z/b ... ... ...
                z/c ... ... ...
            """,
            "TCP/53": X_EGRESS_CLOSED,
        },
    ),
    Case(
        "egress AND peer: one pod of one namespace",
        [
            policy(
                "x",
                "to-z-a",
                only_a(
                    "egress: [{to: [{namespaceSelector: {matchLabels: {ns: z}}, "
                    "podSelector: {matchLabels: {pod: a}}}]}]",
                    "[Egress]",
                ),
            )
        ],
        {
            "TCP/80": """
                x/a .XX XXX .XX
                x/b ... ... ...
                x/c ... ... ...
                y/a ... ... ...
                y/b ... ... ...
                y/c ... ... ...
                z/a ... ... ...
                z/b ... ... ...
                z/c ... ... ...
            """
        },
    ),
    Case(
        "hostNetwork pods are not selected, and selectors do not match them as peers",
        [
            policy("z", "deny-all", "{podSelector: {}, policyTypes: [Ingress, Egress]}"),
            policy(
                "x",
                "from-all-pods",
                "{podSelector: {}, ingress: [{from: [{namespaceSelector: {}}]}]}",
            ),
        ],
        {
            # z/c (hostNetwork, node-3) reaches x/c only: x/c runs on node-3, its own node.
            "TCP/80": """
                x/a ... ... XX.
                x/b ... ... XX.
                x/c ... ... XX.
                y/a ... ... XX.
                y/b ... ... XX.
                y/c ... ... XX.
                z/a XXX XXX .XX
                z/b XXX XXX X.X
                z/c XX. ... XX.
            """
        },
        host_network=("z/c",),
    ),
    Case(
        "ipBlock admits a hostNetwork pod by its node's address",
        [
            policy(
                "x",
                "from-nodes",
                "{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 192.168.0.0/24}}]}]}",
            )
        ],
        {
            "TCP/80": """
                x/a .XX ... ...
                x/b X.X ... ...
                x/c XX. ... ...
                y/a XXX ... ...
                y/b XXX ... ...
                y/c XXX ... ...
                z/a XXX ... ...
                z/b XXX ... ...
                z/c ... ... ...
            """
        },
        host_network=("z/c",),
    ),
    Case(
        "traffic from a pod's own node is always allowed in",
        [DENY_X_INGRESS],
        {
            "TCP/80": """
                x/a .XX ... ...
                x/b X.X ... ...
                x/c XX. ... ...
                y/a XXX ... ...
                y/b XXX ... ...
                y/c XXX ... ...
                z/a XXX ... ...
                z/b XXX ... ...
                z/c XX. ... ...
            """
        },
        host_network=("z/c",),
    ),
]


def test_at_least_thirty_policy_sets() -> None:
    assert len(CASES) >= 30
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_reachability(case: Case) -> None:
    index = build(case)
    for flow, grid in case.expect.items():
        protocol, port = flow.split("/")
        got = index.matrix(int(port), L4Protocol(protocol))
        assert show(got) == show(parse_grid(grid)), flow
