"""`kubectl hopscope`: recorded statuses rendered, and check's create/wait/delete flow against
the in-memory API server (which validates what the plugin creates against the real CRD)."""

from __future__ import annotations

import copy
import json
import os
import signal
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from hopscope_operator.api import API_VERSION, CLUSTER_KIND, KIND
from hopscope_operator.cluster import CHECKS, CLUSTER_CHECKS, Object, Resource
from hopscope_operator.kubectl import plugin as kubectl
from hopscope_probe.models import HopType, Issue, Latency
from tests.builders import hop

from .conftest import ApiServer
from .fakeapi import FakeApi

NS = "shop"
WHEN = "2026-11-25T12:00:00Z"

# ---- recorded statuses, as the operator writes them ---------------------------------------


def lat(avg: float) -> Latency:
    return Latency(min_ms=round(avg * 0.8, 3), avg_ms=avg, max_ms=round(avg * 1.3, 3))


def issues(*bodies: Object) -> list[Issue]:
    return [Issue.model_validate(body) for body in bodies]


def as_status(value: Any) -> Any:
    """The status JSON of a model (or a list of them), as the operator writes it."""
    if isinstance(value, list):
        return [as_status(item) for item in value]
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    return value


def conditions(reachable: str, reason: str, message: str) -> list[Object]:
    return [
        {
            "type": "Ready",
            "status": "True",
            "reason": "RunCompleted",
            "message": "probed from pod shop/web-0 on worker-1",
            "lastTransitionTime": WHEN,
            "observedGeneration": 1,
        },
        {
            "type": "Reachable",
            "status": reachable,
            "reason": reason,
            "message": message,
            "lastTransitionTime": WHEN,
            "observedGeneration": 1,
        },
    ]


def finished(connection: str, **fields: Any) -> Object:
    reachable = {"Reachable": "True", "Degraded": "True", "Unreachable": "False"}[connection]
    return {
        "phase": "Completed",
        "connectionStatus": connection,
        "observedGeneration": 1,
        "runs": 1,
        "lastRunTime": WHEN,
        "source": {"address": "10.244.1.5", "node": "worker-1", "pod": "web-0"},
        "conditions": conditions(reachable, connection, f"{connection}: recorded"),
        **{key: as_status(value) for key, value in fields.items()},
    }


def healthy_status() -> Object:
    """svc/db:5432 from web-0: one path, node gateway then the database."""
    return finished(
        "Reachable",
        destination={"addresses": ["10.96.0.20"]},
        latency=lat(0.42),
        probesSent=10,
        probesFailed=0,
        hops=[
            hop(0, "10.244.1.5", hop_id="source", kind=HopType.SOURCE, next_hops=["h1-10.244.1.1"]),
            hop(
                1,
                "10.244.1.1",
                kind=HopType.NODE,
                next_hops=["h2-10.96.0.20"],
                name="worker-1",
                latency=lat(0.11),
                sent=3,
            ),
            hop(
                2,
                "10.96.0.20",
                kind=HopType.DESTINATION,
                name="db.shop.svc.cluster.local",
                latency=lat(0.4),
                sent=3,
            ),
        ],
        pathFingerprint="3f9a1c22",
    )


LOSS = {
    "type": "PacketLoss",
    "severity": "Warning",
    "origin": "Outbound",
    "hopId": "h3-192.0.2.33",
    "message": "1 of 3 probes through 192.0.2.33 were lost",
    "hint": "look at the second ECMP path's link",
}


