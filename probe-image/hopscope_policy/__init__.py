"""NetworkPolicy analysis without a cluster: is a flow allowed by egress and ingress, and why.

Parse plain Kubernetes JSON with `parse_pod`, `parse_namespace` and `parse_policy` (errors name
the field), index namespaces and policies once (`PolicyRules`) and pods over them
(`PolicyIndex`), then call `PolicyIndex.evaluate(Flow(...))` per flow.
`manifests.load` reads YAML files and folders (it needs pyyaml, so it is not imported here).
"""

from hopscope_policy.evaluate import (
    DirectionVerdict,
    NearMiss,
    PolicyIndex,
    PolicyRules,
    RuleRef,
    UnknownPod,
    Verdict,
)
from hopscope_policy.model import (
    ICMP,
    Direction,
    FieldError,
    Flow,
    FlowProtocol,
    L4Protocol,
    Namespace,
    Pod,
    PodRef,
    Policy,
    parse_namespace,
    parse_pod,
    parse_policy,
    parse_workload,
)

__all__ = [
    "ICMP",
    "Direction",
    "DirectionVerdict",
    "FieldError",
    "Flow",
    "FlowProtocol",
    "L4Protocol",
    "Namespace",
    "NearMiss",
    "Pod",
    "PodRef",
    "Policy",
    "PolicyIndex",
    "PolicyRules",
    "RuleRef",
    "UnknownPod",
    "Verdict",
    "parse_namespace",
    "parse_pod",
    "parse_policy",
    "parse_workload",
]
