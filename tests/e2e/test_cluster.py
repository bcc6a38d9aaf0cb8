"""hopscope on a real cluster: the chart installed, its checks' status and metrics.

Two ways to get a cluster (see the README, "End-to-end on a cluster"); without either the suite
skips, saying what to set:
- HOPSCOPE_E2E_KUBECONFIG: an existing cluster, with HOPSCOPE_E2E_OPERATOR_IMAGE and
  HOPSCOPE_E2E_PROBE_IMAGE already where it pulls them. Nothing of the cluster is created or
  deleted but what this run makes: the release (refused if hopscope is installed already),
  namespaces named hopscope-e2e-<run>, and a /32 blackhole route it removes.
- HOPSCOPE_E2E_KIND=1: builds both images, loads them into a kind cluster of its own and
  deletes the cluster afterwards.

The stories: pod -> Service (reachable, probe pod cleaned up); a deny-all NetworkPolicy (named
as the cause where the CNI enforces it, which a canary flow finds out first; where it does not,
named as not enforced while the connection works); node -> an address this run proves unused
in the cluster's own ranges and blackholes on that node (unreachable, the route named);
a name under the cluster domain that does not exist (DNS, and the metric an alert reads, picked
by namespace and name); and, confined to its namespace, a check there and one pointing outside.
No probe or test packet is addressed outside the cluster's own addresses.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e import harness
from tests.e2e.harness import REPO, Blackhole, Enforcement, run

SETTINGS: harness.Settings | None = None
SKIP = PROBLEM = None
try:
    SETTINGS = harness.settings_from_env(os.environ)
except harness.NotConfigured as exc:
    SKIP = str(exc)
except harness.BadConfig as exc:
    PROBLEM = str(exc)

pytestmark = pytest.mark.skipif(SKIP is not None, reason=str(SKIP))

PROBES = "app.kubernetes.io/name=hopscope-probe"
CANARY_WINDOW_SECONDS = 30


class Cluster:
    def __init__(
        self,
        settings: harness.Settings,
        kubeconfig: str,
        helm: harness.HelmCli | harness.HelmSdk,
        ledger: harness.Ledger,
    ) -> None:
        self.settings, self.kubeconfig, self.helm, self.ledger = settings, kubeconfig, helm, ledger
        self.ns = settings.namespace
        self.images = settings.images
        self.domain = ""  # the cluster DNS domain, read from the client pod once it runs

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 300) -> str:
        return run("kubectl", "--kubeconfig", self.kubeconfig, *args, stdin=stdin, timeout=timeout)

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def apply(self, *objects: dict[str, Any]) -> None:
        items = {"kind": "List", "apiVersion": "v1", "items": list(objects)}
        self.kubectl("apply", "-f", "-", stdin=json.dumps(items))

    # -- what the run creates, each written down once it exists ------------------------------

    def create_namespace(self, name: str) -> None:
        self.kubectl("create", "-f", "-", stdin=json.dumps(harness.namespace(name, self.run_id)))
        self.ledger.namespaces.append(name)

    @property
    def run_id(self) -> str:
        return self.settings.run_id

    def install(self) -> None:
        """Refuses a cluster where hopscope is installed: the run would replace it, and its
        teardown would then uninstall it."""
        values = harness.chart_values(self.images)
        if self.helm.exists():
            where = f"{harness.RELEASE} in {harness.RELEASE_NAMESPACE}"
            pytest.fail(f"the cluster has a release {where} already; the suite installs its own"
                        " and leaves yours alone: use a cluster without hopscope",
                        pytrace=False)  # fmt: skip
        objects = harness.release_objects(self.helm.render(values))
        present = "".join(self.kubectl(*query) for query in harness.existence_queries(objects))
        if present.strip():
            pytest.fail("objects the chart would create exist already (not ours to replace or"
                        f" delete):\n{present}", pytrace=False)  # fmt: skip
        namespace = harness.RELEASE_NAMESPACE
        if not self.kubectl("get", "namespace", namespace, "--ignore-not-found", "-o", "name"):
            self.create_namespace(namespace)
        self.ledger.release = True  # from here on a failed install is ours to uninstall too
        self.helm.install(values)

    # -- reading checks ------------------------------------------------------------------------

    def check_status(
        self, name: str, generation: int = 1, wait: float = 240, phases=("Completed", "Failed")
    ) -> dict[str, Any]:
        deadline = time.monotonic() + wait
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.json("-n", self.ns, "get", "ccheck", name).get("status", {})
            if status.get("observedGeneration") == generation and status.get("phase") in phases:
                return status
            time.sleep(3)
        raise AssertionError(f"check {name} never reached {phases}: {status}")

    def pod_ip(self, name: str) -> str:
        return self.json("-n", self.ns, "get", "pod", name)["status"]["podIP"]

    def connects(self, address: str) -> bool:
        """One TCP connect from the client pod to ADDRESS:8080."""
        out = self.kubectl("-n", self.ns, "exec", "client", "--", "python", "-c",
                           harness.CONNECT, address, timeout=60)  # fmt: skip
        assert out.strip() in ("connected", "failed"), out
        return out.strip() == "connected"

    def wait_refused(self, address: str) -> None:
        """Until CONFIRMATIONS connects in a row fail (a new policy takes a moment)."""
        tries: list[bool] = []
        deadline = time.monotonic() + CANARY_WINDOW_SECONDS
        while harness.enforcement(tries, time.monotonic() > deadline) is None:
            tries.append(self.connects(address))
            time.sleep(1)
        assert harness.enforcement(tries, True) == Enforcement.ENFORCED, tries

    def scrape(self) -> str:
        """The operator's /metrics through a port-forward (the NetworkPolicy admits only the
        monitoring namespace; a port-forward enters the pod directly)."""
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            port = free.getsockname()[1]
        forward = subprocess.Popen(
            ["kubectl", "--kubeconfig", self.kubeconfig, "-n", harness.RELEASE_NAMESPACE,
             "port-forward", "deploy/hopscope-operator", f"{port}:9090"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy(),
        )  # fmt: skip
        try:
            for _ in range(50):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                        return r.read().decode()
                except OSError:
                    time.sleep(0.2)
            raise AssertionError("the operator's /metrics never answered")
        finally:
            forward.terminate()
            forward.wait(10)


def tear_down(
    ledger: harness.Ledger, kubeconfig: str, helm: harness.HelmCli | harness.HelmSdk
) -> None:
    """Every step of the plan is tried; the ones that fail are listed, to be done by hand."""
    failed, probe_pods = [], []
    if ledger.release and ledger.kind_cluster is None:
        try:
            listed = run("kubectl", "--kubeconfig", kubeconfig, "-n", harness.RELEASE_NAMESPACE,
                         "get", "pods", "-l", PROBES, "-o", "json")  # fmt: skip
            probe_pods = harness.probe_pods_of_run(json.loads(listed)["items"], ledger.namespaces)
        except Exception as exc:
            failed.append(f"- listing this run's probe pods: {exc}")
    for step in harness.teardown_plan(ledger, probe_pods):
        try:
            if step.tool == "helm":
                helm.uninstall()
            elif step.tool == "kind":
                run("kind", *step.args)
            else:
                run("kubectl", "--kubeconfig", kubeconfig, *step.args)
        except Exception as exc:
            failed.append(f"- {step.why}: {exc}")
    assert not failed, "teardown could not remove (do it by hand):\n" + "\n".join(failed)


def build_kind(settings: harness.Settings, kubeconfig: str, ledger: harness.Ledger) -> None:
    name = settings.kind_cluster
    run("kind", "create", "cluster", "--name", name, "--kubeconfig", kubeconfig, "--wait", "180s")
    ledger.kind_cluster = name
    probe, operator = settings.images.probe, settings.images.operator
    run("docker", "build", "-f", "probe-image/Dockerfile", "-t", probe, str(REPO))
    run("docker", "build", "-t", operator, str(REPO))
    for image in (probe, operator):
        run("kind", "load", "docker-image", image, "--name", name)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if PROBLEM is not None:
        pytest.fail(PROBLEM, pytrace=False)
    assert SETTINGS is not None
    settings, ledger = SETTINGS, harness.Ledger()
    if settings.kubeconfig is None:
        kubeconfig = str(tmp_path_factory.mktemp("kind") / "kubeconfig")
    else:
        kubeconfig = str(settings.kubeconfig)
    helm = harness.helm_backend(settings, kubeconfig)
    try:
        if settings.mode == "kind":
            build_kind(settings, kubeconfig, ledger)
        built = Cluster(settings, kubeconfig, helm, ledger)
        built.install()
        ns = built.ns
        built.create_namespace(ns)
        built.create_namespace(settings.outside_namespace)
        built.apply(*harness.workloads(ns, settings.images))
        # Only a Service there: a confined operator must refuse to read it, not find it empty.
        built.apply(harness.server("echo", settings.outside_namespace, settings.images.probe)[1])
        # `wait pod` sees only the pods that exist: the Deployments' may come later.
        for deployment in ("echo", "guarded"):
            built.kubectl("-n", ns, "rollout", "status", f"deployment/{deployment}",
                          "--timeout=180s")  # fmt: skip
        built.kubectl("-n", ns, "wait", "--for=condition=Ready", "pod/client", "--timeout=180s")
        built.domain = harness.cluster_domain(
            built.kubectl("-n", ns, "exec", "client", "--", "cat", "/etc/resolv.conf"), ns
        )
        yield built
    finally:
        tear_down(ledger, kubeconfig, helm)


@pytest.fixture(scope="module")
def policy_enforcement(cluster: Cluster) -> Enforcement:
    """Whether this CNI enforces NetworkPolicy, from a flow of the suite's own: client ->
    canary connects without a policy, then a deny-all ingress policy on the canary."""
    cluster.apply(harness.canary(cluster.ns, cluster.images))
    cluster.kubectl("-n", cluster.ns, "wait", "--for=condition=Ready", f"pod/{harness.CANARY}",
                    "--timeout=180s")  # fmt: skip
    address = cluster.pod_ip(harness.CANARY)
    deadline = time.monotonic() + CANARY_WINDOW_SECONDS
    while not cluster.connects(address):
        assert time.monotonic() < deadline, "the canary never answered without a policy"
        time.sleep(1)
    cluster.apply(harness.deny_all_ingress(harness.CANARY_POLICY, cluster.ns, harness.CANARY))
    tries: list[bool] = []
    deadline = time.monotonic() + CANARY_WINDOW_SECONDS
    while (verdict := harness.enforcement(tries, time.monotonic() > deadline)) is None:
        tries.append(cluster.connects(address))
        time.sleep(1)
    assert verdict != Enforcement.INCONCLUSIVE, f"canary connects after deny-all: {tries}"
    return verdict


@pytest.fixture
def blackhole(cluster: Cluster) -> Iterator[Blackhole]:
    """An address of the cluster's own ranges that nothing uses, blackholed on one node (so
    the node's probe sends nothing anywhere), and the route removed after the test."""
    nodes = cluster.json("get", "nodes")["items"]
    ready = sorted(
        (n for n in nodes if any(c["type"] == "Ready" and c["status"] == "True"
                                 for c in n["status"].get("conditions", []))),
        key=lambda n: n["metadata"]["name"],
    )  # fmt: skip
    assert ready, "no Ready node"
    node = ready[0]
    served = subprocess.run(
        ["kubectl", "--kubeconfig", cluster.kubeconfig, "get", "servicecidrs", "-o", "json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    service_cidrs = json.loads(served.stdout)["items"] if served.returncode == 0 else []
    networks = harness.cluster_networks(
        node, service_cidrs, cluster.json("-n", "default", "get", "service", "kubernetes")
    )
    used = harness.used_addresses(
        cluster.json("get", "pods", "-A")["items"],
        nodes,
        cluster.json("get", "services", "-A")["items"],
        cluster.json("get", "endpointslices", "-A")["items"],
    )
    address, _ = harness.unused_address(networks, used)
    hole = Blackhole(node["metadata"]["name"], str(address), cluster.ns, "blackhole")
    cluster.ledger.blackholes.append(hole)  # before the pod: it may add the route at once
    cluster.apply(harness.blackhole_pod(hole, cluster.images.probe))
    deadline = time.monotonic() + 180
    while True:
        phase = cluster.json("-n", hole.namespace, "get", "pod", hole.pod)["status"].get("phase")
        log = ""
        if phase in ("Running", "Failed", "Succeeded"):
            log = cluster.kubectl("-n", hole.namespace, "logs", hole.pod)
        if f"blackholed {address}/32" in log:
            break
        if phase in ("Failed", "Succeeded"):
            cluster.ledger.blackholes.remove(hole)  # it exits before adding, or adding failed
            pytest.fail(f"the route helper refused {address} on {hole.node}:\n{log}")
        assert time.monotonic() < deadline, f"the route helper never started: {phase}"
        time.sleep(2)
    yield hole
    [step] = harness.teardown_plan(harness.Ledger(blackholes=[hole]))
    removed = cluster.kubectl(*step.args)
    cluster.ledger.blackholes.remove(hole)
    assert f"removed {address}/32" in removed, removed
    cluster.kubectl("-n", hole.namespace, "delete", "pod", hole.pod, "--wait=true")


# The stories' sources and destinations (also checked against the CRD where no cluster is).
CLIENT: dict[str, Any] = {"pod": {"name": "client"}}
TO_ECHO: dict[str, Any] = {"service": {"name": "echo"}, "port": 80}
TO_GUARDED: dict[str, Any] = {"service": {"name": "guarded"}, "port": 80}
GUARD_POLICY = "guarded-deny-all"


def to_missing_name(cluster: Cluster) -> dict[str, Any]:
    return {"fqdn": harness.missing_name(cluster.ns, cluster.domain), "port": 80}


def to_outside(ns: str) -> dict[str, Any]:
    return {"service": {"name": "echo", "namespace": ns}, "port": 80}


def check(name: str, ns: str, source: dict[str, Any], destination: dict[str, Any]):
    return {
        "apiVersion": "hopscope.dev/v1alpha1",
        "kind": "ConnectivityCheck",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "source": source,
            "destination": destination,
            "probes": {"count": 3, "timeoutSeconds": 1},
            "path": {"maxHops": 8},
        },
    }


def issue_types(status: dict[str, Any]) -> set[str]:
    return {issue["type"] for issue in status.get("issues", [])}


def context(issue: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["key"], c["value"]) for c in issue.get("context", [])]


