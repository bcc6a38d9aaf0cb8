"""Every issue type, produced by a real fault in a real network of namespaces.

Each test breaks the lab one way, runs `hopscope probe --json` from the source's namespace as a
user would, and asserts the verdict, the located issue (type and hop) and the hop list.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hopscope_operator.analysis import merge
from hopscope_operator.api import Analysis, AnalysisResult
from hopscope_probe.models import (
    ConnectionStatus,
    ContextItem,
    Hop,
    HopType,
    Issue,
    IssueCause,
    IssueType,
    Origin,
    ProbeResult,
    Severity,
)

from .lab import Lab
from .stalls import unstalled

REPO = Path(__file__).resolve().parents[2]


def probe(lab: Lab, *args: str, source: str = "src") -> tuple[int, ProbeResult]:
    cmd = [
        sys.executable,
        "-m",
        "hopscope_probe",
        "probe",
        "--netns",
        lab[source].netns_path,
        "--resolv-conf",
        lab.resolv_conf(),
        "--json",
        *args,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.stdout.count("\n") == 1, f"stdout must be one JSON document: {done.stdout!r}"
    result = ProbeResult.model_validate_json(done.stdout)
    assert json.loads(done.stdout)["connectionStatus"] == result.connection_status
    return done.returncode, result


def issues_of(result: ProbeResult, issue_type: IssueType):
    return [i for i in result.issues if i.type == issue_type]


def the_issue(result: ProbeResult, issue_type: IssueType):
    found = issues_of(result, issue_type)
    assert found, f"no {issue_type} issue in {[(i.type, i.message) for i in result.issues]}"
    return found[0]


def hop_of(result: ProbeResult, hop_id: str | None) -> Hop:
    matches = [h for h in result.hops if h.id == hop_id]
    assert matches, f"issue points at {hop_id}, not a hop of {[h.id for h in result.hops]}"
    return matches[0]


def path_addresses(result: ProbeResult) -> list[str | None]:
    return [h.address for h in sorted(result.hops, key=lambda h: h.ttl or 0)]


def router_addrs(lab: Lab, v: int = 4) -> list[str]:
    return [lab[name].addr(v) for name in ("r1", "r2", "r3")]


def test_healthy_path_reports_every_hop_with_its_emulated_latency(lab: Lab):
    lab.start_tcp_server("dst", 8080)
    delays = {("src", "r1"): 1.0, ("r1", "r2"): 2.0, ("r2", "r3"): 4.0, ("r3", "dst"): 1.5}
    for (a, b), one_way in delays.items():
        lab.set_link_delay(a, b, one_way)

    def best_within_bound(found: tuple[int, ProbeResult]) -> bool:
        hops = {h.address: h.latency for h in found[1].hops}
        return all(
            (latency := hops.get(lab[name].addr())) is not None
            and abs(latency.min_ms - lab.expected_rtt_ms(name)) < 1.5
            for name in ("r1", "r2", "r3", "dst")
        )

    # Measured again after a stall of the shared machine (see stalls.py).
    code, result = unstalled(
        lambda: probe(lab, "--to", f"{lab['dst'].addr()}:8080", "--count", "5"), best_within_bound
    )
    assert code == 0
    assert result.connection_status == ConnectionStatus.REACHABLE
    assert result.issues == []
    assert path_addresses(result) == [
        lab["src"].addr(),
        *router_addrs(lab),
        lab["dst"].addr(),
    ]
    assert [h.type for h in sorted(result.hops, key=lambda h: h.ttl or 0)] == [
        HopType.SOURCE,
        HopType.ROUTER,
        HopType.ROUTER,
        HopType.ROUTER,
        HopType.DESTINATION,
    ]
    for name in ("r1", "r2", "r3", "dst"):
        hop = next(h for h in result.hops if h.address == lab[name].addr())
        expected = lab.expected_rtt_ms(name)
        assert hop.latency is not None
        # The best of five is the path's delay; the average also carries the delaying
        # process's late wake-ups when the two cores are busy (see test_sweep).
        assert abs(hop.latency.min_ms - expected) < 1.5, (name, hop.latency, expected)
        assert abs(hop.latency.avg_ms - expected) < 5.0, (name, hop.latency, expected)
    assert abs(result.latency.min_ms - lab.expected_rtt_ms("dst")) < 1.5
    assert next(h for h in result.hops if h.address == lab["r2"].addr()).name == "r2.lab.test"


def test_nothing_listening_is_located_at_the_destination(lab: Lab):
    code, result = probe(lab, "--to", f"{lab['dst'].addr()}:81")
    assert code == 1
    assert result.connection_status == ConnectionStatus.UNREACHABLE
    issue = the_issue(result, IssueType.PORT_NOT_LISTENING)
    assert hop_of(result, issue.hop_id).address == lab["dst"].addr()
    assert hop_of(result, issue.hop_id).type == HopType.DESTINATION


def test_udp_port_unreachable_and_udp_echo(lab: Lab):
    lab.start_udp_echo("dst", 5353)
    code, result = probe(lab, "--to", f"{lab['dst'].addr()}:5353", "--protocol", "udp")
    assert code == 0, result.issues
    code, result = probe(lab, "--to", f"{lab['dst'].addr()}:5354", "--protocol", "udp")
    issue = the_issue(result, IssueType.PORT_NOT_LISTENING)
    assert hop_of(result, issue.hop_id).address == lab["dst"].addr()


_SPEND_ICMP_ALLOWANCE = """
import socket, sys
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:  # unconnected: errors ignored
    for _ in range(20):
        udp.sendto(b"spend", (sys.argv[1], int(sys.argv[2])))
