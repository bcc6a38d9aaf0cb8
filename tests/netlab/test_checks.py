"""The connection checks and the route inspection, run from the lab's source namespace.

Each test provokes one real network behaviour (a RST, a router's REJECT, a silent drop, the
source's own firewall, a failed ARP) and asserts the evidence that diagnose relies on: the
outcome, the stage, the errno and which address sent the ICMP error.
"""

from __future__ import annotations

import errno
import json
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from hopscope_probe.checks import CONNECTION_CHECKS, route
from hopscope_probe.evidence import (
    ConnectionEvidence,
    IcmpKind,
    NeighbourState,
    Outcome,
    Stage,
    TlsProblem,
)
from hopscope_probe.models import ProbeRequest, Protocol
from hopscope_probe.netns import enter

from .lab import Host, Lab
from .servers import TlsKind

T = TypeVar("T")


def in_netns(host: Host, fn: Callable[..., T], *args: Any) -> T:
    """Call `fn` in a fresh thread that entered the host's namespace (setns moves one thread,
    and threads it starts inherit it)."""

    def entered() -> T:
        enter(host.netns_path)
        return fn(*args)

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(entered).result()


def request(protocol: str, port: int | None, **fields: Any) -> ProbeRequest:
    fields = {"count": 2, "timeout_seconds": 1.0, **fields}
    return ProbeRequest(host="lab", protocol=Protocol(protocol), port=port, **fields)


def run_check(
    lab: Lab, protocol: str, address: str, port: int | None, **fields: Any
) -> ConnectionEvidence:
    check = CONNECTION_CHECKS[protocol]
    evidence = in_netns(lab["src"], check, request(protocol, port, **fields), address)
    assert isinstance(evidence, ConnectionEvidence)
    assert (evidence.protocol, evidence.address, evidence.port) == (protocol, address, port)
    assert len(evidence.attempts) == fields.get("count", 2)
    return evidence


def outcomes(evidence: ConnectionEvidence) -> set[Outcome]:
    return {a.outcome for a in evidence.attempts}


def reject(lab: Lab, node: str, chain: str, how: str, *match: str, v6: bool = False) -> None:
    lab.iptables(node, "-A", chain, *match, "-j", "REJECT", "--reject-with", how, v6=v6)


# ---- TCP -------------------------------------------------------------------------------------


def test_tcp_handshake_succeeds_with_rtt_and_a_closed_port_is_refused_by_rst(lab: Lab):
    lab.start_tcp_server("dst", 8080)
    dst = lab["dst"].addr()
    ok = run_check(lab, "TCP", dst, 8080)
    assert outcomes(ok) == {Outcome.SUCCESS}
    assert all(a.rtt_ms is not None and 0 < a.rtt_ms < 100 for a in ok.attempts)
    closed = run_check(lab, "TCP", dst, 8081)
    assert outcomes(closed) == {Outcome.REFUSED}
    assert all(a.icmp is None and a.errno == errno.ECONNREFUSED for a in closed.attempts)


@pytest.mark.parametrize("v", [4, 6])
def test_tcp_reject_at_a_router_names_that_router(lab: Lab, v: int):
    how = "icmp6-adm-prohibited" if v == 6 else "icmp-admin-prohibited"
    reject(lab, "r2", "FORWARD", how, "-p", "tcp", "--dport", "8080", v6=v == 6)
    evidence = run_check(lab, "TCP", lab["dst"].addr(v), 8080)
    for attempt in evidence.attempts:
        assert attempt.outcome == Outcome.ICMP_ERROR
        assert attempt.icmp is not None
        assert attempt.icmp.sender == lab["r2"].addr(v)
        assert attempt.icmp.kind == IcmpKind.ADMIN_PROHIBITED
        assert (attempt.icmp.type, attempt.icmp.code) == ((1, 1) if v == 6 else (3, 13))


