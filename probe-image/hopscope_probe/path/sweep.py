"""The path sweep: every TTL of every flow in flight at once, Paris-traceroute style.

A classic traceroute waits for each TTL in turn; here all probes leave within milliseconds and
the sweep ends as soon as every probe that can still be answered is, or one timeout after the
last probe left. A path of any length therefore costs about one round trip when healthy and one
timeout when something drops traffic.
"""

from __future__ import annotations

import errno as errnos
import ipaddress
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hopscope_probe.evidence import HopReply, PathEvidence, ReplyKind
from hopscope_probe.path.packets import Match, Probes, default_port
from hopscope_probe.path.transport import RawTransport, Transport

# Between rounds (one flow's TTL 1..max_hops): spreads the ICMP each router must send, so
# routers' ICMP rate limits (token buckets with a small burst) drop fewer answers.
PACING_S = 0.002
ENDS = (ReplyKind.REACHED, ReplyKind.UNREACHABLE)  # no TTL beyond these can tell more
# A Linux router answers host unreachable for a neighbour that does not answer ARP/NDP only when
# it gives up resolving it: mcast_solicit (3) solicitations retrans_time (1 s) apart, ~3 s after
# the first packet. A path that goes silent after a router is listened to this long (from the
# first probe) so that this late answer is seen; a silent drop pays the difference.
NEIGHBOUR_GIVE_UP_S = 3.5

Key = tuple[int, int, int]  # flow, ttl, attempt


@dataclass
class _Sweep:
    transport: Transport
    address: str
    protocol: str
    port: int | None
    max_hops: int
    probes_per_hop: int
    flows: int
    timeout: float
    source_port: int
    late_errors_until: float = 0.0  # seconds after the first probe; see NEIGHBOUR_GIVE_UP_S
    sizes: tuple[int, ...] = ()  # the MTU probe: one flow per packet size
    sent: dict[Key, int] = field(default_factory=dict)  # send time, ns
    answers: dict[Key, tuple[Match, int]] = field(default_factory=dict)  # match, receive time
    ends: dict[int, int] = field(default_factory=dict)  # flow: TTL at which its path ended
    errno: int | None = None
    detail: str = ""

    def run(self) -> None:
        probes = self._probes()
        if probes is None:
            return
        first_send = last_send = time.monotonic()
        for attempt in range(self.probes_per_hop):
            for flow in range(self.flows):
                for ttl in range(1, self.ends.get(flow, self.max_hops) + 1):
                    # Indices rise in send order: a TCP destination still holding an earlier
                    # SYN of this 4-tuple then finds the next one in window and answers it (RST)
                    # instead of dropping it as out of window.
                    index = attempt * self.max_hops + ttl - 1
                    try:
                        self.sent[(flow, ttl, attempt)] = self.transport.send(
                            probes.packet(flow, index, ttl), self.address
                        )
                    except OSError as exc:
                        # The source's own kernel refuses: every further probe would fare alike.
                        self._failed(exc, f"sending the TTL {ttl} probe to {self.address}")
                        break
                    last_send = time.monotonic()
                if self.errno is not None:
                    break
                self._collect(probes, time.monotonic() + PACING_S)
            if self.errno is not None:
                break
        if self.sent:
            self._collect(probes, last_send + self.timeout, until=self._done)
        if self.sent and self._silent_after_a_router():
            # Until every flow ended: a router rate-limiting its ICMP may not answer them all.
            self._collect(probes, first_send + self.late_errors_until, until=self._all_ended)

    def _probes(self) -> Probes | None:
        """The flows' probe factory, or None (and the errno) when the source has no way out."""
        try:
            source = self.transport.source_address(self.address)
            if self.protocol == "ICMP":
                idents = random.sample(range(1, 0x10000), self.flows)
            elif self.source_port and self.flows == 1:
                idents = [self.source_port]
            else:
                idents = self.transport.reserve_ports(source, self.flows)
        except OSError as exc:
            self._failed(exc, f"choosing the source address and port for {self.address}")
            return None
        return Probes(
            protocol=self.protocol,
            source=source,
            destination=self.address,
            port=self.port,
            idents=idents,
            count=self.max_hops * self.probes_per_hop,
            sizes=self.sizes,
        )

    def _collect(
        self, probes: Probes, deadline: float, until: Callable[[], bool] = lambda: False
    ) -> None:
        """Record replies until `deadline`, or until `until()` holds."""
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            for received in self.transport.receive(left):
                found = probes.match(received.message, received.sender, received.protocol)
                if found is not None:
                    self._record(found, received.time_ns)

    def _record(self, found: Match, received_ns: int) -> None:
        attempt, ttl_index = divmod(found.index, self.max_hops)
        key = (found.flow, ttl_index + 1, attempt)
        if key not in self.sent or key in self.answers:
            return  # never sent (beyond the path's end), or a duplicate
        self.answers[key] = (found, received_ns)
        if found.kind in ENDS:
            self.ends[found.flow] = min(key[1], self.ends.get(found.flow, key[1]))

    def _silent_after_a_router(self) -> bool:
        """Some flow reached neither the destination nor an unreachable, though a router on
        the way answered it: the silence may be that router still resolving the next hop."""
        passed_a_router = {
            flow
            for (flow, _ttl, _attempt), (found, _) in self.answers.items()
            if found.kind == ReplyKind.TIME_EXCEEDED
        }
        return any(flow not in self.ends for flow in passed_a_router)

    def _all_ended(self) -> bool:
        return len(self.ends) == self.flows

    def _done(self) -> bool:
        """Every flow's path has ended and every probe up to that end has been answered."""
        if len(self.ends) < self.flows:
            return False
        return all(key in self.answers for key in self.sent if key[1] <= self.ends[key[0]])

    def _failed(self, exc: OSError, doing: str) -> None:
        code = exc.errno or 0
        self.errno = exc.errno
        self.detail = f"{doing} failed: {errnos.errorcode.get(code, str(code))} "
        self.detail += f"({os.strerror(code)})"

    def replies(self) -> tuple[HopReply, ...]:
        """One per probe sent, sorted by (flow, ttl, attempt)."""
        replies = []
        for key in sorted(self.sent):
            flow, ttl, attempt = key
            answer = self.answers.get(key)
            if answer is None:
                replies.append(HopReply(flow=flow, ttl=ttl, attempt=attempt, sender=None))
                continue
            found, received_ns = answer
            # Clamped: on a veth the reply can be timestamped before sendto() has returned.
            rtt_ms = max(0, received_ns - self.sent[key]) / 1e6
            replies.append(
                HopReply(
                    flow=flow,
                    ttl=ttl,
                    attempt=attempt,
                    sender=found.sender,
                    rtt_ms=round(rtt_ms, 3),
                    kind=found.kind,
                    icmp=found.icmp,
                    quoted_ttl=found.quoted_ttl,
                )
            )
        return tuple(replies)


