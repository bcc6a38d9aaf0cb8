"""Calico policy parsing: the defaults a verdict depends on, and malformed input as a FieldError
naming the field (what Calico's validation would refuse is refused here too)."""

from __future__ import annotations

from typing import Any

import pytest

from hopscope_policy.calico_model import (
    CalicoPort,
    parse_calico_global_network_policy,
    parse_calico_network_policy,
    parse_calico_tier,
)
from hopscope_policy.model import Direction, FieldError

INGRESS, EGRESS = Direction.INGRESS, Direction.EGRESS


def np(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "shop"}, "spec": spec}


def gnp(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": spec}


ALLOW = {"action": "Allow"}


@pytest.mark.parametrize(
    ("spec", "types"),
    [
        ({}, {INGRESS}),  # no rules at all: an Ingress policy
        ({"ingress": [ALLOW]}, {INGRESS}),
        ({"egress": [ALLOW]}, {EGRESS}),
        ({"ingress": [ALLOW], "egress": [ALLOW]}, {INGRESS, EGRESS}),
        ({"egress": [ALLOW], "types": ["Ingress"]}, {INGRESS}),
    ],
)
def test_types_default_from_the_rules_present(spec: dict[str, Any], types: set) -> None:
    assert parse_calico_network_policy(np(spec)).types == types


def test_defaults() -> None:
    policy = parse_calico_network_policy(np({}))
    assert (policy.tier, policy.order, policy.selector.matches({}), policy.key) == (
        "default",
        None,
        True,  # no selector: all()
        "shop/p",
    )
    assert policy.kind == "NetworkPolicy.projectcalico.org"  # as kubectl takes it
    assert parse_calico_global_network_policy(gnp({"order": 5})).order == 5.0
    assert parse_calico_tier({"metadata": {"name": "t"}}).default_action == "Deny"


def test_ports_read_numbers_ranges_and_names() -> None:
    rule = parse_calico_network_policy(
        np(
            {
                "ingress": [
                    {
                        **ALLOW,
                        "protocol": "TCP",
                        "destination": {"ports": [80, "81", "90:99", "http"]},
                    }
                ]
            }
        )
    ).ingress[0]
    assert rule.destination.ports == (
        CalicoPort(80, 80),
        CalicoPort(81, 81),
        CalicoPort(90, 99),
        CalicoPort(name="http"),
    )
    assert rule.protocol == 6


def test_unmodelled_constructs_are_kept_by_field_path() -> None:
    policy = parse_calico_global_network_policy(
        gnp(
            {
                "preDNAT": True,
                "serviceAccountSelector": "role == 'x'",
                "ingress": [
                    {**ALLOW, "http": {"methods": ["GET"]}, "source": {"services": {"name": "s"}}}
                ],
            }
        )
    )
    assert policy.unknown == ("spec.serviceAccountSelector", "spec.preDNAT (host endpoint policy)")
    assert policy.ingress[0].unknown == ("ingress[0].http", "ingress[0].source.services")


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        (np({"selector": "app = 'x'"}), "spec.selector"),
        (np({"ingress": [{"action": "allow"}]}), "spec.ingress[0].action"),
        (np({"ingress": [{}]}), "spec.ingress[0].action"),
        (np({"ingress": [{**ALLOW, "protocol": "TCPP"}]}), "spec.ingress[0].protocol"),
        (np({"ingress": [{**ALLOW, "protocol": 256}]}), "spec.ingress[0].protocol"),
        (np({"egress": [{**ALLOW, "notProtocol": True}]}), "spec.egress[0].notProtocol"),
        (
            np({"ingress": [{**ALLOW, "destination": {"ports": [80]}}]}),
            "spec.ingress[0].destination.ports",
        ),
        (
            np({"ingress": [{**ALLOW, "protocol": "ICMP", "destination": {"notPorts": [80]}}]}),
            "spec.ingress[0].destination.notPorts",
        ),
        (
            np({"ingress": [{**ALLOW, "protocol": "TCP", "destination": {"ports": ["99:90"]}}]}),
            "spec.ingress[0].destination.ports[0]",
        ),
        (
            np({"ingress": [{**ALLOW, "protocol": "TCP", "destination": {"ports": [70000]}}]}),
            "spec.ingress[0].destination.ports[0]",
        ),
        (
            np({"ingress": [{**ALLOW, "protocol": "TCP", "destination": {"ports": ["1:x"]}}]}),
            "spec.ingress[0].destination.ports[0]",
        ),
        (
            np({"egress": [{**ALLOW, "destination": {"nets": ["10.0.0/8"]}}]}),
            "spec.egress[0].destination.nets[0]",
        ),
        (
            np({"egress": [{**ALLOW, "destination": {"net": ["10.0.0.0/8"]}}]}),
            "spec.egress[0].destination.net",
        ),
        (
            np({"egress": [{**ALLOW, "source": {"notSelector": "has(x"}}]}),
            "spec.egress[0].source.notSelector",
        ),
        (np({"ingress": [{**ALLOW, "ipVersion": 5}]}), "spec.ingress[0].ipVersion"),
        (np({"types": ["ingress"]}), "spec.types[0]"),
        (np({"order": "10"}), "spec.order"),
        (np({"tier": 3}), "spec.tier"),
        (np({"namespaceSelector": "all()"}), "spec.namespaceSelector"),  # GlobalNetworkPolicy only
        (np({"doNotTrack": True}), "spec.doNotTrack"),
        (gnp({"doNotTrack": "yes"}), "spec.doNotTrack"),
        (np({"ingress": {"action": "Allow"}}), "spec.ingress"),
        (np({"ingres": []}), "spec.ingres"),
        ({"metadata": {"namespace": "shop"}, "spec": {}}, "metadata.name"),
    ],
)
def test_malformed_input_names_the_field(obj: dict[str, Any], field: str) -> None:
    parse = (
        parse_calico_network_policy
        if obj["metadata"].get("namespace")
        else parse_calico_global_network_policy
    )
    with pytest.raises(FieldError) as error:
        parse(obj)
    assert error.value.field == field


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"defaultAction": "Allow"}, "spec.defaultAction"),
        ({"order": True}, "spec.order"),
        ({"orde": 1}, "spec.orde"),
    ],
)
def test_malformed_tier_names_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(FieldError) as error:
        parse_calico_tier({"metadata": {"name": "t"}, "spec": spec})
    assert error.value.field == field
