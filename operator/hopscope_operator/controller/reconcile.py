"""One reconcile tick: collect what probe pods delivered, then start the checks that are due.

A probe pod's results are taken as they come: a running pod's log is read each tick and each
result line written once (`_taken` reads that from the check's status, so a restart counts no
run twice); the pod is deleted once all are in, or collected whole when it ends.

`Reconciler.tick` reads as its phases: read the cluster, collect what finished (probe pods,
then agents), plan what is due, create its pods. What a status says is `status`'s; writing it
and its Events is `writer`'s; what a probe pod carries is `runs`'. A tick's result writes and
pod deletes are in flight together (`writes`), what follows each answer back on the tick's
thread; planning starts once all are answered, so it reads every status as written.

The tick keeps no state between calls that the cluster does not also hold: which checks are in
flight is read from the probe pods' annotations, what ran last from each check's status. An
operator killed at any moment and started again therefore loses no run (the pod is still there
and is collected), makes no duplicate pod (pod names are deterministic, a 409 means "adopt")
and leaves no orphan (a pod whose checks are all gone is deleted). The one thing kept in
memory is each planned run's resolved destination (too large for an annotation: a headless
Service's endpoints), so collect judges the result against what the probe was sent to; a run
planned by another process resolves its destination again when collected.

About 850 lines, over the ~500 the package aims at: the phases share one tick's views (the
API reads checks share), the in-flight records and the reconciler's writer, and split into
modules they would pass all of it around. The parts with a job of their own already left:
listing (`listing`), writing (`writer`), the bodies and statuses (`status`), the pod's contract
(`runs`). The collect side (`_take_pod` to `_analysis`) is the next to go if it grows.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hopscope_operator.analysis import analyse, destination_hop_id
from hopscope_operator.analysis import unknown as unknown_analysis
from hopscope_operator.api import Analysis, ConnectivityCheck
from hopscope_operator.cluster import PODS, ApiError, ClusterApi, Conflict, NotFound, Object
from hopscope_operator.controller import trim
from hopscope_operator.controller.agents import AgentRunner, AgentTokens
from hopscope_operator.controller.analysis_cache import Kind
from hopscope_operator.controller.cabundle import ca_pem
from hopscope_operator.controller.cache import ClusterCache, ReadYourWrites
from hopscope_operator.controller.collect import (
    Collected,
    Pending,
    Running,
    collect,
    finished_so_far,
    seconds_since_ended,
)
from hopscope_operator.controller.collect import pod_outcome as outcome_of
from hopscope_operator.controller.identify import behind_service, judged
from hopscope_operator.controller.listing import CheckLister
from hopscope_operator.controller.metrics import CheckLabels, Metrics
from hopscope_operator.controller.plan import (
    Batch,
    BatchItem,
    Caps,
    Planned,
    ProbePodSettings,
    PullPolicy,
    group_by_node,
    probe_pod,
)
from hopscope_operator.controller.policykinds import PolicyKinds
from hopscope_operator.controller.resolve import (
    ResolveError,
    pod_source,
    resolve_destination,
    resolve_source,
    to_probe_request,
)
from hopscope_operator.controller.runs import (
    RunId,
    checks_of,
    planned_at,
    planned_uids,
    read_batch,
    read_sources,
)
from hopscope_operator.controller.schedule import AT_ONCE, check_key, due, due_at, next_run
from hopscope_operator.controller.sidecar import SidecarMissing, find_sidecar_pod
from hopscope_operator.controller.snapshot import SnapshotReader
from hopscope_operator.controller.status import (
    PATH_CHANGED,
    next_status,
    running_status,
    starts_a_run,
    summary,
)
from hopscope_operator.controller.tenancy import Tenancy
from hopscope_operator.controller.view import ApiView
from hopscope_operator.controller.writer import Check, StatusWriter
from hopscope_operator.controller.writes import IN_FLIGHT, Writes
from hopscope_operator.names import DEFAULT_TICK_SECONDS, NAMESPACE, PROBE_IMAGE
from hopscope_operator.resolved import ResolvedDestination, ResolvedRun, ResolvedSource
from hopscope_probe.models import ProbeRequest

log = logging.getLogger("hopscope.operator")

# How long an ended probe pod's unreadable log (its node unreachable, say) is waited for.
LOG_PATIENCE = timedelta(minutes=2)


@dataclass(frozen=True)
class Settings:
    namespace: str = NAMESPACE  # where probe pods run (PodSecurity: privileged)
    image: str = PROBE_IMAGE
    pull_policy: PullPolicy = PullPolicy.IF_NOT_PRESENT  # the probe image's, in probe pods
    caps: Caps = field(default_factory=Caps)
    probe_pod: ProbePodSettings = field(default_factory=ProbePodSettings)
    watch_namespaces: tuple[str, ...] = ()  # the chart's watch.namespaces; () for all
    tick: timedelta = timedelta(seconds=DEFAULT_TICK_SECONDS)  # how often the tick runs
    tenancy: Tenancy = field(default_factory=Tenancy)  # what a check may reach beyond its namespace

    @property
    def watched(self) -> tuple[str, ...]:
        """The namespaces checks are run in and objects read from; () for all of them. The
        probe namespace is always among them: its pods are listed and watched."""
        if not self.watch_namespaces:
            return ()
        return tuple(sorted({*self.watch_namespaces, self.namespace}))


def _log_run(key: str, runs: int, collected: Collected) -> None:
    """The one INFO line of a finished run: which check, what it saw, how long, which run."""
    result = collected.result
    took = f"{result.duration_ms:.0f} ms" if result.duration_ms is not None else "unknown time"
    log.info(
        "check %s: %s (run %d, %s): %s",
        key,
        result.connection_status,
        runs,
        took,
        summary(result, collected.failure),
    )


class ProbePodRefused(ResolveError):
    """The API server would not create the probe pod; retried with backoff like the rest."""

    def __init__(self, node: str, namespace: str, error: ApiError) -> None:
        super().__init__(
            f"the API server refused the probe pod for node {node}: {error}. Check namespace"
            f" {namespace}: its PodSecurity level (probe pods need privileged), ResourceQuota"
            " and admission webhooks."
        )


class SidecarUnavailable(ResolveError):
    """A workload source without a Ready pod that runs the probe sidecar."""

    def __init__(self, missing: SidecarMissing) -> None:
        super().__init__(missing.message)
        self._reason = missing.reason

    @property
    def reason(self) -> str:
        return self._reason


@dataclass
class TickReport:
    collected: int = 0
    created: int = 0
    adopted: int = 0
    deferred: int = 0
    not_ready: int = 0
    orphans_deleted: int = 0
    refused: int = 0  # probe pods the API server would not create
    in_flight: int = 0


@dataclass
class Sent:
    """A probe pod's results sent among a tick's writes: their checks, and those whose write
    the API refused (the pod is then kept, for the next tick to write them again)."""

    checks: set[str] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)


@dataclass
class InFlight:
    """What is under way: the checks not to plan again, and the probe pods per node (their
    slots are taken)."""

    checks: set[str] = field(default_factory=set)
    pods_per_node: Counter[str] = field(default_factory=Counter)

    def hold(self, node: str, checks: set[str] | None = None) -> None:
        self.checks.update(checks or ())
        self.pods_per_node[node] += 1


class Reconciler:
    def __init__(
        self,
        api: ClusterApi,
        metrics: Metrics,
        settings: Settings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        agents: AgentRunner | None = None,
    ) -> None:
        # Every read of the tick is of the caches or through this: its writes keep them fresh.
        self.cache = ClusterCache(api, settings.watched, settings.namespace)
        api = self.api = ReadYourWrites(api, self.cache)
        self.metrics = metrics
        self.settings = settings
        self.clock = clock
        self.agents = agents or AgentRunner(AgentTokens(api))
        self.writer = StatusWriter(api, metrics, clock)
        # Where a tick's status writes and pod deletes run, IN_FLIGHT at once (`writes`).
        self._requests = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="hopscope-write")
        # Both renewed each tick: what checks share is read once per tick.
        self.policy_kinds = PolicyKinds(api, clock)  # discovered now and then, not each tick
        self._snapshots = SnapshotReader(self.cache.analysis, settings.watched)
        self.view = ApiView(api, self._snapshots, settings.watched)
        self._lister = CheckLister(self.cache, self.writer)
        # By run id: the destination each run in flight was planned for, so collect judges
        # its result against that one. Lost on a restart: collect then resolves again.
        self._destinations: dict[str, ResolvedDestination] = {}

    # ---- the tick -------------------------------------------------------------------------

    def tick(self) -> TickReport:
        now = self.clock()
        report = TickReport()
        checks, unlisted = self._read_cluster()
        with Writes(self._requests) as writes:  # planning reads the statuses as written
            flight = self._collect_finished(checks, unlisted, now, report, writes)
            self._collect_agents(checks, now, report, writes)
        flight.checks |= self.agents.in_flight()
        planned, resolved = self._plan_due(checks, flight, now, report)
        self._create_pods(planned.create, resolved, checks, now, report)
        self.metrics.set_pods_in_flight(report.in_flight)
        return report

    def warm(self) -> None:
        """While another replica leads: keep the caches this Reconciler's first tick reads
        listed, watched and parsed, so that the tick it runs once it leads writes its first
        status without listing and parsing every check first. Reads only: a follower writes
        nothing and exports no check series."""
        self._lister.warm()
        self.cache.probe_pods.sync()

    def _read_cluster(self) -> tuple[dict[str, Check], set[str]]:
        """The checks as listed now and the namespaces that could not be listed (see
        `CheckLister.list`), read through views renewed for this tick. What this process keeps of
        checks gone goes (each check's last result is exported again as collect reaches it)."""
        checks, unlisted = self._lister.list()
        self.cache.probe_pods.sync()
        undiscovered = self._discover_policy_kinds()
        unread = self.cache.analysis.sync()
        if self.cache.analysis.removed():  # a kind's CRD is gone: discover again next tick
            self.policy_kinds.gone()
        self._snapshots = SnapshotReader(
            self.cache.analysis, self.settings.watched, unread, undiscovered
        )
        self.view = ApiView(self.api, self._snapshots, self.settings.watched)
        self._destinations = {
            run_id: destination
            for run_id, destination in self._destinations.items()
            if _of_current_spec(run_id, checks)
        }
        for gone in self.metrics.checks() - checks.keys():
            if gone.partition("/")[0] not in unlisted:
                # Deleted unseen (a missed watch event, or a forget() racing this tick's
                # write): its series would otherwise stay, and keep an alert firing.
                self.metrics.forget(gone)
        return checks, unlisted

    def _discover_policy_kinds(self) -> str | None:
        """Gives each policy kind the cluster serves its caches (made on first sight, listed at
        the next sync); why discovery failed, when it has found nothing yet."""
        try:
            served = self.policy_kinds.served()
        except ApiError as exc:
            return str(exc) or type(exc).__name__
        for kind in served:
            self.cache.analysis.policy(Kind(kind.resource, trim.policy, namespaced=kind.namespaced))
        return None

    def _restore(self, keys: Iterable[str], checks: dict[str, Check]) -> None:
        """After a restart or a handover, export each check's last result again from its
        status (a no-op for a check this process has series of) before anything of this
        tick records it."""
        for key in keys:
            check = checks.get(key)
            if check is not None and not self.metrics.knows(key):
                self.metrics.restore(key, check.full())  # its last run's figures: parsed now

    def _collect_finished(
        self,
        checks: dict[str, Check],
        unlisted: set[str],
        now: datetime,
        report: TickReport,
        writes: Writes,
    ) -> InFlight:
        """Collect every probe pod that ended (writing `checks` as they are now), delete those
        nobody needs; what is still under way is returned. The checks' last results are
        exported again pod by pod, then the rest's: a new leader's first status write waits
        for its first pod's checks, not for every check's series (10,000 of them)."""
        flight = InFlight()
        for pod in self._probe_pods():
            try:
                self._restore(checks_of(pod), checks)
                self._take_pod(pod, checks, unlisted, now, report, flight, writes)
            except Exception as exc:  # one bad pod (its batch, annotations, log) fails its own
                self._unreadable_pod(pod, checks, now, exc)
        self._restore(list(checks), checks)
        report.in_flight = sum(flight.pods_per_node.values())
        return flight

    def _take_pod(
        self,
        pod: Object,
        checks: dict[str, Check],
        unlisted: set[str],
        now: datetime,
        report: TickReport,
        flight: InFlight,
        writes: Writes,
    ) -> None:
        node = pod["spec"]["nodeName"]
        if pod["metadata"].get("deletionTimestamp"):
            # Collected and deleted already (a pod on a dead node stays until the node
            # controller removes it), or evicted: no result to write, but its node's slot
            # stays taken, or a dead node would gather a new pod every run.
            flight.hold(node)
            return
        owners = checks_of(pod)
        if any(owner.partition("/")[0] in unlisted for owner in owners):
            # Its checks could not be listed: neither gone nor collectable. Left for a tick
            # that can see them, so no result is lost and no live pod deleted.
            flight.hold(node, owners)
            return
        live = _live_owners(pod, checks)
        if not live:
            self._delete_pod(pod)  # every check it ran for is gone
            report.orphans_deleted += 1
            return
        outcome = outcome_of(pod, now)
        if isinstance(outcome, Pending):
            flight.hold(node, live)
            return
        if isinstance(outcome, Running):
            self._take_running(pod, live, checks, now, report, flight, writes)
            return
        log_text = self._log(pod, now)
        if log_text is None:
            flight.hold(node, live)  # its log is read next tick: no result is lost
            return
        # Written, the checks are judged on their new status: due again if overdue.
        sent = self._write_results(pod, collect(pod, log_text, now), checks, now, report, writes)
        delete = functools.partial(self._delete_collected, pod, sent, now, flight, writes)
        writes.after(sent.checks, delete)
        if pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
            # It never ran: its node may be dead, and the pod stay Terminating there.
            flight.pods_per_node[node] += 1

    def _take_running(
        self,
        pod: Object,
        live: set[str],
        checks: dict[str, Check],
        now: datetime,
        report: TickReport,
        flight: InFlight,
        writes: Writes,
    ) -> None:
        """Write the results a running probe pod has printed so far, and delete it once every
        check's is in. Its node's slot stays taken while it runs; a check whose result is in
        is no longer in flight."""
        flight.pods_per_node[pod["spec"]["nodeName"]] += 1
        name = pod["metadata"]["name"]
        try:
            log_text = self.api.pod_log(pod["metadata"]["namespace"], name)
        except ApiError as exc:  # read again next tick, or once it ends
            log.debug("cannot read the log of running probe pod %s yet: %s", name, exc)
            flight.checks |= live
            return
        done = finished_so_far(pod, log_text)
        sent = self._write_results(pod, done, checks, now, report, writes)
        flight.checks |= live - {collected.check for collected in done}
        if len(done) == len(read_batch(pod).checks):
            # All in: the slot is free once the pod is gone.
            delete = functools.partial(self._delete_collected, pod, sent, now, flight, writes)
            writes.after(sent.checks, delete)

    def _unreadable_pod(
        self, pod: Object, checks: dict[str, Check], now: datetime, error: Exception
    ) -> None:
        """Said on each listed check the pod names (its checks annotation: its batch may be
        what cannot be read), then deleted: it would fail every tick, and hold its node."""
        name = pod.get("metadata", {}).get("name", "?")
        log.warning("probe pod %s cannot be collected: %s", name, error)
        for run_id in planned_uids(pod):
            with contextlib.suppress(ValueError):
                check = checks.get(RunId.parse(run_id).check)
                if check is not None:
                    self._restore([check.key], checks)
                    self.writer.failed(check, f"collecting probe pod {name}", error, now)
        try:
            self._delete_pod(pod)
        except Exception as exc:  # tried again next tick
            log.warning("probe pod %s not deleted: %s", name, exc)

    def _collect_agents(
        self, checks: dict[str, Check], now: datetime, report: TickReport, writes: Writes
    ) -> None:
        """Write the results the workloads' probe sidecars delivered since the last tick."""
        for run in self.agents.finished():
            collected = Collected(run.check, run.generation, run.result, uid=run.uid)
            destination = self._destinations.pop(collected.run.format(), None)
            writes.wait_for(run.check)  # its status as written, when a write of it is in flight
            check = checks.get(run.check)
            if check is None or not _describes(collected, check):
                continue  # deleted, or its spec changed mid-run
            # A refused write is said on the check: its agent runs it again when it is due.
            self._write_result(
                check, collected, run.source, destination, now, run.started, checks, report, writes,
                phase="writing its agent's result",
            )  # fmt: skip

    def _plan_due(
        self, checks: dict[str, Check], flight: InFlight, now: datetime, report: TickReport
    ) -> tuple[Planned, dict[str, ResolvedRun]]:
        """The probe pods to create for the checks that are due, within the caps, and what
        each run resolved to."""
        due_items, riders, resolved = self._due_items(checks, flight.checks, now, report)
        planned = group_by_node(
            due_items, self.settings.caps, flight.pods_per_node, frozenset(riders)
        )
        report.deferred = sum(item.id not in riders for item in planned.deferred)
        return planned, resolved

    def _create_pods(
        self,
        batches: list[Batch],
        resolved: dict[str, ResolvedRun],
        checks: dict[str, Check],
        now: datetime,
        report: TickReport,
    ) -> None:
        """Create one probe pod per batch; a refused one is said on each of its checks."""
        tick = int(now.timestamp())
        for batch in batches:
            try:
                pod = probe_pod(
                    batch.node,
                    list(batch.items),
                    image=self.settings.image,
                    namespace=self.settings.namespace,
                    tick=tick,
                    settings=self.settings.probe_pod,
                    pull_policy=self.settings.pull_policy,
                    sources={item.id: resolved[item.id].source for item in batch.items},
                    budget=self.settings.caps.check_budget_seconds,
                )
                self.api.create(PODS, self.settings.namespace, pod)
                report.created += 1
            except Conflict:
                report.adopted += 1  # made by a tick that crashed before it could say so
            except ApiError as exc:
                # PodSecurity, a quota or a webhook: said on each check, the other nodes go on.
                log.warning("probe pod for node %s refused: %s", batch.node, exc)
                report.refused += 1
                for item in batch.items:
                    refused = ProbePodRefused(batch.node, self.settings.namespace, exc)
                    self._not_ready(checks[item.check], refused, now)
                continue
            except Exception as exc:  # a bug building this pod: its checks say so, others go on
                for item in batch.items:
                    self.writer.failed(checks[item.check], "making its probe pod", exc, now)
                continue
            report.in_flight += 1
            self._destinations.update(
                (item.id, resolved[item.id].destination) for item in batch.items
            )

    def _due_items(
        self, checks: dict[str, Check], in_flight: set[str], now: datetime, report: TickReport
    ) -> tuple[list[tuple[str, BatchItem]], set[str], dict[str, ResolvedRun]]:
        """(node, item) for each check to run in a probe pod now, the ids of those among them
        that are not due yet (riders), and what each item resolved to. Workload sources go to their
        agent here; a check that cannot run says why."""
        # Checks due before the next tick ride along in a pod their node gets now, so the
        # checks of a node share its pod slot instead of taking turns at it (a slow one would
        # make the others late). Their next run counts from when they were due: not early twice.
        models = [c.model for c in checks.values()]
        now_due = {check_key(model) for model in due(models, now, in_flight)}
        due_items: list[tuple[str, BatchItem]] = []
        early: list[tuple[str, BatchItem]] = []
        resolved: dict[str, ResolvedRun] = {}
        for model in due(models, now + self.settings.tick, in_flight):
            check = checks[check_key(model)]
            on_time = check.key in now_due
            try:
                planned = self._plan_check(check, on_time, now, report)
            except Exception as exc:  # this check's alone: the others are planned on
                if on_time:
                    self.writer.failed(check, "planning the run", exc, now)
                    report.not_ready += 1
                continue
            if planned is not None:
                node, item, run = planned
                resolved[item.id] = run
                (due_items if on_time else early).append((node, item))
        nodes = {node for node, _ in due_items}
        due_items += [(node, item) for node, item in early if node in nodes]
        return due_items, {item.id for _, item in early}, resolved

    def _plan_check(
        self, check: Check, on_time: bool, now: datetime, report: TickReport
    ) -> tuple[str, BatchItem, ResolvedRun] | None:
        """One due check's run in a probe pod: (node, item, what it resolved to); None when it
        runs on an agent or cannot run (said on it)."""
        model = check.model
        try:
            self.settings.tenancy.permit(model)  # before anything is read for it
            source = resolve_source(model, self.view)
            destination = self._behind_service(model, source, resolve_destination(model, self.view))
            request = to_probe_request(model.spec, destination, ca_pem(model, self.view))
        except ResolveError as exc:
            if on_time:  # an early one is said when it is due
                self.writer.not_ready(check, exc, now)
                report.not_ready += 1
            return None
        if source.kind == "workload":
            if not on_time:
                return None
            if self._run_on_agent(check, request, destination, now):
                self._started(check, source, now)
            else:
                report.not_ready += 1
            return None
        if on_time:
            self._started(check, source, now)
        item = BatchItem(
            check=check.key,
            generation=int(model.metadata["generation"]),
            netns=source.netns,
            request=request,
            uid=model.metadata.get("uid"),
        )
        return source.node_name, item, ResolvedRun(source, destination)

    def _behind_service(
        self, model: ConnectivityCheck, source: ResolvedSource, destination: ResolvedDestination
    ) -> ResolvedDestination:
        """With the backends of the Service the destination names however spelled; a refused
        read leaves them out, never the run (the analysis says what it could not read)."""
        try:
            return behind_service(model, source, destination, self._snapshots, self.view)
        except (ApiError, ResolveError):
            return destination

    def forget(self, namespace: str, name: str) -> None:
        """A check was deleted: its series go, and so do pods that ran only for it."""
        key = f"{namespace}/{name}"
        self.metrics.forget(key)
        self.agents.forget(key)
        for pod in self._probe_pods():
            if checks_of(pod) <= {key}:
                self._delete_pod(pod)

    # ---- reading --------------------------------------------------------------------------

    def _probe_pods(self) -> list[Object]:
        """The probe pods as the cache holds them now (synced each tick, in `tick`)."""
        return self.cache.probe_pods.objects()

    # ---- writing --------------------------------------------------------------------------

    def _write_results(
        self,
        pod: Object,
        results: list[Collected],
        checks: dict[str, Check],
        now: datetime,
        report: TickReport,
        writes: Writes,
    ) -> Sent:
        """Send each of the pod's results not written yet. Whether a result was written is
        read from the check's status (`_taken`), so a running pod read every tick, a pod kept
        for a refused write, or one read by an operator that restarted, counts each run once."""
        sources = read_sources(pod)
        started = planned_at(pod) or now
        sent = Sent()
        for collected in results:
            writes.wait_for(collected.check)  # a check in two pods: judged on what was written
            check = checks.get(collected.check)
            if check is None or not _describes(collected, check):
                continue  # deleted, or its spec changed mid-run: the new spec is run instead
            if _taken(check, collected, started):
                continue  # taken while the pod ran
            destination = self._destinations.pop(collected.run.format(), None)
            source = sources.get(collected.run.format())
            if source is None:
                source = ResolvedSource("node", pod["spec"]["nodeName"], "unknown source")
            self._write_result(
                check, collected, source, destination, now, started, checks, report, writes, sent
            )
            sent.checks.add(check.key)
        return sent

    def _write_result(
        self,
        check: Check,
        collected: Collected,
        source: ResolvedSource,
        destination: ResolvedDestination | None,
        now: datetime,
        started: datetime,
        checks: dict[str, Check],
        report: TickReport,
        writes: Writes,
        sent: Sent | None = None,
        phase: str = "writing its result",
    ) -> None:
        """Send the run's status (and its Events) among the tick's writes; once written,
        `checks` holds the check as it is then and the report counts it. A write that fails
        is this check's alone (said on it): the other results are written on; one the API
        refused is noted in `sent`, whose pod then keeps the result for the next tick.
        `destination`: what the run was planned for; None when this process did not plan it."""
        model = check.model
        try:
            # The status as listed still says when this run was due: the next counts from it.
            was_due = due_at(model) or AT_ONCE
            status, events = next_status(
                check.full().status,  # the last run: its path fingerprint, its conditions
                collected.result,
                generation=collected.generation,
                now=now,
                started=started,
                next_run=next_run(model, started, was_due),
                source=source,
                analysis=self._analysis(model, source, destination, collected),
                failure=collected.failure,
            )
        except Exception as exc:
            self.writer.failed(check, phase, exc, now)
            return

        def request() -> Object | None:  # on a pool thread: requests only
            stored = self.writer.patch_status(check, status)
            if stored is not None:
                self.writer.post(model, events, now)
            return stored

        def written(stored: Object | None) -> None:  # on the tick's thread, as it was
            if stored is None:
                return
            _log_run(check.key, status.runs, collected)
            self.metrics.record(
                check.key,
                CheckLabels.of(model),
                collected.result,
                max_hops=model.spec.path.max_hops,
                path_changed=any(e.reason == PATH_CHANGED for e in events),
                thresholds=model.spec.thresholds,
            )
            meta = {**model.metadata, "resourceVersion": stored["metadata"]["resourceVersion"]}
            copied = model.model_copy(update={"status": status, "metadata": meta})
            updated = Check.of(copied, stored)
            self._lister.wrote(check, stored, updated)
            checks[check.key] = updated
            report.collected += 1

        def failed(exc: Exception) -> None:
            self.writer.failed(check, phase, exc, now)
            if sent is not None and isinstance(exc, ApiError):
                sent.refused.append(check.key)

        writes.submit(check.key, request, written, failed)

    def _not_ready(self, check: Check, error: ResolveError, now: datetime) -> None:
        """Say a check cannot run; a write the API refuses is this check's, not the tick's."""
        try:
            self.writer.not_ready(check, error, now)
        except Exception as exc:
            log.warning("check %s: its Ready=False not written: %s", check.key, exc)

    def _started(self, check: Check, source: ResolvedSource, now: datetime) -> None:
        """Say a run is under way when that is news (see `status.starts_a_run`); a refused
        probe pod says why next, over it."""
        model = check.model
        generation = int(model.metadata["generation"])
        if starts_a_run(model.status, generation):
            message = f"probing from {source.description}"
            running = running_status(check.full().status, message, now, generation)
            self.writer.patch_status(check, running)

    def _run_on_agent(
        self,
        check: Check,
        request: ProbeRequest,
        destination: ResolvedDestination,
        now: datetime,
    ) -> bool:
        """A workload source runs on its pods' probe sidecar; False when none can (the check
        then says why, and how to add it)."""
        model = check.model
        ref = model.spec.source.workload
        assert ref is not None
        namespace = ref.namespace or model.namespace
        named = f"{ref.kind} {namespace}/{ref.name}"
        workload = self.view.workload(ref.kind, namespace, ref.name) or {}
        pods = self.view.pods(namespace, workload.get("spec", {}).get("selector") or {})
        found = find_sidecar_pod(
            pods, kind=ref.kind, namespace=namespace, name=ref.name, image=self.settings.image
        )
        if isinstance(found, SidecarMissing):
            self.writer.not_ready(check, SidecarUnavailable(found), now)
            return False
        preferred = model.spec.preferred_ip_version
        described = f"the hopscope agent of pod {namespace}/{found['metadata']['name']} ({named})"
        source = pod_source("workload", found, preferred, described)
        generation = int(model.metadata["generation"])
        uid = check.model.metadata.get("uid")
        self.agents.submit(check.key, generation, uid, source, found, request, preferred, now)
        self._destinations[RunId(check.key, generation).format()] = destination
        return True

    # ---- static analysis --------------------------------------------------------------------

    def _analysis(
        self,
        model: ConnectivityCheck,
        source: ResolvedSource,
        planned: ResolvedDestination | None,
        collected: Collected,
    ) -> Analysis:
        """The static verdict beside the run's result, for the destination the run was planned
        for (resolved again only when this process did not plan it: a restart). Never raises
        (Unknown instead), so a refused read or a bug in the analysis cannot stop the tick."""
        result = collected.result
        try:
            destination = planned or resolve_destination(model, self.view)
            try:
                probed = result.destination.addresses
                destination = judged(model, source, destination, probed, self._snapshots)
            except ApiError as exc:  # a refused list: which object it names is unknown
                return unknown_analysis(f"could not tell what the destination names: {exc}")
            snapshot = self._snapshots.snapshot(model, source, destination)
            return analyse(
                model,
                source,
                destination,
                snapshot,
                destination_hop=destination_hop_id(result.hops),
            )
        except ResolveError as exc:
            return unknown_analysis(f"the destination no longer resolves: {exc}")
        except Exception as exc:
            log.exception("static analysis of %s failed", check_key(model))
            return unknown_analysis(f"{type(exc).__name__}: {exc}")

    def _log(self, pod: Object, now: datetime) -> str | None:
        """The probe's output. "" when there is none to read: collect() then says why from the
        pod's status. None when the API cannot give it now: the pod is collected next tick,
        unless its container ended so long ago that the log is not coming back."""
        ended = seconds_since_ended(pod, now)
        if ended is None:
            return ""  # no container ran
        name = pod["metadata"]["name"]
        try:
            return self.api.pod_log(pod["metadata"]["namespace"], name)
        except NotFound:
            return ""
        except ApiError as exc:
            if ended > LOG_PATIENCE.total_seconds():
                log.warning("giving up on the log of probe pod %s: %s", name, exc)
                return ""
            log.warning("cannot read the log of probe pod %s yet: %s", name, exc)
            return None

    def _delete_pod(self, pod: Object) -> None:
        with contextlib.suppress(NotFound):
            self.api.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])

    def _delete_collected(
        self, pod: Object, sent: Sent, now: datetime, flight: InFlight, writes: Writes
    ) -> None:
        """Delete a pod whose results are all written. One the API refused to write keeps
        the pod, so the next tick writes it again (`_taken` skips the others) and its check
        is not run anew meanwhile, for as long as an unreadable log is waited for: then the
        result is given up."""
        ended = seconds_since_ended(pod, now) or 0.0
        if sent.refused and ended <= LOG_PATIENCE.total_seconds():
            name = pod["metadata"]["name"]
            log.info("probe pod %s kept: the results of %s written again", name, sent.refused)
            flight.checks.update(sent.refused)
            return
        self._delete_later(pod, writes)

    def _delete_later(self, pod: Object, writes: Writes) -> None:
        """Delete a collected pod among the tick's writes. Refused, it stays: the next tick
        finds its results written (`_taken`) and deletes it again."""
        name = pod["metadata"]["name"]

        def refused(exc: Exception) -> None:
            log.warning("collected probe pod %s not deleted: %s", name, exc)

        writes.submit(None, lambda: self._delete_pod(pod), lambda _: None, refused)


