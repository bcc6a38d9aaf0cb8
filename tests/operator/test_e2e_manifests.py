"""The kind suite cannot run on this machine; what it applies is still checked here: its
workloads against the Kubernetes schema, its checks against the CRD as the API server would."""

from __future__ import annotations

import kubernetes_validate
import pytest

from tests.e2e import test_kind as e2e

from .conftest import ApiServer

NODE = {"node": {"name": "kind-control-plane"}}


@pytest.mark.parametrize("obj", e2e.workloads(), ids=lambda o: o["metadata"]["name"])
def test_the_e2e_workloads_are_valid_kubernetes_objects(obj):
    kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize("source", [e2e.CLIENT, NODE], ids=["pod", "node"])
@pytest.mark.parametrize("destination", e2e.DESTINATIONS, ids=str)
def test_the_e2e_checks_pass_the_crds_validation(apiserver: ApiServer, source, destination):
    assert apiserver.errors(e2e.check("story", source, destination)) == []
