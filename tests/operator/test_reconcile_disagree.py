"""When the probe and the static analysis disagree, the check says what that means (issue 12
§4), on the in-memory API server: a policy that should block a flow the probe got through is
not enforced there; a flow the configuration allows that does not connect is a data-plane
fault at the hop the probe found. And a run with an Error issue posts a Warning Event.
"""

from __future__ import annotations

import pytest

from hopscope_operator.cluster import ENDPOINT_SLICES
from hopscope_operator.controller.reconcile import Reconciler

from . import test_reconcile as story
from .conftest import Clock
from .fakeapi import FakeApi
from .test_reconcile import apply_check, reachable_result, run_once, source_pod
from .test_reconcile_analysis import DEST_HOP, dropped_at_the_destination
from .test_reconcile_spelling import POLICY, deny_db_ingress


@pytest.fixture
def reconciler(healthy: FakeApi) -> Reconciler:
    return story.make_reconciler(healthy, Clock())


def run_events(api: FakeApi) -> list[tuple[str, str]]:
    return [
        (e["type"], e["reason"])
        for e in api.events_for("web-to-db")
        if e["reason"] in ("Reachable", "Unreachable")
    ]


def test_a_flow_that_connects_through_a_blocking_policy_says_it_is_not_enforced(
    healthy, reconciler
):
    source_pod(healthy)
    deny_db_ingress(healthy)
    apply_check(healthy)
    status = run_once(healthy, reconciler, reachable_result())["status"]

    assert status["connectionStatus"] == "Reachable"
    [finding] = [i for i in status["issues"] if i["type"] == "NetworkPolicy"]
    assert finding["severity"] == "Warning"
    assert "not enforced on this path" in finding["message"]
    assert {"key": "NetworkPolicy", "value": POLICY} in finding["context"]
    # Nothing tells the user to add a rule to a flow that works, in the issues or the analysis.
    analysis = status["analysis"]
    assert all("Add an" not in i["hint"] for i in status["issues"] + analysis["issues"])
    assert analysis["result"] == "Blocked"  # what the configuration says, explained above
    assert run_events(healthy) == [("Normal", "Reachable")]


def test_an_unreachable_flow_the_configuration_allows_is_a_data_plane_fault_at_the_hop(
    healthy, reconciler
):
    source_pod(healthy)
    apply_check(healthy)
    status = run_once(healthy, reconciler, dropped_at_the_destination())["status"]

    assert status["analysis"]["result"] == "Allowed"
    [drop] = status["issues"]
    assert drop["type"] == "Firewall" and drop["hopId"] == DEST_HOP
    assert drop["hint"].startswith("Static analysis finds the cluster's configuration")
    assert f"the fault is in the data plane at hop {DEST_HOP}" in drop["hint"]
    assert {"key": "analysis", "value": "Allowed"} in drop["context"]


def test_a_reachable_run_with_an_error_issue_posts_a_warning_event(healthy, reconciler):
    source_pod(healthy)
    healthy.delete(ENDPOINT_SLICES, "shop", "db-1")  # db has no ready endpoint any more
    apply_check(healthy)
    status = run_once(healthy, reconciler, reachable_result())["status"]

    assert status["connectionStatus"] == "Reachable"
    assert any(i["severity"] == "Error" for i in status["issues"])
    [event] = [e for e in healthy.events_for("web-to-db") if e["reason"] == "Reachable"]
    assert event["type"] == "Warning"
    assert "ServiceEndpoints: service shop/db has no ready endpoint" in event["message"]
