"""Checks from gateway and bastion workloads, run by their probe sidecar instead of a probe pod.

The tick must not wait for a probe, so calls run on a small thread pool and their results are
picked up by a later tick. Nothing here outlives the process: after a restart the checks that
were in flight are simply due again (their status was not written), so no run is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from hopscope_operator.install import TOKEN_PATH
from hopscope_operator.resolve import ResolvedSource
from hopscope_operator.sidecar import agent_address, agent_port, call_agent
from hopscope_probe.models import (
    ContextItem,
    IPVersion,
    Issue,
    IssueType,
    Origin,
    ProbeRequest,
    ProbeResult,
    Severity,
)
from hopscope_probe.target import unknown_result

PARALLEL_CALLS = 8

Caller = Callable[[str, int, str, ProbeRequest], ProbeResult]


@dataclass(frozen=True)
class AgentRun:
    check: str  # "<namespace>/<name>"
    generation: int
    source: ResolvedSource
    result: ProbeResult


class AgentRunner:
    def __init__(self, token_path: str = TOKEN_PATH, call: Caller = call_agent) -> None:
        self._token_path = Path(token_path)
        self._call = call
        self._pool = ThreadPoolExecutor(PARALLEL_CALLS, thread_name_prefix="hopscope-agent")
        self._running: dict[str, Future[AgentRun]] = {}

    def in_flight(self) -> set[str]:
        return set(self._running)

    def submit(
        self,
        check: str,
        generation: int,
        source: ResolvedSource,
        pod: dict,
        request: ProbeRequest,
        preferred: IPVersion,
    ) -> None:
        if check not in self._running:
            future = self._pool.submit(
                self._run, check, generation, source, pod, request, preferred
            )
            self._running[check] = future

    def finished(self) -> list[AgentRun]:
        """The runs that ended since the last call (each returned once)."""
        done = [key for key, future in self._running.items() if future.done()]
        return [self._running.pop(key).result() for key in done]

    def _run(
        self,
        check: str,
        generation: int,
        source: ResolvedSource,
        pod: dict,
        request: ProbeRequest,
        preferred: IPVersion,
    ) -> AgentRun:
        address = agent_address(pod, preferred)
        try:
            token = self._token_path.read_text().strip()
        except OSError as exc:
            return AgentRun(check, generation, source, _cannot_call(request, f"no token: {exc}"))
        if address is None:
            result = _cannot_call(request, f"pod {source.pod_name} has no IP yet")
        else:
            result = self._call(address, agent_port(pod), token, request)
        return AgentRun(check, generation, source, result)


def _cannot_call(request: ProbeRequest, why: str) -> ProbeResult:
    return unknown_result(
        request,
        Issue(
            type=IssueType.PROBE,
            severity=Severity.ERROR,
            origin=Origin.LOCAL,
            message=f"the operator cannot call the workload's hopscope agent: {why}",
            hint="The operator authenticates to agents with its projected ServiceAccount token "
            f"at {TOKEN_PATH} (audience hopscope-agent): run it from the chart's Deployment.",
            context=[ContextItem(key="cause", value="operator")],
        ),
    )
