"""Delay every packet of one NFQUEUE by a fixed time: the lab's netem (this kernel has none).

Run inside a namespace whose egress rule sends packets to `--queue`. Packets are held with their
verdict pending and accepted once their deadline passes, so the receive loop never blocks and a
constant delay keeps them in order. Prints "ready" once the queue is bound: the rule must not be
added before that, or the kernel drops what it cannot queue.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import select
import signal
import time
from collections import deque

from netfilterqueue import COPY_META, NetfilterQueue, Packet

PR_SET_TIMERSLACK = 29
SPIN_S = 0.0003
MAX_HELD = 65536  # the kernel drops beyond this instead of queueing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queue", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, required=True)
    args = parser.parse_args()
    delay = args.delay_ms / 1000

    # The default 50 us timer slack would add to every delay; latency tests compare to 1 ms.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)
    # A busy machine (2 cores running the probe, servers and tests) must not add jitter to the
    # emulated link: release packets with real-time priority when allowed (root).
    with contextlib.suppress(PermissionError):
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))

    held: deque[tuple[float, Packet]] = deque()

    def hold(packet: Packet) -> None:
        held.append((time.monotonic() + delay, packet))

    # SIGTERM must wake the select below (PEP 475 would silently resume it): a self-pipe does.
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: None)

    queue = NetfilterQueue()
    # Metadata only: the verdict needs the packet id, not a copy of the payload.
    queue.bind(args.queue, hold, max_len=MAX_HELD, mode=COPY_META)
    fd = queue.get_fd()
    print("ready", flush=True)

    while True:
        # Wake a little early and spin to the deadline: a timed wake-up alone comes late by a
        # scheduler tick's worth, and that error would add up over every delayed link.
        timeout = max(0.0, held[0][0] - time.monotonic() - SPIN_S) if held else None
        readable, _, _ = select.select([fd, wake_read], [], [], timeout)
        if wake_read in readable:
            break
        if readable:
            queue.run(block=False)
        while held and held[0][0] - time.monotonic() < SPIN_S:
            while time.monotonic() < held[0][0]:
                pass
            held.popleft()[1].accept()

    # A replaced delay stops its old delayer; what it still holds goes on rather than being lost.
    while held:
        held.popleft()[1].accept()
    queue.unbind()


if __name__ == "__main__":
    main()
