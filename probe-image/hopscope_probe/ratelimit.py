"""Token buckets for `hopscope agent`: how many token checks the agent makes, in all and for
one client address, so a flood of invented tokens cannot become a flood of TokenReviews.

A bucket holds up to `burst` tokens and gains `rate` per second; taking one that is not there
is a refusal. Buckets per peer are kept for the most recent `max_peers` addresses only, so
clients, however many, hold bounded memory (a forgotten peer starts again with a full bucket).

An address whose token was accepted is trusted for `trust_seconds` after: its token checks go
ahead of the shared rate. A good caller's token needs a review again whenever its cached answer
runs out or it renews the token (the operator does at half its life), and invented tokens from
enough addresses, each within its own budget, spend the shared rate all the time. Only a valid
token makes an address trusted, and a trusted address still spends its own refusal budget.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

TRUST_SECONDS = 3600.0  # an address is trusted this long after its last accepted token
MAX_TRUSTED = 64  # trusted addresses kept, the least recently accepted forgotten first


class TokenBucket:
    """`burst` at once, `rate` per second after that. Not thread-safe: its owner locks."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def available(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= 1

    def take(self, now: float) -> bool:
        """Takes one token when there is one."""
        if not self.available(now):
            return False
        self.tokens -= 1
        return True

    def drain(self, now: float) -> None:
        """Takes one token, into debt if need be (a refusal already happened)."""
        self._refill(now)
        self.tokens = max(self.tokens - 1, -self.burst)

    def wait(self, now: float) -> float:
        """Seconds until a token is there."""
        self._refill(now)
        return max(0.0, (1 - self.tokens) / self.rate) if self.rate > 0 else float("inf")


@dataclass(frozen=True)
class Limited:
    """Why a token check may not go ahead now."""

    why: str
    wait: float  # seconds until it may
    peer: bool  # the address's own budget (else the agent's, shared by all)


class AuthRate:
    """Which token checks may go ahead: at most `rate` per second in all (the API server's
    share) and, per client address, a budget only refused tokens spend. A caller whose tokens
    are good never spends its address's budget, and its address goes ahead of the shared rate
    (see the module's docstring); one sending invented tokens is told to wait once its address
    has had `peer_burst` refusals, without a review."""

    def __init__(
        self,
        rate: float = 20.0,
        burst: float = 20.0,
        peer_rate: float = 0.5,
        peer_burst: float = 5.0,
        max_peers: int = 4096,
        clock: Callable[[], float] = time.monotonic,
        trust_seconds: float = TRUST_SECONDS,
    ) -> None:
        self.clock = clock
        self.peer_rate, self.peer_burst, self.max_peers = peer_rate, peer_burst, max_peers
        self.trust_seconds = trust_seconds
        self._lock = threading.Lock()
        self._all = TokenBucket(rate, burst, clock())
        self._peers: OrderedDict[str, TokenBucket] = OrderedDict()
        self._trusted: OrderedDict[str, float] = OrderedDict()  # address -> trusted until

    def _peer(self, peer: str, now: float) -> TokenBucket:
        bucket = self._peers.get(peer)
        if bucket is None:
            bucket = self._peers[peer] = TokenBucket(self.peer_rate, self.peer_burst, now)
            while len(self._peers) > self.max_peers:
                self._peers.popitem(last=False)
        self._peers.move_to_end(peer)
        return bucket

    def refusal(self, peer: str) -> Limited | None:
        """Why a check for `peer` may not go ahead now, else None, having counted the check
        against the agent's rate."""
        with self._lock:
            now = self.clock()
            mine = self._peer(peer, now)
            if not mine.available(now):
                return Limited("too many refused tokens from this address", mine.wait(now), True)
            if self._is_trusted(peer, now):
                return None  # ahead of the shared rate
            if not self._all.take(now):
                return Limited("too many token checks at once", self._all.wait(now), False)
            return None

    def refused(self, peer: str) -> None:
        """A check for `peer` refused its token: that spends the address's budget."""
        with self._lock:
            now = self.clock()
            self._peer(peer, now).drain(now)

    def accepted(self, peer: str) -> None:
        """A token from `peer` was accepted: the address is trusted for a while."""
        with self._lock:
            self._trusted[peer] = self.clock() + self.trust_seconds
            self._trusted.move_to_end(peer)
            while len(self._trusted) > MAX_TRUSTED:
                self._trusted.popitem(last=False)

    def trusted(self, peer: str) -> bool:
        """Whether `peer`'s token checks go ahead of the shared rate now."""
        with self._lock:
            return self._is_trusted(peer, self.clock())

    def _is_trusted(self, peer: str, now: float) -> bool:
        until = self._trusted.get(peer)
        if until is not None and now >= until:
            del self._trusted[peer]
            return False
        return until is not None
