"""Resolution as glibc does it, measured per nameserver, against real DNS servers on loopback.

The servers are small dnspython responders on 127.0.0.1-3 (one port for all, as resolv.conf
has no port), each answering per name: records, NODATA, NXDOMAIN, SERVFAIL, REFUSED, silence,
or a truncated UDP answer whose full form comes over TCP.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from hopscope_operator.controller.status import summary
from hopscope_probe.checks import dns as resolver
from hopscope_probe.diagnose import diagnose
from hopscope_probe.engine import dns_answers, dns_connection
from hopscope_probe.evidence import DnsEvidence, DnsOutcome, DnsQuery, Evidence
from hopscope_probe.models import DestinationInfo, ProbeRequest, ProbeResult, Protocol

# name -> a behaviour ("SERVFAIL", "REFUSED", "SILENT", "TRUNCATE:<type> <data>") or records by
# type; names not listed are NXDOMAIN, listed names lack the types not listed (NODATA).
Zone = dict[str, "str | dict[str, list[str]]"]
# Each silent server costs one timeout; short, but long enough for a responder thread on a
# loaded 2-core machine (0.4 s lost answers there while other test runs shared the cores).
TIMEOUT = 1.0
REQUEST = ProbeRequest(host="nope", protocol=Protocol.DNS)


class Server:
    """A DNS server on host:port (UDP and TCP) answering from a zone until closed."""

    def __init__(self, host: str, port: int, zone: Zone) -> None:
        self.zone = zone
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((host, port))
        self.tcp = socket.create_server((host, port))
        self.udp.settimeout(0.05)
        self.tcp.settimeout(0.05)
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=loop) for loop in (self._udp, self._tcp)]
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join()
        self.udp.close()
        self.tcp.close()

    def answer(self, wire: bytes, over_tcp: bool) -> bytes | None:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        name = question.name.to_text().rstrip(".")
        rdtype = dns.rdatatype.to_text(question.rdtype)
        response = dns.message.make_response(query)
        entry = self.zone.get(name)
        if entry == "SILENT":
            return None
        if entry in ("SERVFAIL", "REFUSED"):
            response.set_rcode(dns.rcode.from_text(entry))
        elif entry is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif isinstance(entry, str):  # TRUNCATE: the records only over TCP
            if over_tcp:
                kind, data = entry.removeprefix("TRUNCATE:").split(" ", 1)
                response.answer.append(dns.rrset.from_text(name + ".", 60, "IN", kind, data))
            else:
                response.flags |= dns.flags.TC
        elif rdtype in entry:
            response.answer.append(
                dns.rrset.from_text(name + ".", 60, "IN", rdtype, *entry[rdtype])
            )
        return response.to_wire()

    def _udp(self) -> None:
        while not self.stopped.is_set():
            try:
                wire, peer = self.udp.recvfrom(4096)
            except TimeoutError:
                continue
            answer = self.answer(wire, over_tcp=False)
            if answer is not None:
                self.udp.sendto(answer, peer)

    def _tcp(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.tcp.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                (length,) = struct.unpack("!H", conn.recv(2))
                answer = self.answer(conn.recv(length), over_tcp=True)
                if answer is not None:
                    conn.sendall(struct.pack("!H", len(answer)) + answer)


class Servers:
    """The test's DNS servers: all on one free port, as resolv.conf has no port."""

    def __init__(self, directory: Path) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.directory = directory
        self.started: list[Server] = []

    def start(self, host: str, zone: Zone) -> None:
        self.started.append(Server(host, self.port, zone))

    def conf(self, text: str) -> str:
        path = self.directory / "resolv.conf"
        path.write_text(text)
        return str(path)

    def resolve(self, name: str, conf: str, **options: Any) -> DnsEvidence:
        return resolver.resolve(name, timeout=TIMEOUT, resolv_conf=conf, port=self.port, **options)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    found = Servers(tmp_path)
    yield found
    for server in found.started:
        server.close()


def outcomes(queries: tuple[DnsQuery, ...], nameserver: str) -> list[tuple[str, str, str]]:
    return [(q.qname, q.rdtype, q.outcome) for q in queries if q.nameserver == nameserver]


# ---- resolv.conf and the search list ---------------------------------------------------------


