"""hopscope on a real cluster (kind): the chart installed, four checks, their status and metrics.

Needs Docker, kind, kubectl and helm; skipped with the reason where any is missing (the
project's CI machine has no Docker engine; `.github/workflows/e2e.yml` runs it where one is).
It builds both images, loads them into a throwaway kind cluster, installs charts/hopscope, and
applies: pod -> Service (reachable), the same behind a deny-all NetworkPolicy (blocked, the
policy named; kindnet enforces NetworkPolicies since kind v0.24), node -> an unrouted IP
(unreachable) and a name that does not exist (DNS), and reads the metrics an alert would use.
Last, it upgrades the release to watch only its test namespace and runs a check there under
the namespaced RBAC, beside one that points outside it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CLUSTER = "hopscope-e2e"
PROBE_IMAGE, OPERATOR_IMAGE = "hopscope-probe:e2e", "hopscope-operator:e2e"
TOOLS = ("docker", "kind", "kubectl", "helm")
NS = "e2e"
SERVE = "import http.server as h; h.test(h.SimpleHTTPRequestHandler, port=8080, bind='0.0.0.0')"


def _why_no_cluster() -> str | None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)} on PATH to run a kind cluster"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if info.returncode != 0:
        return "docker is installed but no Docker engine answers (docker info failed)"
    return None


pytestmark = pytest.mark.skipif(_why_no_cluster() is not None, reason=str(_why_no_cluster()))


def run(*cmd: str, stdin: str | None = None, timeout: float = 900) -> str:
    done = subprocess.run(
        cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


class Cluster:
    def __init__(self, kubeconfig: str) -> None:
        self.kubeconfig = kubeconfig

    def helm(self, command: str, *args: str) -> str:
        chart = str(REPO / "charts" / "hopscope")
        where = ["-n", "hopscope-system", "--wait", "--timeout", "5m"]
        return run("helm", "--kubeconfig", self.kubeconfig, command, "hopscope", chart, *where,
                   *args)  # fmt: skip

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return run("kubectl", "--kubeconfig", self.kubeconfig, *args, stdin=stdin)

    def apply(self, *objects: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", stdin=json.dumps({"kind": "List", "apiVersion": "v1",
                                                            "items": list(objects)}))  # fmt: skip

    def check_status(
        self, name: str, generation: int = 1, wait: float = 240, phases=("Completed", "Failed")
    ) -> dict[str, Any]:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            obj = json.loads(self.kubectl("-n", NS, "get", "ccheck", name, "-o", "json"))
            status = obj.get("status", {})
            if status.get("observedGeneration") == generation and status.get("phase") in phases:
                return status
            time.sleep(3)
        raise AssertionError(f"check {name} never reached {phases}: {status}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    kubeconfig = str(tmp_path_factory.mktemp("kind") / "kubeconfig")
    run(
        "kind", "create", "cluster", "--name", CLUSTER, "--kubeconfig", kubeconfig, "--wait", "180s"
    )
    try:
        run("docker", "build", "-f", "probe-image/Dockerfile", "-t", PROBE_IMAGE, str(REPO))
        run("docker", "build", "-t", OPERATOR_IMAGE, str(REPO))
        for image in (PROBE_IMAGE, OPERATOR_IMAGE):
            run("kind", "load", "docker-image", image, "--name", CLUSTER)
        images = [
            "--set",
            f"image.operator={OPERATOR_IMAGE}",
            "--set",
            f"image.probe={PROBE_IMAGE}",
        ]
        built = Cluster(kubeconfig)
        built.helm("install", "--create-namespace", *images)
        built.kubectl("create", "namespace", NS)
        built.apply(*workloads())
        # `wait pod --all` sees only the pods that exist: the Deployment's may come later.
        built.kubectl("-n", NS, "rollout", "status", "deployment/echo", "--timeout=180s")
        built.kubectl("-n", NS, "wait", "--for=condition=Ready", "pod", "--all", "--timeout=180s")
        yield built
    finally:
        subprocess.run(["kind", "delete", "cluster", "--name", CLUSTER], check=False)


def workloads() -> list[dict[str, Any]]:
    """A client pod and an HTTP server behind a Service, both from the probe image's Python."""
    python = ["python", "-c"]
    client = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client", "namespace": NS, "labels": {"app": "client"}},
        "spec": {"containers": [{"name": "c", "image": PROBE_IMAGE, "command": python,
                                 "args": ["import time; time.sleep(10**9)"]}]},
    }  # fmt: skip
    server = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "echo", "namespace": NS},
        "spec": {
            "selector": {"matchLabels": {"app": "echo"}},
            "template": {
                "metadata": {"labels": {"app": "echo"}},
                "spec": {"containers": [{"name": "s", "image": PROBE_IMAGE, "command": python,
                                         "args": [SERVE], "ports": [{"containerPort": 8080}]}]},
            },
        },
    }  # fmt: skip
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "echo", "namespace": NS},
        "spec": {"selector": {"app": "echo"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    return [client, server, service]


# The stories' sources and destinations (also checked against the CRD where kind cannot run).
CLIENT: dict[str, Any] = {"pod": {"name": "client"}}
TO_ECHO: dict[str, Any] = {"service": {"name": "echo"}, "port": 80}
TO_TESTNET: dict[str, Any] = {"ip": "192.0.2.1", "port": 80}  # TEST-NET-1: routed nowhere
TO_NOWHERE: dict[str, Any] = {"fqdn": "does-not-exist.invalid", "port": 80}
KUBERNETES_SERVICE = {"name": "kubernetes", "namespace": "default"}
TO_DEFAULT: dict[str, Any] = {"service": KUBERNETES_SERVICE, "port": 443}
DESTINATIONS = (TO_ECHO, TO_TESTNET, TO_NOWHERE, TO_DEFAULT)


def check(name: str, source: dict[str, Any], destination: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "hopscope.dev/v1alpha1",
        "kind": "ConnectivityCheck",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "source": source,
            "destination": destination,
            "probes": {"count": 3, "timeoutSeconds": 1},
            "path": {"maxHops": 8},
        },
    }


def issue_types(status: dict[str, Any]) -> set[str]:
    return {issue["type"] for issue in status.get("issues", [])}


def test_a_pod_reaches_a_service_and_the_probe_pod_is_cleaned_up(cluster: Cluster):
    cluster.apply(check("client-to-echo", CLIENT, TO_ECHO))
    status = cluster.check_status("client-to-echo")
    assert status["connectionStatus"] == "Reachable", status
    assert status["hopCount"] >= 2 and status["latency"]["avgMs"] > 0
    assert status["analysis"]["result"] == "Allowed"
    events = cluster.kubectl("-n", NS, "get", "events",
                             "--field-selector", "involvedObject.name=client-to-echo")  # fmt: skip
    assert "Reachable" in events
    probes = "app.kubernetes.io/name=hopscope-probe"
    left = cluster.kubectl("-n", "hopscope-system", "get", "pods", "-l", probes, "-o", "name")
    assert left.strip() == ""


def test_a_deny_all_policy_is_named_as_the_cause(cluster: Cluster):
    deny = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "echo-deny-all", "namespace": NS},
        "spec": {"podSelector": {"matchLabels": {"app": "echo"}}, "policyTypes": ["Ingress"]},
    }
    cluster.apply(deny, check("client-to-echo-denied", CLIENT, TO_ECHO))
    status = cluster.check_status("client-to-echo-denied")
    assert status["connectionStatus"] == "Unreachable", status
    assert status["analysis"]["result"] == "Blocked"
    named = [i for i in status["issues"] if i["type"] == "NetworkPolicy"]
    assert named and "echo-deny-all" in named[0]["message"]


