"""Truth tables of the Network Policy API's cluster-wide kinds, from its upstream conformance tests.

The world is the conformance suite's (kubernetes-sigs/network-policy-api conformance/base/
manifests.yaml): namespaces network-policy-conformance-{gryffindor,slytherin,hufflepuff,ravenclaw}
(label conformance-house=<house>), two pods each (harry-potter, draco-malfoy, cedric-diggory,
luna-lovegood, -0 and -1, labelled conformance-house=<house>) serving 80 and 8080/TCP, 53 and
5353/UDP, 9003 and 9005/SCTP; pods -0 run on node-0, -1 on node-1 (labels kubernetes.io/os=linux).
The policies are the suite's base manifests (cases named after the Go test), the checks its
PokeServer calls, with the deciding rule the suite's comments name. `swap` reorders rules the way
the tests patch them. Each check: `from to SERVICE ACTION [RULE]`, RULE `-` for "no rule decided:
default allow".
"""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import yaml

from hopscope_policy import Flow, L4Protocol, PodRef, PolicyIndex, PolicyRules
from hopscope_policy.cluster import KINDS
from hopscope_policy.evaluate import ICMP
from hopscope_policy.model import parse_namespace, parse_pod, parse_policy
from hopscope_policy.nodes import parse_node
from hopscope_policy.tiers import Action

HOUSES = {
    "gryffindor": "harry-potter",
    "slytherin": "draco-malfoy",
    "hufflepuff": "cedric-diggory",
    "ravenclaw": "luna-lovegood",
}
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
        parse_namespace({"metadata": {"name": namespace_name(h), "labels": {"conformance-house": h}}})
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
    rules = PolicyRules(
        namespaces, core, objects=others, nodes=[parse_node(n) for n in world_nodes()]
    )
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


