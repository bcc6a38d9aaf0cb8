"""Fixtures for the network-lab tests, which are all skipped where the lab cannot be built."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from .lab import Lab


def _why_unusable() -> str | None:
    if os.geteuid() != 0:
        return "the network lab needs root (network namespaces, veths, iptables)"
    missing = [t for t in ("ip", "iptables", "ip6tables", "dnsmasq", "ping") if not shutil.which(t)]
    if missing:
        return f"the network lab needs {', '.join(missing)}: run scripts/bootstrap.sh"
    try:
        import netfilterqueue  # noqa: F401
    except ImportError as exc:
        return (
            f"the network lab's link delays need NetfilterQueue ({exc}): run scripts/bootstrap.sh"
        )
    name = f"hs{os.getpid()}-0-usable"  # the lab's naming, so a leftover is cleaned up later
    added = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if added.returncode:
        return f"`ip netns add` does not work here: {added.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    return None


@pytest.fixture(scope="session")
def lab_unusable_reason() -> str | None:
    return _why_unusable()


# Not pytest.skip(allow_module_level=True) at import: when pytest is pointed at this directory,
# conftest.py loads while pytest parses its config, and a skip there aborts the whole run.
@pytest.fixture(autouse=True)
def _skip_without_lab(lab_unusable_reason: str | None) -> None:
    if lab_unusable_reason:
        pytest.skip(lab_unusable_reason)


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab() as built:
        yield built


@pytest.fixture
def ecmp_lab() -> Iterator[Lab]:
    with Lab(ecmp=True) as built:
        yield built
