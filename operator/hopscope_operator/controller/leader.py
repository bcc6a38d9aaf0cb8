"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics.

Each replica calls `step()` every RETRY period; the one holding the Lease renews it, the others
watch it. Expiry is judged by when *this* process last saw the record change, never by comparing
the holder's renewTime with the local clock (the replicas' clocks need not agree). Every write
is a create or a PUT with the resourceVersion last read, so of two replicas racing for an
expired Lease the API server lets exactly one win (the other gets a 409).

A killed leader stops renewing: the others take over LEASE_DURATION after they last saw it
renew, so within LEASE_DURATION + RETRY (12 s). A leader shutting down releases the Lease
(holder emptied) so that the next `step()` of another replica takes it at once.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hopscope_operator.cluster import LEASES, ClusterApi, Conflict, NotFound, Object
from hopscope_operator.names import LEASE

log = logging.getLogger("hopscope.operator")

LEASE_DURATION = timedelta(seconds=10)  # how long a silent holder is still trusted
RENEW_DEADLINE = timedelta(seconds=8)  # a leader that cannot renew for this long steps down
RETRY = timedelta(seconds=2)  # how often every replica calls step()
RELEASED_SECONDS = 1  # leaseDurationSeconds of a released Lease, as client-go writes it


def micro_time(at: datetime) -> str:
    """A MicroTime as the API server writes it: microseconds, UTC, Z."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def identity() -> str:
    """This process: the pod's name (its hostname) and a random suffix, so that a restarted
    container is a new holder rather than one that silently inherits the old one's term."""
    return f"{os.environ.get('HOSTNAME') or socket.gethostname()}_{secrets.token_hex(4)}"


class LeaseElector:
    def __init__(
        self,
        api: ClusterApi,
        namespace: str,
        holder: str,
        *,
        name: str = LEASE,
        duration: timedelta = LEASE_DURATION,
        renew_deadline: timedelta = RENEW_DEADLINE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.holder = holder
        self.name = name
        self.duration = duration
        self.renew_deadline = renew_deadline
        self.clock = clock
        self.leading = False
        self._observed: Object | None = None  # the Lease's spec when last seen changing
        self._observed_at = datetime.min.replace(tzinfo=UTC)  # by our clock
        self._renewed_at = datetime.min.replace(tzinfo=UTC)  # our last successful write

    def step(self) -> bool:
        """Acquire or renew the Lease, or watch it held by another; whether we lead now."""
        now = self.clock()
        try:
            self.leading = self._try(now)
        except Exception as exc:  # a refusal, a timeout, a dropped connection: not renewed
            # A leader keeps its term until it could not renew for renew_deadline, which ends
            # before any other replica may take over (duration after it last saw a renewal).
            if self.leading and now - self._renewed_at >= self.renew_deadline:
                log.warning("lost the lease %s: cannot renew it: %s", self.name, exc)
                self.leading = False
        return self.leading

    def holds(self) -> bool:
        """Whether this replica leads and renewed recently enough that none other can have
        taken over: what a tick checks before it starts (the steps may have stalled)."""
        return self.leading and self.clock() - self._renewed_at < self.renew_deadline

    def release(self) -> None:
        """On shutdown: empty the holder so another replica takes over at its next step."""
        if not self.leading:
            return
        self.leading = False
        try:
            lease = self.api.get(LEASES, self.namespace, self.name)
            spec = lease.get("spec", {})
            if spec.get("holderIdentity") != self.holder:
                return
            now = micro_time(self.clock())
            lease["spec"] = {
                **spec,
                "holderIdentity": "",
                "leaseDurationSeconds": RELEASED_SECONDS,
                "acquireTime": now,
                "renewTime": now,
            }
            self.api.replace(LEASES, self.namespace, self.name, lease)
        except Exception as exc:  # the others take over once the lease expires instead
            log.warning("could not release the lease %s: %s", self.name, exc)

    def _try(self, now: datetime) -> bool:
        try:
            lease = self.api.get(LEASES, self.namespace, self.name)
        except NotFound:
            return self._create(now)
        spec = lease.get("spec", {})
        if spec != self._observed:
            self._observed, self._observed_at = spec, now
        holder = spec.get("holderIdentity") or ""
        trusted = timedelta(seconds=spec.get("leaseDurationSeconds") or 0)
        if holder and holder != self.holder and now < self._observed_at + trusted:
            return False  # held, and renewed recently enough by what we have seen
        moved = holder != self.holder
        lease["spec"] = {
            **spec,
            "holderIdentity": self.holder,
            "leaseDurationSeconds": int(self.duration.total_seconds()),
            "renewTime": micro_time(now),
            **(
                {
                    "acquireTime": micro_time(now),
                    "leaseTransitions": spec.get("leaseTransitions", 0) + 1,
                }
                if moved
                else {}
            ),
        }
        try:
            written = self.api.replace(LEASES, self.namespace, self.name, lease)
        except Conflict:
            return False  # another replica wrote first: it leads, we watch
        if moved:
            log.info("acquired the lease %s as %s (was %r)", self.name, self.holder, holder)
        self._wrote(written, now)
        return True

    def _create(self, now: datetime) -> bool:
        body = {
            "apiVersion": LEASES.api_version,
            "kind": LEASES.kind,
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.holder,
                "leaseDurationSeconds": int(self.duration.total_seconds()),
                "acquireTime": micro_time(now),
                "renewTime": micro_time(now),
                "leaseTransitions": 0,
            },
        }
        try:
            created = self.api.create(LEASES, self.namespace, body)
        except Conflict:
            return False  # another replica created it first
        log.info("acquired the new lease %s as %s", self.name, self.holder)
        self._wrote(created, now)
        return True

    def _wrote(self, lease: Object, now: datetime) -> None:
        self._observed, self._observed_at = lease.get("spec", {}), now
        self._renewed_at = now
