"""What Flux and `kubectl wait` make of an object's status: small ports of their rules.

kstatus (sigs.k8s.io/cli-utils pkg/kstatus/status, behind Flux's health checks) on a custom
resource of a kind it has no rules for, in `Compute`'s order:
1. `metadata.deletionTimestamp` set: Terminating.
2. `checkGeneration`: `status.observedGeneration` present and not `metadata.generation`:
   InProgress (an absent observedGeneration skips the check).
3. the first condition, in list order, that is `Reconciling=True` (InProgress) or
   `Stalled=True` (Failed).
4. `checkReadyCondition`: `Ready` True is Current; False or Unknown is InProgress.
5. otherwise Current: a resource without these conditions is assumed reconciled.

`kubectl wait --for=condition=X` (k8s.io/kubectl pkg/cmd/wait): the first condition of type X
(case-insensitive) that has a status; not met while its `observedGeneration`, or the status'
when it has none, is below `metadata.generation`; else met when its status is the one asked
for (case-insensitive). No such condition: not met.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

Object = dict[str, Any]


class Status(StrEnum):
    IN_PROGRESS = "InProgress"
    FAILED = "Failed"
    CURRENT = "Current"
    TERMINATING = "Terminating"


def _conditions(obj: Object) -> list[Object]:
    return (obj.get("status") or {}).get("conditions") or []


def compute(obj: Object) -> tuple[Status, str]:
    """kstatus' status of `obj`, and its message."""
    if obj["metadata"].get("deletionTimestamp"):
        return Status.TERMINATING, "Resource scheduled for deletion"
    generation = obj["metadata"].get("generation")
    observed = (obj.get("status") or {}).get("observedGeneration")
    if generation is not None and observed is not None and observed != generation:
        return Status.IN_PROGRESS, (
            f"{obj['kind']} generation is {generation}, but latest observed generation is "
            f"{observed}"
        )
    for condition in _conditions(obj):
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Reconciling":
            return Status.IN_PROGRESS, condition.get("message", "")
        if condition.get("type") == "Stalled":
            return Status.FAILED, condition.get("message", "")
    for condition in _conditions(obj):
        if condition.get("type") != "Ready":
            continue
        if condition.get("status") == "True":
            return Status.CURRENT, "Resource is Ready"
        if condition.get("status") in ("False", "Unknown"):
            return Status.IN_PROGRESS, condition.get("message", "")
    return Status.CURRENT, "Resource is current"


def wait_condition_met(obj: Object, kind: str, wanted: str = "True") -> bool:
    """Whether `kubectl wait --for=condition=<kind>=<wanted>` returns for `obj`."""
    for condition in _conditions(obj):
        if str(condition.get("type", "")).lower() != kind.lower() or "status" not in condition:
            continue
        generation = obj["metadata"].get("generation")
        observed = condition.get("observedGeneration")
        if observed is None:
            observed = (obj.get("status") or {}).get("observedGeneration")
        if generation is not None and observed is not None and observed < generation:
            return False
        return str(condition["status"]).lower() == wanted.lower()
    return False