def test_tcp_port_unreachable_is_refused_only_from_the_destination_itself(lab: Lab):
    dst = lab["dst"].addr()
    reject(lab, "r2", "FORWARD", "icmp-port-unreachable", "-p", "tcp", "--dport", "8080")
    reject(lab, "dst", "INPUT", "icmp-port-unreachable", "-p", "tcp", "--dport", "8081")
    by_router = run_check(lab, "TCP", dst, 8080, count=1).attempts[0]
    by_destination = run_check(lab, "TCP", dst, 8081, count=1).attempts[0]
    assert by_router.outcome == Outcome.ICMP_ERROR  # a firewall on the way, not a closed port
    assert by_router.icmp and by_router.icmp.sender == lab["r2"].addr()
    assert by_router.icmp.kind == IcmpKind.PORT_UNREACHABLE
    assert by_destination.outcome == Outcome.REFUSED
    assert by_destination.icmp and by_destination.icmp.sender == dst


def test_tcp_silent_drop_is_a_timeout_within_the_probe_timeout(lab: Lab):
    lab.iptables("dst", "-A", "INPUT", "-p", "tcp", "--dport", "8080", "-j", "DROP")
    evidence = run_check(lab, "TCP", lab["dst"].addr(), 8080, timeout_seconds=0.3)
    assert outcomes(evidence) == {Outcome.TIMEOUT}
    assert all(a.icmp is None and a.errno is None for a in evidence.attempts)


@pytest.mark.parametrize("v", [4, 6])
def test_tcp_drop_by_the_sources_own_output_rule_is_a_local_send_error(lab: Lab, v: int):
    lab.start_tcp_server("dst", 8080)
    lab.iptables("src", "-A", "OUTPUT", "-p", "tcp", "--dport", "8080", "-j", "DROP", v6=v == 6)
    evidence = run_check(lab, "TCP", lab["dst"].addr(v), 8080, timeout_seconds=0.3)
    for attempt in evidence.attempts:
        assert (attempt.outcome, attempt.stage, attempt.errno) == (
            Outcome.LOCAL_ERROR,
            Stage.SEND,
            errno.EPERM,
        )


def test_tcp_source_port_is_bound_reused_and_reported_when_taken(lab: Lab):
    lab.start_tcp_server("dst", 8080)
    lab.start_tcp_server("src", 40000)  # another socket on the source holds 40000
    dst = lab["dst"].addr()
    taken = run_check(lab, "TCP", dst, 8080, source_port=40000)
    for attempt in taken.attempts:
        assert (attempt.outcome, attempt.stage, attempt.errno) == (
            Outcome.LOCAL_ERROR,
            Stage.BIND,
            errno.EADDRINUSE,
        )
    # Only flows from source port 40001 are dropped: the probe really leaves from that port...
    lab.iptables("src", "-A", "OUTPUT", "-p", "tcp", "--sport", "40001", "-j", "DROP")
    dropped = run_check(lab, "TCP", dst, 8080, source_port=40001, timeout_seconds=0.3)
    assert {a.errno for a in dropped.attempts} == {errno.EPERM}
    # ...and attempts one after another on one port do not trip over TIME_WAIT. The timeout
    # outlasts the SYN's first retransmission (1 s): a timeout equal to it failed on one
    # unanswered SYN in six runs on a loaded machine, while a TIME_WAIT collision lasts 60 s.
    reused = run_check(lab, "TCP", dst, 8080, source_port=40002, count=3, timeout_seconds=3.0)
    assert outcomes(reused) == {Outcome.SUCCESS}


def test_tcp_without_a_route_fails_on_the_source(lab: Lab):
    lab["src"].run(["ip", "route", "del", "default"])
    evidence = run_check(lab, "TCP", lab["dst"].addr(), 8080)
    assert {(a.outcome, a.stage, a.errno) for a in evidence.attempts} == {
        (Outcome.LOCAL_ERROR, Stage.SEND, errno.ENETUNREACH)
    }


# ---- UDP -------------------------------------------------------------------------------------


