"""GitOps health of a check, read from statuses the operator itself writes: Argo CD's health
Lua run for real (lupa, Lua 5.1 as Argo CD's gopher-lua), kstatus (Flux) and `kubectl wait`.

Each story drives the reconciler on the in-memory API server as test_reconcile does, then
hands the stored object to each reader.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from lupa import lua51

from hopscope_operator.api import GROUP, KIND
from hopscope_operator.cluster import Object
from hopscope_probe.models import ConnectionStatus

from . import kstatus
from .conftest import Clock
from .fakeapi import FakeApi
from .kstatus import Status
from .test_reconcile import (
    apply_check,
    check,
    make_reconciler,
    probe_pods,
    reachable_result,
    run_once,
    source_pod,
    unreachable_result,
)
from .test_reconcile_analysis import Forbidden

ROOT = Path(__file__).resolve().parents[2]
HEALTH_LUA = ROOT / "charts" / "hopscope" / "files" / "argocd-health.lua"
ARGOCD_KEY = f"resource.customizations.health.{GROUP}_{KIND}"
ARGOCD_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


# ---- the readers ------------------------------------------------------------------------------


def argocd_health(obj: Object, script: str | None = None) -> dict[str, str]:
    """What Argo CD shows: the script run with the resource as the global `obj`, its returned
    table's status and message. What Argo CD's sandbox does not offer is taken away."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=False)
    sandbox = lua.globals()
    for name in ("os", "io", "require", "dofile", "loadfile", "load", "loadstring", "debug"):
        sandbox[name] = None
    sandbox.obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(script or HEALTH_LUA.read_text())
    return {key: hs[key] for key in ("status", "message") if hs[key] is not None}


def readers(obj: Object) -> tuple[str, Status, bool]:
    """(Argo CD health, kstatus status, `kubectl wait --for=condition=Ready` met)."""
    return (
        argocd_health(obj)["status"],
        kstatus.compute(obj)[0],
        kstatus.wait_condition_met(obj, "Ready"),
    )


# ---- the stories: each leaves one check as the operator wrote it ----------------------------


def new(api: FakeApi, clock: Clock) -> Object:
    source_pod(api)
    apply_check(api)
    return check(api)  # before the operator's first tick


def running(api: FakeApi, clock: Clock) -> Object:
    source_pod(api)
    apply_check(api)
    make_reconciler(api, clock).tick()  # its probe pod is planned, not finished
    return check(api)


def ran(result: Any) -> Callable[[FakeApi, Clock], Object]:
    def story(api: FakeApi, clock: Clock) -> Object:
        source_pod(api)
        apply_check(api)
        return run_once(api, make_reconciler(api, clock), result)

    return story


def cannot_run(api: FakeApi, clock: Clock) -> Object:
    apply_check(api)  # its source pod web-0 does not exist
    make_reconciler(api, clock).tick()
    return check(api)


def pod_refused(api: FakeApi, clock: Clock) -> Object:
    source_pod(api)
    apply_check(api)

    def admission(resource: Any, namespace: str, body: Object) -> Object:
        raise Forbidden('pods "p" is forbidden: violates PodSecurity "baseline:latest"')

    api.create = admission
    make_reconciler(api, clock).tick()  # said to run, then refused: the refusal stands
    return check(api)


def scheduled_repeat(api: FakeApi, clock: Clock) -> Object:
    reconciler = make_reconciler(api, clock)
    source_pod(api)
    apply_check(api, schedule={"intervalSeconds": 60})
    run_once(api, reconciler, unreachable_result())
    clock.advance(70)  # past the interval and its jitter
    reconciler.tick()
    assert probe_pods(api)  # the repeat is under way; the last result stands meanwhile
    return check(api)


def recovered(api: FakeApi, clock: Clock) -> Object:
    reconciler = make_reconciler(api, clock)
    apply_check(api)
    reconciler.tick()
    source_pod(api)
    clock.advance(60)  # past its retry
    return run_once(api, reconciler, reachable_result())