"""


def test_a_closed_udp_port_under_the_kernels_icmp_rate_limits_is_never_a_firewall(lab: Lab):
    """Linux answers one peer's closed ports ~6 times in a burst, then once a second. A check
    repeated soon after another finds the allowance spent: here one answer is left, which the
    path sweep's probes to the same port may take before the check's own probes ask."""
    lab.kernel_icmp_rate_limits(*lab.hosts)
    dst, port = lab["dst"].addr(), "5354"
    for _ in range(3):
        lab["src"].run([sys.executable, "-c", _SPEND_ICMP_ALLOWANCE, dst, port])
        time.sleep(1.1)  # the allowance grows back by one answer a second
        code, result = probe(lab, "--to", f"{dst}:{port}", "--protocol", "udp")
        assert (code, result.connection_status) == (1, ConnectionStatus.UNREACHABLE)
        assert not issues_of(result, IssueType.FIREWALL), result.issues
        issue = the_issue(result, IssueType.PORT_NOT_LISTENING)
        # The destination's hop, or the silent TTL where it is when the sweep's probes there
        # were the ones left unanswered.
        assert hop_of(result, issue.hop_id).address in (dst, None)
        assert hop_of(result, issue.hop_id).ttl == 4
        assert "rate-limits its ICMP errors" in issue.message


def test_drop_at_the_destination_is_a_silent_drop_after_the_last_router(lab: Lab):
    lab.start_tcp_server("dst", 8080)
    lab.iptables("dst", "-A", "INPUT", "-p", "tcp", "--dport", "8080", "-j", "DROP")
    code, result = probe(lab, "--to", f"{lab['dst'].addr()}:8080", "--timeout", "1")
    assert code == 1
    issue = the_issue(result, IssueType.FIREWALL)
    silent = hop_of(result, issue.hop_id)
    assert silent.address is None and silent.ttl == 4  # where dst should have answered
    assert {"key": "lastAnsweringHop", "value": lab["r3"].addr()} in [
        c.model_dump() for c in issue.context
    ]
    assert path_addresses(result)[1:4] == router_addrs(lab)


def test_a_real_silent_drop_names_its_cause_and_merges_with_the_policy_that_explains_it(
    lab: Lab,
):
    # The operator pairs the probe's drop with a NetworkPolicy denial by the cause the probe
    # writes into its JSON, not by the words of its message.
    lab.start_tcp_server("dst", 8080)
    lab.iptables("dst", "-A", "INPUT", "-p", "tcp", "--dport", "8080", "-j", "DROP")
    _, result = probe(lab, "--to", f"{lab['dst'].addr()}:8080", "--timeout", "1")
    drop = the_issue(result, IssueType.FIREWALL)
    assert drop.cause == IssueCause.SILENT_DROP
    denial = Issue(
        type=IssueType.NETWORK_POLICY,
        severity=Severity.ERROR,
        origin=Origin.INBOUND,
        message="NetworkPolicy denies ingress of traffic from shop/web-0 into shop/db-0",
        hint="Add an ingress rule.",
        context=[ContextItem(key="NetworkPolicy", value="shop/db-deny")],
    )
    analysis = Analysis(result=AnalysisResult.BLOCKED, issues=[denial])
    reworded = drop.model_copy(update={"message": "no answer from the destination"})
    for probed in (drop, reworded):
        [merged] = merge([probed], analysis, result.hops)
        assert merged.type == IssueType.NETWORK_POLICY and merged.hop_id == drop.hop_id
        assert {"key": "probe", "value": probed.message} in [c.model_dump() for c in merged.context]


def test_reject_admin_prohibited_at_a_router(lab: Lab):
    lab.start_tcp_server("dst", 8080)
    lab.iptables(
        "r2", "-A", "FORWARD", "-p", "tcp", "--dport", "8080",
        "-j", "REJECT", "--reject-with", "icmp-admin-prohibited",
    )  # fmt: skip
    code, result = probe(lab, "--to", f"{lab['dst'].addr()}:8080")
    assert code == 1
    issue = the_issue(result, IssueType.FIREWALL)
    assert hop_of(result, issue.hop_id).address == lab["r2"].addr()
    assert issue.origin == Origin.OUTBOUND
    assert not issues_of(result, IssueType.PORT_NOT_LISTENING)


def test_the_sources_own_output_rule(lab: Lab):
    lab.start_tcp_server("dst", 8080)
    lab.iptables("src", "-A", "OUTPUT", "-p", "tcp", "--dport", "8080", "-j", "DROP")
    code, result = probe(lab, "--to", f"{lab['dst'].addr()}:8080")
    assert code == 1
    issue = the_issue(result, IssueType.FIREWALL)
    assert (issue.origin, issue.hop_id) == (Origin.LOCAL, "source")


def test_missing_route_at_a_router(lab: Lab):
    lab["r2"].run(["ip", "route", "del", "198.18.4.0/24"])
    code, result = probe(lab, "--to", f"{lab['dst'].addr()}:8080")
    assert code == 1
    issue = the_issue(result, IssueType.ROUTING)
    assert hop_of(result, issue.hop_id).address == lab["r2"].addr()


def test_routing_loop_between_two_routers(lab: Lab):
    lab["r2"].run(["ip", "route", "replace", "198.18.4.0/24", "via", "198.18.2.1"])
    code, result = probe(lab, "--to", f"{lab['dst'].addr()}:8080", "--max-hops", "12")
    assert code == 1
    issue = the_issue(result, IssueType.ROUTING)
    assert "loop" in issue.message
    assert hop_of(result, issue.hop_id).address in (lab["r1"].addr(), lab["r2"].addr())


def test_missing_route_on_the_source(lab: Lab):
    lab["src"].run(["ip", "route", "del", "default"])
    code, result = probe(lab, "--to", "198.18.4.2:8080")
    issue = the_issue(result, IssueType.ROUTING)
    assert (issue.origin, issue.hop_id) == (Origin.LOCAL, "source")
    assert code == 1


@pytest.mark.parametrize("route_type", ["blackhole", "unreachable", "prohibit"])
def test_a_rejecting_route_on_the_source_is_named_with_its_prefix(lab: Lab, route_type: str):
    lab["src"].run(["ip", "route", "add", route_type, "198.18.4.0/24"])
    code, result = probe(lab, "--to", "198.18.4.2:8080")
    assert code == 1
    issue = the_issue(result, IssueType.ROUTING)
    assert (issue.origin, issue.hop_id) == (Origin.LOCAL, "source")
    assert f"a {route_type} route 198.18.4.0/24" in issue.message
    assert "no route" not in issue.message
    assert f"ip route del {route_type} 198.18.4.0/24" in issue.hint
    assert {(c.key, c.value) for c in issue.context} >= {("prefix", "198.18.4.0/24")}


@pytest.mark.parametrize(
    ("name", "outcome"), [("nope.lab.test", "NXDOMAIN"), ("www.broken.lab.test", "SERVFAIL")]
)
def test_dns_failures_are_named(lab: Lab, name: str, outcome: str):
    code, result = probe(lab, "--to", f"{name}:80")
    assert code == 1
    issue = the_issue(result, IssueType.DNS_RESOLUTION)
    assert outcome in issue.message
    assert issue.hop_id == "source"


def test_dead_nameserver_alone_times_out_and_beside_a_live_one_warns(lab: Lab):
    lab.start_tcp_server("dst", 8080)
    dead = lab.dead_nameserver
    only_dead = lab.resolv_conf(nameservers=[dead])
    cmd_base = [sys.executable, "-m", "hopscope_probe", "probe", "--netns", lab["src"].netns_path]
    done = subprocess.run(
        [*cmd_base, "--resolv-conf", only_dead, "--json", "--to", "dst.lab.test:8080",
         "--timeout", "1", "--no-path"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    result = ProbeResult.model_validate_json(done.stdout)
    assert "Timeout" in the_issue(result, IssueType.DNS_RESOLUTION).message
    both = lab.resolv_conf(nameservers=[dead, lab["dns"].addr()])
    done = subprocess.run(
        [*cmd_base, "--resolv-conf", both, "--json", "--to", "dst.lab.test:8080",
         "--timeout", "1", "--no-path"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    result = ProbeResult.model_validate_json(done.stdout)
    assert result.connection_status == ConnectionStatus.REACHABLE
    assert dead in the_issue(result, IssueType.DNS_RESOLUTION).message


def test_dns_protocol_check_through_the_lab_resolver(lab: Lab):
    code, result = probe(lab, "--to", "dst.lab.test", "--protocol", "dns")
    assert code == 0, result.issues
    assert lab["dst"].addr() in result.destination.addresses
    assert path_addresses(result)[-1] == lab["dns"].addr()


def test_a_dns_check_of_an_unknown_name_counts_its_nxdomain_answers(lab: Lab):
    code, result = probe(lab, "--to", "nope.lab.test", "--protocol", "dns")
    assert (code, result.connection_status) == (1, ConnectionStatus.UNREACHABLE)
    assert result.probes_failed == 0  # every query was answered...
    assert result.dns_answers == {"NXDOMAIN": result.probes_sent}  # ...and this is what with


def test_arp_failure_at_the_last_hop(lab: Lab):
    absent = lab.absent_address()
    code, result = probe(lab, "--to", absent, "--protocol", "icmp", "--timeout", "4")
    assert code == 1
    issue = the_issue(result, IssueType.NEIGHBOR_RESOLUTION)
    assert hop_of(result, issue.hop_id).address == lab["r3"].addr()


@pytest.mark.parametrize("v", [4, 6], ids=["arp", "ndp"])
@pytest.mark.parametrize("kernel_icmp_limits", [False, True], ids=["unlimited", "kernel-limits"])
def test_arp_failure_at_the_last_hop_with_default_flags(lab: Lab, kernel_icmp_limits: bool, v: int):
    """r3 answers host (v6: address) unreachable only when its ARP/NDP gives up (~3 s), after
    the 2 s timeout: the probe must still hear it, not call the silence a firewall. Under the
    kernel's ICMP rate limits r3 answers only a few of the probes it held."""
    if kernel_icmp_limits:
        lab.kernel_icmp_rate_limits(*lab.hosts)
    absent = lab.absent_address(v)
    code, result = probe(lab, "--to", f"{absent if v == 4 else f'[{absent}]'}:8080")
    assert (code, result.connection_status) == (1, ConnectionStatus.UNREACHABLE)
    issue = the_issue(result, IssueType.NEIGHBOR_RESOLUTION)
    assert hop_of(result, issue.hop_id).address == lab["r3"].addr(v)
    assert not issues_of(result, IssueType.FIREWALL)