def discover(
    address: str,
    *,
    protocol: str,
    port: int | None,
    max_hops: int,
    probes_per_hop: int,
    flows: int,
    timeout: float,
    source_port: int = 0,
    late_errors_until: float = 0.0,
    sizes: tuple[int, ...] = (),
    transport: Transport | None = None,
) -> PathEvidence:
    """Trace the path(s) to `address` over `flows` flows (with `sizes`: one flow per size, its
    probes padded to that many bytes and never fragmented). A path that goes silent after a
    router is listened to until `late_errors_until` s after the first probe (when later than
    the timeout): pass NEIGHBOUR_GIVE_UP_S to see a router's failed neighbour resolution.

    Raises transport.PathUnavailable when raw sockets cannot be opened; a local send failure
    (EPERM from the source's own firewall, ENETUNREACH) is evidence: `local_errno`, `detail`.
    """
    own = transport is None
    if transport is None:
        version = ipaddress.ip_address(address).version
        family = socket.AF_INET6 if version == 6 else socket.AF_INET
        transport = RawTransport(family, protocol, mtu_probe=bool(sizes))
    sweep = _Sweep(
        transport,
        address,
        protocol,
        port,
        max_hops,
        probes_per_hop,
        flows,
        timeout,
        source_port,
        late_errors_until,
        sizes,
    )
    try:
        sweep.run()
    finally:
        if own:
            transport.close()
    return PathEvidence(
        destination=address,
        protocol=protocol,
        port=default_port(protocol, port),
        flows=flows,
        probes_per_hop=probes_per_hop,
        max_hops=max_hops,
        replies=sweep.replies(),
        local_errno=sweep.errno,
        detail=sweep.detail,
    )