@pytest.mark.parametrize("v", [4, 6])
def test_udp_echo_answers_and_a_closed_port_is_refused_by_the_destination(lab: Lab, v: int):
    lab.start_udp_echo("dst", 5353)
    dst = lab["dst"].addr(v)
    echo = run_check(lab, "UDP", dst, 5353)
    assert outcomes(echo) == {Outcome.SUCCESS}
    assert all(a.rtt_ms is not None for a in echo.attempts)
    closed = run_check(lab, "UDP", dst, 5354)
    for attempt in closed.attempts:
        assert attempt.outcome == Outcome.REFUSED
        assert attempt.icmp is not None and attempt.icmp.sender == dst
        assert attempt.icmp.kind == IcmpKind.PORT_UNREACHABLE


def test_udp_silence_is_open_or_filtered_and_a_router_reject_is_an_icmp_error(lab: Lab):
    dst = lab["dst"].addr()
    lab.start_udp_echo("dst", 5353)
    lab.iptables("dst", "-A", "INPUT", "-p", "udp", "--dport", "5353", "-j", "DROP")
    silent = run_check(lab, "UDP", dst, 5353, timeout_seconds=0.3)
    assert outcomes(silent) == {Outcome.TIMEOUT}
    assert all("open|filtered" in a.detail for a in silent.attempts)
    reject(lab, "r3", "FORWARD", "icmp-host-prohibited", "-p", "udp", "--dport", "5355")
    rejected = run_check(lab, "UDP", dst, 5355, count=1).attempts[0]
    assert rejected.outcome == Outcome.ICMP_ERROR
    assert rejected.icmp and rejected.icmp.sender == lab["r3"].addr()
    assert rejected.icmp.kind == IcmpKind.ADMIN_PROHIBITED


def test_udp_drop_by_the_sources_own_output_rule_is_a_local_send_error(lab: Lab):
    lab.iptables("src", "-A", "OUTPUT", "-p", "udp", "--dport", "5353", "-j", "DROP")
    evidence = run_check(lab, "UDP", lab["dst"].addr(), 5353)
    assert {(a.outcome, a.stage, a.errno) for a in evidence.attempts} == {
        (Outcome.LOCAL_ERROR, Stage.SEND, errno.EPERM)
    }


# ---- ICMP ------------------------------------------------------------------------------------


@pytest.mark.parametrize("v", [4, 6])
def test_icmp_echo_is_answered(lab: Lab, v: int):
    evidence = run_check(lab, "ICMP", lab["dst"].addr(v), None, count=3)
    assert outcomes(evidence) == {Outcome.SUCCESS}
    assert all(a.rtt_ms is not None and a.rtt_ms < 100 for a in evidence.attempts)


@pytest.mark.parametrize("v", [4, 6])
def test_icmp_echo_rejected_at_a_router_names_that_router(lab: Lab, v: int):
    proto, how = ("icmpv6", "icmp6-adm-prohibited") if v == 6 else ("icmp", "icmp-net-prohibited")
    dst = lab["dst"].addr(v)
    reject(lab, "r2", "FORWARD", how, "-p", proto, "-d", dst, v6=v == 6)
    evidence = run_check(lab, "ICMP", dst, None)
    for attempt in evidence.attempts:
        assert attempt.outcome == Outcome.ICMP_ERROR
        assert attempt.icmp and attempt.icmp.sender == lab["r2"].addr(v)
        assert attempt.icmp.kind == IcmpKind.ADMIN_PROHIBITED


