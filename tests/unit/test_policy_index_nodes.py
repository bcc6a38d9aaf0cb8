"""A PolicyIndex may hold its own nodes, as it holds its own pods: the operator's checks share
one tick's parsed rules, each with the few nodes its snapshot read."""

from __future__ import annotations

from ipaddress import ip_address

from hopscope_policy import Flow, L4Protocol, PolicyIndex, PolicyRules
from hopscope_policy.nodes import parse_node
from hopscope_policy.tiers import Node


def node(name: str, address: str) -> Node:
    status = {"addresses": [{"type": "InternalIP", "address": address}]}
    return parse_node({"metadata": {"name": name, "labels": {"n": name}}, "status": status})


def ends(index: PolicyIndex) -> tuple[str | None, str | None]:
    flow = Flow(ip_address("172.18.0.1"), ip_address("172.18.0.2"), 22, L4Protocol.TCP)
    names = [end.node.name if end.node else None for end in index.endpoints(flow)]
    return names[0], names[1]


def test_an_index_of_its_own_nodes_sees_those_and_not_the_rules() -> None:
    rules = PolicyRules([], [], nodes=[node("shared", "172.18.0.1")])
    assert ends(PolicyIndex([], rules)) == ("shared", None)
    assert ends(PolicyIndex([], rules, nodes=[node("mine", "172.18.0.2")])) == (None, "mine")
