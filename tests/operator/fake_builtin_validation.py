"""The API server's Go validation of the built-in kinds hopscope creates or reads, where the
OpenAPI schema (kubernetes-validate) says nothing: a Pod needs containers, each with an RFC 1123
label for a name and an image, and a known restartPolicy; a NetworkPolicy's CIDRs must parse and
its policyTypes be Ingress or Egress. Each refusal is a 422 cause worded as the server's."""

from __future__ import annotations

import ipaddress
import re

from hopscope_operator.cluster import NETWORK_POLICIES, PODS, Object, Resource

from .fake_status import cause

Cause = dict[str, str]
LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
RESTART_POLICIES = ("Always", "OnFailure", "Never")
POLICY_TYPES = ("Ingress", "Egress")


def causes(resource: Resource, obj: Object) -> list[Cause]:
    if resource == PODS:
        return _pod(obj.get("spec") or {})
    if resource == NETWORK_POLICIES:
        return _network_policy(obj.get("spec") or {})
    return []


def _unsupported(value: str, supported: tuple[str, ...], field: str) -> Cause:
    listed = ", ".join(f'"{s}"' for s in supported)
    message = f'Unsupported value: "{value}": supported values: {listed}'
    return cause("FieldValueNotSupported", message, field)


def _pod(spec: Object) -> list[Cause]:
    found: list[Cause] = []
    containers = spec.get("containers") or []
    if not containers:
        found.append(cause("FieldValueRequired", "Required value", "spec.containers"))
    for index, container in enumerate(containers):
        at = f"spec.containers[{index}]"
        name = container.get("name", "")
        if not name:
            found.append(cause("FieldValueRequired", "Required value", f"{at}.name"))
        elif len(name) > 63 or not LABEL.fullmatch(name):
            message = f'Invalid value: "{name}": ' + (
                "must be no more than 63 characters" if len(name) > 63 else LABEL_MESSAGE
            )
            found.append(cause("FieldValueInvalid", message, f"{at}.name"))
        if not container.get("image"):
            found.append(cause("FieldValueRequired", "Required value", f"{at}.image"))
    policy = spec.get("restartPolicy")
    if policy is not None and policy not in RESTART_POLICIES:
        found.append(_unsupported(policy, RESTART_POLICIES, "spec.restartPolicy"))
    return found


def _network_policy(spec: Object) -> list[Cause]:
    found: list[Cause] = []
    for direction, peers in (("ingress", "from"), ("egress", "to")):
        for i, rule in enumerate(spec.get(direction) or []):
            for j, peer in enumerate(rule.get(peers) or []):
                cidr = (peer.get("ipBlock") or {}).get("cidr")
                if cidr is None:
                    continue
                try:
                    ipaddress.ip_network(cidr, strict=False)
                except ValueError:
                    message = (
                        f'Invalid value: "{cidr}": must be a valid CIDR value, '
                        "(e.g. 10.9.8.0/24 or 2001:db8::/64)"
                    )
                    field = f"spec.{direction}[{i}].{peers}[{j}].ipBlock.cidr"
                    found.append(cause("FieldValueInvalid", message, field))
    for index, kind in enumerate(spec.get("policyTypes") or []):
        if kind not in POLICY_TYPES:
            found.append(_unsupported(kind, POLICY_TYPES, f"spec.policyTypes[{index}]"))
    return found
