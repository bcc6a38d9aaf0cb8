"""The operator's served policy kinds (`hopscope_operator.policykinds.discover`), looked up
again now and then.

Discovery runs again every REDISCOVER (a CRD installed after the operator started) and at the
next read after a list of a kind answered 404 (its CRD was removed). A failed discovery keeps
what the last one found; with none found yet, it raises and the analysis says Unknown.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from hopscope_operator.cluster import ApiError, ClusterApi
from hopscope_operator.policykinds import PolicyKind, discover

REDISCOVER = timedelta(minutes=5)


class PolicyKinds:
    """The served policy kinds, discovered at first use and again every REDISCOVER."""

    def __init__(self, api: ClusterApi, clock: Callable[[], datetime]) -> None:
        self.api = api
        self.clock = clock
        self._found: tuple[PolicyKind, ...] | None = None
        self._due: datetime | None = None  # when to discover again

    def served(self) -> tuple[PolicyKind, ...]:
        """The kinds to read; an ApiError when discovery fails before anything was found."""
        now = self.clock()
        if self._found is None or self._due is None or now >= self._due:
            try:
                self._found = discover(self.api)
            except ApiError:
                if self._found is None:
                    raise
            self._due = now + REDISCOVER
        return self._found

    def gone(self) -> None:
        """A kind's list answered 404: its CRD was removed, discover again at the next read."""
        self._due = None