def test_arp_failure_on_the_sources_own_segment(lab: Lab):
    code, result = probe(lab, "--to", "198.18.1.99", "--protocol", "icmp", "--timeout", "4")
    assert code == 1
    issue = the_issue(result, IssueType.NEIGHBOR_RESOLUTION)
    assert (issue.origin, issue.hop_id) == (Origin.LOCAL, "source")


def test_ecmp_reports_both_paths(ecmp_lab: Lab):
    lab = ecmp_lab
    lab.start_tcp_server("dst", 8080)
    code, result = probe(lab, "--to", f"{lab['dst'].addr()}:8080", "--multipath")
    assert code == 0, result.issues
    second = {h.address for h in result.hops if h.ttl == 2}
    assert second == {lab["r2"].addr(), lab["r2b"].addr()}
    r1 = next(h for h in result.hops if h.address == lab["r1"].addr())
    assert len(r1.next_hop_ids) == 2
    r3 = [h for h in result.hops if h.ttl == 3]
    assert len(r3) == 1, "both branches rejoin at r3 (reached through either r2 address)"


def test_ecmp_gives_figures_per_path_and_names_the_one_that_drops(ecmp_lab: Lab):
    lab = ecmp_lab
    lab.start_tcp_server("dst", 8080)
    lab.set_link_loss("r2b", "r3", 100)  # the branch through r2b loses everything
    code, result = probe(lab, "--to", f"{lab['dst'].addr()}:8080", "--multipath", "--timeout", "1")
    assert code == 1
    paths = {p.hop_ids[1]: p for p in result.paths}  # by their second hop, r2 or r2b
    assert len(paths) == len(result.paths) == 2
    working, broken = paths[f"h2-{lab['r2'].addr()}"], paths[f"h2-{lab['r2b'].addr()}"]
    assert working.hop_ids[-1] == f"h4-{lab['dst'].addr()}"
    assert working.probes_failed < working.probes_sent and working.latency is not None
    assert broken.hop_ids[-1] == "h3-*"
    assert broken.probes_failed == broken.probes_sent > 0 and broken.latency is None
    assert not set(working.flows) & set(broken.flows)
    named = [i for i in issues_of(result, IssueType.PACKET_LOSS) if i.hop_id == "h3-*"]
    assert named, [(i.type, i.message) for i in result.issues]
    assert f"> {lab['r2b'].addr()} > *) fails" in named[0].message


