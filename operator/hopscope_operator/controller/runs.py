"""The probe pod's contract: its run ids, and what the operator writes on it and reads back.

A run id is `<namespace>/<name>/<generation>` (`RunId`; `/<name>/<generation>` for a
ClusterConnectivityCheck, which has no namespace): the probe echoes it on each result
line, the pod's annotations are keyed by it. What a probe pod carries besides its spec is
written by `pod_labels`, `pod_annotations`, `batch_variable` and `cgroup_root_variable`, and
read by `read_batch`, `planned_uids`, `read_sources` and `planned_at` — here only, so no other
module spells a label, annotation or environment name of a probe pod, and a writer cannot
drift from its reader. Pods made by older operators are still read: the checks annotation as a
plain list of ids (no uids), no sources annotation, or one edited by hand (then empty).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, NamedTuple

from hopscope_operator.controller.resolve import ResolvedSource
from hopscope_operator.names import (
    ANNOTATION_CHECKS,
    ANNOTATION_NODE,
    ANNOTATION_SOURCES,
    LABEL_APP,
    LABEL_NODE,
    LABEL_TICK,
    NAME_PREFIX,
)
from hopscope_probe import batch as wire
from hopscope_probe.checks.health import CGROUP_ROOT_ENV

Manifest = Mapping[str, Any]


class RunId(NamedTuple):
    """One run of one check's spec: the check's `<namespace>/<name>` and its generation."""

    check: str
    generation: int

    def format(self) -> str:
        return f"{self.check}/{self.generation}"

    @classmethod
    def parse(cls, text: str) -> RunId:
        """From "<namespace>/<name>/<generation>": split at the last slash."""
        check, _, generation = text.rpartition("/")
        return cls(check, int(generation))


# ---- writing --------------------------------------------------------------------------------


def selector() -> dict[str, str]:
    """The label selector of every probe pod (what the tick lists)."""
    return {LABEL_APP: NAME_PREFIX}


def pod_labels(node_label: str, tick: int) -> dict[str, str]:
    """`node_label`: the node's name as a valid label value; `tick`: the planning tick's Unix
    time, when the pod's runs count as started."""
    return {**selector(), LABEL_NODE: node_label, LABEL_TICK: str(tick)}


# A source's description quotes its selector, up to tens of KB at the CRD's bounds: on the pod
# it is cut, so one run's entry has a bound whatever the spec (plan.py splits pods by it).
MAX_SOURCE_DESCRIPTION = 256


def _kept(source: ResolvedSource) -> dict[str, Any]:
    fields = asdict(source)
    if len(source.description) > MAX_SOURCE_DESCRIPTION:
        fields["description"] = source.description[: MAX_SOURCE_DESCRIPTION - 1] + "…"
    return fields


def source_entry_bytes(run_id: str, source: ResolvedSource) -> int:
    """What one run adds to the sources annotation."""
    return len(_json({run_id: _kept(source)}).encode())


def pod_annotations(
    uids: Mapping[str, str | None],
    node: str,
    sources: Mapping[str, ResolvedSource] | None = None,
) -> dict[str, str]:
    """`uids`: run id -> its check's uid when planned; `sources`: run id -> the source it
    was resolved to (left out when None)."""
    annotations = {ANNOTATION_CHECKS: json.dumps(dict(uids), sort_keys=True), ANNOTATION_NODE: node}
    if sources is not None:
        annotations[ANNOTATION_SOURCES] = _json(
            {run_id: _kept(source) for run_id, source in sources.items()}
        )
    return annotations


def _json(value: Any) -> str:
    # UTF-8, not \u escapes: no character then takes over 6 bytes (a control character's
    # \u00XX), where ASCII-only JSON spends 12 on one beyond the BMP.
    return json.dumps(value, ensure_ascii=False)


def batch_variable(batch: wire.Batch) -> dict[str, str]:
    """The probe container's environment entry that carries its batch."""
    return {"name": wire.ENV, "value": batch.to_json()}


def cgroup_root_variable(path: str) -> dict[str, str]:
    """The environment entry that tells the probe where the host's cgroup hierarchy is."""
    return {"name": CGROUP_ROOT_ENV, "value": path}


# ---- reading --------------------------------------------------------------------------------


def _annotation(pod: Manifest, key: str) -> str | None:
    value = (pod["metadata"].get("annotations") or {}).get(key)
    return value if isinstance(value, str) else None


def read_batch(pod: Manifest) -> wire.Batch:
    """The batch the pod was given: the checks it owes a result for."""
    for container in pod["spec"]["containers"]:
        for variable in container.get("env", []):
            if variable["name"] == wire.ENV:
                return wire.Batch.model_validate_json(variable["value"])
    raise ValueError(f"pod {pod['metadata']['name']} carries no {wire.ENV}")


def run_ids(pod: Manifest) -> list[RunId]:
    """The runs the pod carries, in batch order."""
    return [RunId.parse(item.id) for item in read_batch(pod).checks]


def checks_of(pod: Manifest) -> set[str]:
    """The `<namespace>/<name>` of every check the pod runs for."""
    return {run.check for run in run_ids(pod)}


def planned_uids(pod: Manifest) -> dict[str, str | None]:
    """Run id -> the uid its check had when this pod was planned (None: not known, e.g. a
    pod made by an operator version that wrote only the ids)."""
    text = _annotation(pod, ANNOTATION_CHECKS) or "{}"
    try:
        planned = json.loads(text)
    except ValueError:
        return {}
    if isinstance(planned, list):
        return dict.fromkeys(map(str, planned))
    if not isinstance(planned, dict):
        return {}  # edited by hand
    return {str(key): value if isinstance(value, str) else None for key, value in planned.items()}


def read_sources(pod: Manifest) -> dict[str, ResolvedSource]:
    """Run id -> the source it was resolved to; {} when absent or hand-edited (the status
    then names the node only)."""
    text = _annotation(pod, ANNOTATION_SOURCES) or "{}"
    try:
        return {key: ResolvedSource(**fields) for key, fields in json.loads(text).items()}
    except (ValueError, TypeError, AttributeError):
        return {}


def planned_at(pod: Manifest) -> datetime | None:
    """When the pod's runs started: the tick that planned it (its label)."""
    tick = (pod["metadata"].get("labels") or {}).get(LABEL_TICK, "")
    return datetime.fromtimestamp(int(tick), UTC) if tick.isdigit() else None
