"""A stored ConnectivityCheck read back and described: `parse` (a check this plugin's models
cannot read raises `Unreadable`, naming the field), and the text around the rendered result:
`header` (name, phase, runs, why it cannot run) and `source_text` (what the spec names and which
pod the operator picked).
"""

from __future__ import annotations

from pydantic import ValidationError

from hopscope_operator.api import CLUSTER_KIND, ClusterConnectivityCheck, ConnectivityCheck
from hopscope_operator.cluster import Object


class Unreadable(Exception):
    """A stored check these models cannot read, most likely written by a newer operator."""


def source_text(check: ConnectivityCheck) -> str:
    spec = check.spec.source
    if spec.pod is not None:
        said = f"pod/{spec.pod.name}"
    elif spec.node is not None:
        said = f"node/{spec.node.name}"
    elif spec.workload is not None:
        said = f"{spec.workload.kind.lower()}/{spec.workload.name}"
    else:
        said = "pods matching a selector"
    seen = check.status.source if check.status else None
    if seen is None:
        return said
    if seen.pod and spec.pod is None:  # the pod picked from a selector or a workload
        said += f": pod {seen.pod}"
    if seen.node and spec.node is None:
        said += f" on {seen.node}"
    return said + (f" ({seen.address})" if seen.address else "")


def header(check: ConnectivityCheck) -> str:
    meta = check.metadata
    status = check.status
    phase = status.phase if status and status.phase else "Pending"
    runs = status.runs if status else 0
    when = (
        f", last {status.last_run_time:%Y-%m-%d %H:%M:%S}Z"
        if status and status.last_run_time
        else ""
    )
    lines = [
        f"check {'/'.join(filter(None, (check.namespace, meta.get('name', ''))))}: {phase},"
        f" runs {runs}{when}",
        f"from {source_text(check)}",
    ]
    if status:
        for condition in status.conditions:
            # Reachable is what the summary below says; Ready says why a check cannot run.
            if condition.type == "Ready" and condition.status != "True":
                lines.append(
                    f"{condition.type} {condition.status} ({condition.reason}): {condition.message}"
                )
        if status.analysis is not None:
            lines.append(f"configuration analysis: {status.analysis.result}")
    return "\n".join(lines)


def parse(obj: Object) -> ConnectivityCheck:
    """The stored check as the models read it; a null status field is an unset one."""
    status = obj.get("status")
    if status:
        obj = {**obj, "status": {k: v for k, v in status.items() if v is not None}}
    try:
        model = ClusterConnectivityCheck if obj.get("kind") == CLUSTER_KIND else ConnectivityCheck
        return model.model_validate(obj)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            problem = "an unknown field"
        elif error["type"] == "enum":
            problem = f"an unknown value {error['input']!r}"
        else:
            problem = error["msg"]
        meta = obj["metadata"]
        raise Unreadable(
            f"cannot read connectivitycheck {meta.get('namespace')}/{meta.get('name')}:"
            f" {field}: {problem} (the plugin may be older than the operator;"
            " -o yaml shows the raw status)"
        ) from exc