def test_loss_on_one_link_is_located_where_it_starts(lab: Lab):
    lab.start_tcp_server("dst", 8080)
    # Located as mtr reads it: the first hop whose loss every later hop shows, from 10 probes a
    # hop. At 50 % round-trip loss a hop shows none by chance once in 1,024 runs (at 30 %, once
    # in 35: that flaked).
    lab.set_link_loss("r2", "r3", 50)
    code, result = probe(
        lab, "--to", f"{lab['dst'].addr()}:8080", "--count", "20", "--timeout", "1",
        "--latency-threshold-ms", "1000",
    )  # fmt: skip
    assert code == 1
    assert result.connection_status == ConnectionStatus.DEGRADED
    issue = the_issue(result, IssueType.PACKET_LOSS)
    assert hop_of(result, issue.hop_id).address == lab["r3"].addr()


def test_high_latency_is_located_at_the_slow_link(lab: Lab):
    lab.start_tcp_server("dst", 8080)
    lab.set_link_delay("r2", "r3", 15.0)
    code, result = probe(lab, "--to", f"{lab['dst'].addr()}:8080", "--latency-threshold-ms", "20")
    assert result.connection_status == ConnectionStatus.DEGRADED
    issue = the_issue(result, IssueType.HIGH_LATENCY)
    assert hop_of(result, issue.hop_id).address == lab["r3"].addr()
    assert code == 1