def test_a_node_to_an_unrouted_address_is_unreachable(cluster: Cluster):
    node = json.loads(cluster.kubectl("get", "nodes", "-o", "json"))["items"][0]["metadata"]["name"]
    cluster.apply(check("node-to-testnet", {"node": {"name": node}}, TO_TESTNET))
    status = cluster.check_status("node-to-testnet")
    assert status["connectionStatus"] == "Unreachable", status
    assert issue_types(status) & {"Firewall", "Routing", "PacketLoss"}


def test_a_name_that_does_not_exist_is_a_dns_issue_and_alerts_can_see_it(cluster: Cluster):
    cluster.apply(check("client-to-nowhere", CLIENT, TO_NOWHERE))
    status = cluster.check_status("client-to-nowhere")
    assert status["connectionStatus"] == "Unreachable" and "DNSResolution" in issue_types(status)
    reachable = [
        line
        for line in scrape(cluster).splitlines()
        if line.startswith("hopscope_check_reachable{") and 'check="client-to-nowhere"' in line
    ]
    assert len(reachable) == 1 and reachable[0].endswith(" 0.0")  # what the alert fires on


def test_confined_to_one_namespace_it_runs_checks_there_and_says_what_it_cannot_see(
    cluster: Cluster,
):
    cluster.helm("upgrade", "--reuse-values", "--set", f"watch.namespaces={{{NS}}}")
    cluster.apply(
        check("confined-to-nowhere", CLIENT, TO_NOWHERE),
        check("confined-to-default", CLIENT, TO_DEFAULT),
    )
    # Run under RoleBindings alone: the probe pod, its log, the status, the DNS analysis.
    status = cluster.check_status("confined-to-nowhere")
    assert "DNSResolution" in issue_types(status), status
    assert status["analysis"]["result"] != "Unknown", status["analysis"]
    outside = cluster.check_status("confined-to-default", phases=("Pending",))
    [ready] = [c for c in outside["conditions"] if c["type"] == "Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "NamespaceNotWatched"), ready


def scrape(cluster: Cluster) -> str:
    """The operator's /metrics through a port-forward (the NetworkPolicy admits only the
    monitoring namespace; a port-forward enters the pod directly)."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    forward = subprocess.Popen(
        ["kubectl", "--kubeconfig", cluster.kubeconfig, "-n", "hopscope-system", "port-forward",
         "deploy/hopscope-operator", f"{port}:9090"],
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
