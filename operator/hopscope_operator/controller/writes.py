"""A tick's writes in flight together: each status write is an API round trip, and written one
after another the last of 10,000 results waited for the 9,999 before it (issue 15 §5).

`Writes` runs each submitted write (the request: a status PATCH and its Events, a pod DELETE)
on a pool of `IN_FLIGHT` threads, and what follows a write's answer (the caches, metrics, the
tick's report) on the tick's own thread, as answers come in or when the tick waits for them.
So the tick stays the one thread that reads and changes its state; only requests overlap.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("hopscope.operator")

# Requests in flight at once. Enough to hide the round trip (a PATCH is a few ms, more under
# load: one at a time, 10,000 results took tens of seconds) while staying well inside a
# client's fair share under the API server's Priority and Fairness (a workload-low flow gets
# tens of seats); the Python client sets no QPS limit of its own, so this is the one bound.
# Below kube.POOL_CONNECTIONS (128), beside the informers' watches: no connection is dropped.
IN_FLIGHT = 32


@dataclass
class _Write:
    key: str | None  # the check it writes; None for a write no later one waits on (a delete)
    then: Callable[[Any], None]  # on the tick's thread, with the request's answer
    failed: Callable[[Exception], None]  # on the tick's thread, when the request raised


class Writes:
    """One tick's writes over a shared pool; use as a context manager: leaving it waits for
    every write (and runs what follows each), so no write outlives its tick."""

    def __init__(self, pool: concurrent.futures.Executor, in_flight: int = IN_FLIGHT) -> None:
        self._pool = pool
        self._limit = in_flight
        self._pending: dict[concurrent.futures.Future[Any], _Write] = {}
        # Each answered write, as it is answered: taking one costs the same however many are
        # in flight (waiting on all of them each time cost more than the write's own CPU).
        self._answered: queue.SimpleQueue[concurrent.futures.Future[Any]] = queue.SimpleQueue()
        self._after: list[tuple[frozenset[str], Callable[[], None]]] = []

    def __enter__(self) -> Writes:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.finish()
        else:  # the tick failed (or its process died): no more follow-ups, but no stray write
            concurrent.futures.wait(self._pending)
            self._pending.clear()

    def submit(
        self,
        key: str | None,
        request: Callable[[], Any],
        then: Callable[[Any], None],
        failed: Callable[[Exception], None],
    ) -> None:
        """Send `request` once fewer than the limit are in flight (taking the answers that
        came in meanwhile)."""
        while len(self._pending) >= self._limit:
            self._take()
        future = self._pool.submit(request)
        self._pending[future] = _Write(key, then, failed)
        future.add_done_callback(self._answered.put)

    def wait_for(self, key: str) -> None:
        """Take the answers of the writes of `key` in flight: what follows reads its status as
        written (rare: a check in two probe pods)."""
        while any(write.key == key for write in self._pending.values()):
            self._take()

    def after(self, keys: Iterable[str], action: Callable[[], None]) -> None:
        """Run `action` (on the tick's thread) once no write of `keys` is in flight: a probe
        pod is deleted only after every result it carried is written, or none is lost."""
        self._after.append((frozenset(keys), action))
        self._run_ready()

    def finish(self) -> None:
        """Wait for every write and run what follows each."""
        while self._pending:
            self._take()
        self._run_ready()

    def _take(self) -> None:
        """Wait for the next answer, then take it and every one that came in meanwhile."""
        done = [self._answered.get()]
        while not self._answered.empty():
            done.append(self._answered.get_nowait())
        for future in done:
            write = self._pending.pop(future)
            try:
                answer = future.result()
            except Exception as exc:  # this write's alone: the others' answers are taken on
                write.failed(exc)
            else:
                write.then(answer)
        self._run_ready()

    def _run_ready(self) -> None:
        pending = {write.key for write in self._pending.values()}
        ready = [entry for entry in self._after if not entry[0] & pending]
        self._after = [entry for entry in self._after if entry[0] & pending]
        for _, action in ready:
            action()