def test_a_pod_reaches_a_service_and_the_probe_pod_is_cleaned_up(cluster: Cluster):
    cluster.apply(check("client-to-echo", cluster.ns, CLIENT, TO_ECHO))
    status = cluster.check_status("client-to-echo")
    assert status["connectionStatus"] == "Reachable", status
    assert status["hopCount"] >= 2 and status["latency"]["avgMs"] > 0
    assert status["analysis"]["result"] == "Allowed"
    events = cluster.kubectl("-n", cluster.ns, "get", "events",
                             "--field-selector", "involvedObject.name=client-to-echo")  # fmt: skip
    assert "Reachable" in events
    deadline = time.monotonic() + 60
    while left := cluster.kubectl("-n", harness.RELEASE_NAMESPACE, "get", "pods", "-l", PROBES,
                                  "-o", "name").strip():  # fmt: skip
        assert time.monotonic() < deadline, f"probe pods left behind: {left}"
        time.sleep(2)


def test_a_deny_all_policy_is_named_as_the_cause_or_as_not_enforced(
    cluster: Cluster, policy_enforcement: Enforcement
):
    cluster.apply(harness.deny_all_ingress(GUARD_POLICY, cluster.ns, "guarded"))
    if policy_enforcement == Enforcement.ENFORCED:
        [guarded] = cluster.json("-n", cluster.ns, "get", "pods", "-l", "app=guarded")["items"]
        cluster.wait_refused(guarded["status"]["podIP"])  # the policy is in force before the run
    cluster.apply(check("client-to-guarded", cluster.ns, CLIENT, TO_GUARDED))
    status = cluster.check_status("client-to-guarded")
    assert status["analysis"]["result"] == "Blocked", status["analysis"]
    named = [i for i in status["issues"] if i["type"] == "NetworkPolicy"
             and ("NetworkPolicy", GUARD_POLICY) in context(i)]  # fmt: skip
    assert named and "denies ingress" in named[0]["message"], status["issues"]
    if policy_enforcement == Enforcement.ENFORCED:
        assert status["connectionStatus"] == "Unreachable", status
        assert named[0]["severity"] == "Error", named[0]
    else:
        # The CNI does not enforce NetworkPolicy (the canary connected through a deny-all):
        # the connection works, and the policy that would deny it is named as not enforced.
        assert status["connectionStatus"] == "Reachable", status
        assert named[0]["severity"] == "Warning", named[0]
        assert "not enforced on this path" in named[0]["message"], named[0]


