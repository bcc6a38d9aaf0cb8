"""Memory of the analysis caches' pods: whole, as the API serves them, against trimmed.

Lists N pods shaped as a real cluster's (a Deployment's pod: managedFields, env, probes,
volumes, five conditions, container statuses) from the in-memory API into the pods informer
the operator runs (controller/analysis_cache.py), and into one that keeps them whole, and
prints what each holds (tracemalloc: the objects the informer keeps, not the process RSS).
Printed, not asserted:

    python bench/cache_memory.py [--pods 10000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tracemalloc
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hopscope_operator.cluster import PODS  # noqa: E402
from hopscope_operator.controller.analysis_cache import POD_KIND, Spread  # noqa: E402
from hopscope_operator.controller.informer import Informer  # noqa: E402
from hopscope_operator.install.crd import custom_resource_definition  # noqa: E402
from tests.operator.conftest import ApiServer  # noqa: E402
from tests.operator.fakeapi import FakeApi  # noqa: E402

CONDITIONS = (
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
)


def pod(i: int) -> dict[str, Any]:
    """A Deployment's running pod as `kubectl get pod -o json` shows one."""
    address = f"10.{i // 62500}.{i // 250 % 250}.{i % 250 + 1}"
    at = "2026-12-01T10:00:00Z"
    fields = {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {"f:containers": {}}}
    return {
        "metadata": {
            "name": f"web-{i:05d}-7d9f8c6b5-x{i % 97:02d}",
            "generateName": "web-7d9f8c6b5-",
            "namespace": f"ns-{i % 50}",
            "uid": f"5c1f3e2a-0000-4000-8000-{i:012d}",
            "creationTimestamp": at,
            "labels": {"app": f"web-{i % 20}", "pod-template-hash": "7d9f8c6b5", "tier": "front"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": at, "prometheus.io/port": "9090"},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8c6b5",
                 "uid": "aaaa-bbbb", "controller": True, "blockOwnerDeletion": True}
            ],
            "managedFields": [
                {"manager": manager, "operation": "Update", "apiVersion": "v1", "time": at,
                 "fieldsType": "FieldsV1", "fieldsV1": fields}
                for manager in ("kube-controller-manager", "kubelet")
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "registry.example/web:1.2.3",
                    "imagePullPolicy": "IfNotPresent",
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "env": [{"name": f"VAR_{k}", "value": "some-value-" * 3} for k in range(8)],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                    "volumeMounts": [
                        {"name": "kube-api-access", "readOnly": True,
                         "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
                    ],
                    "terminationMessagePath": "/dev/termination-log",
                }
            ],
            "volumes": [{"name": "kube-api-access", "projected": {"defaultMode": 420}}],
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "nodeName": f"node-{i % 500:03d}",
            "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": f"node.kubernetes.io/{taint}", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 300}
                for taint in ("not-ready", "unreachable")
            ],
        },
        "status": {
            "phase": "Running",
            "hostIP": "10.250.0.1",
            "podIP": address,
            "podIPs": [{"ip": address}],
            "startTime": at,
            "qosClass": "Burstable",
            "conditions": [
                {"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": at}
                for kind in CONDITIONS
            ],
            "containerStatuses": [
                {"name": "web", "state": {"running": {"startedAt": at}}, "lastState": {},
                 "ready": True, "restartCount": 0, "image": "registry.example/web:1.2.3",
                 "imageID": "registry.example/web@sha256:" + "0" * 64,
                 "containerID": "containerd://" + "1" * 64, "started": True}
            ],
        },
    }  # fmt: skip


class WireApi(FakeApi):
    """Lists parsed from JSON, as a client reads them off the wire: no string is shared with
    the store (a deep copy would share them all)."""

    def list(self, resource: Any, namespace: Any, labels: Any = None) -> list[Any]:
        return json.loads(json.dumps(super().list(resource, namespace, labels)))  # type: ignore[no-any-return]


def held_mib(fill: Any) -> float:
    """What `fill()` leaves allocated (its result kept), in MiB."""
    tracemalloc.start()
    kept = fill()
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    return size / 2**20


def synced(cache: Any) -> Any:
    cache.sync()
    return cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000)
    count = parser.parse_args().pods
    schema = custom_resource_definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    api = WireApi(ApiServer(schema), validate=False)
    for index in range(count):
        api.put(PODS, pod(index))
    whole = held_mib(lambda: synced(Informer(api, PODS, None)))
    cut = held_mib(lambda: synced(Spread(api, POD_KIND, None)))
    size = len(json.dumps(pod(0)))
    print(f"{count} pods; one is {size} bytes of JSON whole")
    print(f"pods cache, whole:   {whole:7.1f} MiB ({whole * 1024 / count:.1f} KiB a pod)")
    print(f"pods cache, trimmed: {cut:7.1f} MiB ({cut * 1024 / count:.1f} KiB a pod, indexed)")


if __name__ == "__main__":
    main()
