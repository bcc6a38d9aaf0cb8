"""CiliumNetworkPolicy parsing: defaults the verdict depends on, and errors naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from hopscope_policy.cilium_model import (
    parse_cilium_clusterwide_network_policy,
    parse_cilium_network_policy,
)
from hopscope_policy.model import Direction, FieldError


def cnp(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "shop"}, "spec": spec}


DB = {"matchLabels": {"app": "db"}}


@pytest.mark.parametrize(
    ("spec", "ingress", "egress"),
    [
        ({"endpointSelector": DB, "ingress": [{}]}, True, False),  # `- {}` isolates
        ({"endpointSelector": DB, "ingress": []}, False, False),  # empty: does not apply
        ({"endpointSelector": DB, "egressDeny": [{"toEntities": ["world"]}]}, False, True),
        (
            {"endpointSelector": DB, "ingress": [{}], "enableDefaultDeny": {"ingress": False}},
            False,
            False,
        ),
    ],
)
def test_default_deny_follows_the_rules_present(
    spec: dict[str, Any], ingress: bool, egress: bool
) -> None:
    parsed = parse_cilium_network_policy(cnp(spec)).specs[0]
    assert parsed.default_deny == {Direction.INGRESS: ingress, Direction.EGRESS: egress}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (
            {"endpointSelector": DB, "ingress": [{"fromEndpoint": [{}]}]},
            "spec.ingress[0].fromEndpoint",
        ),
        ({"endpointSelector": {"matchLabel": {"a": "b"}}}, "spec.endpointSelector.matchLabel"),
        ({"nodeSelector": {}}, "spec.nodeSelector"),
        ({}, "spec"),
        (
            {"endpointSelector": DB, "egress": [{"toEntities": ["wrld"]}]},
            "spec.egress[0].toEntities[0]",
        ),
        (
            {"endpointSelector": DB, "ingress": [{"toPorts": [{"ports": [{"protocol": "ICMP"}]}]}]},
            "spec.ingress[0].toPorts[0].ports[0].protocol",
        ),
        (
            {"endpointSelector": DB, "ingressDeny": [{"toPorts": [{"rules": {"http": [{}]}}]}]},
            "spec.ingressDeny[0].toPorts[0].rules",
        ),
    ],
)
def test_malformed_input_names_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(FieldError) as error:
        parse_cilium_network_policy(cnp(spec))
    assert error.value.field == field


def test_unmodelled_constructs_are_kept_by_name() -> None:
    policy = parse_cilium_clusterwide_network_policy(
        {
            "metadata": {"name": "dns"},
            "specs": [
                {
                    "endpointSelector": {},
                    "egress": [
                        {"toFQDNs": [{"matchName": "example.com"}]},
                        {"toPorts": [{"ports": [{"port": "53"}], "rules": {"dns": [{}]}}]},
                    ],
                }
            ],
        }
    )
    rules = policy.specs[0].allow[Direction.EGRESS]
    assert policy.key == "dns"
    assert rules[0].unknown_peers == ("specs[0].egress[0].toFQDNs",)
    assert rules[1].unknown_l4 == ("specs[0].egress[1].toPorts[0].rules.dns (L7)",)
