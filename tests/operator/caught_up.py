"""Waiting, over real HTTP, until the operator's watches have delivered what the fake did.

A watch lags its writes (as a real API server's does): a story over `KubeApi` that changes
the cluster and then ticks waits first, as the operator's next tick would come later. A
BOOKMARK sent now comes after every change made so far, so a cache that has seen one at the
current resourceVersion has seen them all. Not a timing assert: it waits, then fails naming
the watch that never caught up.
"""

from __future__ import annotations

import time

from hopscope_operator.controller.reconcile import Reconciler

from .fakeapi import FakeApi

PATIENCE_SECONDS = 20.0


def caught_up(reconciler: Reconciler, fake: FakeApi) -> None:
    deadline = time.monotonic() + PATIENCE_SECONDS
    for informer in reconciler.cache.informers():
        while True:
            fake.bookmark()  # again each round: a watch opened since has missed the last one
            wanted = int(fake.resource_version())
            informer.sync()
            if informer.version.isdigit() and int(informer.version) >= wanted:
                break
            assert time.monotonic() < deadline, f"the watch of {informer.resource.plural} lags"
            time.sleep(0.02)