def multipath_status() -> Object:
    """api.example.com:443 through two ECMP routers that rejoin before the destination."""
    return finished(
        "Degraded",
        destination={"addresses": ["203.0.113.10"]},
        latency=lat(12.5),
        probesSent=10,
        probesFailed=1,
        hops=[
            hop(0, "10.244.1.5", hop_id="source", kind=HopType.SOURCE, next_hops=["h1-10.244.1.1"]),
            hop(
                1,
                "10.244.1.1",
                kind=HopType.NODE,
                next_hops=["h2-192.0.2.1"],
                name="worker-1",
                latency=lat(0.1),
                sent=6,
            ),
            hop(
                2,
                "192.0.2.1",
                next_hops=["h3-192.0.2.17", "h3-192.0.2.33"],
                latency=lat(1.2),
                sent=6,
            ),
            hop(
                3,
                "192.0.2.17",
                next_hops=["h4-198.51.100.1"],
                name="edge-a.example.net",
                latency=lat(5.1),
                sent=3,
            ),
            hop(
                3,
                "192.0.2.33",
                next_hops=["h4-198.51.100.1"],
                name="edge-b.example.net",
                latency=lat(6.3),
                sent=3,
                failed=1,
                issues=issues(LOSS),
            ),
            hop(4, "198.51.100.1", next_hops=["h5-203.0.113.10"], latency=lat(9.8), sent=6),
            hop(
                5,
                "203.0.113.10",
                kind=HopType.DESTINATION,
                name="api.example.com",
                latency=lat(12.4),
                sent=6,
            ),
        ],
        issues=[LOSS],
        pathFingerprint="77c0de01",
    )


DROP = {
    "type": "Firewall",
    "severity": "Error",
    "origin": "Inbound",
    "hopId": "h2-*",
    "message": "probes to 10.96.0.20:5432 vanish after worker-1: silently dropped",
    "hint": "a firewall or NetworkPolicy drops the traffic; check the rules for port 5432",
    "context": [{"key": "lastAnswer", "value": "10.244.1.1"}],
}
DENIED = {
    "type": "NetworkPolicy",
    "severity": "Error",
    "origin": "Inbound",
    "message": "NetworkPolicy shop/db-ingress selects db-0 and allows no ingress from web-0",
    "hint": "add an ingress rule for app=web on port 5432",
}


def blocked_status() -> Object:
    """svc/db:5432 dropped after the node: a silent hop carries the Firewall issue."""
    return finished(
        "Unreachable",
        destination={"addresses": ["10.96.0.20"]},
        probesSent=10,
        probesFailed=10,
        hops=[
            hop(0, "10.244.1.5", hop_id="source", kind=HopType.SOURCE, next_hops=["h1-10.244.1.1"]),
            hop(
                1,
                "10.244.1.1",
                kind=HopType.NODE,
                next_hops=["h2-*"],
                name="worker-1",
                latency=lat(0.12),
                sent=3,
            ),
            hop(2, sent=3, issues=issues(DROP)),
        ],
        issues=[DROP, DENIED],
        analysis={"result": "Blocked", "issues": [DENIED]},
        pathFingerprint="0bad0bad",
    )


RECORDED: dict[str, tuple[Callable[[], Object], str]] = {
    "healthy": (healthy_status, "svc/db:5432"),
    "multipath": (multipath_status, "api.example.com:443"),
    "blocked": (blocked_status, "svc/db:5432"),
}


# ---- the cluster ----------------------------------------------------------------------------


@pytest.fixture
def api(apiserver: ApiServer) -> FakeApi:
    return FakeApi(apiserver)


def stored_check(api: FakeApi, name: str, status: Object, to: str = "svc/db:5432") -> Object:
    """A check as `kubectl apply` and the operator leave it."""
    args = kubectl.parser().parse_args(["check", "--from", "pod/web-0", "--to", to])
    body = kubectl.check_body(kubectl.build_check(args, NS))
    body["metadata"]["name"] = name
    created = api.create(CHECKS, NS, body)
    return api.patch_status(CHECKS, NS, name, status, created["metadata"]["resourceVersion"])


