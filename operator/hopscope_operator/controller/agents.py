"""Checks from gateway and bastion workloads, run by their probe sidecar instead of a probe pod.

The tick must not wait for a probe, so calls run on a small thread pool and their results are
picked up by a later tick. Nothing here outlives the process: after a restart the checks that
were in flight are simply due again (their status was not written), so no run is lost.

The operator proves who it is with a token of its ServiceAccount for the called pod's audience
alone (TokenRequest), so a token sent to one pod is worth nothing at any other agent.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from hopscope_operator.cluster import ClusterApi
from hopscope_operator.controller.resolve import ResolvedSource
from hopscope_operator.controller.sidecar import (
    agent_address,
    agent_audience,
    agent_port,
    call_agent,
)
from hopscope_operator.names import NAME, NAMESPACE
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

log = logging.getLogger("hopscope.operator")

PARALLEL_CALLS = 8
TOKEN_SECONDS = 600  # the shortest life a TokenRequest may ask for

Caller = Callable[[str, int, str, ProbeRequest], ProbeResult]
Tokens = Callable[[str], str]  # audience -> token


class AgentTokens:
    """The operator's tokens for agent pods, one audience each, kept for half their life."""

    def __init__(self, api: ClusterApi, clock: Callable[[], float] = time.monotonic) -> None:
        self._api = api
        self._clock = clock
        self._kept: dict[str, tuple[str, float]] = {}  # audience -> (token, renew at)
        self._lock = threading.Lock()  # called from the runner's threads

    def __call__(self, audience: str) -> str:
        with self._lock:
            now = self._clock()
            self._kept = {aud: kept for aud, kept in self._kept.items() if kept[1] > now}
            if audience not in self._kept:
                token = self._api.request_token(NAMESPACE, NAME, audience, TOKEN_SECONDS)
                self._kept[audience] = (token, now + TOKEN_SECONDS / 2)
            return self._kept[audience][0]


@dataclass(frozen=True)
class AgentRun:
    check: str  # "<namespace>/<name>"
    generation: int
    uid: str | None  # the check's, so a check created again under its name is another
    source: ResolvedSource
    result: ProbeResult
    started: datetime  # when the tick submitted it: the schedule counts periods from it


class AgentRunner:
    def __init__(self, tokens: Tokens, call: Caller = call_agent) -> None:
        self._tokens = tokens
        self._call = call
        self._pool = ThreadPoolExecutor(PARALLEL_CALLS, thread_name_prefix="hopscope-agent")
        self._running: dict[str, Future[AgentRun]] = {}

    def in_flight(self) -> set[str]:
        return set(self._running)

    def submit(
        self,
        check: str,
        generation: int,
        uid: str | None,
        source: ResolvedSource,
        pod: dict,
        request: ProbeRequest,
        preferred: IPVersion,
        started: datetime,
    ) -> None:
        if check not in self._running:
            future = self._pool.submit(
                self._run, check, generation, uid, source, pod, request, preferred, started
            )
            self._running[check] = future

    def forget(self, check: str) -> None:
        """The check was deleted: its run's result, when it comes, is dropped."""
        self._running.pop(check, None)

    def finished(self) -> list[AgentRun]:
        """The runs that ended since the last call (each returned once)."""
        done = [key for key, future in self._running.items() if future.done()]
        return [self._running.pop(key).result() for key in done]

    def _run(
        self,
        check: str,
        generation: int,
        uid: str | None,
        source: ResolvedSource,
        pod: dict,
        request: ProbeRequest,
        preferred: IPVersion,
        started: datetime,
    ) -> AgentRun:
        ran = functools.partial(AgentRun, check, generation, uid, source, started=started)
        address = agent_address(pod, preferred)
        if address is None:
            return ran(
                _cannot_call(
                    request,
                    f"pod {source.pod_name} has no IP yet",
                    "The next run tries again once the pod has its address.",
                )
            )
        meta = pod["metadata"]
        try:
            token = self._tokens(agent_audience(meta["namespace"], meta["name"]))
        except Exception as exc:  # an API refusal, a network error, an odd answer: all said
            return ran(
                _cannot_call(
                    request,
                    f"no token for it: {exc!r}",
                    f"The operator asks for a token of its ServiceAccount ({NAMESPACE}/{NAME})"
                    " per agent pod: the chart's Role grants serviceaccounts/token for it.",
                )
            )
        try:
            return ran(self._call(address, agent_port(pod), token, request))
        except Exception as exc:  # a bug or an odd answer: this check's result, not a crash
            log.warning("the agent call for %s failed: %r", check, exc)
            return ran(
                _cannot_call(
                    request,
                    f"{type(exc).__name__}: {exc}",
                    "The next run tries again; the operator's log has the details.",
                )
            )


def _cannot_call(request: ProbeRequest, why: str, hint: str) -> ProbeResult:
    return unknown_result(
        request,
        Issue(
            type=IssueType.PROBE,
            severity=Severity.ERROR,
            origin=Origin.LOCAL,
            message=f"the operator cannot call the workload's hopscope agent: {why}",
            hint=hint,
            context=[ContextItem(key="cause", value="operator")],
        ),
    )
