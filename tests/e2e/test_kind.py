"""The operator on a real cluster (kind): apply a check, see the probe pod run, see the status.

Needs Docker, kind and kubectl; skipped with the reason where any is missing (CI has no Docker
engine). It builds the probe image, loads it into a throwaway kind cluster, runs the operator
locally with `kopf run` against that cluster, and applies a node-to-node check.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLUSTER = "hopscope-e2e"
IMAGE = "hopscope-probe:e2e"
TOOLS = ("docker", "kind", "kubectl")


def _why_no_cluster() -> str | None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)} on PATH to run a kind cluster"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if info.returncode != 0:
        return "docker is installed but no Docker engine answers (docker info failed)"
    return None


pytestmark = pytest.mark.skipif(_why_no_cluster() is not None, reason=str(_why_no_cluster()))


def run(*cmd: str, timeout: float = 600, **env: str) -> str:
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **env}, check=False
    )
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = str(tmp_path_factory.mktemp("kind") / "kubeconfig")
    run("kind", "create", "cluster", "--name", CLUSTER, "--kubeconfig", path, "--wait", "120s")
    try:
        run("docker", "build", "-f", "probe-image/Dockerfile", "-t", IMAGE, str(REPO))
        run("kind", "load", "docker-image", IMAGE, "--name", CLUSTER)
        kubectl = ("kubectl", "--kubeconfig", path)
        run(*kubectl, "apply", "-f", str(REPO / "crds" / "connectivitycheck.yaml"))
        run(*kubectl, "create", "namespace", "hopscope-system")
        run(*kubectl, "label", "namespace", "hopscope-system",
            "pod-security.kubernetes.io/enforce=privileged")  # fmt: skip
        run(*kubectl, "-n", "hopscope-system", "create", "serviceaccount", "hopscope-probe")
        run(*kubectl, "wait", "--for=condition=Established", "crd/connectivitychecks.hopscope.dev")
        yield path
    finally:
        subprocess.run(["kind", "delete", "cluster", "--name", CLUSTER], check=False)


@pytest.fixture(scope="module")
def operator(kubeconfig: str) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "KUBECONFIG": kubeconfig, "HOPSCOPE_PROBE_IMAGE": IMAGE,
           "HOPSCOPE_TICK_SECONDS": "2", "HOPSCOPE_METRICS_PORT": "19090"}  # fmt: skip
    cmd = [sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces",
           "-m", "hopscope_operator.handlers"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, text=True, cwd=REPO)
    yield proc
    proc.terminate()
    proc.wait(30)


def test_a_node_to_node_check_fills_its_status(kubeconfig: str, operator: subprocess.Popen[str]):
    kubectl = ("kubectl", "--kubeconfig", kubeconfig)
    node = json.loads(run(*kubectl, "get", "nodes", "-o", "json"))["items"][0]
    name = node["metadata"]["name"]
    address = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    check = {
        "apiVersion": "hopscope.dev/v1alpha1",
        "kind": "ConnectivityCheck",
        "metadata": {"name": "node-to-apiserver", "namespace": "default"},
        "spec": {
            "source": {"node": {"name": name}},
            "destination": {"ip": address, "port": 6443},
            "probes": {"count": 3, "timeoutSeconds": 1},
        },
    }
    subprocess.run([*kubectl, "apply", "-f", "-"], input=json.dumps(check), text=True, check=True)
    status: dict = {}
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and status.get("phase") not in ("Completed", "Failed"):
        time.sleep(3)
        obj = json.loads(run(*kubectl, "-n", "default", "get", "ccheck", "node-to-apiserver",
                             "-o", "json"))  # fmt: skip
        status = obj.get("status", {})
    assert status.get("connectionStatus") == "Reachable", status
    assert status["hopCount"] >= 2 and status["latency"]["avgMs"] > 0
    events = run(*kubectl, "-n", "default", "get", "events",
                 "--field-selector", "involvedObject.name=node-to-apiserver")  # fmt: skip
    assert "Reachable" in events
    pods = run(*kubectl, "-n", "hopscope-system", "get", "pods", "-o", "name")
    assert pods.strip() == ""  # the probe pod is deleted once its result is read