CASES = yaml.safe_load(
    textwrap.dedent(
        """
    CNPAdminTierIngressTCP:
      manifests: |
        apiVersion: policy.networking.k8s.io/v1alpha2
        kind: ClusterNetworkPolicy
        metadata: {name: ingress-tcp}
        spec:
          tier: Admin
          priority: 3
          subject:
            namespaces: {matchLabels: {kubernetes.io/metadata.name: network-policy-conformance-gryffindor}}
          ingress:
          - name: allow-from-ravenclaw-everything
            action: Accept
            from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: network-policy-conformance-ravenclaw}}}]
          - name: deny-from-ravenclaw-everything
            action: Deny
            from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: network-policy-conformance-ravenclaw}}}]
          - name: pass-from-ravenclaw-everything
            action: Pass
            from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: network-policy-conformance-ravenclaw}}}]
          - name: deny-from-slytherin-at-port-80
            action: Deny
            from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: network-policy-conformance-slytherin}}}]
            protocols: [{tcp: {destinationPort: {number: 80}}}]
          - name: pass-from-slytherin-at-port-80
            action: Pass
            from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: network-policy-conformance-slytherin}}}]
            protocols: [{tcp: {destinationPort: {number: 80}}}]
          - name: allow-from-hufflepuff-at-port-80
            action: Accept
            from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: network-policy-conformance-hufflepuff}}}]
            protocols: [{tcp: {destinationPort: {number: 80}}}]
          - name: deny-from-hufflepuff-everything-else
            action: Deny
            from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: network-policy-conformance-hufflepuff}}}]
      checks:
      - r/luna-lovegood-0 g/harry-potter-0 TCP/80 Allow ClusterNetworkPolicy ingress-tcp ingress[0]
      - r/luna-lovegood-1 g/harry-potter-0 TCP/8080 Allow ClusterNetworkPolicy ingress-tcp ingress[0]
      - h/cedric-diggory-0 g/harry-potter-1 TCP/80 Allow ClusterNetworkPolicy ingress-tcp ingress[5]
      - h/cedric-diggory-1 g/harry-potter-1 TCP/8080 Deny ClusterNetworkPolicy ingress-tcp ingress[6]
      - g/harry-potter-0 r/luna-lovegood-0 TCP/80 Allow -
      - g/harry-potter-1 s/draco-malfoy-0 TCP/80 Allow -
      - s/draco-malfoy-0 g/harry-potter-0 TCP/80 Deny ClusterNetworkPolicy ingress-tcp ingress[3]
      - s/draco-malfoy-1 g/harry-potter-0 TCP/8080 Allow -
      - h/cedric-diggory-0 g/harry-potter-1 ICMP Deny ClusterNetworkPolicy ingress-tcp ingress[6]
    CNPAdminTierIngressTCP-swap-0-1:
      base: CNPAdminTierIngressTCP
      swap: {policy: ingress-tcp, direction: ingress, rules: [0, 1]}
      checks:
      - r/luna-lovegood-0 g/harry-potter-1 TCP/80 Deny ClusterNetworkPolicy ingress-tcp ingress[0]
      - r/luna-lovegood-1 g/harry-potter-1 TCP/8080 Deny ClusterNetworkPolicy ingress-tcp ingress[0]
    CNPAdminTierIngressTCP-swap-0-2:
      base: CNPAdminTierIngressTCP
      swap: {policy: ingress-tcp, direction: ingress, rules: [0, 2]}
      checks:
      - r/luna-lovegood-0 g/harry-potter-0 TCP/80 Allow -
      - r/luna-lovegood-1 g/harry-potter-0 TCP/8080 Allow -
    CNPAdminTierIngressTCP-swap-3-4:
      base: CNPAdminTierIngressTCP
      swap: {policy: ingress-tcp, direction: ingress, rules: [3, 4]}
      checks:
      - s/draco-malfoy-0 g/harry-potter-0 TCP/80 Allow -
      - s/draco-malfoy-1 g/harry-potter-0 TCP/8080 Allow -
    CNPBaselineTierIngressUDP:
      manifests: |
        apiVersion: policy.networking.k8s.io/v1alpha2
        kind: ClusterNetworkPolicy
        metadata: {name: default}
        spec:
          tier: Baseline
          priority: 10
          subject:
            namespaces: {matchLabels: {kubernetes.io/metadata.name: network-policy-conformance-hufflepuff}}
          ingress:
          - name: allow-from-ravenclaw-everything
            action: Accept
            from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: network-policy-conformance-ravenclaw}}}]
          - name: deny-from-ravenclaw-everything
            action: Deny
            from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: network-policy-conformance-ravenclaw}}}]
          - name: deny-from-slytherin-at-port-5353
            action: Deny
            from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: network-policy-conformance-slytherin}}}]
            protocols: [{udp: {destinationPort: {number: 5353}}}]
          - name: allow-from-gryffindor-at-port-53
            action: Accept
            from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: network-policy-conformance-gryffindor}}}]
            protocols: [{udp: {destinationPort: {number: 53}}}]
          - name: deny-from-gryffindor-everything-else
            action: Deny
            from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: network-policy-conformance-gryffindor}}}]
      checks:
      - r/luna-lovegood-0 h/cedric-diggory-0 UDP/53 Allow ClusterNetworkPolicy default ingress[0]
      - s/draco-malfoy-0 h/cedric-diggory-0 UDP/5353 Deny ClusterNetworkPolicy default ingress[2]
      - s/draco-malfoy-1 h/cedric-diggory-0 UDP/53 Allow -
      - g/harry-potter-0 h/cedric-diggory-1 UDP/53 Allow ClusterNetworkPolicy default ingress[3]
      - g/harry-potter-1 h/cedric-diggory-1 UDP/5353 Deny ClusterNetworkPolicy default ingress[4]
    CNPAdminTierPriorityField:
      manifests: |
        apiVersion: policy.networking.k8s.io/v1beta1
        kind: ClusterNetworkPolicy
        metadata: {name: priority-50-example}
        spec:
          tier: Admin
          priority: 50
          subject:
            pods: {namespaceSelector: {matchLabels: {conformance-house: gryffindor}}, podSelector: {matchLabels: {conformance-house: gryffindor}}}
          ingress:
          - name: deny-all-ingress-from-slytherin
            action: Deny
            from: [{pods: {namespaceSelector: {matchLabels: {conformance-house: slytherin}}, podSelector: {matchLabels: {conformance-house: slytherin}}}}]
          egress:
          - name: deny-all-egress-to-slytherin
            action: Deny
            to: [{pods: {namespaceSelector: {matchLabels: {conformance-house: slytherin}}, podSelector: {matchLabels: {conformance-house: slytherin}}}}]
        ---
        apiVersion: policy.networking.k8s.io/v1beta1
        kind: ClusterNetworkPolicy
        metadata: {name: old-priority-60-new-priority-40-example}
        spec:
          tier: Admin
          priority: PRIORITY
          subject:
            pods: {namespaceSelector: {matchLabels: {conformance-house: gryffindor}}, podSelector: {matchLabels: {conformance-house: gryffindor}}}
          ingress:
          - name: pass-all-ingress-from-slytherin
            action: Pass
            from: [{pods: {namespaceSelector: {matchLabels: {conformance-house: slytherin}}, podSelector: {matchLabels: {conformance-house: slytherin}}}}]
          egress:
          - name: pass-all-egress-to-slytherin
            action: Pass
            to: [{pods: {namespaceSelector: {matchLabels: {conformance-house: slytherin}}, podSelector: {matchLabels: {conformance-house: slytherin}}}}]
        ---
        apiVersion: policy.networking.k8s.io/v1beta1
        kind: ClusterNetworkPolicy
        metadata: {name: default}
        spec:
          tier: Baseline
          priority: 10
          subject:
            pods: {namespaceSelector: {matchLabels: {conformance-house: gryffindor}}, podSelector: {matchLabels: {conformance-house: gryffindor}}}
          ingress:
          - name: allow-all-ingress-from-slytherin
            action: Accept
            from: [{pods: {namespaceSelector: {matchLabels: {conformance-house: slytherin}}, podSelector: {matchLabels: {conformance-house: slytherin}}}}]
          egress:
          - name: allow-all-egress-to-slytherin
            action: Accept
            to: [{pods: {namespaceSelector: {matchLabels: {conformance-house: slytherin}}, podSelector: {matchLabels: {conformance-house: slytherin}}}}]
      priority: 60
      checks:
      - s/draco-malfoy-0 g/harry-potter-0 TCP/80 Deny ClusterNetworkPolicy priority-50-example ingress[0]
      - g/harry-potter-0 s/draco-malfoy-0 UDP/53 Deny ClusterNetworkPolicy priority-50-example egress[0]
    CNPAdminTierPriorityField-40:
      base: CNPAdminTierPriorityField
      priority: 40
      checks:
      - s/draco-malfoy-0 g/harry-potter-0 TCP/80 Allow ClusterNetworkPolicy default ingress[0]
      - g/harry-potter-0 s/draco-malfoy-0 UDP/53 Allow ClusterNetworkPolicy default egress[0]
    CNPAdminTierPriorityField-50:
      base: CNPAdminTierPriorityField
      priority: 50
      checks:
      # equal priorities: undefined upstream; hopscope takes them by name (this one sorts first)
      - s/draco-malfoy-0 g/harry-potter-0 TCP/80 Allow ClusterNetworkPolicy default ingress[0]
    CNPAdminTierEgressInlineCIDR:
      manifests: |
        apiVersion: policy.networking.k8s.io/v1beta1
        kind: ClusterNetworkPolicy
        metadata: {name: inline-cidr-as-peers-example}
        spec:
          tier: Admin
          priority: 85
          subject:
            pods: {namespaceSelector: {matchLabels: {conformance-house: gryffindor}}, podSelector: {matchLabels: {conformance-house: gryffindor}}}
          egress:
          - name: allow-egress-to-slytherin
            action: Accept
            to: [{pods: {namespaceSelector: {matchLabels: {conformance-house: slytherin}}, podSelector: {matchLabels: {conformance-house: slytherin}}}}]
          - name: deny-egress-to-internet
            action: Deny
            to: [{networks: [0.0.0.0/0, "::/0"]}]
      checks:
      - g/harry-potter-0 s/draco-malfoy-0 TCP/80 Allow ClusterNetworkPolicy inline-cidr-as-peers-example egress[0]
      - g/harry-potter-0 r/luna-lovegood-0 TCP/80 Deny ClusterNetworkPolicy inline-cidr-as-peers-example egress[1]
      - g/harry-potter-1 127.0.0.1 TCP/443 Deny ClusterNetworkPolicy inline-cidr-as-peers-example egress[1]
      - r/luna-lovegood-0 g/harry-potter-0 TCP/80 Allow -
    CNPAdminTierEgressNodePeers:
      manifests: |
        apiVersion: policy.networking.k8s.io/v1alpha2
        kind: ClusterNetworkPolicy
        metadata: {name: node-and-cidr-as-peers-example}
        spec:
          tier: Admin
          priority: 75
          subject:
            pods: {namespaceSelector: {matchLabels: {conformance-house: gryffindor}}, podSelector: {matchLabels: {conformance-house: gryffindor}}}
          egress:
          - name: allow-egress-to-34345-on-nodes
            action: Accept
            to: [{nodes: {matchLabels: {kubernetes.io/os: linux}}}]
            protocols: [{tcp: {destinationPort: {number: 34345}}}]
          - name: pass-egress-to-34347-on-nodes
            action: Pass
            to: [{nodes: {matchLabels: {kubernetes.io/os: linux}}}]
            protocols: [{udp: {destinationPort: {number: 34347}}}]
          - name: deny-egress-to-slytherin-and-nodes-and-internet
            action: Deny
            to:
            - pods: {namespaceSelector: {matchLabels: {conformance-house: slytherin}}, podSelector: {matchLabels: {conformance-house: slytherin}}}
            - nodes: {matchLabels: {kubernetes.io/os: linux}}
            - networks: [0.0.0.0/0, "::/0"]
      checks:
      - g/harry-potter-0 192.168.0.10 TCP/34345 Allow ClusterNetworkPolicy node-and-cidr-as-peers-example egress[0]
      - g/harry-potter-0 192.168.0.11 UDP/34347 Allow -
      - g/harry-potter-0 192.168.0.11 TCP/34346 Deny ClusterNetworkPolicy node-and-cidr-as-peers-example egress[2]
      - g/harry-potter-1 s/draco-malfoy-1 TCP/80 Deny ClusterNetworkPolicy node-and-cidr-as-peers-example egress[2]
    CNPAdminTierPortRange:
      manifests: |
        apiVersion: policy.networking.k8s.io/v1beta1
        kind: ClusterNetworkPolicy
        metadata: {name: port-range-rules}
        spec:
          tier: Admin
          priority: 9
          subject:
            namespaces: {matchLabels: {kubernetes.io/metadata.name: network-policy-conformance-gryffindor}}
          egress:
          - name: allow-to-ravenclaw-tcp-port-range
            action: Accept
            to: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: network-policy-conformance-ravenclaw}}}]
            protocols: [{tcp: {destinationPort: {range: {start: 80, end: 8080}}}}]
          - name: allow-to-slytherin-sctp-port-range
            action: Accept
            to: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: network-policy-conformance-slytherin}}}]
            protocols: [{sctp: {destinationPort: {range: {start: 9003, end: 9005}}}}]
          - name: deny-all-egress
            action: Deny
            to: [{namespaces: {matchExpressions: [{key: conformance-house, operator: Exists}]}}]
      checks:
      - g/harry-potter-0 r/luna-lovegood-0 TCP/8080 Allow ClusterNetworkPolicy port-range-rules egress[0]
      - g/harry-potter-0 r/luna-lovegood-0 UDP/53 Deny ClusterNetworkPolicy port-range-rules egress[2]
      - g/harry-potter-0 s/draco-malfoy-0 SCTP/9005 Allow ClusterNetworkPolicy port-range-rules egress[1]
      - g/harry-potter-0 s/draco-malfoy-0 TCP/80 Deny ClusterNetworkPolicy port-range-rules egress[2]
      - g/harry-potter-0 g/harry-potter-1 TCP/80 Deny ClusterNetworkPolicy port-range-rules egress[2]
    CNPAdminTierNamedPort:
      # upstream's named-port case: destinationNamedPort resolves on the destination's container ports
      manifests: |
        apiVersion: policy.networking.k8s.io/v1alpha2
        kind: ClusterNetworkPolicy
        metadata: {name: named-port}
        spec:
          tier: Admin
          priority: 4
          subject:
            namespaces: {matchLabels: {conformance-house: ravenclaw}}
          ingress:
          - name: allow-dns-by-name
            action: Accept
            from: [{namespaces: {}}]
            protocols: [{destinationNamedPort: dns}]
          - name: deny-rest
            action: Deny
            from: [{namespaces: {}}]
      checks:
      - g/harry-potter-0 r/luna-lovegood-0 UDP/53 Allow ClusterNetworkPolicy named-port ingress[0]
      - g/harry-potter-0 r/luna-lovegood-0 TCP/53 Deny ClusterNetworkPolicy named-port ingress[1]
      - g/harry-potter-0 r/luna-lovegood-0 UDP/5353 Deny ClusterNetworkPolicy named-port ingress[1]
    CNPAdminTierIntegration:
      manifests: |
        apiVersion: policy.networking.k8s.io/v1beta1
        kind: ClusterNetworkPolicy
        metadata: {name: pass-example}
        spec:
          tier: Admin
          priority: 10
          subject: {namespaces: {matchLabels: {conformance-house: gryffindor}}}
          ingress:
          - {name: deny-all-ingress-from-slytherin, action: ACTION, from: [{namespaces: {matchLabels: {conformance-house: slytherin}}}]}
          egress:
          - {name: deny-all-egress-to-slytherin, action: ACTION, to: [{namespaces: {matchLabels: {conformance-house: slytherin}}}]}
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: allow-gress-from-to-slytherin-to-gryffindor, namespace: network-policy-conformance-gryffindor}
        spec:
          podSelector:
          policyTypes: [Ingress, Egress]
          ingress: [{from: [{namespaceSelector: {matchLabels: {conformance-house: slytherin}}}]}]
          egress: [{to: [{namespaceSelector: {matchLabels: {conformance-house: slytherin}}}]}]
        ---
        apiVersion: policy.networking.k8s.io/v1beta1
        kind: ClusterNetworkPolicy
        metadata: {name: default}
        spec:
          tier: Baseline
          priority: 10
          subject: {namespaces: {matchLabels: {conformance-house: gryffindor}}}
          ingress:
          - {name: deny-all-ingress-from-slytherin, action: Deny, from: [{namespaces: {matchLabels: {conformance-house: slytherin}}}]}
          egress:
          - {name: deny-all-egress-to-slytherin, action: Deny, to: [{namespaces: {matchLabels: {conformance-house: slytherin}}}]}
      action: Deny
      checks:
      - s/draco-malfoy-0 g/harry-potter-0 TCP/80 Deny ClusterNetworkPolicy pass-example ingress[0]
      - g/harry-potter-0 s/draco-malfoy-0 TCP/80 Deny ClusterNetworkPolicy pass-example egress[0]
    CNPAdminTierIntegration-pass:
      base: CNPAdminTierIntegration
      action: Pass
      checks:
      - s/draco-malfoy-0 g/harry-potter-0 TCP/80 Allow NetworkPolicy network-policy-conformance-gryffindor/allow-gress-from-to-slytherin-to-gryffindor ingress[0]
      - g/harry-potter-0 s/draco-malfoy-0 TCP/80 Allow NetworkPolicy network-policy-conformance-gryffindor/allow-gress-from-to-slytherin-to-gryffindor egress[0]
      - h/cedric-diggory-0 g/harry-potter-0 TCP/80 Deny NetworkPolicy network-policy-conformance-gryffindor/allow-gress-from-to-slytherin-to-gryffindor
    CNPAdminTierIntegration-pass-no-np:
      base: CNPAdminTierIntegration
      action: Pass
      drop: NetworkPolicy
      checks:
      - s/draco-malfoy-0 g/harry-potter-0 TCP/80 Deny ClusterNetworkPolicy default ingress[0]
      - g/harry-potter-0 s/draco-malfoy-0 TCP/80 Deny ClusterNetworkPolicy default egress[0]
      - h/cedric-diggory-0 g/harry-potter-0 TCP/80 Allow -
    ANPIntegration:
      # v1alpha1: AdminNetworkPolicy (Allow/Deny/Pass, ports) and the BaselineAdminNetworkPolicy
      manifests: |
        apiVersion: policy.networking.k8s.io/v1alpha1
        kind: AdminNetworkPolicy
        metadata: {name: pass-example}
        spec:
          priority: 10
          subject: {namespaces: {matchLabels: {conformance-house: gryffindor}}}
          ingress:
          - {name: pass-from-slytherin, action: Pass, from: [{namespaces: {matchLabels: {conformance-house: slytherin}}}]}
          - name: allow-hufflepuff-80
            action: Allow
            from: [{pods: {namespaceSelector: {matchLabels: {conformance-house: hufflepuff}}, podSelector: {}}}]
            ports: [{portNumber: {protocol: TCP, port: 80}}, {portRange: {protocol: UDP, start: 50, end: 60}}]
          - {name: deny-hufflepuff, action: Deny, from: [{namespaces: {matchLabels: {conformance-house: hufflepuff}}}]}
        ---
        apiVersion: policy.networking.k8s.io/v1alpha1
        kind: BaselineAdminNetworkPolicy
        metadata: {name: default}
        spec:
          subject: {namespaces: {matchLabels: {conformance-house: gryffindor}}}
          ingress:
          - {name: deny-slytherin, action: Deny, from: [{namespaces: {matchLabels: {conformance-house: slytherin}}}]}
      checks:
      - s/draco-malfoy-0 g/harry-potter-0 TCP/80 Deny BaselineAdminNetworkPolicy default ingress[0]
      - h/cedric-diggory-0 g/harry-potter-0 TCP/80 Allow AdminNetworkPolicy pass-example ingress[1]
      - h/cedric-diggory-0 g/harry-potter-0 UDP/53 Allow AdminNetworkPolicy pass-example ingress[1]
      - h/cedric-diggory-0 g/harry-potter-0 TCP/8080 Deny AdminNetworkPolicy pass-example ingress[2]
      - r/luna-lovegood-0 g/harry-potter-0 TCP/8080 Allow -
    DomainNamesUnknown:
      manifests: |
        apiVersion: policy.networking.k8s.io/v1alpha2
        kind: ClusterNetworkPolicy
        metadata: {name: egress-allowlist}
        spec:
          tier: Admin
          priority: 1
          subject: {namespaces: {matchLabels: {conformance-house: gryffindor}}}
          egress:
          - {name: allow-registry, action: Accept, to: [{domainNames: ["*.registry.example"]}]}
          - {name: deny-rest, action: Deny, to: [{networks: [0.0.0.0/0]}]}
      checks:
      - g/harry-potter-0 127.0.0.1 TCP/443 Unknown ClusterNetworkPolicy egress-allowlist egress[0]
      - g/harry-potter-0 s/draco-malfoy-0 TCP/80 Deny ClusterNetworkPolicy egress-allowlist egress[1]
    """
    )
)


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
