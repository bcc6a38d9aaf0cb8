"""Node objects as policies see them: labels (for `nodes` peers and node selectors) and addresses.

A flow to or from a node's address (or a hostNetwork pod on it) is node traffic; selectors on
nodes match it by the node's labels. The node's addresses are `status.addresses` of the types
that carry IPs (InternalIP, ExternalIP), as the Network Policy API's `nodes` peer reads them.
"""

from __future__ import annotations

from hopscope_policy.model import JSON, FieldError, _labels, _list, _mapping, _path, _string
from hopscope_policy.model import _ip as parse_ip
from hopscope_policy.tiers import Node

ADDRESS_TYPES = frozenset({"InternalIP", "ExternalIP"})


def parse_node(obj: JSON) -> Node:
    meta = _mapping(obj.get("metadata"), "metadata")
    name = _string(meta.get("name"), "metadata.name")
    if not name:
        raise FieldError("metadata.name", "required")
    status = _mapping(obj.get("status"), "status")
    ips = []
    for i, item in enumerate(_list(status.get("addresses"), "status.addresses")):
        where = f"status.addresses[{i}]"
        entry = _mapping(item, where)
        if _string(entry.get("type"), _path(where, "type")) in ADDRESS_TYPES:
            ip = parse_ip(entry.get("address"), _path(where, "address"))
            if ip is not None:
                ips.append(ip)
    return Node(name, _labels(meta.get("labels"), "metadata.labels"), tuple(ips))
