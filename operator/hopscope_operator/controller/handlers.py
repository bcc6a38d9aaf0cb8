"""The kopf operator: thin handlers that wake the reconcile loop; the tick does the work.

Run with `hopscope-operator` (the image's entry point; locally it uses the kubeconfig). It
watches every namespace, or only those in HOPSCOPE_WATCH_NAMESPACES (comma-separated) and the
probe namespace. Only watch-event handlers are used, so kopf never patches the checks itself
(no finalizers, no progress annotations): the status belongs to the tick, which runs only on
the replica holding the Lease (controller/leading.py); every replica answers /healthz.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import socket
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import kopf
from prometheus_client import disable_created_metrics, start_http_server
from pydantic import TypeAdapter, ValidationError

from hopscope_operator.api import (
    GROUP,
    VERSION,
    ClusterConnectivityCheck,
    ConnectivityCheck,
    NamespaceName,
)
from hopscope_operator.controller.leader import RETRY, LeaseElector, identity
from hopscope_operator.controller.leading import LeaderOnly
from hopscope_operator.controller.metrics import Metrics, MetricsOptions
from hopscope_operator.controller.plan import Caps, ProbePodSettings, PullPolicy
from hopscope_operator.controller.reconcile import Reconciler, Settings
from hopscope_operator.controller.tenancy import Tenancy
from hopscope_operator.names import (
    DEFAULT_TICK_SECONDS,
    ENV_ALLOW_NODE_SOURCES,
    ENV_ALLOW_OTHER_NAMESPACE_SOURCES,
    ENV_ALLOW_UNSAFE_HTTP_METHODS,
    ENV_CHECK_BUDGET_SECONDS,
    ENV_HEALTH_PORT,
    ENV_MAX_CHECKS_PER_POD,
    ENV_MAX_PROBE_PODS,
    ENV_MAX_PROBE_PODS_PER_NODE,
    ENV_METRICS_PER_CHECK_COUNTERS,
    ENV_METRICS_PER_CHECK_HISTOGRAMS,
    ENV_METRICS_PER_HOP_SERIES,
    ENV_METRICS_PORT,
    ENV_PROBE_IMAGE,
    ENV_PROBE_IMAGE_PULL_POLICY,
    ENV_PROBE_NAMESPACE,
    ENV_PROBE_POD,
    ENV_TICK_SECONDS,
    ENV_WATCH_NAMESPACES,
    HEALTH_PORT,
    LABEL_APP,
    METRICS_PORT,
    NAME_PREFIX,
)

log = logging.getLogger("hopscope.operator")
ENDED = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Config:
    """The operator's environment, read once at start; a bad value stops it with its name."""

    settings: Settings
    metrics_port: int
    health_port: int
    metrics_options: MetricsOptions

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Config:
        env = dict(os.environ if env is None else env)
        caps = Caps(
            max_pods=_int(env, ENV_MAX_PROBE_PODS, Caps.max_pods),
            max_pods_per_node=_int(env, ENV_MAX_PROBE_PODS_PER_NODE, Caps.max_pods_per_node),
            max_checks_per_pod=_int(env, ENV_MAX_CHECKS_PER_POD, Caps.max_checks_per_pod),
            check_budget_seconds=_int(env, ENV_CHECK_BUDGET_SECONDS, Caps.check_budget_seconds),
        )
        settings = Settings(
            namespace=env.get(ENV_PROBE_NAMESPACE, Settings.namespace),
            image=env.get(ENV_PROBE_IMAGE, Settings.image),
            pull_policy=_pull_policy(env, ENV_PROBE_IMAGE_PULL_POLICY),
            caps=caps,
            probe_pod=_probe_pod(env.get(ENV_PROBE_POD)),
            watch_namespaces=_namespaces(env, ENV_WATCH_NAMESPACES),
            tick=timedelta(seconds=_int(env, ENV_TICK_SECONDS, DEFAULT_TICK_SECONDS)),
            tenancy=Tenancy(
                allow_node_sources=_flag(env, ENV_ALLOW_NODE_SOURCES),
                allow_other_namespace_sources=_flag(env, ENV_ALLOW_OTHER_NAMESPACE_SOURCES),
                allow_unsafe_http_methods=_flag(env, ENV_ALLOW_UNSAFE_HTTP_METHODS),
            ),
        )
        return cls(
            settings=settings,
            metrics_port=_int(env, ENV_METRICS_PORT, METRICS_PORT),
            health_port=_int(env, ENV_HEALTH_PORT, HEALTH_PORT),
            metrics_options=MetricsOptions(
                per_check_histograms=_flag(env, ENV_METRICS_PER_CHECK_HISTOGRAMS),
                per_hop_series=_flag(env, ENV_METRICS_PER_HOP_SERIES),
                per_check_counters=_flag(env, ENV_METRICS_PER_CHECK_COUNTERS),
            ),
        )

    def kopf_options(self) -> dict[str, Any]:
        """kopf.run's arguments: which namespaces to watch, where to answer liveness probes."""
        watched = self.settings.watched
        return {
            # No kopf peering: the Lease elects which replica ticks; the handlers only wake it.
            "standalone": True,
            "clusterwide": not watched,
            "namespaces": watched,
            "liveness_endpoint": f"http://0.0.0.0:{self.health_port}/healthz",
            # kopf's own guess calls getpass.getuser(), which fails for a uid with no passwd
            # entry (the image's 65532); the pod's hostname is its name in a cluster.
            "identity": f"hopscope-operator@{socket.gethostname()}",
        }


def _namespaces(env: dict[str, str], name: str) -> tuple[str, ...]:
    listed = tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())
    names = TypeAdapter(NamespaceName)
    for namespace in listed:
        try:
            names.validate_python(namespace)
        except ValidationError:
            raise kopf.PermanentError(f"{name}: {namespace!r} is not a namespace name") from None
    return listed


