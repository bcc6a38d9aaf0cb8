"""`hopscope agent` as a sidecar: served on loopback inside a lab namespace (the gateway pod's
own network namespace), called from inside that namespace the way a sidecar shares its pod's.

One lab for the module; each test starts its own agent on its own port.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hopscope_probe.models import ConnectionStatus, ProbeResult

from .lab import Lab

REPO = Path(__file__).resolve().parents[2]
TOKEN = "t0ken-of-the-gateway-0123456789abcdef"
_ports = itertools.count(9723)

# Runs inside the namespace: the given calls at once (each after its `delay`), one JSON line of
# {status, retryAfter, body} per call, in order.
CLIENT = r"""
import http.client, json, sys, threading, time
calls = json.loads(sys.argv[1])
out = [None] * len(calls)
def call(i, c):
    time.sleep(c.get("delay", 0))
    conn = http.client.HTTPConnection("127.0.0.1", c["port"], timeout=60)
    headers = {"Content-Type": "application/json"}
    if c.get("auth"):
        headers["Authorization"] = c["auth"]
    body = c.get("body")
    if body is not None:
        body = (body + " " * c.get("pad", 0)).encode()
    try:
        conn.request(c.get("method", "POST"), c.get("path", "/v1/probe"), body=body,
                     headers=headers)
        r = conn.getresponse()
        out[i] = {"status": r.status, "retryAfter": r.getheader("Retry-After"),
                  "server": r.getheader("Server"), "body": r.read().decode()}
    except OSError as exc:  # the server may close early on a body it will not read
        out[i] = {"status": None, "error": repr(exc)}
threads = [threading.Thread(target=call, args=(i, c)) for i, c in enumerate(calls)]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def net(lab_unusable_reason: str | None) -> Iterator[Lab]:
    if lab_unusable_reason:  # module fixtures run before the autouse skip
        pytest.skip(lab_unusable_reason)
    with Lab() as built:
        built.start_tcp_server("dst", 8080)
        yield built


@dataclass
class Agent:
    lab: Lab
    port: int
    token_file: Path
    proc: subprocess.Popen[bytes]

    def call(self, *calls: dict[str, Any]) -> list[dict[str, Any]]:
        with_port = [{"port": self.port, "auth": f"Bearer {TOKEN}", **c} for c in calls]
        done = self.lab["src"].run([sys.executable, "-c", CLIENT, json.dumps(with_port)])
        return json.loads(done.stdout)

    def log(self) -> str:
        return "".join(p.read_text() for p in (self.lab.tmpdir / "logs").glob("src-*.log"))


def start_agent(lab: Lab, *flags: str) -> Agent:
    port = next(_ports)
    token_file = lab.tmpdir / f"token-{port}"
    token_file.write_text(TOKEN + "\n")
    argv = [sys.executable, "-m", "hopscope_probe", "agent", "--listen", f"127.0.0.1:{port}"]
    argv += ["--token-file", str(token_file), "--resolv-conf", lab.resolv_conf(), *flags]
    proc = lab["src"].spawn(argv, ready="listening on", timeout=15)
    return Agent(lab, port, token_file, proc)


@pytest.fixture
def agent(net: Lab) -> Iterator[Agent]:
    started = start_agent(net)
    yield started
    started.proc.terminate()
    started.proc.wait(timeout=10)


def probe_body(lab: Lab, **fields: Any) -> str:
    request = {"host": lab["dst"].addr(), "port": 8080, "count": 2, "timeoutSeconds": 1}
    return json.dumps(request | fields)


def error_of(answer: dict[str, Any]) -> str:
    return json.loads(answer["body"])["error"]


def replace_token(agent: Agent, token: str) -> None:
    """What kubelet does when a Secret changes: write a new file, then swap it in."""
    fresh = agent.token_file.with_suffix(".new")
    fresh.write_text(token)
    os.replace(fresh, agent.token_file)


# ---- probing --------------------------------------------------------------------------------


def test_an_authenticated_probe_from_the_sidecar_reaches_dst_hop_by_hop(agent: Agent):
    lab = agent.lab
    [answer] = agent.call({"body": probe_body(lab, pathMode="Always")})
    assert answer["status"] == 200, answer
    result = ProbeResult.model_validate_json(answer["body"])
    assert result.connection_status == ConnectionStatus.REACHABLE, result.issues
    assert result.source.address == lab["src"].addr()
    assert result.probes_sent == 2 and result.probes_failed == 0
    addresses = {hop.address for hop in result.hops}
    assert {lab[name].addr() for name in ("r1", "r2", "r3", "dst")} <= addresses
    log = agent.log()
    assert "POST /v1/probe 200" in log
    assert TOKEN not in log


def test_healthz_answers_ok_to_anyone_and_says_nothing_more(agent: Agent):
    anonymous, authenticated = agent.call(
        {"method": "GET", "path": "/healthz", "auth": None},
        {"method": "GET", "path": "/healthz"},
    )
    for answer in (anonymous, authenticated):
        assert answer["status"] == 200
        assert answer["body"] == "ok\n"
        assert answer["server"] == "hopscope-agent"  # no Python version


# ---- authentication -------------------------------------------------------------------------


