"""Only the leader reconciles: the tick, the clean-up of a deleted check and the check results
on /metrics follow the Lease.

Each term of leadership starts a fresh Reconciler, as a restarted operator would: it adopts the
probe pods in flight (their deterministic names and the batch in their env say which runs they
are) and re-exports each check's last result from its status, so a handover loses no run and
repeats none. A replica that loses the Lease drops its check series at once: only the leader
exports them, and dashboards and alerts never count a check twice.

A follower's ticks keep the next term's Reconciler warm (`Reconciler.warm`: its caches listed,
watched and parsed, nothing written), as controllers' caches run on every replica: at 10,000
checks listing and parsing them is most of a new leader's first tick, which the handover waits
for. That Reconciler is still fresh when its term starts: it has never written or planned.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from hopscope_operator.controller.leader import LeaseElector
from hopscope_operator.controller.metrics import Metrics
from hopscope_operator.controller.reconcile import Reconciler, TickReport

log = logging.getLogger("hopscope.operator")


class LeaderOnly:
    """The Reconciler's face to the handlers (`tick`, `forget`), acting only while leading."""

    def __init__(
        self, elector: LeaseElector, metrics: Metrics, reconciler: Callable[[], Reconciler]
    ) -> None:
        self.elector = elector
        self.metrics = metrics
        self._new_reconciler = reconciler
        self._reconciler: Reconciler | None = None
        self._next: Reconciler | None = None  # the next term's, warmed while following
        self._handing = threading.Lock()  # the next term's Reconciler: made once, taken once
        # Held by a step and by a tick: release() waits for the one in flight of each.
        self._electing = threading.Lock()
        self._ticking = threading.Lock()
        self._stopping = False
        metrics.set_leader(False)

    @property
    def leading(self) -> bool:
        return self._reconciler is not None

    def elect(self) -> bool:
        """One election step (blocking API calls); True when this replica just became leader,
        so the caller ticks at once rather than at the next period."""
        with self._electing:
            if self._stopping:
                return False
            was = self.leading
            leads = self.elector.step()
            if leads and not was:
                log.info("leading: this replica now runs the checks")
                with self._handing:
                    warmed, self._next = self._next, None
                self._reconciler = warmed or self._new_reconciler()
            elif was and not leads:
                log.warning("no longer leading: another replica runs the checks")
                self._end_term()
                self.metrics.clear_checks()
            self.metrics.set_leader(leads)
            return leads and not was

    def tick(self) -> TickReport | None:
        with self._ticking:
            reconciler = self._reconciler
            if reconciler is None:
                self._warm()
                return None
            if not self.elector.holds():
                return None
            report = reconciler.tick()
        if self._reconciler is not reconciler:  # the term ended during the tick
            self.metrics.clear_checks()
        return report

    def forget(self, namespace: str, name: str) -> None:
        """A deleted check: the leader removes its pods (deleted during a handover, they are
        the next leader's orphans, which its first tick deletes)."""
        if self._reconciler is not None:
            self._reconciler.forget(namespace, name)

    def _warm(self) -> None:
        """A follower's tick: the next term's caches catch up (made on the first one)."""
        with self._handing:
            if self._stopping or self._reconciler is not None:
                return
            if self._next is None:
                self._next = self._new_reconciler()
            warming = self._next
        try:
            warming.warm()
        except Exception as exc:  # a refused list: the leader's tick lists again if need be
            log.warning("following: the caches could not be read: %s", exc)

    def _end_term(self) -> None:
        """Drop the term's Reconciler and close its watches (the next term opens its own)."""
        if self._reconciler is not None:
            self._reconciler.cache.close()
        self._reconciler = None

    def release(self) -> None:
        """On shutdown: hand the Lease over now rather than after it expires, once a tick
        in flight has ended (so that the next leader never runs beside it)."""
        with self._electing:
            self._stopping = True  # a step in flight ends first; none acquires after it
        with self._ticking:
            self._end_term()
            with self._handing:
                if self._next is not None:
                    self._next.cache.close()
                self._next = None
        self.metrics.clear_checks()
        self.metrics.set_leader(False)
        self.elector.release()