def test_source_port_in_use(lab: Lab):
    lab.start_tcp_server("dst", 8080)
    lab.start_tcp_server("src", 40000)  # holds the port on the source
    code, result = probe(lab, "--to", f"{lab['dst'].addr()}:8080", "--source-port", "40000")
    assert code == 1
    issue = the_issue(result, IssueType.SOCKET_BIND)
    assert issue.hop_id == "source" and "EADDRINUSE" in " ".join(c.value for c in issue.context)


def test_http_wrong_status(lab: Lab):
    lab.start_http_server("dst", 8081, status=503)
    code, result = probe(lab, "--uri", "http://dst.lab.test:8081/healthz")
    assert code == 1
    issue = the_issue(result, IssueType.HTTP_STATUS)
    assert "503" in issue.message
    assert hop_of(result, issue.hop_id).address == lab["dst"].addr()
    assert result.http.status_code == 503


@pytest.mark.parametrize(
    ("kind", "problem"),
    [("expired", "Expired"), ("mismatch", "HostnameMismatch"), ("untrusted", "Untrusted")],
)
def test_tls_failures_are_named(lab: Lab, kind: str, problem: str):
    lab.start_http_server("dst", 8443, tls=kind)
    code, result = probe(
        lab, "--uri", "https://dst.lab.test:8443/", "--ca-file", lab.ca_file, "--no-path"
    )
    assert code == 1
    issue = the_issue(result, IssueType.TLS)
    assert problem in issue.message


def test_https_valid_certificate_is_reachable_with_phases(lab: Lab):
    lab.start_http_server("dst", 8443, tls="valid")
    code, result = probe(lab, "--uri", "https://dst.lab.test:8443/", "--ca-file", lab.ca_file)
    assert code == 0, result.issues
    assert result.http.status_code == 200
    assert result.http.timings.tls_ms > 0