class Operator:
    """Plays the operator: on the Nth poll of a check it writes `status` for the check's
    generation (a Running status before that). Everything else goes to the FakeApi."""

    def __init__(self, api: FakeApi, status: Object | None, on_poll: int = 3) -> None:
        self.api = api
        self.status = status
        self.on_poll = on_poll
        self.polls = 0
        self.created: list[Object] = []

    def create(self, resource: Resource, namespace: str | None, body: Object) -> Object:
        self.created.append(body)
        return self.api.create(resource, namespace, body)

    def get(self, resource: Resource, namespace: str | None, name: str) -> Object:
        if resource in (CHECKS, CLUSTER_CHECKS):
            self.polls += 1
            obj = self.api.get(resource, namespace, name)
            generation = obj["metadata"]["generation"]
            version = obj["metadata"]["resourceVersion"]
            if self.polls == 1:
                running = {"phase": "Running", "observedGeneration": generation}
                self.api.patch_status(resource, namespace, name, running, version)
            elif self.polls == self.on_poll and self.status is not None:
                done = {**self.status, "observedGeneration": generation}
                self.api.patch_status(resource, namespace, name, done, version)
        return self.api.get(resource, namespace, name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.api, name)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def run(argv: list[str], api: Any, time: FakeTime | None = None) -> int:
    time = time or FakeTime()
    return kubectl.main(argv, api=api, sleep=time.sleep, clock=time.clock)


def check_argv(*extra: str, to: str = "svc/db:5432") -> list[str]:
    return ["check", "--from", "pod/web-0", "--to", to, "-n", NS, *extra]


# ---- check: create, wait, print, delete -----------------------------------------------------


def test_check_creates_waits_prints_the_result_and_deletes_the_check(api: FakeApi, capsys):
    operator = Operator(api, healthy_status(), on_poll=3)
    time = FakeTime()

    code = run(check_argv("--count", "5"), operator, time)

    out, err = capsys.readouterr()
    assert code == 0
    [body] = operator.created
    assert body["apiVersion"] == API_VERSION and body["kind"] == KIND
    assert body["spec"] == {
        "source": {"pod": {"name": "web-0"}},
        "destination": {"service": {"name": "db"}, "port": 5432},
        "protocol": "TCP",
        "probes": {"count": 5},
    }
    name = body["metadata"]["name"]
    assert name.startswith("hopscope-")
    assert operator.polls == 3 and time.slept == [1.0, 1.0]
    assert f"{name}: Running, runs 0" in err  # the progress line
    assert out.startswith(f"check {NS}/{name}: Completed, runs 1")
    assert "TCP svc/db:5432 (10.96.0.20)  Reachable" in out
    assert "from pod/web-0 on worker-1 (10.244.1.5)" in out
    assert "topology:" in out and "no issues found" in out
    assert api.list(CHECKS, NS) == []
    assert [e.type for e in api.watch_events if e.name == name][-1] == "DELETED"


CLUSTER_FORMS = {
    "node source": (
        ["--from", "node/worker-1", "--to", "svc/db:5432", "-n", "shop"],
        {"node": {"name": "worker-1"}},
        {"service": {"name": "db", "namespace": "shop"}, "port": 5432},
    ),
    "pod of another namespace": (
        ["--from", "pod/ledger-0", "--to", "10.0.0.9:443", "-n", "payments"],
        {"pod": {"name": "ledger-0", "namespace": "payments"}},
        {"ip": "10.0.0.9", "port": 443},
    ),
}


@pytest.mark.parametrize("argv, source, destination", CLUSTER_FORMS.values(), ids=CLUSTER_FORMS)
def test_check_cluster_runs_a_cluster_check_naming_every_namespace(
    api: FakeApi, argv, source, destination, capsys
):
    operator = Operator(api, healthy_status(), on_poll=2)
    code = run(["check", "--cluster", *argv], operator)
    out, _ = capsys.readouterr()
    assert code == 0
    [body] = operator.created
    assert body["kind"] == CLUSTER_KIND and "namespace" not in body["metadata"]
    assert (body["spec"]["source"], body["spec"]["destination"]) == (source, destination)
    name = body["metadata"]["name"]
    assert out.startswith(f"check {name}: Completed, runs 1")
    assert api.list(CLUSTER_CHECKS, None) == []  # deleted afterwards, at its cluster path
    assert [e.type for e in api.watch_events if e.name == name][-1] == "DELETED"


