"""Token buckets for `hopscope agent`: how many token checks the agent makes, in all and for
one client address, so a flood of invented tokens cannot become a flood of TokenReviews.

A bucket holds up to `burst` tokens and gains `rate` per second; taking one that is not there
is a refusal. Buckets per peer are kept for the most recent `max_peers` addresses only, so
clients, however many, hold bounded memory (a forgotten peer starts again with a full bucket).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


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
    are good never spends its address's budget; one sending invented tokens is told to wait
    once its address has had `peer_burst` refusals, without a review."""

    def __init__(
        self,
        rate: float = 20.0,
        burst: float = 20.0,
        peer_rate: float = 0.5,
        peer_burst: float = 5.0,
        max_peers: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.peer_rate, self.peer_burst, self.max_peers = peer_rate, peer_burst, max_peers
        self._lock = threading.Lock()
        self._all = TokenBucket(rate, burst, clock())
        self._peers: OrderedDict[str, TokenBucket] = OrderedDict()

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
            if not self._all.take(now):
                return Limited("too many token checks at once", self._all.wait(now), False)
            return None

    def refused(self, peer: str) -> None:
        """A check for `peer` refused its token: that spends the address's budget."""
        with self._lock:
            now = self.clock()
            self._peer(peer, now).drain(now)
