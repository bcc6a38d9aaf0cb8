"""The checks each tick, read from their watch-fed caches: parsed into the API model once per
resourceVersion.

A check the model refuses (stored before the CRD had a rule, or written around validation) is
said on the object, once per spec, and left out; one bad check must not stop the others. In a
namespaced install a namespace whose list or watch is refused is reported, not fatal. The
cluster-scoped ClusterConnectivityChecks are listed only by a cluster-wide install: a namespaced
one is granted no cluster-wide power.

`warm` is the same read for a replica that follows: its caches list, watch and parse, but it
writes nothing (a bad check is said by the leader), so that the tick it runs once it leads
starts from warm caches instead of listing and parsing every check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from pydantic import ValidationError

from hopscope_operator.api import ClusterConnectivityCheck, ConnectivityCheck
from hopscope_operator.cluster import CLUSTER_CHECKS, ApiError, NotFound, Object
from hopscope_operator.controller.cache import ClusterCache
from hopscope_operator.controller.shared import SHARED_PARTS, SharedParts
from hopscope_operator.controller.writer import Check, StatusWriter

log = logging.getLogger("hopscope.operator")


class CheckLister:
    def __init__(self, cache: ClusterCache, writer: StatusWriter) -> None:
        self._cache = cache
        self._writer = writer
        self._parsed: dict[tuple[str, str], Check] = {}  # by (uid, resourceVersion)
        self._said_no_cluster_crd = False
        self._shared = SharedParts()

    def list(self) -> tuple[dict[str, Check], set[str]]:
        """The checks by key, and the watched namespaces whose checks could not be listed: in
        a namespaced install one refused list or watch (its RoleBinding deleted, say) must not
        stop the other namespaces. Cluster-wide, a refused one ends the tick (it is retried)."""
        return self._read(self._writer.invalid)

    def wrote(self, was: Check, stored: Object, check: Check) -> None:
        """A status this process wrote over `was`: `check`, the model it built for it, stands
        for the stored version, so the next tick does not parse every check whose result it
        wrote (a whole tick's checks, each run). Only while the spec is the model's (same uid
        and generation); any other change is parsed from the cache. The model it replaces
        goes now, not at the next tick: a tick that writes every check holds one model each."""
        meta, had = stored["metadata"], check.model.metadata
        self._parsed.pop((was.model.metadata.get("uid"), was.resource_version), None)
        if (meta.get("uid"), meta.get("generation")) == (had.get("uid"), had.get("generation")):
            self._parsed[(meta["uid"], meta["resourceVersion"])] = check

    def warm(self) -> None:
        """Sync the caches and parse what changed, writing nothing: a follower's read."""
        self._read(lambda body, error: None)

    def _read(
        self, invalid: Callable[[Object, ValidationError], None]
    ) -> tuple[dict[str, Check], set[str]]:
        checks: dict[str, Check] = {}
        parsed: dict[tuple[str, str], Check] = {}
        unlisted: set[str] = set()
        listed: list[Object] = []
        for namespace, informer in self._cache.checks.items():
            try:
                informer.sync()
            except ApiError as exc:
                if namespace is None:
                    raise
                log.warning("cannot list the checks of namespace %s: %s", namespace, exc)
                unlisted.add(namespace)
                continue
            listed += informer.objects()
        listed += self._cluster_checks()
        for body in listed:
            meta = body["metadata"]
            version = (meta["uid"], meta["resourceVersion"])
            check = self._parsed.get(version)  # parsing is most of a tick's CPU: only changes
            if check is not None and check.stored is not body:
                # The same version as the cache holds it now (its watch event after the write's
                # answer, say): one body per check kept, not both.
                check = replace(check, stored=body)
            if check is None:
                try:
                    model = (
                        ClusterConnectivityCheck
                        if body.get("kind") == CLUSTER_CHECKS.kind
                        else ConnectivityCheck
                    )
                    check = Check.of(self._shared.share(model.model_validate(body)), body)
                except ValidationError as exc:
                    # Stored before the CRD had this rule, or written around validation: say
                    # so on the object and skip it; one bad check must not stop the others.
                    invalid(body, exc)
                    continue
            parsed[version] = check
            checks[check.key] = check
        self._parsed = parsed
        self._shared.keep_at_most(len(SHARED_PARTS) * len(parsed) + 64)
        return checks, unlisted

    def _cluster_checks(self) -> list[Object]:
        """The ClusterConnectivityChecks; none while their CRD is missing (Helm installs a
        chart's crds/ on first install only: an upgraded release may not have it yet), which
        must not stop the namespaced checks."""
        informer = self._cache.cluster_checks
        if informer is None:
            return []
        try:
            informer.sync()
        except NotFound:
            if not self._said_no_cluster_crd:
                log.warning(
                    "no ClusterConnectivityCheck CRD: kubectl apply -f"
                    " crds/clusterconnectivitycheck.yaml to use them"
                )
                self._said_no_cluster_crd = True
            return []
        self._said_no_cluster_crd = False
        return informer.objects()