def test_resolv_conf_keeps_what_glibc_uses():
    conf = resolver.parse_resolv_conf(
        "# written by the kubelet\n"
        "nameserver 10.96.0.10\n"
        "nameserver dns.example\n"  # not an address: glibc skips it
        "nameserver fe80::1%eth0\n"
        "domain old.example\n"
        "search ns1.svc.cluster.local svc.cluster.local. cluster.local\n"
        "nameserver 10.96.0.11\n"
        "nameserver 10.96.0.12\n"  # a fourth server: glibc never asks it
        "options timeout:1 ndots:5\n"
    )
    assert conf.nameservers == ("10.96.0.10", "fe80::1%eth0", "10.96.0.11")
    assert conf.search == ("ns1.svc.cluster.local", "svc.cluster.local", "cluster.local")
    assert conf.ndots == 5


def test_resolv_conf_defaults_and_limits():
    assert resolver.parse_resolv_conf("") == resolver.ResolvConf(("127.0.0.1",), (), 1)
    conf = resolver.parse_resolv_conf("search a.example\ndomain b.example\noptions ndots:40\n")
    assert conf.search == ("b.example",)  # the last of search/domain wins
    assert conf.ndots == 15


K8S = ["ns1.svc.cluster.local", "svc.cluster.local", "cluster.local"]


@pytest.mark.parametrize(
    ("name", "search", "ndots", "expected"),
    [
        ("web", K8S, 5, [*(f"web.{d}" for d in K8S), "web"]),
        ("api.example.com", K8S, 5, [*(f"api.example.com.{d}" for d in K8S), "api.example.com"]),
        (
            "api.example.com",
            ["corp.example"],
            1,
            ["api.example.com", "api.example.com.corp.example"],
        ),
        ("api.example.com.", K8S, 5, ["api.example.com"]),
        ("web", [], 1, ["web"]),
    ],
    ids=["single-label", "fewer-dots-than-ndots", "enough-dots", "absolute", "no-search-list"],
)
def test_candidate_names_follow_glibc_order(name, search, ndots, expected):
    assert resolver.candidates(name, search, ndots) == expected


# ---- queries against real servers -------------------------------------------------------------


def test_each_nameserver_walks_the_search_list_until_a_name_has_records(servers: Servers):
    servers.start(
        "127.0.0.1",
        {
            "web.a.test": "SERVFAIL",
            "web.b.test": {"TXT": ['"no addresses here"']},
            "web.c.test": {"A": ["198.18.0.10"], "AAAA": ["2001:db8::10"]},
        },
    )
    conf = servers.conf("nameserver 127.0.0.1\nsearch a.test b.test c.test d.test\n")
    found = servers.resolve("web", conf)
    # SERVFAIL and NODATA go on to the next name, as in glibc; the first name with records
    # ends the walk (d.test and the bare name are never asked).
    assert outcomes(found.queries, "127.0.0.1") == [
        ("web.a.test", "A", DnsOutcome.SERVFAIL),
        ("web.a.test", "AAAA", DnsOutcome.SERVFAIL),
        ("web.b.test", "A", DnsOutcome.NODATA),
        ("web.b.test", "AAAA", DnsOutcome.NODATA),
        ("web.c.test", "A", DnsOutcome.NOERROR),
        ("web.c.test", "AAAA", DnsOutcome.NOERROR),
    ]
    assert found.addresses == ("198.18.0.10", "2001:db8::10")
    assert all(q.rtt_ms is not None for q in found.queries)
    assert (found.search, found.ndots, found.resolv_conf) == (
        ("a.test", "b.test", "c.test", "d.test"),
        1,
        conf,
    )
    ipv6_first = servers.resolve("web.c.test", conf, rdtypes=("AAAA", "A"))
    assert ipv6_first.addresses == ("2001:db8::10", "198.18.0.10")