def test_check_cluster_keep_and_show_cluster(api: FakeApi, capsys):
    argv = ["check", "--cluster", "--keep", "--name", "far", "--from", "node/worker-1"]
    assert run([*argv, "--to", "10.0.0.9:443"], Operator(api, healthy_status())) == 0
    assert "kept clusterconnectivitycheck far" in capsys.readouterr().err
    assert run(["show", "--cluster", "far"], api) == 0
    assert capsys.readouterr().out.startswith("check far: Completed, runs 1")
    assert run(["show", "far", "-n", NS], api) == 2  # not a namespaced check
    assert "not found" in capsys.readouterr().err


def test_keep_keeps_the_check(api: FakeApi, capsys):
    code = run(check_argv("--keep", "--name", "kept"), Operator(api, healthy_status()))

    assert code == 0
    assert "kept connectivitycheck shop/kept" in capsys.readouterr().err
    [kept] = api.list(CHECKS, NS)
    assert kept["metadata"]["name"] == "kept"
    assert kept["status"]["phase"] == "Completed"


@pytest.mark.parametrize(("recorded", "code"), [("multipath", 1), ("blocked", 1)])
def test_exit_code_follows_the_connection_status(api: FakeApi, recorded, code, capsys):
    make, to = RECORDED[recorded]
    assert run(check_argv(to=to), Operator(api, make())) == code
    assert "topology:" in capsys.readouterr().out
    assert api.list(CHECKS, NS) == []


def test_a_status_of_an_older_generation_is_not_the_answer(api: FakeApi, capsys):
    """The operator's status for generation 0 (stale) must not end the wait."""
    stale = {**healthy_status(), "observedGeneration": 0}

    class Stale(Operator):
        def get(self, resource: Resource, namespace: str | None, name: str) -> Object:
            obj = self.api.get(resource, namespace, name)
            if self.polls == 0:
                self.api.patch_status(CHECKS, NS, name, stale, obj["metadata"]["resourceVersion"])
            self.polls += 1
            return self.api.get(resource, namespace, name)

    assert run(check_argv("--wait", "3"), Stale(api, None)) == 2
    assert "timed out after 3s" in capsys.readouterr().err


def test_timeout_exits_2_says_why_and_still_deletes(api: FakeApi, capsys):
    class NotReady(Operator):
        def get(self, resource: Resource, namespace: str | None, name: str) -> Object:
            obj = self.api.get(resource, namespace, name)
            if "status" not in obj:
                pending = {
                    "phase": "Pending",
                    "observedGeneration": 1,
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "False",
                            "reason": "SourceNotFound",
                            "message": "pod shop/web-0 not found",
                            "lastTransitionTime": WHEN,
                        }
                    ],
                }
                self.api.patch_status(CHECKS, NS, name, pending, obj["metadata"]["resourceVersion"])
            return self.api.get(resource, namespace, name)

    time = FakeTime()
    code = run(check_argv("--wait", "5"), NotReady(api, None), time)

    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert "timed out after 5s" in err
    assert "(Pending, runs 0 (SourceNotFound: pod shop/web-0 not found))" in err
    assert time.now == 5.0
    assert api.list(CHECKS, NS) == []


