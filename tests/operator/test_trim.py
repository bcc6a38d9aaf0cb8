"""The analysis caches store objects trimmed (controller/trim.py): every analysis story gives
the same verdict, issues and evidence on trimmed objects as on whole ones, and the trim drops
what a real API server's objects carry beyond that (managedFields, annotations, container
commands and env, node images)."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from hopscope_operator.analysis import ParsedRules, Snapshot, analyse
from hopscope_operator.api import AnalysisResult
from hopscope_operator.controller import trim
from hopscope_operator.controller.sidecar import agent_container, agent_port
from hopscope_operator.resolved import ResolvedSource

from . import test_analysis as stories

Manifest = dict[str, Any]
MANAGED = [{"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {}}}]
LAST_APPLIED = {"kubectl.kubernetes.io/last-applied-configuration": '{"spec": {}}' * 20}


def whole(obj: Manifest) -> Manifest:
    """`obj` as a real API server serves it: metadata and status it carries beyond the story's."""
    obj = copy.deepcopy(obj)
    meta = obj.setdefault("metadata", {})
    meta.update(managedFields=MANAGED, annotations=dict(LAST_APPLIED), resourceVersion="7")
    meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": "rs", "uid": "u"}]
    return obj


def whole_pod(pod: Manifest) -> Manifest:
    pod = whole(pod)
    for container in pod.setdefault("spec", {}).setdefault("containers", []):
        container.update(image="db:1", command=["run"], env=[{"name": "A", "value": "x" * 99}])
    pod["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    pod.setdefault("status", {}).update(qosClass="Burstable", startTime="2026-01-01T00:00:00Z")
    for status in pod["status"].get("containerStatuses") or []:
        status.update(image="db:1", imageID="sha256:x", containerID="containerd://x")
    return pod


def whole_node(node: Manifest) -> Manifest:
    node = whole(node)
    node.setdefault("status", {}).update(
        images=[{"names": [f"image-{i}"], "sizeBytes": i} for i in range(50)],
        nodeInfo={"kubeletVersion": "v1.31.0"},
        capacity={"cpu": "4"},
    )
    return node


def served(snapshot: Snapshot, cut: bool) -> Snapshot:
    """The story's snapshot as the API serves its objects, trimmed as the caches keep them if
    `cut`; each with rules of its own (they are parsed once per instance)."""

    def each(objects: Any, serve: Callable[[Manifest], Manifest], keep: Callable) -> Any:
        if objects is None:
            return None
        if isinstance(objects, dict) and "metadata" not in objects:  # nodes by name
            return {name: each(obj, serve, keep) for name, obj in objects.items()}
        if isinstance(objects, dict):
            return keep(serve(objects)) if cut else serve(objects)
        return [each(obj, serve, keep) for obj in objects]

    return dataclasses.replace(
        snapshot,
        pods=each(snapshot.pods, whole_pod, trim.pod),
        namespaces=each(snapshot.namespaces, whole, trim.namespace),
        policies=each(snapshot.policies, whole, trim.policy),
        service=each(snapshot.service, whole, trim.service),
        service_slices=each(snapshot.service_slices, whole, trim.endpoint_slice),
        nodes=each(snapshot.nodes, whole_node, trim.node),
        dns_service=each(snapshot.dns_service, whole, trim.service),
        dns_slices=each(snapshot.dns_slices, whole, trim.endpoint_slice),
        rules=ParsedRules(),
    )


def story_runs() -> list[Any]:
    """test_analysis's stories, each with every parameter set its parametrize marks give."""
    runs = []
    for name, fn in vars(stories).items():
        if not name.startswith("test_"):
            continue
        choices: list[list[dict[str, Any]]] = []
        for mark in getattr(fn, "pytestmark", []):
            if mark.name == "parametrize":
                names, values = mark.args[0], mark.args[1]
                names = [n.strip() for n in names.split(",")] if isinstance(names, str) else names
                rows = [v if len(names) > 1 else (v,) for v in values]
                choices.append([dict(zip(names, row, strict=True)) for row in rows])
        for i, combo in enumerate(itertools.product(*choices)):
            kwargs = {k: v for part in combo for k, v in part.items()}
            assert set(kwargs) == set(inspect.signature(fn).parameters), name
            runs.append(pytest.param(fn, kwargs, id=f"{name[5:]}-{i}"))
    assert len(runs) > 40
    return runs


@pytest.mark.parametrize(("story", "kwargs"), story_runs())
def test_every_analysis_story_is_judged_the_same_on_trimmed_objects(story, kwargs, monkeypatch):
    analyse = stories.analyse
    compared = []

    def on_both(check, source, destination, snapshot, **kw):  # type: ignore[no-untyped-def]
        served_whole = analyse(check, source, destination, served(snapshot, False), **kw)
        trimmed = analyse(check, source, destination, served(snapshot, True), **kw)
        assert trimmed == served_whole
        compared.append(trimmed)
        return analyse(check, source, destination, snapshot, **kw)

    monkeypatch.setattr(stories, "analyse", on_both)
    story(**kwargs)  # its own asserts hold too
    assert compared


def test_the_trim_keeps_what_the_analysis_reads_and_drops_the_rest():
    pod = whole_pod(stories.db(containerStatuses=[{"name": "main", "restartCount": 4}]))
    kept = trim.pod(pod)
    assert kept["metadata"] == {
        "name": "db-0",
        "namespace": "shop",
        "labels": {"app": "db"},
        "resourceVersion": "7",
    }
    assert kept["spec"] == {
        "nodeName": "worker-2",
        "containers": [{"name": "main", "ports": [{"name": "pg", "containerPort": 5432}]}],
    }
    assert kept["status"]["containerStatuses"] == [{"name": "main", "restartCount": 4}]
    assert "qosClass" not in kept["status"] and kept["status"]["podIP"] == "10.244.2.7"
    not_ready = stories.db(ready=False)
    not_ready["status"]["conditions"] += [{"type": "PodScheduled", "status": "True"}]
    said = {"reason": "ContainersNotReady", "message": "containers with unready status: [main]"}
    not_ready["status"]["conditions"][0].update(said, lastTransitionTime="2026-01-01T00:00:00Z")
    # The Ready condition alone, with why (why_not_ready says it), not when.
    ready = {"type": "Ready", "status": "False", **said}
    assert trim.pod(whole_pod(not_ready))["status"]["conditions"] == [ready]
    node = trim.node(whole_node(stories.node("worker-1", MemoryPressure="True")))
    assert set(node["status"]) == {"conditions"} and "annotations" not in node["metadata"]
    policy = trim.policy(whole(stories.policy("deny", podSelector={})))
    assert policy == {
        "metadata": {"name": "deny", "namespace": "shop", "resourceVersion": "7"},
        "spec": {"podSelector": {}},
    }


def test_a_pods_host_ip_survives_where_it_decides_the_verdict():
    # From its own node a pod is always reachable (the API reference's rule, which the
    # evaluator applies by the pod's status.hostIP): without hostIP, deny-all would block.
    db = stories.db()
    db["status"]["hostIP"] = "192.168.0.12"
    deny = stories.policy("deny", podSelector={"matchLabels": {"app": "db"}})
    deny["spec"]["policyTypes"] = ["Ingress"]
    node = ResolvedSource("node", "worker-2", "node worker-2", address="192.168.0.12")

    def verdict(pod: Manifest) -> AnalysisResult:
        snapshot = stories.cluster(pods=[stories.web(), pod, stories.coredns()], policies=[deny])
        return analyse(stories.check(), node, stories.TO_SERVICE, snapshot).result

    without = copy.deepcopy(db)
    del without["status"]["hostIP"]
    assert verdict(without) == AnalysisResult.BLOCKED  # the story depends on hostIP
    assert verdict(trim.pod(whole_pod(db))) == verdict(db) == AnalysisResult.ALLOWED


def test_a_pod_keeps_what_resolution_reads_of_it():
    # A static pod's kubelet UID (its mirror annotation) and a native sidecar agent (an init
    # container that restarts Always, with its port): resolve.py and sidecar.py read them.
    pod = whole_pod(stories.web())
    pod["metadata"]["annotations"]["kubernetes.io/config.mirror"] = "kubelet-uid"
    agent = {"name": "hopscope-agent", "restartPolicy": "Always", "image": "probe:1"}
    agent["ports"] = [{"name": "hopscope-agent", "containerPort": 8443}]
    pod["spec"]["initContainers"] = [agent]
    kept = trim.pod(pod)
    assert kept["metadata"]["annotations"] == {"kubernetes.io/config.mirror": "kubelet-uid"}
    assert kept["spec"]["initContainers"] == [{k: v for k, v in agent.items() if k != "image"}]
    assert agent_container(kept) == kept["spec"]["initContainers"][0]
    assert agent_port(kept) == 8443