def _probe_pod(raw: str | None) -> ProbePodSettings:
    """JSON, or base64 of it (what the chart writes: a value that needs no YAML quoting)."""
    if not raw:
        return ProbePodSettings()
    try:
        text = raw if raw.lstrip().startswith("{") else base64.b64decode(raw).decode()
        return ProbePodSettings.model_validate_json(text)
    except (ValueError, ValidationError) as exc:
        raise kopf.PermanentError(f"{ENV_PROBE_POD}: {exc}") from exc


def _pull_policy(env: dict[str, str], name: str) -> PullPolicy:
    raw = env.get(name) or Settings.pull_policy
    try:
        return PullPolicy(raw)
    except ValueError:
        allowed = ", ".join(PullPolicy)
        raise kopf.PermanentError(f"{name}={raw!r}: expected one of {allowed}") from None


def _flag(env: dict[str, str], name: str) -> bool:
    """A switch, off unless set to true; a typo stops the operator rather than silently
    keeping (or granting) a tenant's reach, or a series someone's query reads."""
    raw = env.get(name, "false").strip().lower()
    if raw not in ("true", "false"):
        raise kopf.PermanentError(f"{name}={env[name]!r}: expected true or false")
    return raw == "true"


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise kopf.PermanentError(f"{name}={raw!r}: expected a positive integer")
    return int(raw)


async def run_election(leader: LeaderOnly, wake: asyncio.Event, every: float) -> None:
    """Every `every` seconds: acquire, renew or watch the Lease; a new leader ticks at once."""
    while True:
        try:
            if await asyncio.to_thread(leader.elect):
                wake.set()
        except Exception:  # the elector handles API refusals; anything else must not end it
            log.exception("election step failed")
        await asyncio.sleep(every)


async def run_ticks(reconciler: LeaderOnly | Reconciler, wake: asyncio.Event, every: float) -> None:
    """Tick every `every` seconds, or at once when a handler wakes the loop."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=every)
        wake.clear()
        try:
            report = await asyncio.to_thread(reconciler.tick)
            log.debug("tick: %s", report)
        except Exception:  # an API outage must not end the loop: the next tick retries
            log.exception("tick failed")


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    from hopscope_operator.kube import KubeApi  # imported here: loading credentials is I/O

    config = Config.from_env()
    settings.posting.level = logging.WARNING
    disable_created_metrics()
    metrics = Metrics(config.metrics_options)
    start_http_server(config.metrics_port, registry=metrics.registry)
    api = KubeApi()
    elector = LeaseElector(api, config.settings.namespace, identity())
    memo.reconciler = LeaderOnly(
        elector, metrics, lambda: Reconciler(api, metrics, config.settings)
    )
    memo.wake = asyncio.Event()
    memo.election = asyncio.create_task(
        run_election(memo.reconciler, memo.wake, RETRY.total_seconds())
    )
    memo.loop = asyncio.create_task(
        run_ticks(memo.reconciler, memo.wake, config.settings.tick.total_seconds())
    )


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    memo.election.cancel()
    memo.loop.cancel()
    # A tick still running in its thread finishes first; the other replica then takes the
    # released Lease at its next step.
    await asyncio.to_thread(memo.reconciler.release)


# Handlers are coroutines: kopf runs plain functions in worker threads, and asyncio.Event is
# not thread-safe (a set() from a thread need not wake the loop until its next timeout).


@kopf.on.event(GROUP, VERSION, ConnectivityCheck.plural)
async def check_changed(event: dict[str, Any], memo: kopf.Memo, **_: Any) -> None:
    meta = event["object"]["metadata"]
    if event["type"] == "DELETED":
        # API calls block: off the loop, like the tick. A ClusterConnectivityCheck's key has
        # an empty namespace.
        namespace = meta.get("namespace", "")
        await asyncio.to_thread(memo.reconciler.forget, namespace, meta["name"])
    elif _spec_moved(event["object"]):
        memo.wake.set()  # a new or changed spec runs now, not at the next tick


def watch_cluster_checks() -> None:
    """Handle ClusterConnectivityChecks as ConnectivityChecks. Registered by a cluster-wide
    operator only: a namespaced install may not watch them, and kopf would retry the refused
    watch for ever (kopf serves a cluster-scoped kind cluster-wide whatever its namespaces)."""
    kopf.on.event(GROUP, VERSION, ClusterConnectivityCheck.plural)(check_changed)


@kopf.on.event("v1", "pods", labels={LABEL_APP: NAME_PREFIX})
async def probe_pod_changed(event: dict[str, Any], memo: kopf.Memo, **_: Any) -> None:
    if event["object"].get("status", {}).get("phase") in ENDED:
        memo.wake.set()  # collect the result now: status follows completion within a tick


def _spec_moved(obj: dict[str, Any]) -> bool:
    observed = obj.get("status", {}).get("observedGeneration")
    return observed != obj["metadata"].get("generation")


def main() -> None:
    """The `hopscope-operator` command: kopf with this module's handlers."""
    try:
        config = Config.from_env()
    except kopf.PermanentError as exc:
        sys.exit(f"hopscope-operator: {exc}")
    configure_logging()
    if not config.settings.watched:
        watch_cluster_checks()
    kopf.run(**config.kopf_options())


# aiohttp serves kopf's liveness endpoint and logs every request at INFO: one line per kubelet
# probe would bury the one line per run. (prometheus_client's server logs none.)
QUIET_LOGGERS = ("aiohttp.access",)


def configure_logging() -> None:
    """kopf's INFO logging, without a line per health probe."""
    kopf.configure(verbose=False)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