def test_a_check_the_operator_will_not_run_ends_the_wait_at_once_saying_why(api, capsys):
    class Refusing(Operator):
        def get(self, resource: Resource, namespace: str | None, name: str) -> Object:
            obj = self.api.get(resource, namespace, name)
            if "status" not in obj:
                refused = {
                    "phase": "Pending",
                    "observedGeneration": 1,
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "False",
                            "reason": "SourceNotPermitted",
                            "message": "source.node worker-1: ... tenancy.allowNodeSources",
                            "lastTransitionTime": WHEN,
                            "observedGeneration": 1,
                        }
                    ],
                }
                self.api.patch_status(CHECKS, NS, name, refused, obj["metadata"]["resourceVersion"])
            return self.api.get(resource, namespace, name)

    time = FakeTime()
    argv = ["check", "--from", "node/worker-1", "--to", "10.0.0.1:10250", "-n", NS, "--wait", "60"]
    code = run(argv, Refusing(api, None), time)

    err = capsys.readouterr().err
    assert code == 2 and time.now < 60  # not the timeout: said as soon as the operator did
    assert "cannot run: SourceNotPermitted: source.node worker-1" in err
    assert api.list(CHECKS, NS) == []


def test_timeout_with_keep_keeps(api: FakeApi):
    assert run(check_argv("--wait", "2", "--keep"), Operator(api, None)) == 2
    assert len(api.list(CHECKS, NS)) == 1


def test_ctrl_c_while_waiting_deletes_the_check(api: FakeApi, capsys):
    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    code = kubectl.main(check_argv(), api=Operator(api, None), sleep=interrupt, clock=lambda: 0)

    assert code == 130
    assert "interrupted" in capsys.readouterr().err
    assert api.list(CHECKS, NS) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_terminated_wait_deletes_the_check_too(api: FakeApi, capsys, signum: int):
    # A closed terminal, `timeout 60 kubectl hopscope check ...`, a cancelled CI job.
    def terminated(seconds: float) -> None:
        os.kill(os.getpid(), signum)

    before = signal.getsignal(signum)
    code = kubectl.main(check_argv(), api=Operator(api, None), sleep=terminated, clock=lambda: 0)
    assert code == 130 and api.list(CHECKS, NS) == []
    assert signal.getsignal(signum) == before  # the plugin's handler is gone with its wait


def test_background_operator_thread(api: FakeApi, capsys):
    """A real sleep and clock, with the status written from another thread."""
    import threading

    def operator() -> None:
        for _ in range(200):
            checks = api.list(CHECKS, NS)
            if checks:
                meta = checks[0]["metadata"]
                api.patch_status(
                    CHECKS, NS, meta["name"], healthy_status(), meta["resourceVersion"]
                )
                return
            threading.Event().wait(0.01)

    thread = threading.Thread(target=operator)
    thread.start()
    code = kubectl.main(check_argv("--wait", "10"), api=api)
    thread.join()

    assert code == 0
    assert "Reachable" in capsys.readouterr().out
    assert api.list(CHECKS, NS) == []


