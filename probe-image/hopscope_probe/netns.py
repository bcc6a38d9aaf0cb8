"""Entering the source's network namespace.

The operator's probe pod runs in the host's namespaces and enters a pod's network namespace by
PID (`/proc/PID/ns/net`); `ip netns` namespaces are entered by path. `setns` moves only the
calling thread, and threads started afterwards inherit it, so this runs before any worker thread.
"""

from __future__ import annotations

import ctypes
import errno
import os

CLONE_NEWNET = 0x40000000


class NamespaceError(Exception):
    """The namespace could not be entered; the message says which and why."""


def netns_path_of_pid(pid: int, proc: str = "/proc") -> str:
    return f"{proc}/{pid}/ns/net"


def resolv_conf_of_pid(pid: int, proc: str = "/proc") -> str:
    """The resolv.conf the process sees (its own mount namespace's root)."""
    return f"{proc}/{pid}/root/etc/resolv.conf"


def enter(path: str) -> None:
    """Move this thread into the network namespace at `path`."""
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NamespaceError(f"network namespace {path} does not exist") from None
    except OSError as exc:  # EACCES: another user's process, without root
        raise NamespaceError(f"cannot open {path}: {exc.strerror}") from exc
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            why = "needs CAP_SYS_ADMIN" if err == errno.EPERM else os.strerror(err)
            raise NamespaceError(f"cannot enter network namespace {path}: {why}")
    finally:
        os.close(fd)