def spec_edited(api: FakeApi, clock: Clock) -> Object:
    ran(reachable_result())(api, clock)
    api.apply_spec("shop", "web-to-db", lambda spec: spec.update(protocol="HTTP"))
    return check(api)  # before the operator saw the edit


def spec_edited_running(api: FakeApi, clock: Clock) -> Object:
    reconciler = make_reconciler(api, clock)
    source_pod(api)
    apply_check(api)
    run_once(api, reconciler, reachable_result())
    api.apply_spec("shop", "web-to-db", lambda spec: spec.update(protocol="HTTP"))
    reconciler.tick()  # the new spec's run is under way
    return check(api)


DEGRADED = reachable_result().model_copy(
    update={"connection_status": ConnectionStatus.DEGRADED, "probes_failed": 3}
)
NO_VERDICT = reachable_result().model_copy(
    update={"connection_status": ConnectionStatus.UNKNOWN, "latency": None, "hops": []}
)

# story → (Argo CD health, kstatus, kubectl wait --for=condition=Ready met)
EXPECTED: dict[str, tuple[Callable[[FakeApi, Clock], Object], tuple[str, Status, bool]]] = {
    # kstatus reads a resource with no status as Current: nothing the operator writes can
    # help before it first sees the check (kstatus' documented caveat).
    "new": (new, ("Progressing", Status.CURRENT, False)),
    "running": (running, ("Progressing", Status.IN_PROGRESS, False)),
    "reachable": (ran(reachable_result()), ("Healthy", Status.CURRENT, True)),
    # A run that found the destination unreachable is a check that did its job: Flux's
    # reconcile is done (Current); Argo CD shows the finding.
    "unreachable": (ran(unreachable_result()), ("Degraded", Status.CURRENT, True)),
    "degraded": (ran(DEGRADED), ("Degraded", Status.CURRENT, True)),
    "no-verdict": (ran(NO_VERDICT), ("Degraded", Status.CURRENT, True)),
    "cannot-run": (cannot_run, ("Degraded", Status.FAILED, False)),
    "pod-refused": (pod_refused, ("Degraded", Status.FAILED, False)),
    # Not Progressing nor InProgress at every interval: a repeat is no news until it lands.
    "scheduled-repeat": (scheduled_repeat, ("Degraded", Status.CURRENT, True)),
    "recovered": (recovered, ("Healthy", Status.CURRENT, True)),
    "spec-edited": (spec_edited, ("Progressing", Status.IN_PROGRESS, False)),
    "spec-edited-running": (spec_edited_running, ("Progressing", Status.IN_PROGRESS, False)),
}


@pytest.mark.parametrize("story", EXPECTED)
def test_each_reader_sees_what_the_operator_means(story: str, api: FakeApi, clock: Clock):
    play, expected = EXPECTED[story]
    assert readers(play(api, clock)) == expected


# ---- what each reader says beside its verdict -------------------------------------------------


def test_argocd_messages_come_from_the_status(api: FakeApi, clock: Clock) -> None:
    assert argocd_health(ran(unreachable_result())(api, clock)) == {
        "status": "Degraded",
        "message": "Unreachable: 0/10 probes answered, 1 hops; Firewall at hop source:"
        " silently dropped",
    }


def test_a_check_that_cannot_run_says_why_to_both(api: FakeApi, clock: Clock) -> None:
    obj = cannot_run(api, clock)
    health = argocd_health(obj)
    assert health["message"].startswith("SourceNotFound: ")
    assert kstatus.compute(obj) == (
        Status.FAILED,
        health["message"].removeprefix("SourceNotFound: "),
    )


def test_a_run_under_way_says_from_where(api: FakeApi, clock: Clock) -> None:
    obj = running(api, clock)
    assert argocd_health(obj) == {"status": "Progressing", "message": "probing from pod shop/web-0"}
    assert kstatus.compute(obj) == (Status.IN_PROGRESS, "probing from pod shop/web-0")


def test_an_unobserved_spec_names_its_generation(api: FakeApi, clock: Clock) -> None:
    assert argocd_health(spec_edited(api, clock)) == {
        "status": "Progressing",
        "message": "Generation 2 of the spec is not probed yet",
    }