@pytest.mark.parametrize(
    ("source", "to", "extra", "spec"),
    [
        (
            "deploy/gateway",
            "pod/db-0:5432",
            [],
            {
                "source": {"workload": {"kind": "Deployment", "name": "gateway"}},
                "destination": {"pod": {"name": "db-0"}, "port": 5432},
            },
        ),
        (
            "node/worker-1",
            "node/worker-2",
            ["--protocol", "icmp"],
            {
                "source": {"node": {"name": "worker-1"}},
                "destination": {"node": {"name": "worker-2"}},
                "protocol": "ICMP",
            },
        ),
        (
            "sts/bastion",
            "10.1.2.3:22",
            ["--timeout", "1.5", "--multipath", "--mtu"],
            {
                "source": {"workload": {"kind": "StatefulSet", "name": "bastion"}},
                "destination": {"ip": "10.1.2.3", "port": 22},
                "probes": {"timeoutSeconds": 1.5},
                "path": {"multipath": True, "mtu": True},
            },
        ),
        (
            "pod/web-0",
            "[2001:db8::7]:443",
            [],
            {
                "source": {"pod": {"name": "web-0"}},
                "destination": {"ip": "2001:db8::7", "port": 443},
            },
        ),
        (
            "pod/web-0",
            "db.example.com:5432",
            ["--protocol", "udp"],
            {
                "source": {"pod": {"name": "web-0"}},
                "destination": {"fqdn": "db.example.com", "port": 5432},
                "protocol": "UDP",
            },
        ),
        (
            "ds/egress",
            "https://api.example.com/healthz",
            [],
            {
                "source": {"workload": {"kind": "DaemonSet", "name": "egress"}},
                "destination": {"uri": "https://api.example.com/healthz"},
                "protocol": "HTTPS",
            },
        ),
    ],
)
def test_every_source_and_target_form_creates_a_valid_check(api, source, to, extra, spec, capsys):
    operator = Operator(api, healthy_status(), on_poll=2)
    argv = ["check", "--from", source, "--to", to, "-n", NS, *extra]

    assert run(argv, operator) == 0, capsys.readouterr().err

    [body] = operator.created
    assert body["spec"] == {"protocol": "TCP", **spec}


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--to", "svc/db:99999"], "--to"),
        (["--to", "svc/db"], "--to: destination.port is required"),
        (["--to", "ftp://files.example.com/"], "--to"),
        (["--to", "https://api.example.com/", "--protocol", "tcp"], "--protocol"),
        (["--to", "cm/db:80"], "--to"),
        (["--to", "svc/Bad_Name:80"], "--to"),
        (["--to", "bad host!:80"], "--to"),
        (["--to", "svc/db:5432", "--protocol", "sctp"], "--protocol"),
        (["--to", "svc/db:5432", "--count", "0"], "--count"),
        (["--to", "svc/db:5432", "--count", "many"], "--count"),
        (["--to", "svc/db:5432", "--timeout", "0"], "--timeout"),
        (["--to", "svc/db:5432", "--name", "No_Such"], "--name"),
        (["--to", "svc/db:5432", "-n", "Bad_NS"], "--namespace"),
    ],
)
def test_a_bad_flag_exits_2_naming_it_and_creates_nothing(api: FakeApi, argv, flag, capsys):
    code = run(["check", "--from", "pod/web-0", "-n", NS, *argv], api)

    out, err = capsys.readouterr()
    assert code == 2
    assert flag in err
    assert out == ""
    assert not [call for call in api.calls if call[0] == "create"]


def test_a_bad_from_exits_2_naming_it(api: FakeApi, capsys):
    assert run(["check", "--from", "web-0", "--to", "svc/db:5432", "-n", NS], api) == 2
    assert "--from" in capsys.readouterr().err
    assert api.calls == []


# ---- show -----------------------------------------------------------------------------------


def test_show_healthy(api: FakeApi, capsys):
    stored_check(api, "web-to-db", healthy_status())

    assert run(["show", "web-to-db", "-n", NS], api) == 0

    out = capsys.readouterr().out
    assert out.startswith("check shop/web-to-db: Completed, runs 1, last 2026-11-25 12:00:00Z\n")
    assert "TCP svc/db:5432 (10.96.0.20)  Reachable" in out
    assert "probes: 10 sent, 0 failed" in out
    table = out.split("\n\n")[2].splitlines()
    assert table[0].split() == ["TTL", "ADDRESS", "NAME", "MIN", "AVG", "MAX", "LOSS", "ISSUES"]
    assert table[2].split()[:3] == ["1", "10.244.1.1", "worker-1"]
    tree = out.split("topology:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert tree == [
        "source 10.244.1.5",
        "   └─ 10.244.1.1 worker-1  0.11 ms",
        "      └─ 10.96.0.20 db.shop.svc.cluster.local  0.40 ms",
    ]
    assert "no issues found" in out
    assert "\033[" not in out