def test_icmp_late_and_foreign_echo_replies_are_not_taken_as_answers(lab: Lab):
    """A raw socket sees every echo reply: only our identifier and sequence may count."""
    lab.set_link_delay("src", "r1", 300.0)  # a 600 ms round trip
    dst = lab["dst"].addr()
    # The first attempt's reply arrives while the second one waits: it must not answer it.
    late = run_check(lab, "ICMP", dst, None, count=2, timeout_seconds=0.4)
    assert outcomes(late) == {Outcome.TIMEOUT}
    # The engine runs attempts as parallel one-probe checks (all sequence 1): another check's
    # reply, arriving 200 ms into this one's wait, must not answer it either.
    with ThreadPoolExecutor(max_workers=2) as pool:
        other = pool.submit(run_check, lab, "ICMP", dst, None, count=1, timeout_seconds=0.3)
        time.sleep(0.2)
        this = run_check(lab, "ICMP", dst, None, count=1, timeout_seconds=1.0).attempts[0]
        assert outcomes(other.result()) == {Outcome.TIMEOUT}
    assert this.outcome == Outcome.SUCCESS
    assert this.rtt_ms is not None and this.rtt_ms > 550


def test_icmp_drop_by_the_sources_own_output_rule_is_a_local_send_error(lab: Lab):
    lab.iptables("src", "-A", "OUTPUT", "-p", "icmp", "-j", "DROP")
    evidence = run_check(lab, "ICMP", lab["dst"].addr(), None)
    assert {(a.outcome, a.stage, a.errno) for a in evidence.attempts} == {
        (Outcome.LOCAL_ERROR, Stage.SEND, errno.EPERM)
    }


def test_failed_neighbour_resolution_at_the_last_router_and_on_the_sources_own_segment(lab: Lab):
    """Both take the kernel's ARP timeout (~3 s), so they run side by side."""
    on_link = "198.18.1.99"  # on src's own segment, owned by nobody

    def ping_once(address: str) -> ConnectionEvidence:
        return run_check(lab, "ICMP", address, None, count=1, timeout_seconds=5.0)

    with ThreadPoolExecutor(max_workers=2) as pool:
        far, near = pool.map(ping_once, [lab.absent_address(), on_link])
    far_attempt, near_attempt = far.attempts[0], near.attempts[0]
    # r3 answers host unreachable only once its ARP for the destination has timed out: the
    # delay is what tells diagnose this is neighbour resolution, not a missing route.
    assert far_attempt.outcome == Outcome.ICMP_ERROR
    assert far_attempt.icmp and far_attempt.icmp.sender == lab["r3"].addr()
    assert far_attempt.icmp.kind == IcmpKind.HOST_UNREACHABLE
    assert far_attempt.rtt_ms is not None and far_attempt.rtt_ms > 900
    # On the source's own segment its own kernel gives up, and the route shows the neighbour.
    assert near_attempt.outcome == Outcome.ICMP_ERROR
    assert near_attempt.icmp and near_attempt.icmp.sender == lab["src"].addr()
    seen = in_netns(lab["src"], route.inspect, on_link)
    assert (seen.route_found, seen.gateway, seen.neighbour) == (True, None, on_link)
    assert seen.neighbour_state == NeighbourState.FAILED


_WITHOUT_NET_RAW = """
import json, sys
from dataclasses import asdict
from hopscope_probe.checks import icmp
from hopscope_probe.models import ProbeRequest
request = ProbeRequest(host="dst", protocol="ICMP", count=2, timeout_seconds=1)
print(json.dumps([asdict(a) for a in icmp.check(request, sys.argv[1]).attempts]))
"""


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv to drop CAP_NET_RAW")
def test_icmp_without_cap_net_raw_uses_a_ping_socket_where_allowed(lab: Lab):
    src = lab["src"]
    drop_raw = ["setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw"]
    argv = [*drop_raw, sys.executable, "-c", _WITHOUT_NET_RAW, lab["dst"].addr()]
    src.run(["sysctl", "-qw", "net.ipv4.ping_group_range=1 0"])  # nobody may
    denied = json.loads(src.run(argv).stdout)
    assert {(a["outcome"], a["errno"]) for a in denied} == {("LocalError", errno.EACCES)}
    src.run(["sysctl", "-qw", "net.ipv4.ping_group_range=0 0"])  # root's group may
    allowed = json.loads(src.run(argv).stdout)
    assert [a["outcome"] for a in allowed] == ["Success", "Success"]


