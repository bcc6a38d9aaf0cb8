"""The operator's side of workload sources: which pod runs the check, the snippet that adds the
sidecar (a valid Pod by the real Kubernetes schema), and calls to a real agent on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from hopscope_operator.controller.sidecar import (
    AGENT_PORT,
    CONTAINER,
    SidecarMissing,
    agent_address,
    agent_audience,
    agent_port,
    call_agent,
    find_sidecar_pod,
)
from hopscope_operator.install.sidecar import sidecar_container, sidecar_snippet
from hopscope_operator.names import PROBE_IMAGE
from hopscope_probe.models import (
    ConnectionStatus,
    IPVersion,
    IssueType,
    PathMode,
    ProbeRequest,
    ProbeResult,
)
from tests.netlab.servers import self_signed

APP = {"name": "gateway", "image": "envoyproxy/envoy:v1.31.0"}
AGENT = {"name": CONTAINER, "image": "ghcr.io/hopscope/probe:0.1.0"}


def pod(name: str, *, ready: bool = True, agent: bool = True, native: bool = False) -> dict:
    spec: dict[str, Any] = {"containers": [APP, AGENT] if agent and not native else [APP]}
    if agent and native:
        spec["initContainers"] = [{**AGENT, "restartPolicy": "Always"}]
    return {
        "metadata": {"name": name, "namespace": "edge", "uid": f"uid-{name}"},
        "spec": spec,
        "status": {
            "phase": "Running",
            "podIPs": [{"ip": "10.0.0.7"}, {"ip": "fd00::7"}],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


# ---- which pod ------------------------------------------------------------------------------


def test_the_first_ready_pod_with_the_sidecar_by_name_is_chosen():
    pods = [
        pod("gw-c"),
        pod("gw-a", ready=False),
        pod("gw-0", agent=False),  # mid-rollout: the old template, no sidecar
        pod("gw-b"),
    ]
    assert find_sidecar_pod(pods)["metadata"]["name"] == "gw-b"


def test_a_native_sidecar_counts_but_a_plain_init_container_does_not():
    assert find_sidecar_pod([pod("gw-a", native=True)])["metadata"]["name"] == "gw-a"
    plain = pod("gw-b", native=True)
    del plain["spec"]["initContainers"][0]["restartPolicy"]
    assert isinstance(find_sidecar_pod([plain]), SidecarMissing)


def test_no_pod_with_the_sidecar_is_sidecar_missing_with_the_command_to_add_it():
    missing = find_sidecar_pod(
        [pod("gw-a", agent=False)], kind="StatefulSet", namespace="edge", name="gw"
    )
    assert isinstance(missing, SidecarMissing)
    assert missing.reason == "SidecarMissing"
    assert "StatefulSet edge/gw" in missing.message and CONTAINER in missing.message
    assert "kubectl -n edge patch statefulset gw --patch-file" in missing.message
    assert PROBE_IMAGE in missing.message
    assert isinstance(find_sidecar_pod([]), SidecarMissing)


def test_sidecars_that_are_not_ready_are_named():
    missing = find_sidecar_pod([pod("gw-a", ready=False), pod("gw-b", agent=False)])
    assert isinstance(missing, SidecarMissing)
    assert missing.reason == "SidecarNotReady"
    assert "gw-a" in missing.message and "gw-b" not in missing.message


def test_the_port_is_the_named_container_port_else_the_default_and_the_address_by_family():
    moved = pod("gw-a")
    moved["spec"]["containers"][1] = {
        **AGENT,
        "ports": [{"name": CONTAINER, "containerPort": 8443}],
    }
    assert agent_port(moved) == 8443
    assert agent_port(pod("gw-b")) == AGENT_PORT
    assert agent_address(pod("gw-b")) == "10.0.0.7"
    assert agent_address(pod("gw-b"), IPVersion.IPV6) == "fd00::7"


# ---- the snippet ----------------------------------------------------------------------------


def validate(manifest: dict) -> None:
    kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize("restricted", [False, True], ids=["net-raw", "restricted"])
def test_the_snippet_patched_into_a_pod_is_a_valid_pod(restricted: bool):
    patch = yaml.safe_load(sidecar_snippet(restricted=restricted))
    added = patch["spec"]["template"]["spec"]
    validate(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "gateway-0", "namespace": "edge"},
            "spec": {
                **added,
                "containers": [APP, *added["containers"]],
                "volumes": [{"name": "config", "emptyDir": {}}],
            },
        }
    )
    validate(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "gateway", "namespace": "edge"},
            "spec": {
                "selector": {"matchLabels": {"app": "gateway"}},
                "template": {
                    "metadata": {"labels": {"app": "gateway"}},
                    "spec": {**added, "containers": [APP, *added["containers"]]},
                },
            },
        }
    )


def test_each_agent_pod_accepts_the_audience_the_operator_asks_a_token_for():
    container = sidecar_container()
    pod = {"namespace": "edge", "name": "gateway-7d9f"}
    env = {e["name"]: pod[e["valueFrom"]["fieldRef"]["fieldPath"].split(".")[1]]
           for e in container["env"]}  # fmt: skip
    # The kubelet expands $(VAR) in args from the container's env (the downward API here).
    args = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], arg) for arg in container["args"]]
    audience = args[args.index("--audience") + 1]
    assert audience == agent_audience("edge", "gateway-7d9f")
    assert agent_audience("edge", "gateway-7d9f") != agent_audience("edge", "gateway-8c1e")


def test_validation_would_catch_a_bad_container():
    broken = {**sidecar_container(), "ports": [{"name": CONTAINER, "containerPort": "x"}]}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p"},
                "spec": {"containers": [broken]},
            }
        )


def test_the_sidecar_accepts_only_the_operators_reviewed_token_and_has_only_net_raw():
    container = sidecar_container("registry.local/probe:1", port=9000)
    assert container["image"] == "registry.local/probe:1"
    assert container["args"][:5] == [
        "agent",
        "--auth",
        "kubernetes",
        "--allowed-caller",
        "system:serviceaccount:hopscope-system:hopscope-operator",
    ]
    assert container["ports"] == [{"name": CONTAINER, "containerPort": 9000, "protocol": "TCP"}]
    security = container["securityContext"]
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW"]}
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert "volumeMounts" not in container  # no Secret: its own ServiceAccount token only
    restricted = sidecar_container(restricted=True)["securityContext"]
    assert restricted["runAsNonRoot"] is True and restricted["capabilities"] == {"drop": ["ALL"]}


# ---- a real agent on loopback ---------------------------------------------------------------


@dataclass
class Agent:
    port: int
    token: str
    token_file: Path
    log: Path
    proc: subprocess.Popen[bytes]


def start_agent(tmp_path: Path, *extra: str, token_file: bool = True) -> Agent:
    """An agent with a static token file, or with only `extra` when `token_file` is False."""
    token = secrets.token_hex(24)
    token_path = tmp_path / "token"
    token_path.write_text(token + "\n")
    log = tmp_path / "agent.log"
    argv = [sys.executable, "-m", "hopscope_probe", "agent", "--listen", "127.0.0.1:0"]
    if token_file:
        argv += ["--token-file", str(token_path)]
    with log.open("wb") as out:
        proc = subprocess.Popen([*argv, *extra], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while "listening on" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the agent did not start:\n{log.read_text()}")
        time.sleep(0.02)
    port = int(log.read_text().split("listening on ")[1].split()[0].rsplit(":", 1)[1])
    return Agent(port, token, token_path, log, proc)


def logged(agent: Agent, line: str) -> str:
    """The agent's log once it holds `line`: the agent logs a request after answering it."""
    deadline = time.monotonic() + 5
    while line not in (text := agent.log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return text


def stop(agent: Agent) -> int:
    agent.proc.send_signal(signal.SIGTERM)
    try:
        return agent.proc.wait(timeout=10)
    finally:
        if agent.proc.poll() is None:
            agent.proc.kill()


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    started = start_agent(tmp_path)
    yield started
    stop(started)


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections."""
    server = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        with contextlib.suppress(OSError):  # closed at teardown while waiting
            for _ in range(16):
                server.accept()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def short(port: int, **fields: Any) -> ProbeRequest:
    return ProbeRequest(
        host="127.0.0.1",
        port=port,
        count=2,
        timeout_seconds=1,
        path_mode=PathMode.NEVER,
        **fields,
    )


def probe_issue(result: ProbeResult) -> tuple[str, str]:
    assert result.connection_status == ConnectionStatus.UNKNOWN
    [issue] = result.issues
    assert issue.type == IssueType.PROBE
    return {c.key: c.value for c in issue.context}["cause"], issue.message


def test_a_call_returns_the_agents_probe_result(agent: Agent, listener: int):
    result = call_agent("127.0.0.1", agent.port, agent.token, short(listener), timeout=15)
    assert result.connection_status == ConnectionStatus.REACHABLE, result.issues
    assert result.destination.port == listener
    assert result.probes_sent == 2
    log = logged(agent, "POST /v1/probe 200")
    assert "POST /v1/probe 200" in log
    assert agent.token not in log


def test_a_wrong_token_is_an_unknown_result_naming_the_401(agent: Agent, listener: int):
    cause, message = probe_issue(call_agent("127.0.0.1", agent.port, "nope", short(listener), 5))
    assert cause == "unauthorized"
    assert "401" in message and f"127.0.0.1:{agent.port}" in message


def test_a_request_above_the_agents_limits_names_the_field(agent: Agent, listener: int):
    request = short(listener).model_copy(update={"count": 50})
    cause, message = probe_issue(call_agent("127.0.0.1", agent.port, agent.token, request, 5))
    assert cause == "badRequest"
    assert "count: at most 20" in message


def test_a_refused_port_is_an_unknown_result_naming_the_cause():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    cause, message = probe_issue(call_agent("127.0.0.1", port, "t", short(1), timeout=5))
    assert cause == "refused"
    assert "refused" in message


def test_an_agent_that_never_answers_times_out():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts, nobody reads
        port = silent.getsockname()[1]
        started = time.monotonic()
        cause, message = probe_issue(call_agent("127.0.0.1", port, "t", short(1), timeout=0.5))
    assert cause == "timeout"
    assert "0.5s" in message
    assert time.monotonic() - started < 3


def test_over_tls_a_trusted_agent_answers_and_plain_http_or_an_untrusted_one_fail(
    tmp_path: Path, listener: int
):
    cert, key = self_signed(tmp_path, "hopscope-agent", files=("tls.crt", "tls.key"))
    agent = start_agent(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        trusting = ssl.create_default_context(cafile=str(cert))
        result = call_agent("127.0.0.1", agent.port, agent.token, short(listener), 15, tls=trusting)
        assert result.connection_status == ConnectionStatus.REACHABLE, result.issues
        untrusting = ssl.create_default_context()
        cause, _ = probe_issue(
            call_agent("127.0.0.1", agent.port, agent.token, short(listener), 5, tls=untrusting)
        )
        assert cause == "tls"
        cause, _ = probe_issue(call_agent("127.0.0.1", agent.port, agent.token, short(1), 5))
        assert cause in ("badResponse", "unreachable")  # the server hangs up on plain HTTP
    finally:
        assert stop(agent) == 0


def test_the_agent_stops_cleanly_on_sigterm_and_refuses_to_start_without_a_token(
    tmp_path: Path,
):
    assert stop(start_agent(tmp_path)) == 0
    argv = [sys.executable, "-m", "hopscope_probe", "agent", "--listen", "127.0.0.1:0"]
    for token_file in (tmp_path / "absent", tmp_path / "empty"):
        if token_file.name == "empty":
            token_file.write_text("\n")
        done = subprocess.run(
            [*argv, "--token-file", str(token_file)], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 2
        assert f"--token-file {token_file}" in done.stderr
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "--token-file" in done.stderr


# ---- --auth kubernetes: callers' ServiceAccount tokens, checked by TokenReview ----------------

OPERATOR_SA = "system:serviceaccount:hopscope-system:hopscope-operator"


def fake_api(tmp_path: Path, users: dict[str, str]) -> tuple[ThreadingHTTPServer, list[dict]]:
    """A Kubernetes API over HTTPS on loopback answering TokenReviews: token -> username."""
    cert, key = self_signed(tmp_path, "hopscope-agent", files=("tls.crt", "tls.key"))
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "auth": self.headers["Authorization"], **review})
            user = users.get(review["spec"]["token"])
            status = {"authenticated": False, "error": "invalid bearer token"}
            if user:
                status = {
                    "authenticated": True,
                    "user": {"username": user},
                    "audiences": review["spec"]["audiences"],
                }
            body = json.dumps({**review, "status": status}).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, seen


def test_with_kubernetes_auth_only_the_operators_service_account_token_gets_through(
    tmp_path: Path, listener: int
):
    operator_token, gateway_token = secrets.token_hex(16), secrets.token_hex(16)
    users = {operator_token: OPERATOR_SA, gateway_token: "system:serviceaccount:edge:gateway"}
    api, seen = fake_api(tmp_path, users)
    own = tmp_path / "sa-token"
    own.write_text("the-agents-own-sa-token\n")
    agent = start_agent(
        tmp_path,
        *("--auth", "kubernetes", "--allowed-caller", OPERATOR_SA),
        *("--kube-api-url", f"https://127.0.0.1:{api.server_address[1]}"),
        *("--kube-token-file", str(own), "--kube-ca-file", str(tmp_path / "tls.crt")),
        token_file=False,
    )
    try:
        result = call_agent("127.0.0.1", agent.port, operator_token, short(listener), 15)
        assert result.connection_status == ConnectionStatus.REACHABLE, result.issues
        cause, message = probe_issue(
            call_agent("127.0.0.1", agent.port, gateway_token, short(listener), 5)
        )
        assert cause == "unauthorized" and "401" in message
        again = call_agent("127.0.0.1", agent.port, operator_token, short(listener), 15)
        assert again.connection_status == ConnectionStatus.REACHABLE
        # The static token file the agent was not given counts for nothing.
        cause, _ = probe_issue(call_agent("127.0.0.1", agent.port, agent.token, short(1), 5))
        assert cause == "unauthorized"
    finally:
        assert stop(agent) == 0
        api.shutdown()
        api.server_close()
    reviewed = [review["spec"]["token"] for review in seen]
    assert reviewed == [operator_token, gateway_token, agent.token]  # the second call was cached
    for review in seen:
        assert review["path"] == "/apis/authentication.k8s.io/v1/tokenreviews"
        assert review["auth"] == "Bearer the-agents-own-sa-token"
        assert review["spec"]["audiences"] == ["hopscope-agent"]
    log = agent.log.read_text()
    assert "POST /v1/probe 200" in log and "POST /v1/probe 401" in log
    assert "authenticated as 'system:serviceaccount:edge:gateway'" in log
    for token in (operator_token, gateway_token, "the-agents-own-sa-token"):
        assert token not in log


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--auth", "kubernetes", "--token-file", "/t"], "not allowed with argument"),
        (["--auth", "kubernetes"], "needs --allowed-caller"),
        (["--auth", "kubernetes", "--allowed-caller", OPERATOR_SA], "KUBERNETES_SERVICE_HOST"),
        (
            [
                *("--auth", "kubernetes", "--allowed-caller", OPERATOR_SA),
                *("--kube-api-url", "https://127.0.0.1:1", "--kube-token-file", "/absent"),
            ],
            "service-account token /absent",
        ),
        (["--token-file", "/t", "--allowed-caller", OPERATOR_SA], "only with --auth kubernetes"),
        (["--auth", "token"], "invalid choice"),
    ],
    ids=["both", "no-caller", "not-in-cluster", "no-own-token", "caller-without-auth", "choice"],
)
def test_kubernetes_auth_refuses_to_start_when_misconfigured(
    tmp_path: Path, flags: list[str], expected: str
):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE_")}
    argv = [sys.executable, "-m", "hopscope_probe", "agent", "--listen", "127.0.0.1:0", *flags]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    assert done.returncode == 2
    assert expected in done.stderr, done.stderr