def test_a_missing_or_wrong_token_is_401_without_detail_on_every_path(agent: Agent):
    body = probe_body(agent.lab)
    answers = agent.call(
        {"body": body, "auth": None},
        {"body": body, "auth": "Bearer wrong"},
        {"body": body, "auth": f"Bearer {TOKEN}x"},
        {"body": body, "auth": f"Basic {TOKEN}"},
        {"body": body, "auth": "Bearer "},
        {"method": "GET", "path": "/v1/secret-things", "auth": None},  # no 404 before auth
        {"method": "GET", "path": "/v1/probe", "auth": "Bearer wrong"},
    )
    for answer in answers:
        assert answer["status"] == 401, answer
        assert json.loads(answer["body"]) == {"error": "unauthorized"}
    assert TOKEN not in agent.log()


def test_a_rotated_token_takes_effect_without_a_restart(agent: Agent):
    # An authenticated GET of an unknown path is a cheap 404; unauthenticated it is 401.
    probe_old = {"method": "GET", "path": "/nowhere"}
    probe_new = {"method": "GET", "path": "/nowhere", "auth": "Bearer rotated-token-0123456789"}
    assert [a["status"] for a in agent.call(probe_old, probe_new)] == [404, 401]
    replace_token(agent, "rotated-token-0123456789\n")
    assert [a["status"] for a in agent.call(probe_old, probe_new)] == [401, 404]
    agent.token_file.write_text("rotated-again-0123456789\n")  # in place, same size
    again = {**probe_new, "auth": "Bearer rotated-again-0123456789"}
    assert [a["status"] for a in agent.call(probe_new, again)] == [401, 404]
    agent.token_file.unlink()  # a vanished Secret refuses everyone, and the agent lives on
    assert [a["status"] for a in agent.call(probe_old, probe_new)] == [401, 401]
    assert agent.proc.poll() is None


# ---- bad and oversized requests -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"host": "dst.lab.test", "port": 80', "body: Invalid JSON"),
        ('["host"]', "body: Input should be an object"),
        ('{"port": 80}', "host: Field required"),
        ('{"host": "x", "port": 70000}', "port: Input should be less than or equal to 65535"),
        ('{"host": "x", "port": 80, "count": 0}', "count: Input should be greater than"),
        ('{"host": "x", "port": 80, "http": {"method": "BREW"}}', "http.method: String should"),
        ('{"host": "x", "port": 80, "bogus": 1}', "bogus: Extra inputs are not permitted"),
        # Valid for the model, but above this agent's limits:
        ('{"host": "x", "port": 80, "count": 21}', "count: at most 20 on this agent, got 21"),
        ('{"host": "x", "port": 80, "timeoutSeconds": 30}', "timeoutSeconds: at most 10"),
        ('{"host": "x", "port": 80, "maxHops": 40}', "maxHops: at most 32"),
        ('{"host": "x", "port": 80, "caFile": "/etc/shadow"}', "caFile: the agent does not read"),
    ],
    ids=lambda value: value if len(value) < 30 else None,
)
def test_a_bad_request_is_400_naming_the_field(agent: Agent, body: str, expected: str):
    [answer] = agent.call({"body": body})
    assert answer["status"] == 400, answer
    assert error_of(answer).startswith(expected), error_of(answer)


def test_an_oversized_body_is_413_and_an_empty_one_400(agent: Agent):
    big, empty = agent.call(
        {"body": probe_body(agent.lab), "pad": 70 * 1024},
        {"body": None},  # http.client sends Content-Length: 0
    )
    assert big["status"] == 413, big
    assert error_of(big) == "body: at most 65536 bytes"
    assert empty["status"] == 400, empty
    assert error_of(empty).startswith("body: Invalid JSON")


# ---- concurrency and shutdown ---------------------------------------------------------------


def slow_body(lab: Lab) -> str:
    """About 2 s: a TCP probe to an address whose neighbour never answers, no path."""
    return json.dumps(
        {
            "host": lab.absent_address(),
            "port": 8080,
            "count": 1,
            "timeoutSeconds": 2,
            "pathMode": "Never",
        }
    )


def test_beyond_max_concurrent_probes_the_agent_is_busy_with_retry_after(net: Lab):
    agent = start_agent(net, "--max-concurrent", "1")
    slow = slow_body(net)
    first, second, health = agent.call(
        {"body": slow},
        {"body": slow, "delay": 0.5},
        {"method": "GET", "path": "/healthz", "delay": 0.5},  # liveness is never busy
    )
    assert first["status"] == 200, first
    assert ProbeResult.model_validate_json(first["body"]).connection_status in (
        ConnectionStatus.UNREACHABLE,
        ConnectionStatus.UNKNOWN,
    )
    assert second["status"] == 503, second
    assert int(second["retryAfter"]) >= 1
    assert "busy" in error_of(second)
    assert health["status"] == 200
    [after] = agent.call({"body": probe_body(net, pathMode="Never")})  # the slot is free again
    assert after["status"] == 200


def test_sigterm_lets_the_probe_in_progress_finish_then_exits_0(net: Lab):
    agent = start_agent(net)
    client = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            net["src"].netns,
            sys.executable,
            "-c",
            CLIENT,
            json.dumps([{"port": agent.port, "auth": f"Bearer {TOKEN}", "body": slow_body(net)}]),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.7)  # the agent has the request now; its probe takes about 2 s more
    agent.proc.send_signal(signal.SIGTERM)
    out, _ = client.communicate(timeout=30)
    [answer] = json.loads(out)
    assert answer["status"] == 200, answer
    assert agent.proc.wait(timeout=10) == 0
    assert "SIGTERM: stopping" in agent.log()