def test_a_node_to_an_address_blackholed_on_it_is_unreachable_and_the_route_named(
    cluster: Cluster, blackhole: Blackhole
):
    source = {"node": {"name": blackhole.node}}
    destination = {"ip": blackhole.address, "port": 80}
    cluster.apply(check("node-to-blackhole", cluster.ns, source, destination))
    status = cluster.check_status("node-to-blackhole")
    assert status["connectionStatus"] == "Unreachable", status
    routing = [i for i in status["issues"] if i["type"] == "Routing"
               and ("destination", blackhole.address) in context(i)]  # fmt: skip
    assert routing and routing[0]["severity"] == "Error", status["issues"]
    said = routing[0]["message"] + " ".join(value for _, value in context(routing[0]))
    assert "blackhole" in said, routing[0]


def test_a_name_that_does_not_exist_is_a_dns_issue_and_alerts_can_see_it(cluster: Cluster):
    cluster.apply(check("client-to-missing-name", cluster.ns, CLIENT, to_missing_name(cluster)))
    status = cluster.check_status("client-to-missing-name")
    assert status["connectionStatus"] == "Unreachable" and "DNSResolution" in issue_types(status)
    # Picked by namespace and name: another namespace's check of this name is another series.
    reachable = harness.series(
        cluster.scrape(), "hopscope_check_reachable", cluster.ns, "client-to-missing-name"
    )
    assert reachable == [0.0]  # what the alert fires on


def test_confined_to_one_namespace_it_runs_checks_there_and_says_what_it_cannot_see(
    cluster: Cluster,
):
    cluster.helm.upgrade(harness.chart_values(cluster.images, watch=[cluster.ns]))
    outside = to_outside(cluster.settings.outside_namespace)
    cluster.apply(
        check("confined-to-missing-name", cluster.ns, CLIENT, to_missing_name(cluster)),
        check("confined-to-outside", cluster.ns, CLIENT, outside),
    )
    # Run under RoleBindings alone: the probe pod, its log, the status, the DNS analysis.
    status = cluster.check_status("confined-to-missing-name")
    assert "DNSResolution" in issue_types(status), status
    assert status["analysis"]["result"] != "Unknown", status["analysis"]
    refused = cluster.check_status("confined-to-outside", phases=("Pending",))
    [ready] = [c for c in refused["conditions"] if c["type"] == "Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "NamespaceNotWatched"), ready