def test_show_multipath_marks_the_rejoin_once(api: FakeApi, capsys):
    stored_check(api, "web-to-api", multipath_status(), to="api.example.com:443")

    assert run(["show", "web-to-api", "-n", NS], api) == 1

    out = capsys.readouterr().out
    assert "TCP api.example.com:443 (203.0.113.10)  Degraded" in out
    tree = out.split("topology:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert any(line.strip().startswith("├─ 192.0.2.17 edge-a.example.net") for line in tree)
    assert any("192.0.2.33 edge-b.example.net" in line and "✗ PacketLoss" in line for line in tree)
    assert tree[-1].strip() == "└─ ↪ 198.51.100.1"  # the second branch rejoins: shown once
    assert sum("198.51.100.1" in line for line in tree) == 2
    assert "33%" in out
    assert "Warning PacketLoss at 192.0.2.33" in out


def test_show_blocked_locates_the_firewall_at_the_silent_hop(api: FakeApi, capsys):
    stored_check(api, "web-to-db", blocked_status())

    assert run(["show", "web-to-db", "-n", NS], api) == 1

    out = capsys.readouterr().out
    assert "Unreachable" in out
    assert "configuration analysis: Blocked" in out
    tree = out.split("topology:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert tree[-1].strip() == "└─ *  ✗ Firewall"
    assert "Error Firewall at hop 2 (no answer): probes to 10.96.0.20:5432 vanish" in out
    assert "hint: a firewall or NetworkPolicy drops the traffic" in out
    assert "evidence: lastAnswer=10.244.1.1" in out
    assert "Error NetworkPolicy: NetworkPolicy shop/db-ingress" in out


def test_show_before_the_first_run(api: FakeApi, capsys):
    args = kubectl.parser().parse_args(["check", "--from", "pod/web-0", "--to", "svc/db:5432"])
    body = kubectl.check_body(kubectl.build_check(args, NS))
    api.create(CHECKS, NS, body)

    assert run(["show", body["metadata"]["name"], "-n", NS], api) == 2

    out = capsys.readouterr().out
    assert ": Pending, runs 0" in out and "no result yet" in out


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_show_json_and_yaml_are_the_whole_object(api: FakeApi, fmt, capsys):
    stored = stored_check(api, "web-to-db", blocked_status())

    assert run(["show", "web-to-db", "-n", NS, "-o", fmt], api) == 1

    out = capsys.readouterr().out
    assert (json.loads(out) if fmt == "json" else yaml.safe_load(out)) == stored


# What a newer operator may store (its CRD allows it): the change, what text output names, the
# exit code.
NEWER: dict[str, tuple[Callable[[Object], None], str, int]] = {
    "unknown field": (
        lambda status: status.update(pathChanges=3),
        "status.pathChanges: an unknown field",
        1,
    ),
    "unknown issue type": (
        lambda status: status["issues"][0].update(type="Quantum"),
        "status.issues.0.type: an unknown value 'Quantum'",
        1,
    ),
    "unknown connection status": (
        lambda status: status.update(connectionStatus="Intermittent"),
        "status.connectionStatus: an unknown value 'Intermittent'",
        2,
    ),
}


def stored_newer(api: FakeApi, change: Callable[[Object], None]) -> Object:
    stored_check(api, "web-to-db", blocked_status())
    stored = api.stored(CHECKS, NS, "web-to-db")
    change(stored["status"])
    return copy.deepcopy(stored)


@pytest.mark.parametrize("newer", NEWER)
def test_show_names_what_it_cannot_read_of_a_newer_status(api: FakeApi, newer, capsys):
    change, field, _ = NEWER[newer]
    stored_newer(api, change)

    assert run(["show", "web-to-db", "-n", NS], api) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"kubectl hopscope show: cannot read connectivitycheck shop/web-to-db: {field}"
        " (the plugin may be older than the operator; -o yaml shows the raw status)\n"
    )


@pytest.mark.parametrize("fmt", ["json", "yaml"])
@pytest.mark.parametrize("newer", NEWER)
def test_show_json_and_yaml_print_a_newer_status_as_stored(api: FakeApi, newer, fmt, capsys):
    change, _, code = NEWER[newer]
    stored = stored_newer(api, change)

    assert run(["show", "web-to-db", "-n", NS, "-o", fmt], api) == code

    out, err = capsys.readouterr()
    assert (json.loads(out) if fmt == "json" else yaml.safe_load(out)) == stored
    assert err == ""


def test_conditions_null_reads_as_none(api: FakeApi, capsys):
    stored_check(api, "web-to-db", blocked_status())
    api.stored(CHECKS, NS, "web-to-db")["status"]["conditions"] = None

    assert run(["show", "web-to-db", "-n", NS], api) == 1

    assert capsys.readouterr().out.startswith("check shop/web-to-db: Completed, runs 1")
    running = {"metadata": {}, "status": {"phase": "Running", "conditions": None}}
    assert kubectl.state_line(running) == "Running, runs 0"


def test_show_graph_writes_an_svg(api: FakeApi, tmp_path, capsys):
    import xml.etree.ElementTree as ET

    stored_check(api, "web-to-db", blocked_status())
    out = tmp_path / "topology.svg"

    argv = ["show", "web-to-db", "-n", NS, "--graph", str(out), "--graph-engine", "builtin"]
    assert run(argv, api) == 1

    root = ET.parse(out).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "shop/web-to-db" in root.findtext("{http://www.w3.org/2000/svg}title", "")
    assert "topology:" in capsys.readouterr().out  # the text still goes to stdout


def test_show_a_missing_check_exits_2(api: FakeApi, capsys):
    assert run(["show", "nope", "-n", NS], api) == 2
    assert "not found" in capsys.readouterr().err


def test_the_namespace_defaults_to_the_kubeconfig_context(api: FakeApi, monkeypatch, capsys):
    from kubernetes import config

    stored_check(api, "web-to-db", healthy_status())
    contexts = [{"name": "dev", "context": {"cluster": "kind", "namespace": NS}}]
    monkeypatch.setattr(config, "list_kube_config_contexts", lambda: (contexts, contexts[0]))

    assert run(["show", "web-to-db"], api) == 0
    assert kubectl.current_namespace() == NS


def test_without_a_kubeconfig_the_namespace_is_default(monkeypatch):
    from kubernetes import config

    def missing() -> None:
        raise config.ConfigException("Invalid kube-config file. No configuration found.")

    monkeypatch.setattr(config, "list_kube_config_contexts", missing)
    assert kubectl.current_namespace() == "default"


def test_show_says_why_a_check_cannot_run_and_which_pod_a_workload_gave(api: FakeApi, capsys):
    args = kubectl.parser().parse_args(["check", "--from", "deploy/gateway", "--to", "svc/db:5432"])
    body = kubectl.check_body(kubectl.build_check(args, NS))
    body["metadata"]["name"] = "gw-to-db"
    created = api.create(CHECKS, NS, body)
    ran = {**healthy_status(), "source": {"pod": "gateway-7d9c", "node": "worker-2"}}
    ran["conditions"][0] |= {
        "status": "False",
        "reason": "SidecarMissing",
        "message": "no Ready pod of deployment/gateway has the hopscope sidecar",
    }
    ran["phase"] = "Pending"
    api.patch_status(CHECKS, NS, "gw-to-db", ran, created["metadata"]["resourceVersion"])

    run(["show", "gw-to-db", "-n", NS], api)

    head = capsys.readouterr().out.split("\n\n", 1)[0].splitlines()
    assert head == [
        "check shop/gw-to-db: Pending, runs 1, last 2026-11-25 12:00:00Z",
        "from deployment/gateway: pod gateway-7d9c on worker-2",
        "Ready False (SidecarMissing): no Ready pod of deployment/gateway has the hopscope sidecar",
    ]
