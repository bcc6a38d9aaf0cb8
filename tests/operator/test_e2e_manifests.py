"""What the e2e suite applies, checked where no cluster is: its workloads, canary, policies,
namespaces and route helper against the Kubernetes schema, its checks against the CRD as the
API server would."""

from __future__ import annotations

from types import SimpleNamespace

import kubernetes_validate
import pytest

from tests.e2e import harness
from tests.e2e import test_cluster as e2e

from .conftest import ApiServer

NS = "hopscope-e2e-a1b2c3"
IMAGES = harness.Images("registry.local/hopscope-operator:dev", "registry.local/hopscope-probe:dev")
HOLE = harness.Blackhole("node-1", "10.244.1.254", NS, "blackhole")
OBJECTS = [
    harness.namespace(NS, "a1b2c3"),
    *harness.workloads(NS, IMAGES),
    harness.canary(NS, IMAGES),
    harness.deny_all_ingress(harness.CANARY_POLICY, NS, harness.CANARY),
    harness.deny_all_ingress(e2e.GUARD_POLICY, NS, "guarded"),
    harness.blackhole_pod(HOLE, IMAGES.probe),
]
FAKE = SimpleNamespace(ns=NS, domain="cluster.local")
NODE = {"node": {"name": HOLE.node}}
DESTINATIONS = {
    "echo": e2e.TO_ECHO,
    "guarded": e2e.TO_GUARDED,
    "blackhole": {"ip": HOLE.address, "port": 80},
    "missing-name": e2e.to_missing_name(FAKE),  # type: ignore[arg-type]
    "outside": e2e.to_outside(f"{NS}-outside"),
}


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_the_e2e_objects_are_valid_kubernetes_objects(obj):
    kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)


def test_the_policy_stories_select_the_pods_they_mean():
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in OBJECTS}
    canary = by_name["NetworkPolicy", harness.CANARY_POLICY]["spec"]["podSelector"]["matchLabels"]
    assert canary.items() <= by_name["Pod", harness.CANARY]["metadata"]["labels"].items()
    guarded = by_name["NetworkPolicy", e2e.GUARD_POLICY]["spec"]["podSelector"]["matchLabels"]
    template = by_name["Deployment", "guarded"]["spec"]["template"]["metadata"]["labels"]
    assert guarded.items() <= template.items()
    client = by_name["Pod", "client"]["metadata"]["labels"]
    assert not guarded.items() <= client.items() and not canary.items() <= client.items()


@pytest.mark.parametrize("source", [e2e.CLIENT, NODE], ids=["pod", "node"])
@pytest.mark.parametrize("destination", DESTINATIONS.values(), ids=DESTINATIONS.keys())
def test_the_e2e_checks_pass_the_crds_validation(apiserver: ApiServer, source, destination):
    assert apiserver.errors(e2e.check("story", NS, source, destination)) == []