def test_ipv6_healthy_path_and_silent_drop(lab: Lab):
    lab.start_tcp_server("dst", 8080)
    dst6 = lab["dst"].addr(6)
    code, result = probe(lab, "--to", f"[{dst6}]:8080")
    assert code == 0, result.issues
    assert path_addresses(result)[1:] == [*router_addrs(lab, 6), dst6]
    lab.iptables("dst", "-A", "INPUT", "-p", "tcp", "--dport", "8080", "-j", "DROP", v6=True)
    code, result = probe(lab, "--to", f"[{dst6}]:8080", "--timeout", "1")
    assert code == 1
    issue = the_issue(result, IssueType.FIREWALL)
    assert hop_of(result, issue.hop_id).ttl == 4


def test_icmp_echo_path(lab: Lab):
    code, result = probe(lab, "--to", lab["dst"].addr(), "--protocol", "icmp")
    assert code == 0, result.issues
    assert path_addresses(result)[-1] == lab["dst"].addr()


def _cgroup_v1(controller: str) -> Path:
    root = Path("/sys/fs/cgroup") / controller
    if not (root / "cgroup.procs").exists():
        pytest.skip(f"cgroup v1 {controller} controller not mounted at {root}")
    group = root / f"hopscope-test-{os.getpid()}"
    group.mkdir(exist_ok=True)
    return group


def _hog(lab: Lab, code: str) -> subprocess.Popen[bytes]:
    return lab["src"].spawn([sys.executable, "-c", code])


def test_memory_near_the_sources_limit(lab: Lab, tmp_path: Path):
    group, limit = _cgroup_v1("memory"), 64 * 2**20
    (group / "memory.limit_in_bytes").write_text(str(limit))
    # Memory is charged to the cgroup the process is in when it touches it (v1 does not move
    # charges with the process): the hog allocates only once it has joined, touching 1 MiB every
    # 20 ms (untouched zero pages are not charged) until the group's count says 93 % of the limit
    # (over the 0.9 usage threshold). The count is read here: the lab's namespaces have their own
    # /sys. So the interpreter's own pages cannot push it into an OOM kill, whatever the machine
    # (a fixed 60 MiB was killed on one CI machine).
    joined, enough, filled = tmp_path / "joined", tmp_path / "enough", tmp_path / "filled"
    hog = _hog(
        lab,
        f"import os, time\nwhile not os.path.exists({str(joined)!r}): time.sleep(0.01)\n"
        f"held = []\nwhile not os.path.exists({str(enough)!r}):\n"
        "    held.append(b'x' * (1 << 20))\n    time.sleep(0.02)\n"
        f"open({str(filled)!r}, 'w').close()\ntime.sleep(60)",
    )
    try:
        (group / "cgroup.procs").write_text(str(hog.pid))
        joined.touch()
        deadline = time.monotonic() + 20
        while not filled.exists() and hog.poll() is None and time.monotonic() < deadline:
            if int((group / "memory.usage_in_bytes").read_text()) >= 0.93 * limit:
                enough.touch()
            time.sleep(0.002)
        assert filled.exists(), f"the memory hog never filled its group (exit {hog.poll()})"
        _, result = _probe_pid(lab, hog.pid)
        issue = the_issue(result, IssueType.MEMORY)
        assert issue.origin == Origin.LOCAL and issue.hop_id == "source"
    finally:
        hog.send_signal(signal.SIGKILL)
        hog.wait()
        group.rmdir()


def test_cpu_throttled_source(lab: Lab):
    group = _cgroup_v1("cpu")
    hog = _hog(lab, "while True: pass")
    try:
        (group / "cpu.cfs_period_us").write_text("100000")
        (group / "cpu.cfs_quota_us").write_text("10000")
        (group / "cgroup.procs").write_text(str(hog.pid))
        time.sleep(0.5)
        _, result = _probe_pid(lab, hog.pid)
        issue = the_issue(result, IssueType.CPU)
        assert "cpuThrottledRatio" in issue.message
    finally:
        hog.send_signal(signal.SIGKILL)
        hog.wait()
        group.rmdir()


def _probe_pid(lab: Lab, pid: int) -> tuple[int, ProbeResult]:
    """Probe as the operator does for a pod source: by the process's PID."""
    lab.start_tcp_server("dst", 8080)
    target = ["--to", f"{lab['dst'].addr()}:8080", "--no-path"]
    cmd = [sys.executable, "-m", "hopscope_probe", "probe", "--pid", str(pid), "--json",
           "--resolv-conf", lab.resolv_conf(), *target]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=REPO)
    return done.returncode, ProbeResult.model_validate_json(done.stdout)
