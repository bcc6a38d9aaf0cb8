"""The probe pod's contract (controller/runs.py): whatever is written on a pod reads back."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from hopscope_operator.controller.resolve import ResolvedSource
from hopscope_operator.controller.runs import (
    RunId,
    batch_variable,
    checks_of,
    planned_at,
    planned_uids,
    pod_annotations,
    pod_labels,
    read_batch,
    read_sources,
    run_ids,
    selector,
)
from hopscope_operator.names import ANNOTATION_CHECKS
from hopscope_probe import batch as wire
from hopscope_probe.models import ProbeRequest

SOURCE = ResolvedSource(
    "pod", "worker-1", "pod shop/web-0", "shop", "web-0", "uid-web", "10.244.1.5"
)


def pod(annotations: dict[str, str], labels: dict[str, str], batch: wire.Batch) -> dict:
    return {
        "metadata": {"name": "p", "annotations": annotations, "labels": labels},
        "spec": {"containers": [{"name": "probe", "env": [batch_variable(batch)]}]},
    }


def a_batch(*ids: str) -> wire.Batch:
    request = ProbeRequest(host="10.96.0.10", port=5432)
    return wire.Batch(checks=[wire.BatchItem(id=i, netns="host", request=request) for i in ids])


@pytest.mark.parametrize("check", ["shop/web-to-db", "a/b"])
def test_a_run_id_reads_back_as_written(check: str) -> None:
    run = RunId(check, 12)
    assert run.format() == f"{check}/12"
    assert RunId.parse(run.format()) == run


def test_what_a_pod_is_written_with_reads_back() -> None:
    uids = {"shop/a/7": "uid-a", "shop/b/3": None}
    batch = a_batch("shop/a/7", "shop/b/3")
    written = pod(
        pod_annotations(uids, "worker-1", {"shop/a/7": SOURCE}),
        pod_labels("worker-1", 1748779200),
        batch,
    )
    assert planned_uids(written) == uids
    assert read_sources(written) == {"shop/a/7": SOURCE}
    assert planned_at(written) == datetime(2025, 6, 1, 12, tzinfo=UTC)
    assert read_batch(written) == batch
    assert run_ids(written) == [RunId("shop/a", 7), RunId("shop/b", 3)]
    assert checks_of(written) == {"shop/a", "shop/b"}
    assert selector().items() <= written["metadata"]["labels"].items()


def test_the_older_list_form_of_the_checks_annotation_is_still_read() -> None:
    annotations = pod_annotations({"shop/a/7": "uid-a"}, "worker-1")
    annotations[ANNOTATION_CHECKS] = json.dumps(["shop/a/7"])
    assert planned_uids(pod(annotations, {}, a_batch("shop/a/7"))) == {"shop/a/7": None}


def test_a_pod_without_or_with_a_broken_annotation_reads_as_unknown() -> None:
    bare = pod({}, {}, a_batch("shop/a/7"))
    assert (planned_uids(bare), read_sources(bare), planned_at(bare)) == ({}, {}, None)
    edited = pod(pod_annotations({}, "n", {"x/y/1": SOURCE}), {}, a_batch("x/y/1"))
    edited["metadata"]["annotations"] = {k: "{not json" for k in edited["metadata"]["annotations"]}
    assert (planned_uids(edited), read_sources(edited)) == ({}, {})
    for not_a_map in ("7", '"text"', "[1, 2]", "null"):
        edited["metadata"]["annotations"] = dict.fromkeys(
            edited["metadata"]["annotations"], not_a_map
        )
        assert read_sources(edited) == {}, not_a_map
        assert planned_uids(edited) in ({}, {"1": None, "2": None}), not_a_map


def test_a_pod_without_a_batch_is_refused() -> None:
    bare = pod({}, {}, a_batch("x/y/1"))
    bare["spec"]["containers"][0]["env"] = []
    with pytest.raises(ValueError, match=wire.ENV):
        read_batch(bare)