# ---- Argo CD's conventions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [
        {"metadata": {"name": "x"}},  # no generation, no status
        {"metadata": {"generation": 1}, "status": {}},
        {"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": []}},
        {"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "phase": "Later"}},
        # What an operator from before Stalled wrote for a check that cannot run.
        {
            "metadata": {"generation": 1},
            "status": {
                "observedGeneration": 1,
                "phase": "Pending",
                "conditions": [{"type": "Ready", "status": "False", "reason": "SourceNotFound"}],
            },
        },
    ],
)
def test_any_object_gets_a_status_argocd_knows_and_a_message(obj: Object) -> None:
    health = argocd_health(obj)
    assert health["status"] in ARGOCD_STATUSES
    assert isinstance(health.get("message"), str) and health["message"]


def test_an_older_operators_not_ready_is_degraded_with_its_reason() -> None:
    obj = {
        "metadata": {"generation": 3},
        "status": {
            "observedGeneration": 3,
            "phase": "Pending",
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "InvalidSpec", "message": "bad"}
            ],
        },
    }
    assert argocd_health(obj) == {"status": "Degraded", "message": "InvalidSpec: bad"}


def readme_argocd_cm() -> dict[str, Any]:
    """The argocd-cm snippet of the README's GitOps section."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    [snippet] = [yaml.safe_load(b) for b in blocks if ARGOCD_KEY in b]
    return snippet


def readme_health_check_exprs() -> dict[str, str]:
    """The README's opt-in Flux `healthCheckExprs` for ConnectivityCheck."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    [snippet] = [yaml.safe_load(b) for b in blocks if "healthCheckExprs" in b]
    [exprs] = snippet["healthCheckExprs"]
    assert (exprs["apiVersion"], exprs["kind"]) == (f"{GROUP}/v1alpha1", KIND)
    return exprs


def flux_expr_status(obj: Object, exprs: dict[str, str]) -> Status:
    """Flux's reading with `healthCheckExprs`: the object's top-level fields as variables,
    `inProgress`, `failed`, `current` in that order, the first true one wins; an expression
    that cannot be evaluated (a field not there yet) keeps it waiting, as does none true."""
    env = celpy.Environment()
    activation = {key: celpy.json_to_cel(value) for key, value in obj.items()}
    for field, status in (
        ("inProgress", Status.IN_PROGRESS),
        ("failed", Status.FAILED),
        ("current", Status.CURRENT),
    ):
        try:
            result = env.program(env.compile(exprs[field])).evaluate(activation)
        except celpy.CELEvalError:
            return Status.IN_PROGRESS
        if isinstance(result, celpy.CELEvalError):
            return Status.IN_PROGRESS
        if result is True or result == celpy.celtypes.BoolType(True):
            return status
    return Status.IN_PROGRESS


STRICT_FLUX = {
    "new": Status.IN_PROGRESS,
    "running": Status.IN_PROGRESS,
    "reachable": Status.CURRENT,
    "unreachable": Status.FAILED,
    "degraded": Status.CURRENT,
    "no-verdict": Status.FAILED,
    "cannot-run": Status.FAILED,
    "pod-refused": Status.FAILED,
    "scheduled-repeat": Status.FAILED,
    "recovered": Status.CURRENT,
    "spec-edited": Status.IN_PROGRESS,
    "spec-edited-running": Status.IN_PROGRESS,
}


@pytest.mark.parametrize("story", STRICT_FLUX)
def test_the_readmes_strict_flux_exprs_fail_an_unreachable_run(story, api, clock) -> None:
    play, _ = EXPECTED[story]
    assert flux_expr_status(play(api, clock), readme_health_check_exprs()) == STRICT_FLUX[story]


def test_the_readmes_argocd_cm_snippet_is_the_charts_script() -> None:
    snippet = readme_argocd_cm()
    assert (snippet["kind"], snippet["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    assert snippet["data"][ARGOCD_KEY] == HEALTH_LUA.read_text()
