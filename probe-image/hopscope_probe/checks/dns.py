"""Name resolution as the source's libc does it, but measured per nameserver.

The stub resolver would stop at the first nameserver that answers; here every nameserver of
resolv.conf is asked on its own (at the same time), walking the search list as glibc does, so a
dead or lying nameserver shows up even when another one hides it. One DnsQuery is recorded per
question asked.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.reversename

from hopscope_probe import files
from hopscope_probe.evidence import DnsEvidence, DnsOutcome, DnsQuery

MAX_NAMESERVERS = 3  # glibc (MAXNS) and musl ignore the rest
MAX_NDOTS = 15  # glibc caps ndots here
DEFAULT_NAMESERVER = "127.0.0.1"  # glibc's choice when resolv.conf names none
# glibc goes on to the next search domain after these; any other outcome ends the walk.
TRY_NEXT_NAME = {DnsOutcome.NXDOMAIN, DnsOutcome.NODATA, DnsOutcome.SERVFAIL}
RCODES = {
    dns.rcode.NXDOMAIN: DnsOutcome.NXDOMAIN,
    dns.rcode.SERVFAIL: DnsOutcome.SERVFAIL,
    dns.rcode.REFUSED: DnsOutcome.REFUSED,
}


@dataclass(frozen=True)
class ResolvConf:
    nameservers: tuple[str, ...] = (DEFAULT_NAMESERVER,)
    search: tuple[str, ...] = ()
    ndots: int = 1


def parse_resolv_conf(text: str) -> ResolvConf:
    """The parts of resolv.conf(5) that decide which questions go to which servers."""
    nameservers: list[str] = []
    search: tuple[str, ...] = ()
    ndots = 1
    for line in text.splitlines():
        keyword, *values = line.split() or [""]
        if keyword == "nameserver" and values and _is_address(values[0]):
            nameservers.append(values[0])
        elif keyword in ("search", "domain"):  # the last of either wins
            search = tuple(value.rstrip(".") for value in values if value.rstrip("."))
        elif keyword == "options":
            for option in values:
                name, _, value = option.partition(":")
                if name == "ndots" and value.isdigit():
                    ndots = min(int(value), MAX_NDOTS)
    return ResolvConf(
        nameservers=tuple(nameservers[:MAX_NAMESERVERS]) or (DEFAULT_NAMESERVER,),
        search=search,
        ndots=ndots,
    )


def read_resolv_conf(path: str) -> ResolvConf:
    try:
        data = files.read_bounded(path, files.MAX_RESOLV_CONF)
    except OSError:  # missing, unreadable, or no regular file (a FIFO would block the probe)
        return ResolvConf()  # like glibc without the file: the local nameserver, no search
    # glibc reads bytes: a comment in Latin-1 must not stop the nameservers from being read.
    return parse_resolv_conf(data.decode("utf-8", errors="replace"))


def candidates(name: str, search: Sequence[str], ndots: int) -> list[str]:
    """The names glibc asks for `name`, in order (written without the root's trailing dot).

    A trailing dot makes the name absolute. With at least `ndots` dots the name is tried as
    written first, then with each search domain; with fewer, the search domains come first.
    """
    if name.endswith("."):
        return [name.rstrip(".")]
    expanded = [f"{name}.{domain}" for domain in search]
    return [name, *expanded] if name.count(".") >= ndots else [*expanded, name]


def resolve(
    name: str,
    *,
    rdtypes: Sequence[str] = ("A", "AAAA"),
    timeout: float,
    resolv_conf: str = "/etc/resolv.conf",
    port: int = 53,
) -> DnsEvidence:
    """Resolve `name` with every nameserver of `resolv_conf` at once; the addresses are those of
    the first nameserver (in file order) that found any, in `rdtypes` order."""
    conf = read_resolv_conf(resolv_conf)
    names = candidates(name, conf.search, conf.ndots)
    with ThreadPoolExecutor(max_workers=len(conf.nameservers)) as pool:
        walks = list(
            pool.map(lambda ns: _walk(ns, names, rdtypes, timeout, port), conf.nameservers)
        )
    answered = next((walk for walk in walks if any(q.addresses for q in walk)), [])
    addresses = [address for query in answered for address in query.addresses]
    return DnsEvidence(
        name=name,
        nameservers=conf.nameservers,
        search=conf.search,
        ndots=conf.ndots,
        queries=tuple(query for walk in walks for query in walk),
        addresses=tuple(dict.fromkeys(addresses)),
        resolv_conf=resolv_conf,
    )


def reverse(
    addresses: Sequence[str],
    *,
    timeout: float,
    resolv_conf: str = "/etc/resolv.conf",
    port: int = 53,
) -> dict[str, str]:
    """PTR names (without the trailing dot) of the addresses that have one, looked up at once."""
    if not addresses:
        return {}
    nameservers = read_resolv_conf(resolv_conf).nameservers
    with ThreadPoolExecutor(max_workers=min(len(addresses), 16)) as pool:
        names = pool.map(lambda a: _ptr(a, nameservers, timeout, port), addresses)
        return {address: name for address, name in zip(addresses, names, strict=True) if name}


def _walk(
    nameserver: str, names: list[str], rdtypes: Sequence[str], timeout: float, port: int
) -> list[DnsQuery]:
    """One nameserver's view: each candidate name in turn (all types at once, as glibc sends
    A and AAAA together) until one has records or the nameserver fails."""
    asked: list[DnsQuery] = []
    with ThreadPoolExecutor(max_workers=len(rdtypes)) as pool:
        for qname in names:
            futures = [pool.submit(query, nameserver, qname, t, timeout, port) for t in rdtypes]
            round_ = [future.result() for future in futures]
            asked += round_
            if any(q.addresses for q in round_):
                break
            if any(q.outcome not in TRY_NEXT_NAME for q in round_):
                break  # a timeout or a refusal: glibc gives up on this nameserver too
    return asked


def query(nameserver: str, qname: str, rdtype: str, timeout: float, port: int = 53) -> DnsQuery:
    """One question over UDP, retried over TCP when the answer is truncated."""
    try:
        message = dns.message.make_query(f"{qname}.", rdtype)
    except dns.exception.DNSException as exc:  # the name with a search domain is over 255 octets
        return DnsQuery(nameserver, qname, rdtype, DnsOutcome.ERROR, detail=str(exc))
    start = time.perf_counter()
    try:
        response, over_tcp = dns.query.udp_with_fallback(
            message, nameserver, timeout=timeout, port=port, ignore_unexpected=True
        )
    except dns.exception.Timeout:
        return DnsQuery(
            nameserver, qname, rdtype, DnsOutcome.TIMEOUT, detail=f"no answer in {timeout:g} s"
        )
    except (OSError, dns.exception.DNSException) as exc:
        return DnsQuery(nameserver, qname, rdtype, DnsOutcome.ERROR, detail=str(exc))
    rtt_ms = round((time.perf_counter() - start) * 1000, 3)
    detail = "truncated over UDP, asked again over TCP" if over_tcp else ""
    rcode = response.rcode()
    if rcode != dns.rcode.NOERROR:
        outcome = RCODES.get(rcode, DnsOutcome.OTHER_RCODE)
        return DnsQuery(
            nameserver, qname, rdtype, outcome, rtt_ms, detail=detail or dns.rcode.to_text(rcode)
        )
    wanted = dns.rdatatype.from_text(rdtype)
    found = tuple(
        rdata.to_text() for rrset in response.answer if rrset.rdtype == wanted for rdata in rrset
    )
    outcome = DnsOutcome.NOERROR if found else DnsOutcome.NODATA
    return DnsQuery(nameserver, qname, rdtype, outcome, rtt_ms, found, detail)


def _ptr(address: str, nameservers: Sequence[str], timeout: float, port: int) -> str | None:
    """The PTR name from the first nameserver that answers for sure (a name, or none exists);
    a nameserver that fails or is silent passes the question on."""
    qname = dns.reversename.from_address(address).to_text().rstrip(".")
    for nameserver in nameservers:
        answer = query(nameserver, qname, "PTR", timeout, port)
        if answer.addresses:
            return answer.addresses[0].rstrip(".")
        if answer.outcome in (DnsOutcome.NXDOMAIN, DnsOutcome.NODATA):
            return None
    return None


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.partition("%")[0])  # a link-local server may carry %zone
    except ValueError:
        return False
    return True
