"""Probe pods: valid Pods by the real Kubernetes schema, least privilege per batch, stable names,
the batch contract the probe reads, and grouping under the caps."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import kubernetes_validate
import pytest

from hopscope_operator.api import (
    MAX_MATCH_EXPRESSIONS,
    MAX_MATCH_LABELS,
    MAX_SELECTOR_VALUES,
    ConnectivityCheckSpec,
    LabelSelector,
)
from hopscope_operator.controller.plan import (
    MAX_BATCH_BYTES,
    STARTUP_SECONDS,
    Batch,
    BatchItem,
    Caps,
    batch_env,
    budget_seconds,
    deadline_seconds,
    group_by_node,
    label_value,
    pod_name,
    probe_pod,
)
from hopscope_operator.controller.runs import MAX_SOURCE_DESCRIPTION, planned_uids, read_sources
from hopscope_operator.names import ANNOTATION_CHECKS
from hopscope_operator.resolved import ResolvedSource
from hopscope_policy.model import parse_selector
from hopscope_probe import batch as wire
from hopscope_probe.models import MAX_CA_PEM, MAX_HEADERS, PathMode, ProbeRequest

IMAGE = "ghcr.io/hopscope/probe:0.1.0"
UID_A = "3f1c2b4a-9d8e-4f70-a1b2-c3d4e5f60718"
UID_B = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
CHECK_UID = "0c0ffee0-1111-4222-8333-444455556666"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def item(
    check: str = "shop/web-to-db",
    generation: int = 1,
    netns: str = "host",
    uid: str | None = CHECK_UID,
    **request: Any,
) -> BatchItem:
    fields = {"host": "10.96.0.10", "port": 5432, **request}
    return BatchItem(check, generation, netns, ProbeRequest(**fields), uid)


def pod_for(items: list[BatchItem], namespace: str = "hopscope", tick: int = 1748779200) -> dict:
    return probe_pod("worker-1", items, image=IMAGE, namespace=namespace, tick=tick)


def validate(pod: dict[str, Any]) -> None:
    kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)


def container(pod: dict[str, Any]) -> dict[str, Any]:
    [only] = pod["spec"]["containers"]
    return only


NODE_ONLY = [item(), item("shop/web-to-api", netns="host")]
POD_ONLY = [item(netns=UID_A), item("shop/b", netns=UID_B)]
MIXED = [item(), item("shop/b", netns=UID_A)]


@pytest.mark.parametrize(
    "items",
    [NODE_ONLY, POD_ONLY, MIXED, [item("hopscope/self")]],
    ids=["node-only", "pod-only", "mixed", "single-owned"],
)
def test_every_probe_pod_is_a_valid_pod(items: list[BatchItem]) -> None:
    validate(pod_for(items))


def test_validation_would_catch_a_bad_pod() -> None:
    broken = pod_for(NODE_ONLY)
    broken["spec"]["tolerations"][0]["operator"] = 7
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)


def test_node_only_batch_uses_host_network_and_only_net_raw() -> None:
    pod = pod_for(NODE_ONLY)
    spec, security = pod["spec"], container(pod)["securityContext"]
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert "hostPID" not in spec
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW"]}
    assert security["runAsUser"] == 0
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["privileged"] is False


def test_pod_netns_batch_uses_host_pid_and_the_capabilities_setns_needs() -> None:
    pod = pod_for(POD_ONLY)
    spec, security = pod["spec"], container(pod)["securityContext"]
    assert spec["hostPID"] is True
    assert "hostNetwork" not in spec and "dnsPolicy" not in spec
    assert security["capabilities"] == {
        "drop": ["ALL"],
        "add": ["NET_RAW", "SYS_ADMIN", "SYS_PTRACE"],
    }
    assert security["privileged"] is False
    assert security["allowPrivilegeEscalation"] is False


def test_pod_sources_read_the_hosts_cgroups_read_only_and_node_sources_do_not() -> None:
    pod = pod_for(POD_ONLY)
    [mount] = [m for m in container(pod)["volumeMounts"] if m["name"] == "host-cgroup"]
    assert mount["readOnly"] is True
    env = {e["name"]: e["value"] for e in container(pod)["env"]}
    assert env["HOPSCOPE_CGROUP_ROOT"] == mount["mountPath"]
    [volume] = [v for v in pod["spec"]["volumes"] if v["name"] == "host-cgroup"]
    assert volume["hostPath"]["path"] == "/sys/fs/cgroup"
    node_pod = pod_for(NODE_ONLY)
    assert all(v["name"] != "host-cgroup" for v in node_pod["spec"]["volumes"])


def test_mixed_batch_has_both_namespaces_it_needs() -> None:
    spec = pod_for(MIXED)["spec"]
    assert spec["hostPID"] is True and spec["hostNetwork"] is True


def test_pod_is_pinned_runs_once_and_tolerates_every_taint() -> None:
    pod = pod_for(NODE_ONLY)
    spec = pod["spec"]
    assert spec["nodeName"] == "worker-1"
    assert "affinity" not in spec and "nodeSelector" not in spec
    assert spec["restartPolicy"] == "Never"
    assert spec["tolerations"] == [{"operator": "Exists"}]
    assert spec["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == "hopscope-probe"
    assert spec["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    probe = container(pod)
    assert probe["image"] == IMAGE
    assert probe["command"] == ["hopscope", "batch"]
    assert probe["resources"]["requests"] == {"cpu": "50m", "memory": "96Mi"}
    assert probe["resources"]["limits"] == {"cpu": "1", "memory": "192Mi"}
    assert {"name": "tmp", "mountPath": "/tmp"} in probe["volumeMounts"]


def test_labels_and_annotations_name_node_tick_and_checks() -> None:
    pod = pod_for([item("shop/b", 3), item("shop/a", 7)], tick=1748779200)
    metadata = pod["metadata"]
    assert metadata["namespace"] == "hopscope"
    assert metadata["labels"] == {
        "app.kubernetes.io/name": "hopscope-probe",
        "hopscope.dev/node": "worker-1",
        "hopscope.dev/tick": "1748779200",
    }
    checks = json.loads(metadata["annotations"][ANNOTATION_CHECKS])
    assert checks == {"shop/a/7": CHECK_UID, "shop/b/3": CHECK_UID}
    assert planned_uids(pod) == checks


def test_a_pod_from_before_uids_were_planned_still_names_its_checks() -> None:
    pod = pod_for([item("shop/a", 7)])
    pod["metadata"]["annotations"][ANNOTATION_CHECKS] = json.dumps(["shop/a/7"])
    assert planned_uids(pod) == {"shop/a/7": None}


# ---- the batch contract ---------------------------------------------------------------------


def test_env_is_the_batch_the_probe_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    items = [item("shop/a", 2), item("team/b", 5, netns=UID_A, protocol="ICMP", port=None)]
    env = container(pod_for(items))["env"]
    assert env[0]["name"] == "HOPSCOPE_BATCH"
    raw = json.loads(env[0]["value"])
    assert raw["checks"][0]["id"] == "shop/a/2"
    assert raw["checks"][0]["netns"] == "host"
    assert raw["checks"][1]["netns"] == {"podUid": UID_A}
    assert raw["checks"][0]["request"]["host"] == "10.96.0.10"  # camelCase JSON by alias
    assert "timeoutSeconds" in raw["checks"][0]["request"]
    monkeypatch.setenv(wire.ENV, env[0]["value"])
    loaded = wire.load(None)  # exactly what `hopscope batch` does in the pod
    assert loaded.refused == [] and loaded.batch is not None
    parsed = loaded.batch
    assert [check.id for check in parsed.checks] == ["shop/a/2", "team/b/5"]
    assert parsed.checks[1].netns == wire.PodNetns(pod_uid=UID_A)
    assert parsed.checks[1].request == items[1].request


def test_item_id_is_namespace_name_generation() -> None:
    one = item("shop/web-to-db", 4)
    assert (one.id, one.namespace, one.name) == ("shop/web-to-db/4", "shop", "web-to-db")


# ---- owner ----------------------------------------------------------------------------------


def test_single_check_in_the_pods_namespace_owns_the_pod() -> None:
    pod = pod_for([item("hopscope/self", uid=CHECK_UID)], namespace="hopscope")
    assert pod["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "hopscope.dev/v1alpha1",
            "kind": "ConnectivityCheck",
            "name": "self",
            "uid": CHECK_UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


@pytest.mark.parametrize(
    "items",
    [
        [item("shop/a")],  # another namespace: the GC would delete the pod at once
        [item("hopscope/a"), item("hopscope/b")],  # a pod has one controller
        [item("hopscope/a", uid=None)],  # uid unknown
    ],
    ids=["cross-namespace", "many-checks", "no-uid"],
)
def test_no_owner_reference_where_it_would_be_wrong(items: list[BatchItem]) -> None:
    pod = pod_for(items, namespace="hopscope")
    assert "ownerReferences" not in pod["metadata"]
    assert json.loads(pod["metadata"]["annotations"][ANNOTATION_CHECKS])


# ---- name -----------------------------------------------------------------------------------


def test_name_is_stable_for_the_same_node_tick_and_checks() -> None:
    a, b = item("shop/a"), item("shop/b")
    first = pod_for([a, b])["metadata"]["name"]
    assert pod_for([b, a])["metadata"]["name"] == first  # order does not matter
    assert pod_name("worker-1", 1748779200, [a, b]) == first
    assert pod_for([a, b], tick=1748779260)["metadata"]["name"] != first
    assert pod_for([a, item("shop/b", 2)])["metadata"]["name"] != first
    assert (
        probe_pod("worker-2", [a, b], image=IMAGE, namespace="x", tick=1748779200)["metadata"][
            "name"
        ]
        != first
    )
    assert first.startswith("hopscope-probe-")
    assert len(first) <= 63 and DNS_LABEL.match(first)


def test_long_node_names_fit_in_a_label() -> None:
    long_name = "ip-10-0-12-34." + "very-long-zone-name." * 8 + "compute.internal"
    value = label_value(long_name)
    assert len(value) <= 63
    assert value == label_value(long_name) and value != label_value(long_name + "x")
    assert re.match(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", value)
    assert label_value("worker-1") == "worker-1"
    pod = probe_pod(long_name, [item()], image=IMAGE, namespace="hopscope", tick=1)
    assert pod["metadata"]["labels"]["hopscope.dev/node"] == value
    assert pod["metadata"]["annotations"]["hopscope.dev/node"] == long_name
    validate(pod)


def test_a_pod_needs_a_check() -> None:
    with pytest.raises(ValueError, match="at least one check"):
        pod_for([])


# ---- deadline -------------------------------------------------------------------------------


def test_each_check_gets_its_worst_case_as_budget_clamped_to_the_cap() -> None:
    traced = item(count=10, timeout_seconds=2, max_hops=30)  # 2 * (2 + 10 + 30) = 84
    untraced = item(count=4, timeout_seconds=0.5, path_mode=PathMode.NEVER)  # 0.5 * 6 = 3
    on_failure = item(count=1, timeout_seconds=1.2, max_hops=5, path_mode=PathMode.ON_FAILURE)
    # The check: 100 probes of 60 s and a 64-hop sweep, 60 * 166 s = 2.8 hours.
    huge = item(count=100, timeout_seconds=60, max_hops=64, source_port=40000)
    items = [traced, untraced, on_failure, huge]
    checks = wire.Batch.model_validate_json(container(pod_for(items))["env"][0]["value"]).checks
    assert [check.budget_seconds for check in checks] == [84, 3, 10, 120]  # ceil(1.2 * 8)
    assert budget_seconds(huge.request, cap=600) == 600


def test_deadline_is_derived_from_the_budgets_in_the_batch() -> None:
    # Four slots; each check killed at its budget (+2 s to fork and kill it): the last check
    # starts by sum/4 and runs at most the longest, sum/4 + 3/4 * max.
    huge = item(count=100, timeout_seconds=60, max_hops=64, source_port=40000)
    assert deadline_seconds([huge]) == STARTUP_SECONDS + 122  # was 60 + 9960: 2.8 hours
    assert pod_for([huge])["spec"]["activeDeadlineSeconds"] == STARTUP_SECONDS + 122
    fifty = [item(f"shop/c{i}", count=100, timeout_seconds=60) for i in range(50)]
    assert deadline_seconds(fifty) == STARTUP_SECONDS + math.ceil(50 * 122 / 4 + 0.75 * 122)
    untraced = item(count=4, timeout_seconds=0.5, path_mode=PathMode.NEVER)  # 3 s
    assert deadline_seconds([untraced]) == STARTUP_SECONDS + math.ceil(5 / 4 + 0.75 * 5)
    small_cap = probe_pod("w", [huge], image=IMAGE, namespace="h", tick=1, budget=30)
    assert small_cap["spec"]["activeDeadlineSeconds"] == STARTUP_SECONDS + 32


def test_deadline_leaves_a_timeout_for_the_mtu_probe_where_it_may_run() -> None:
    """Asked for, or an HTTP(S) check (whose stalled response sets it off)."""
    untraced = {"count": 4, "timeout_seconds": 0.5, "path_mode": PathMode.NEVER}
    plain = item(**untraced)
    asked = item(**untraced, mtu=True)
    http = item(**untraced, protocol="HTTP", uri="http://web/")
    assert budget_seconds(plain.request) == 3  # 0.5 * (DNS 2 + count 4)
    assert budget_seconds(asked.request) == budget_seconds(http.request) == 4  # 0.5 * 7
    assert deadline_seconds([asked]) > deadline_seconds([plain])


# ---- grouping -------------------------------------------------------------------------------


def due_items(nodes: int, per_node: int) -> list[tuple[str, BatchItem]]:
    return [
        (f"worker-{n}", item(f"ns-{n}/check-{i}", netns="host"))
        for i in range(per_node)
        for n in range(nodes)
    ]


def test_a_thousand_checks_on_fifty_nodes_make_fifty_pods() -> None:
    planned = group_by_node(due_items(50, 20), Caps(max_pods=100, max_checks_per_pod=50))
    assert len(planned.create) == 50
    assert planned.deferred == []
    assert sorted(len(batch.items) for batch in planned.create) == [20] * 50
    assert len({batch.node for batch in planned.create}) == 50
    for batch in planned.create[:3]:
        validate(probe_pod(batch.node, list(batch.items), image=IMAGE, namespace="h", tick=60))


def test_global_cap_defers_whole_nodes_in_arrival_order() -> None:
    planned = group_by_node(due_items(5, 2), Caps(max_pods=3))
    assert [batch.node for batch in planned.create] == ["worker-0", "worker-1", "worker-2"]
    assert {i.check.split("/")[0] for i in planned.deferred} == {"ns-3", "ns-4"}
    assert len(planned.deferred) == 4


def test_pods_in_flight_count_against_both_caps() -> None:
    due = due_items(3, 1)
    planned = group_by_node(due, Caps(max_pods=10), in_flight={"worker-1": 1})
    assert [batch.node for batch in planned.create] == ["worker-0", "worker-2"]
    assert [i.check for i in planned.deferred] == ["ns-1/check-0"]
    full = group_by_node(due, Caps(max_pods=2), in_flight={"worker-9": 2})
    assert full.create == [] and len(full.deferred) == 3


def test_many_checks_on_one_node_split_into_pods_within_the_per_node_cap() -> None:
    due = [("worker-1", item(f"shop/c{i}")) for i in range(7)]
    planned = group_by_node(due, Caps(max_pods=10, max_pods_per_node=2, max_checks_per_pod=3))
    assert [len(batch.items) for batch in planned.create] == [3, 3]
    assert [i.check for i in planned.deferred] == ["shop/c6"]
    assert all(isinstance(batch, Batch) and batch.node == "worker-1" for batch in planned.create)


def test_checks_with_the_largest_uris_headers_and_cas_allowed_split_to_fit_the_env() -> None:
    # 50 checks, each near the CRD's bounds: one HOPSCOPE_BATCH of them would be over the
    # 128 KiB the kernel allows one environment string, and the pod would never start.
    uri = "https://api.example.com/" + "p" * 2000
    headers = [{"name": f"x-h{i}", "value": "v" * 2048} for i in range(MAX_HEADERS)]
    ca = ("A" * 63 + "\n") * (MAX_CA_PEM // 64)  # a PEM's lines: each newline escaped in JSON
    fat = {"uri": uri, "protocol": "HTTPS", "http": {"headers": headers}, "ca_pem": ca}
    due = [("worker-1", item(f"shop/c{i}", **fat)) for i in range(50)]
    planned = group_by_node(due, Caps(max_pods=100, max_pods_per_node=100))
    assert len(batch_env([due[0][1]])) > 32 * 1024  # each one alone is big
    sizes = [len(batch_env(batch.items)) for batch in planned.create]
    assert max(sizes) <= MAX_BATCH_BYTES < 128 * 1024
    assert sum(len(batch.items) for batch in planned.create) == 50 and not planned.deferred


def test_grouping_nothing_plans_nothing() -> None:
    planned = group_by_node([])
    assert (planned.create, planned.deferred) == ([], [])


def test_a_nodes_batch_takes_its_namespaces_in_turn() -> None:
    # Namespace "bulk" has 200 checks due on the node, "team" 2, listed after them: the
    # node's one pod of 50 runs both of team's now, not after four ticks of bulk's.
    bulk = [("worker-1", item(f"bulk/c{i:03}")) for i in range(200)]
    team = [("worker-1", item(f"team/c{i}")) for i in range(2)]
    planned = group_by_node(bulk + team, Caps(max_checks_per_pod=50))
    [batch] = planned.create
    checks = [i.check for i in batch.items]
    assert {"team/c0", "team/c1"} <= set(checks)
    assert checks[:4] == ["bulk/c000", "team/c0", "bulk/c001", "team/c1"]
    assert [i.check for i in batch.items if i.namespace == "bulk"] == [
        f"bulk/c{i:03}" for i in range(48)
    ]  # each namespace's own order (most overdue first) kept
    assert len(planned.deferred) == 152


def test_checks_riding_along_come_after_every_due_check_of_the_node() -> None:
    due = [("worker-1", item(f"a/c{i}")) for i in range(3)]
    riders = [("worker-1", item(f"b/r{i}")) for i in range(3)]
    planned = group_by_node(
        due + riders, Caps(max_checks_per_pod=4), riders=frozenset(i.id for _, i in riders)
    )
    assert [i.check for i in planned.create[0].items] == ["a/c0", "a/c1", "a/c2", "b/r0"]


def _widest_selector() -> dict[str, Any]:
    """A podSelector at every bound the CRD admits."""
    key = "p" * 253 + "/" + "k" * 60
    labels = {f"{key}{i:03}": "v" * 63 for i in range(MAX_MATCH_LABELS)}
    values = ["v" * 60 + f"{i:03}" for i in range(MAX_SELECTOR_VALUES)]
    expressions = [
        {"key": f"{key}{i:03}", "operator": "In", "values": values}
        for i in range(MAX_MATCH_EXPRESSIONS)
    ]
    return {"matchLabels": labels, "matchExpressions": expressions}


def test_the_widest_checks_the_crd_admits_split_into_pods_whose_annotations_fit() -> None:
    # A thousand checks on one node (an operator set to 1,000 checks a pod), each with the
    # longest namespace, name and generation and a source described by the widest selector:
    # every pod must stay under Kubernetes' 256 KiB of annotations, or every check on the
    # node stays ProbePodRefused.
    selector = LabelSelector.model_validate(_widest_selector())
    shown = str(parse_selector(selector.model_dump(by_alias=True), "spec.source.podSelector"))
    assert len(shown) > 30_000  # what the description quotes
    namespace, name, generation = "n" * 63, "c" * 250, 2**63 - 1
    items = [item(f"{namespace}/{name}{i:03}", generation) for i in range(1000)]
    source = ResolvedSource(
        kind="pod",
        node_name="w" * 253,
        description=f"pod {namespace}/web-0 (first by name of 3 Ready pods matching {shown})",
        pod_namespace=namespace,
        pod_name="p" * 253,
        pod_uid=UID_A,
        address="2001:db8::1",
    )
    planned = group_by_node([("worker-1", i) for i in items], Caps(1000, 1000, 1000))
    assert sum(len(batch.items) for batch in planned.create) == 1000 and not planned.deferred
    for batch in planned.create:
        pod = probe_pod(
            "w" * 253,
            list(batch.items),
            image=IMAGE,
            namespace="hopscope",
            tick=1748779200,
            sources={i.id: source for i in batch.items},
        )
        annotations = pod["metadata"]["annotations"]
        # What the API server counts: every key's and value's bytes.
        total = sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items())
        assert total < 256 * 1024
        validate(pod)
    kept = read_sources(pod)[batch.items[0].id]
    assert kept.description.startswith(source.description[:200])
    assert len(kept.description) <= MAX_SOURCE_DESCRIPTION


def test_the_widest_single_check_the_crd_admits_fits_one_environment_string() -> None:
    # Headers of '"' and '\\' (each escaped to two bytes of JSON) at every bound, the longest
    # URI and CA bundle: alone in its pod, still under the kernel's 128 KiB a string.
    uri = "https://api.example.com/" + '"' * (2048 - 24)
    headers = [{"name": "x" * 256, "value": '"\\' * 1024} for _ in range(MAX_HEADERS)]
    ca = ("A" * 63 + "\n") * (MAX_CA_PEM // 64)
    fat = item(uri=uri, protocol="HTTPS", http={"headers": headers}, ca_pem=ca)
    ConnectivityCheckSpec.model_validate(
        {
            "source": {"pod": {"name": "web-0"}},
            "destination": {"uri": uri},
            "protocol": "HTTPS",
            "http": {"headers": headers},
        }
    )  # the CRD's models admit it
    [variable] = pod_for([fat])["spec"]["containers"][0]["env"]
    assert len(variable["value"].encode()) < 128 * 1024