# ---- HTTP(S) ---------------------------------------------------------------------------------


def http_check(lab: Lab, uri: str, port: int, **fields: Any) -> ConnectionEvidence:
    protocol = uri.split(":")[0].upper()
    evidence = run_check(lab, protocol, lab["dst"].addr(), port, uri=uri, **fields)
    assert len(evidence.http) == len(evidence.attempts)  # one timing per attempt
    return evidence


def test_http_any_status_is_an_answer_with_its_phases(lab: Lab):
    lab.start_http_server("dst", 8081, status=503)
    evidence = http_check(lab, "http://dst.lab.test:8081/healthz", 8081)
    assert outcomes(evidence) == {Outcome.SUCCESS}  # diagnose judges the status
    for timing in evidence.http:
        assert timing.status_code == 503
        assert timing.connect_ms > 0 and timing.processing_ms > 0 and timing.transfer_ms >= 0
        assert timing.tls_ms == 0 and timing.tls_version is None


def test_https_valid_certificate_with_the_ca_file_and_untrusted_without(lab: Lab):
    lab.start_http_server("dst", 8443, tls="valid")
    uri = "https://dst.lab.test:8443/"
    trusted = http_check(lab, uri, 8443, ca_file=lab.ca_file)
    assert outcomes(trusted) == {Outcome.SUCCESS}
    for timing in trusted.http:
        assert timing.status_code == 200 and timing.tls_ms > 0
        assert timing.tls_version and timing.tls_version.startswith("TLSv1.")
    unknown_ca = http_check(lab, uri, 8443, count=1)
    assert unknown_ca.http[0].tls_problem == TlsProblem.UNTRUSTED


def test_https_latency_is_the_time_to_the_first_byte_over_delayed_links(lab: Lab):
    lab.set_link_delay("r2", "r3", 10.0)
    rtt = lab.expected_rtt_ms("dst")
    lab.start_http_server("dst", 8443, tls="valid")
    evidence = http_check(lab, "https://dst.lab.test:8443/", 8443, ca_file=lab.ca_file)
    # The best connect is the handshake's round trip (a busy machine only delays the others).
    assert abs(min(timing.connect_ms for timing in evidence.http) - rtt) < 1.5
    for attempt, timing in zip(evidence.attempts, evidence.http, strict=True):
        assert attempt.outcome == Outcome.SUCCESS and attempt.rtt_ms is not None
        phases = timing.connect_ms + timing.tls_ms + timing.processing_ms
        assert phases - 1 < attempt.rtt_ms < phases + 20  # + writing the request
        assert attempt.rtt_ms > 2.5 * rtt  # connect, TLS and the request: a round trip each


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("expired", TlsProblem.EXPIRED),
        ("mismatch", TlsProblem.HOSTNAME_MISMATCH),
        ("untrusted", TlsProblem.UNTRUSTED),
    ],
)
def test_https_certificate_problems_are_named(lab: Lab, kind: TlsKind, problem: TlsProblem):
    lab.start_http_server("dst", 8443, tls=kind)
    evidence = http_check(lab, "https://dst.lab.test:8443/", 8443, ca_file=lab.ca_file, count=1)
    attempt, timing = evidence.attempts[0], evidence.http[0]
    assert (attempt.outcome, attempt.stage) == (Outcome.TLS_ERROR, Stage.TLS)
    assert timing.tls_problem == problem and timing.status_code is None
    assert timing.connect_ms > 0


def test_http_connect_failures_read_as_in_a_tcp_check(lab: Lab):
    reject(lab, "r2", "FORWARD", "icmp-admin-prohibited", "-p", "tcp", "--dport", "8082")
    refused = http_check(lab, "http://dst.lab.test:8081/", 8081)
    assert outcomes(refused) == {Outcome.REFUSED}
    assert all(t.status_code is None for t in refused.http)
    rejected = http_check(lab, "http://dst.lab.test:8082/", 8082, count=1).attempts[0]
    assert rejected.outcome == Outcome.ICMP_ERROR
    assert rejected.icmp and rejected.icmp.sender == lab["r2"].addr()