# ---- helpers ------------------------------------------------------------------------------


def _live_owners(pod: Object, checks: dict[str, Check]) -> set[str]:
    """The listed checks the pod runs for. A check deleted and created again under its name
    is another check: its predecessor's pod neither runs it nor holds its result."""
    uids = planned_uids(pod)
    owners = set()
    for item in read_batch(pod).checks:
        key = RunId.parse(item.id).check
        if key in checks and _same_check(uids.get(item.id), checks[key]):
            owners.add(key)
    return owners


def _of_current_spec(run_id: str, checks: dict[str, Check]) -> bool:
    """Whether a run is of a listed check's current generation (else its record can go)."""
    run = RunId.parse(run_id)
    check = checks.get(run.check)
    return check is not None and check.model.metadata["generation"] == run.generation


def _describes(collected: Collected, check: Check) -> bool:
    """Whether a result is of this check's current spec (same object, same generation)."""
    return collected.generation == check.model.metadata["generation"] and _same_check(
        collected.uid, check
    )


def _taken(check: Check, collected: Collected, started: datetime) -> bool:
    """Whether the check's status already has this run's result (or a later run's): its
    generation, and a last run that started no earlier than this one (the pod's tick)."""
    status = check.model.status
    if status is None or status.observed_generation != collected.generation:
        return False
    return status.last_run_time is not None and status.last_run_time >= started


def _same_check(uid: str | None, check: Check) -> bool:
    """Whether a uid recorded when a run was planned is this check's (None: not recorded)."""
    return uid in (None, check.model.metadata.get("uid"))