def test_every_nameserver_is_measured_at_once_and_the_first_answering_one_wins(servers: Servers):
    zone_one: Zone = {"web.lab.test": {"A": ["198.18.0.1"]}}
    zone_two: Zone = {"web.lab.test": {"A": ["198.18.0.2"]}}
    servers.start("127.0.0.1", {"web.lab.test": "SILENT"})
    servers.start("127.0.0.2", {"web.lab.test": "REFUSED"})
    servers.start("127.0.0.3", zone_one)
    conf = servers.conf(
        "nameserver 127.0.0.1\nnameserver 127.0.0.2\nnameserver 127.0.0.3\nsearch lab.test\n"
    )
    started = time.monotonic()
    found = servers.resolve("web", conf)
    elapsed = time.monotonic() - started
    # A dead nameserver costs one timeout, not one per name and type: all ran side by side.
    assert elapsed < 2 * TIMEOUT
    # Silence and REFUSED end that server's walk (glibc gives up on it too).
    assert outcomes(found.queries, "127.0.0.1") == [
        ("web.lab.test", "A", DnsOutcome.TIMEOUT),
        ("web.lab.test", "AAAA", DnsOutcome.TIMEOUT),
    ]
    assert outcomes(found.queries, "127.0.0.2") == [
        ("web.lab.test", "A", DnsOutcome.REFUSED),
        ("web.lab.test", "AAAA", DnsOutcome.REFUSED),
    ]
    assert found.addresses == ("198.18.0.1",)
    assert found.nameservers == ("127.0.0.1", "127.0.0.2", "127.0.0.3")

    servers.start("127.0.0.4", zone_two)
    both = servers.conf("nameserver 127.0.0.4\nnameserver 127.0.0.3\n")
    found = servers.resolve("web.lab.test", both)
    assert found.addresses == ("198.18.0.2",)  # resolv.conf order, not the fastest answer


def test_a_name_nobody_knows_is_nxdomain_for_every_candidate(servers: Servers):
    servers.start("127.0.0.1", {})
    conf = servers.conf("nameserver 127.0.0.1\nsearch lab.test\n")
    found = servers.resolve("nope", conf)
    assert [(q.qname, q.outcome) for q in found.queries] == [
        ("nope.lab.test", DnsOutcome.NXDOMAIN),
        ("nope.lab.test", DnsOutcome.NXDOMAIN),
        ("nope", DnsOutcome.NXDOMAIN),
        ("nope", DnsOutcome.NXDOMAIN),
    ]
    assert found.addresses == ()


def test_a_dns_check_that_gets_nxdomain_says_so_in_its_summary(servers: Servers):
    servers.start("127.0.0.1", {})
    found = servers.resolve("nope", servers.conf("nameserver 127.0.0.1\nsearch lab.test\n"))
    conn = dns_connection(found, "127.0.0.1")
    verdict = diagnose(REQUEST, Evidence(dns=found, connection=conn), [], [])
    result = ProbeResult(
        connection_status=verdict.status,
        protocol=Protocol.DNS,
        destination=DestinationInfo(host="nope"),
        probes_sent=verdict.probes_sent,
        probes_failed=verdict.probes_failed,
        issues=verdict.issues,
        dns_answers=dns_answers(found),
    )
    line = summary(result)
    assert line.startswith("Unreachable: 4/4 queries answered NXDOMAIN; DNSResolution")
    assert "probes answered" not in line


def test_a_truncated_answer_is_asked_again_over_tcp(servers: Servers):
    servers.start("127.0.0.1", {"big.lab.test": "TRUNCATE:A 198.18.0.7"})
    conf = servers.conf("nameserver 127.0.0.1\n")
    found = servers.resolve("big.lab.test", conf, rdtypes=("A",))
    assert [(q.outcome, q.addresses) for q in found.queries] == [
        (DnsOutcome.NOERROR, ("198.18.0.7",))
    ]
    assert "TCP" in found.queries[0].detail


def test_without_resolv_conf_the_local_nameserver_is_asked_as_glibc_does(
    servers: Servers, tmp_path: Path
):
    servers.start("127.0.0.1", {"web": {"A": ["198.18.0.9"]}})
    found = servers.resolve("web.", str(tmp_path / "missing"))
    assert found.nameservers == ("127.0.0.1",)
    assert found.addresses == ("198.18.0.9",)


def test_reverse_names_come_from_the_first_nameserver_with_an_answer(servers: Servers):
    ptr = {"10.0.18.198.in-addr.arpa": {"PTR": ["web.lab.test."]}}
    servers.start("127.0.0.1", {"10.0.18.198.in-addr.arpa": "SILENT"})
    servers.start("127.0.0.2", ptr)
    conf = servers.conf("nameserver 127.0.0.1\nnameserver 127.0.0.2\n")
    names = resolver.reverse(
        ["198.18.0.10", "198.18.0.11"], timeout=TIMEOUT, resolv_conf=conf, port=servers.port
    )
    assert names == {"198.18.0.10": "web.lab.test"}  # no name for .11: left out
    assert resolver.reverse([], timeout=TIMEOUT, resolv_conf=conf) == {}