def test_a_port_that_does_not_speak_http_or_tls_is_named_at_its_stage(lab: Lab):
    lab.start_tcp_server("dst", 8080)  # accepts, then closes without a byte
    lab.start_http_server("dst", 8081)  # plain HTTP
    closed = http_check(lab, "http://dst.lab.test:8080/", 8080, count=1).attempts[0]
    assert (closed.outcome, closed.stage) == (Outcome.HTTP_ERROR, Stage.HTTP)
    plain = http_check(lab, "https://dst.lab.test:8081/", 8081, count=1)
    assert (plain.attempts[0].outcome, plain.attempts[0].stage) == (Outcome.TLS_ERROR, Stage.TLS)
    assert plain.http[0].tls_problem == TlsProblem.HANDSHAKE


# ---- route -----------------------------------------------------------------------------------


@pytest.mark.parametrize("v", [4, 6])
def test_route_via_the_gateway_with_a_reachable_neighbour(lab: Lab, v: int):
    dst = lab["dst"].addr(v)
    run_check(lab, "ICMP", dst, None, count=1)  # the gateway's neighbour entry is fresh now
    seen = in_netns(lab["src"], route.inspect, dst)
    gateway = lab["r1"].addr(v)
    assert (seen.destination, seen.route_found, seen.route_type) == (dst, True, "unicast")
    assert (seen.gateway, seen.device, seen.neighbour) == (gateway, "to-r1", gateway)
    assert seen.preferred_source == lab["src"].addr(v)
    assert seen.neighbour_state == NeighbourState.REACHABLE


@pytest.mark.parametrize(
    ("command", "route_type", "word", "prefix"),
    [
        ("ip route del default", "unreachable", "no route", None),
        (
            "ip route add unreachable 198.18.4.0/24",
            "unreachable",
            "unreachable route",
            "198.18.4.0/24",
        ),
        ("ip route add blackhole 198.18.4.0/24", "blackhole", "blackhole route", "198.18.4.0/24"),
        ("ip route add prohibit 198.18.4.0/24", "prohibit", "prohibit route", "198.18.4.0/24"),
        (
            "ip -6 route add blackhole 2001:db8:4::/64",
            "blackhole",
            "blackhole route",
            "2001:db8:4::/64",
        ),
        (
            "ip -6 route add unreachable 2001:db8:4::/64",
            "unreachable",
            "unreachable route",
            "2001:db8:4::/64",
        ),
        (
            "ip -6 route add prohibit 2001:db8:4::/64",
            "prohibit",
            "prohibit route",
            "2001:db8:4::/64",
        ),
    ],
)
def test_route_lookup_failures_say_which_route(
    lab: Lab, command: str, route_type: str, word: str, prefix: str | None
):
    v = 6 if "-6" in command else 4
    lab["src"].run(command)
    if prefix is not None:  # a wider route of the same type that is not the one matching
        lab["src"].run(
            f"ip route add {route_type} {'2001:db8::/32' if v == 6 else '198.18.0.0/16'}"
        )
    seen = in_netns(lab["src"], route.inspect, lab["dst"].addr(v))
    # A route that matches and rejects is found, with its prefix; no route at all is not.
    assert (seen.route_found, seen.route_type, seen.prefix) == (
        prefix is not None,
        route_type,
        prefix,
    )
    assert word in seen.detail
    assert seen.neighbour is None and seen.neighbour_state == NeighbourState.NONE


def test_every_probed_protocol_has_a_check_under_the_name_the_engine_looks_up():
    # The engine probes DNS through the resolver's own queries, everything else through these.
    assert set(CONNECTION_CHECKS) == {str(p) for p in Protocol} - {"DNS"}
