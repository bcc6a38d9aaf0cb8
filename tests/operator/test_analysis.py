"""Static analysis from manifest fixtures: each finding, the verdict, and the merge rule.

The cluster: namespace shop with web-0 (app=web, the source) and db-0 (app=db) behind Service
db (5432 -> targetPort 5432, or the named port "pg"), kube-dns in kube-system, nodes worker-1/2.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hopscope_operator.analysis import Snapshot, analyse, merge
from hopscope_operator.api import Analysis, AnalysisResult, ConnectivityCheck
from hopscope_operator.resolved import ResolvedDestination, ResolvedSource
from hopscope_probe.models import (
    ContextItem,
    Hop,
    HopType,
    Issue,
    IssueCause,
    IssueType,
    Origin,
    Severity,
)

Manifest = dict[str, Any]
DEST_HOP = "dest-10.244.2.7"


# ---- manifests --------------------------------------------------------------------------------


def pod(
    name: str,
    labels: dict[str, str],
    ip: str,
    node: str = "worker-1",
    ns: str = "shop",
    ports: list[Manifest] | None = None,
    ready: bool = True,
    **status: Any,
) -> Manifest:
    return {
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "main", "ports": ports or []}]},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            **status,
        },
    }


def web() -> Manifest:
    return pod("web-0", {"app": "web"}, "10.244.1.5")


def db(**kw: Any) -> Manifest:
    ports = kw.pop("ports", [{"name": "pg", "containerPort": 5432}])
    return pod("db-0", {"app": "db"}, "10.244.2.7", node="worker-2", ports=ports, **kw)


def coredns() -> Manifest:
    return pod(
        "coredns-1",
        {"k8s-app": "kube-dns"},
        "10.244.0.3",
        ns="kube-system",
        node="worker-1",
        ports=[
            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
        ],
    )


def service(name: str = "db", ns: str = "shop", **spec: Any) -> Manifest:
    body = {
        "type": "ClusterIP",
        "clusterIP": "10.96.0.20",
        "selector": {"app": "db"},
        "ports": [{"port": 5432, "targetPort": 5432, "protocol": "TCP"}],
    }
    body.update(spec)
    return {"metadata": {"name": name, "namespace": ns}, "spec": body}


def endpoint_slice(service: str, ns: str, pods: list[Manifest], ready: bool = True) -> Manifest:
    return {
        "metadata": {
            "name": f"{service}-abc",
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [p["status"]["podIP"]],
                "conditions": {"ready": ready},
                "targetRef": {"kind": "Pod", "namespace": ns, "name": p["metadata"]["name"]},
            }
            for p in pods
        ],
    }


def dns_service() -> Manifest:
    return service(
        "kube-dns",
        "kube-system",
        clusterIP="10.96.0.10",
        selector={"k8s-app": "kube-dns"},
        ports=[
            {"name": "dns", "port": 53, "targetPort": "dns", "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "targetPort": "dns-tcp", "protocol": "TCP"},
        ],
    )


def namespace(name: str, **labels: str) -> Manifest:
    return {"metadata": {"name": name, "labels": labels}}


def policy(name: str, ns: str = "shop", **spec: Any) -> Manifest:
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def node(name: str, **conditions: str) -> Manifest:
    found = [{"type": "Ready", "status": "True"}]
    found += [{"type": kind, "status": status} for kind, status in conditions.items()]
    if "Ready" in conditions:
        found = found[1:]
    return {"metadata": {"name": name}, "status": {"conditions": found}}


def cluster(**changes: Any) -> Snapshot:
    """A healthy cluster where web-0 reaches db on 5432; keyword arguments replace fields."""
    pods = [web(), db(), coredns()]
    fields: dict[str, Any] = {
        "pods": pods,
        "namespaces": [namespace("shop"), namespace("kube-system")],
        "policies": [],
        "service": service(),
        "service_slices": [endpoint_slice("db", "shop", [pods[1]])],
        "nodes": {"worker-1": node("worker-1"), "worker-2": node("worker-2")},
        "dns_service": dns_service(),
        "dns_slices": [endpoint_slice("kube-dns", "kube-system", [pods[2]])],
    }
    fields.update(changes)
    return Snapshot(**fields)


# ---- the check and its resolved ends --------------------------------------------------------


def check(destination: Manifest | None = None, protocol: str = "TCP") -> ConnectivityCheck:
    return ConnectivityCheck.model_validate(
        {
            "apiVersion": "hopscope.dev/v1alpha1",
            "kind": "ConnectivityCheck",
            "metadata": {"name": "web-to-db", "namespace": "shop"},
            "spec": {
                "source": {"pod": {"name": "web-0"}},
                "destination": destination or {"service": {"name": "db"}, "port": 5432},
                "protocol": protocol,
            },
        }
    )


SOURCE = ResolvedSource(
    kind="pod",
    node_name="worker-1",
    description="pod shop/web-0",
    pod_namespace="shop",
    pod_name="web-0",
    pod_uid="u-1",
    address="10.244.1.5",
)
TO_SERVICE = ResolvedDestination("10.96.0.20", 5432, "service shop/db", ["10.96.0.20"])
TO_POD = ResolvedDestination("10.244.2.7", 5432, "pod shop/db-0", ["10.244.2.7"])


def run(snapshot: Snapshot, target: ConnectivityCheck | None = None, **kw: Any) -> Analysis:
    the_check = target or check()
    destination = kw.pop("destination", TO_SERVICE)
    return analyse(the_check, SOURCE, destination, snapshot, destination_hop=DEST_HOP, **kw)


def only(result: Analysis, kind: IssueType) -> Issue:
    found = [i for i in result.issues if i.type == kind]
    assert len(found) == 1, result.issues
    return found[0]


def context(issue: Issue, key: str) -> list[str]:
    return [c.value for c in issue.context if c.key == key]


# ---- the healthy baseline ---------------------------------------------------------------------


def test_a_healthy_cluster_is_allowed_with_no_findings() -> None:
    result = run(cluster())
    assert result.result == AnalysisResult.ALLOWED
    assert result.issues == []


# ---- NetworkPolicy ----------------------------------------------------------------------------

DENY_WEB_EGRESS = policy(
    "web-egress", podSelector={"matchLabels": {"app": "web"}}, policyTypes=["Egress"]
)
DNS_ONLY = policy(
    "web-dns",
    podSelector={"matchLabels": {"app": "web"}},
    policyTypes=["Egress"],
    egress=[{"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}],
)

ALLOW_DB_ONLY = policy(
    "web-db",
    podSelector={"matchLabels": {"app": "web"}},
    policyTypes=["Egress"],
    egress=[{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}]}],
)


def test_an_egress_policy_on_the_source_blocks_and_is_named() -> None:
    result = run(cluster(policies=[DENY_WEB_EGRESS]))
    assert result.result == AnalysisResult.BLOCKED
    issues = [i for i in result.issues if i.type == IssueType.NETWORK_POLICY]
    to_db = next(i for i in issues if "DNS" not in i.message)
    assert (to_db.severity, to_db.origin, to_db.hop_id) == (
        Severity.ERROR,
        Origin.OUTBOUND,
        "source",
    )
    assert context(to_db, "NetworkPolicy") == ["shop/web-egress"]
    assert "shop/web-0" in to_db.message and "shop/db-0" in to_db.message
    assert context(to_db, "direction") == ["Egress"]
    # The same policy also stops DNS: UDP blocks every lookup, TCP only large answers.
    dns = [i for i in issues if "DNS" in i.message]
    assert sorted(i.severity for i in dns) == [Severity.ERROR, Severity.WARNING]


def test_an_ingress_policy_at_the_endpoints_names_the_nearest_miss_and_the_destination_hop():
    allow_wrong_port = policy(
        "db-ingress",
        podSelector={"matchLabels": {"app": "db"}},
        ingress=[
            {"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 5433}]}
        ],
    )
    result = run(cluster(policies=[allow_wrong_port]))
    assert result.result == AnalysisResult.BLOCKED
    issue = only(result, IssueType.NETWORK_POLICY)
    assert (issue.origin, issue.hop_id) == (Origin.INBOUND, DEST_HOP)
    assert context(issue, "NetworkPolicy") == ["shop/db-ingress"]
    [miss] = context(issue, "nearestMiss")
    assert "shop/db-ingress ingress[0]" in miss and "TCP/5433" in miss
    assert "closest rule" in issue.hint


def test_a_named_target_port_is_resolved_on_the_endpoint_pod_for_the_policy() -> None:
    allow_pg = policy(
        "db-ingress",
        podSelector={"matchLabels": {"app": "db"}},
        ingress=[{"ports": [{"port": "pg"}]}],
    )
    svc = service(ports=[{"port": 80, "targetPort": "pg", "protocol": "TCP"}])
    target = check({"service": {"name": "db"}, "port": 80})
    result = run(cluster(policies=[allow_pg], service=svc), target)
    assert result.result == AnalysisResult.ALLOWED, result.issues


DENY_DB_INGRESS = policy(
    "db-deny", podSelector={"matchLabels": {"app": "db"}}, policyTypes=["Ingress"]
)
DNS_ON_DB = service(ports=[{"port": 53, "targetPort": 5353, "protocol": "UDP"}])


def test_a_check_without_port_is_evaluated_on_the_default_port_the_probe_uses() -> None:
    target = check({"service": {"name": "db"}}, protocol="DNS")  # the probe asks port 53
    no_port = ResolvedDestination("10.96.0.20", None, "service shop/db", ["10.96.0.20"])
    snapshot = cluster(service=DNS_ON_DB, policies=[DENY_DB_INGRESS])
    issue = only(run(snapshot, target, destination=no_port), IssueType.NETWORK_POLICY)
    assert "shop/db-0" in issue.message and context(issue, "flow") == [
        "shop/web-0 -> shop/db-0 UDP/5353"
    ]


def test_a_headless_service_without_ports_is_evaluated_on_the_pods_port() -> None:
    # Resolve allows it: the probe goes to the pods' addresses on the check's port.
    svc = service(clusterIP="None", ports=[])
    result = run(cluster(service=svc, policies=[DENY_DB_INGRESS]), destination=TO_POD)
    assert result.result == AnalysisResult.BLOCKED
    issue = only(result, IssueType.NETWORK_POLICY)
    assert context(issue, "flow") == ["shop/web-0 -> shop/db-0 TCP/5432"]


def test_policies_that_admit_the_flow_and_dns_are_allowed() -> None:
    result = run(cluster(policies=[ALLOW_DB_ONLY, DNS_ONLY]))
    assert result.result == AnalysisResult.ALLOWED, result.issues


def test_dns_egress_is_checked_for_a_name_even_when_the_destination_is_allowed() -> None:
    result = run(cluster(policies=[ALLOW_DB_ONLY]))
    assert result.result == AnalysisResult.BLOCKED
    [udp] = [i for i in result.issues if i.severity == Severity.ERROR]
    assert "DNS queries (UDP/53)" in udp.message and "kube-system/coredns-1" in udp.message
    assert context(udp, "NetworkPolicy") == ["shop/web-db"]
    assert "UDP and TCP 53" in udp.hint


def test_an_ip_destination_is_not_checked_for_dns() -> None:
    target = check({"ip": "10.244.2.7", "port": 5432})
    result = run(cluster(policies=[DNS_ONLY], dns_service=None), target, destination=TO_POD)
    # No DNS finding (an address needs no lookup); the pod at the address is found by its IP.
    issue = only(result, IssueType.NETWORK_POLICY)
    assert "shop/db-0" in issue.message
    assert not [i for i in result.issues if i.type == IssueType.DNS_RESOLUTION]


def test_unreadable_policies_make_the_verdict_unknown_with_a_message() -> None:
    snapshot = cluster(policies=[], unreadable={"networkpolicies": "403 forbidden"})
    result = run(snapshot)
    assert result.result == AnalysisResult.UNKNOWN
    issue = only(result, IssueType.NETWORK_POLICY)
    assert issue.severity == Severity.WARNING
    assert "could not read networkpolicies: 403 forbidden" in issue.message


# ---- Services ---------------------------------------------------------------------------------


def test_a_selector_that_matches_no_pod() -> None:
    result = run(cluster(service=service(selector={"app": "dbb"}), service_slices=[]))
    assert result.result == AnalysisResult.BLOCKED
    issue = only(result, IssueType.SERVICE_ENDPOINTS)
    assert "selects no pod" in issue.message and "app=dbb" in issue.message
    assert (issue.origin, issue.hop_id) == (Origin.INBOUND, DEST_HOP)


def test_unreadable_pods_leave_the_service_unknown_not_empty() -> None:
    # The snapshot has no pods when they could not be listed: not a selector that matches none.
    svc = service(ports=[{"port": 5432, "targetPort": "postgres", "protocol": "TCP"}])
    result = run(cluster(pods=[], service=svc, unreadable={"pods": "pods is forbidden"}))
    assert result.result == AnalysisResult.UNKNOWN
    [issue] = result.issues
    assert issue.severity == Severity.WARNING
    assert "could not read pods: pods is forbidden" in issue.message


def test_selected_pods_that_are_not_ready() -> None:
    pods = [web(), db(ready=False), coredns()]
    snapshot = cluster(pods=pods, service_slices=[endpoint_slice("db", "shop", [pods[1]], False)])
    issue = only(run(snapshot), IssueType.SERVICE_ENDPOINTS)
    assert issue.severity == Severity.ERROR
    assert "none of the 1 pods" in issue.message and "db-0" in issue.message


def test_a_service_that_publishes_not_ready_pods_reaches_them() -> None:
    # The endpoint controller lists them as ready (how StatefulSet peers find each other).
    pods = [web(), db(ready=False), coredns()]
    svc = service(clusterIP="None", publishNotReadyAddresses=True)
    snapshot = cluster(
        pods=pods, service=svc, service_slices=[endpoint_slice("db", "shop", [pods[1]])]
    )
    result = run(snapshot, destination=TO_POD)
    assert result.result == AnalysisResult.ALLOWED and result.issues == []


def test_policies_are_checked_on_the_not_ready_pods_a_service_publishes() -> None:
    pods = [web(), db(ready=False), coredns()]
    unnamed = endpoint_slice("db", "shop", [pods[1]])
    del unnamed["endpoints"][0]["targetRef"]  # the pods then come from the selector
    deny = policy("db-deny", podSelector={"matchLabels": {"app": "db"}}, policyTypes=["Ingress"])
    svc = service(publishNotReadyAddresses=True)
    result = run(cluster(pods=pods, service=svc, service_slices=[unnamed], policies=[deny]))
    assert "shop/db-0" in only(result, IssueType.NETWORK_POLICY).message


def test_no_ready_endpoint_in_the_slices() -> None:
    issue = only(run(cluster(service_slices=[])), IssueType.SERVICE_ENDPOINTS)
    assert issue.severity == Severity.ERROR
    assert "no ready endpoint" in issue.message


def test_a_named_target_port_no_container_has() -> None:
    svc = service(ports=[{"port": 5432, "targetPort": "postgres", "protocol": "TCP"}])
    issue = only(run(cluster(service=svc)), IssueType.SERVICE_ENDPOINTS)
    assert issue.severity == Severity.ERROR
    assert "'postgres'" in issue.message and context(issue, "targetPort") == ["postgres"]


def test_a_numeric_target_port_the_containers_do_not_declare_is_a_warning() -> None:
    svc = service(ports=[{"port": 5432, "targetPort": 5433, "protocol": "TCP"}])
    result = run(cluster(service=svc))
    issue = only(result, IssueType.SERVICE_ENDPOINTS)
    assert issue.severity == Severity.WARNING and "5432/TCP" in issue.message
    assert result.result == AnalysisResult.ALLOWED


def test_a_port_protocol_mismatch() -> None:
    target = check({"service": {"name": "db"}, "port": 5432}, protocol="UDP")
    result = run(cluster(), target)
    issue = only(result, IssueType.SERVICE_ENDPOINTS)
    assert issue.severity == Severity.ERROR
    assert "as TCP" in issue.message and "UDP" in issue.message


def test_a_service_without_the_default_port_of_a_check_that_names_none() -> None:
    target = check({"service": {"name": "db"}}, protocol="DNS")
    no_port = ResolvedDestination("10.96.0.20", None, "service shop/db", ["10.96.0.20"])
    issue = only(run(cluster(), target, destination=no_port), IssueType.SERVICE_ENDPOINTS)
    assert issue.severity == Severity.ERROR and "no UDP port 53" in issue.message


def test_an_external_name_service_says_the_probe_goes_to_the_name() -> None:
    svc = service(type="ExternalName", externalName="db.example.com")
    del svc["spec"]["clusterIP"], svc["spec"]["selector"]
    result = run(cluster(service=svc, service_slices=[]))
    issue = only(result, IssueType.SERVICE_ENDPOINTS)
    assert issue.severity == Severity.WARNING
    assert "probe connects to db.example.com" in issue.message
    assert result.result == AnalysisResult.ALLOWED


def test_a_headless_service_is_noted_in_the_context() -> None:
    svc = service(clusterIP="None")
    issue = only(run(cluster(service=svc, service_slices=[])), IssueType.SERVICE_ENDPOINTS)
    assert context(issue, "headless")


# ---- cluster DNS ------------------------------------------------------------------------------


def test_a_missing_cluster_dns_service_leaves_dns_unknown() -> None:
    # Some distributions name it otherwise (RKE2, OpenShift): no proof that lookups fail.
    result = run(cluster(dns_service=None, dns_slices=[]))
    issue = only(result, IssueType.DNS_RESOLUTION)
    assert (issue.severity, issue.hop_id) == (Severity.WARNING, "source")
    assert "kube-system/kube-dns does not exist" in issue.message
    assert result.result == AnalysisResult.UNKNOWN


DNS_DOWN = [endpoint_slice("kube-dns", "kube-system", [coredns()], ready=False)]


@pytest.mark.parametrize(
    ("dns_policy", "host_network", "queries_it"),
    [
        ("Default", False, False),
        ("None", False, False),
        ("ClusterFirst", True, False),  # on the host network: the node's resolver
        ("ClusterFirstWithHostNet", True, True),
        ("ClusterFirst", False, True),
    ],
)
def test_the_cluster_dns_is_checked_only_for_sources_that_query_it(
    dns_policy: str, host_network: bool, queries_it: bool
) -> None:
    source = web()
    source["spec"].update(dnsPolicy=dns_policy, hostNetwork=host_network)
    snapshot = cluster(
        pods=[source, db(), coredns()], policies=[ALLOW_DB_ONLY], dns_slices=DNS_DOWN
    )
    result = run(snapshot)
    dns = [i for i in result.issues if i.type == IssueType.DNS_RESOLUTION or "DNS" in i.message]
    assert bool(dns) == queries_it, result.issues
    assert result.result == (AnalysisResult.BLOCKED if queries_it else AnalysisResult.ALLOWED)


def test_a_node_source_queries_the_cluster_dns_as_its_probe_does() -> None:
    from_node = ResolvedSource(
        kind="node", node_name="worker-1", description="node worker-1", address="192.168.0.11"
    )
    result = analyse(check(), from_node, TO_SERVICE, cluster(dns_slices=DNS_DOWN))
    assert "no ready endpoint" in only(result, IssueType.DNS_RESOLUTION).message


def test_a_cluster_dns_service_without_ready_endpoints() -> None:
    slices = [endpoint_slice("kube-dns", "kube-system", [coredns()], ready=False)]
    issue = only(run(cluster(dns_slices=slices)), IssueType.DNS_RESOLUTION)
    assert "no ready endpoint" in issue.message


# ---- nodes and pods ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "kind", "severity"),
    [
        ("MemoryPressure", IssueType.MEMORY, Severity.WARNING),
        ("DiskPressure", IssueType.MEMORY, Severity.WARNING),
        ("PIDPressure", IssueType.CPU, Severity.WARNING),
        ("NetworkUnavailable", IssueType.ROUTING, Severity.ERROR),
    ],
)
def test_source_node_conditions(condition: str, kind: IssueType, severity: Severity) -> None:
    nodes = {"worker-1": node("worker-1", **{condition: "True"}), "worker-2": node("worker-2")}
    issue = only(run(cluster(nodes=nodes)), kind)
    assert (issue.severity, issue.origin, issue.hop_id) == (severity, Origin.LOCAL, "source")
    assert context(issue, "condition") == [condition] and "worker-1" in issue.message


@pytest.mark.parametrize("status", ["False", "Unknown"])
def test_a_not_ready_destination_node(status: str) -> None:
    target = check({"pod": {"name": "db-0"}, "port": 5432})
    nodes = {"worker-1": node("worker-1"), "worker-2": node("worker-2", Ready=status)}
    result = run(cluster(nodes=nodes), target, destination=TO_POD)
    issue = only(result, IssueType.ROUTING)
    assert (issue.severity, issue.origin, issue.hop_id) == (
        Severity.ERROR,
        Origin.INBOUND,
        DEST_HOP,
    )
    assert "destination node worker-2" in issue.message


def test_a_crash_looping_destination_pod() -> None:
    looping = db(
        ready=False,
        containerStatuses=[
            {
                "name": "main",
                "restartCount": 7,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"reason": "Error", "exitCode": 1}},
            }
        ],
    )
    target = check({"pod": {"name": "db-0"}, "port": 5432})
    result = run(cluster(pods=[web(), looping, coredns()]), target, destination=TO_POD)
    issue = only(result, IssueType.PORT_NOT_LISTENING)
    assert issue.severity == Severity.ERROR and "CrashLoopBackOff" in issue.message
    assert "kubectl logs --previous" in issue.hint
    assert result.result == AnalysisResult.BLOCKED


def test_an_oom_killed_and_terminating_source_pod() -> None:
    source = web()
    source["metadata"]["deletionTimestamp"] = "2026-11-25T12:00:00Z"
    source["status"]["containerStatuses"] = [
        {
            "name": "main",
            "restartCount": 1,
            "state": {"running": {}},
            "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
        }
    ]
    result = run(cluster(pods=[source, db(), coredns()]))
    memory = only(result, IssueType.MEMORY)
    assert memory.hop_id == "source" and "OOM-killed" in memory.message
    terminating = only(result, IssueType.PROBE)
    assert "terminating" in terminating.message
    assert result.result == AnalysisResult.ALLOWED  # warnings only


def test_a_destination_pod_that_is_not_ready() -> None:
    target = check({"pod": {"name": "db-0"}, "port": 5432})
    result = run(cluster(pods=[web(), db(ready=False), coredns()]), target, destination=TO_POD)
    issue = only(result, IssueType.PORT_NOT_LISTENING)
    assert issue.severity == Severity.WARNING and "not Ready" in issue.message


# ---- merging with the probe ------------------------------------------------------------------

HOPS = [
    Hop(id="source", type=HopType.SOURCE, address="10.244.1.5", ttl=0),
    Hop(id="h1-10.244.1.1", type=HopType.ROUTER, address="10.244.1.1", ttl=1),
    Hop(id="h2-*", type=HopType.UNKNOWN, ttl=2),
]
SILENT_AT_END = Issue(
    type=IssueType.FIREWALL,
    severity=Severity.ERROR,
    origin=Origin.OUTBOUND,
    hop_id="h2-*",
    message="TCP packets to 10.96.0.20:5432 are silently dropped after 10.244.1.1: no answer",
    hint="A firewall drops this flow",
    context=[ContextItem(key="lastAnsweringHop", value="10.244.1.1")],
    cause=IssueCause.SILENT_DROP,
)


def ingress_denial() -> Analysis:
    deny = policy("db-deny", podSelector={"matchLabels": {"app": "db"}}, policyTypes=["Ingress"])
    return analyse(check(), SOURCE, TO_SERVICE, cluster(policies=[deny]))


def test_a_silent_drop_at_the_last_hop_that_an_ingress_policy_explains_becomes_one_issue():
    analysis = ingress_denial()
    [denial] = [i for i in analysis.issues if i.type == IssueType.NETWORK_POLICY]
    merged = merge([SILENT_AT_END], analysis, HOPS)
    assert [i.type for i in merged] == [IssueType.NETWORK_POLICY]
    [issue] = merged
    assert issue.message == denial.message and context(issue, "NetworkPolicy") == ["shop/db-deny"]
    assert issue.hop_id == "h2-*"  # no Destination hop was traced: the probe's last hop
    assert context(issue, "probe") == [SILENT_AT_END.message]
    assert context(issue, "probe.lastAnsweringHop") == ["10.244.1.1"]


def test_the_merge_reads_the_probes_cause_not_its_words() -> None:
    # The probe may reword its finding: the cause, not the message or its evidence keys, says
    # it is a silent drop. Without the cause the same words are just a Firewall finding.
    reworded = SILENT_AT_END.model_copy(
        update={"message": "no reply to TCP 10.96.0.20:5432 beyond 10.244.1.1", "context": []}
    )
    [issue] = merge([reworded], ingress_denial(), HOPS)
    assert issue.type == IssueType.NETWORK_POLICY
    assert context(issue, "NetworkPolicy") == ["shop/db-deny"]
    assert context(issue, "probe") == [reworded.message]
    words_only = SILENT_AT_END.model_copy(update={"cause": None})
    merged = merge([words_only], ingress_denial(), HOPS)
    assert [i.type for i in merged] == [IssueType.FIREWALL, IssueType.NETWORK_POLICY]


def test_the_merged_issue_moves_to_the_destination_hop_when_there_is_one() -> None:
    hops = [*HOPS, Hop(id=DEST_HOP, type=HopType.DESTINATION, ttl=3)]
    at_dest = SILENT_AT_END.model_copy(update={"hop_id": DEST_HOP, "origin": Origin.INBOUND})
    [issue] = merge([at_dest], ingress_denial(), hops)
    assert issue.type == IssueType.NETWORK_POLICY and issue.hop_id == DEST_HOP


def test_a_drop_in_the_middle_is_not_explained_by_an_ingress_policy() -> None:
    hops = [*HOPS, Hop(id="h3-10.0.0.1", type=HopType.ROUTER, address="10.0.0.1", ttl=3)]
    merged = merge([SILENT_AT_END], ingress_denial(), hops)
    assert [i.type for i in merged] == [IssueType.FIREWALL, IssueType.NETWORK_POLICY]


def test_an_egress_denial_explains_a_silent_drop_and_stays_at_the_source() -> None:
    analysis = analyse(
        check({"pod": {"name": "db-0"}, "port": 5432}),
        SOURCE,
        TO_POD,
        cluster(policies=[DENY_WEB_EGRESS, DNS_ONLY]),
    )
    merged = merge([SILENT_AT_END], analysis, HOPS)
    [issue] = merged
    assert issue.type == IssueType.NETWORK_POLICY and issue.hop_id == "source"
    # Every policy isolating the source for egress is named: the fix may go in either.
    assert context(issue, "NetworkPolicy") == ["shop/web-dns", "shop/web-egress"]


def test_merge_keeps_each_finding_once_and_leaves_other_issues_alone() -> None:
    analysis = ingress_denial()
    local = SILENT_AT_END.model_copy(update={"origin": Origin.LOCAL, "message": "EPERM on send"})
    merged = merge([local, copy.deepcopy(analysis.issues[0])], analysis, HOPS)
    assert merged == [local, analysis.issues[0]]
    assert merge([local], None, HOPS) == [local]
