"""The fake API server (FakeApi behind HttpApi) against recordings of a real kube-apiserver
v1.36: every recorded exchange replayed over HTTP, in order, each scenario on a fresh fake
seeded from its `given`, and every `compare` path held to the recording's placeholder rules.

What the fake does not do yet is listed, with a reason, in kube_api_gaps.yaml: those cases are
strict expected failures, so a gap that gets fixed fails until it is taken off the list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hopscope_operator.install.crd import custom_resource_definition

from .conftest import ApiServer
from .fake_shapes import ShapeBook, extra_calls
from .httpapi import HttpApi
from .kube_recordings import Answer, compare, operator_calls, scenarios
from .kube_replay import ADMIN_TOKEN, Replayer, identities, minted, seeded

GAPS_FILE = Path(__file__).with_name("kube_api_gaps.yaml")
SCENARIOS = dict(scenarios())


def _gaps() -> dict[str, str]:
    """exchange id -> why the fake does not answer it as recorded."""
    listed = yaml.safe_load(GAPS_FILE.read_text()) or {}
    return {exchange: gap["reason"] for gap in listed.values() for exchange in gap["exchanges"]}


GAPS = _gaps()


def _cases() -> list[Any]:
    cases = []
    for name, scenario in SCENARIOS.items():
        for index in range(len(scenario["exchanges"])):
            case = f"{name}#{index}"
            marks = [pytest.mark.xfail(strict=True, reason=GAPS[case])] if case in GAPS else []
            cases.append(pytest.param(name, index, id=case, marks=marks))
    return cases


_replayed: dict[str, list[Answer]] = {}


def _replay(name: str) -> list[Answer]:
    """Each scenario once, on a fresh fake: its exchanges build on each other's answers."""
    if name not in _replayed:
        scenario = SCENARIOS[name]
        openapi = custom_resource_definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        fake = seeded(ApiServer(openapi), scenario["given"])
        tokens = minted(fake, scenario["given"])
        server = HttpApi(fake, ADMIN_TOKEN, identities(), any_shape=True)
        with server.running():
            replayer = Replayer(server, tokens)
            _replayed[name] = [replayer.exchange(e) for e in scenario["exchanges"]]
    return _replayed[name]


@pytest.mark.parametrize(("scenario", "index"), _cases())
def test_the_fake_answers_as_the_real_api_server(scenario: str, index: int) -> None:
    exchange = SCENARIOS[scenario]["exchanges"][index]
    ours = _replay(scenario)[index]
    found = compare(exchange, ours)
    request = exchange["request"]
    assert not found, (
        f"{request['method']} {request['path']} ({exchange.get('note', '')}):\n"
        + "\n".join(found)
        + f"\n(the fake answered {ours.status}: {str(ours.body)[:600]})"
    )


def test_every_listed_gap_names_a_recorded_exchange() -> None:
    recorded = {f"{name}#{i}" for name, s in SCENARIOS.items() for i in range(len(s["exchanges"]))}
    assert sorted(set(GAPS) - recorded) == []


def test_every_extra_call_shape_says_why_its_answer_is_known() -> None:
    recorded = {call["id"] for call in operator_calls()}
    for call in extra_calls():
        assert call["id"] not in recorded, call["id"]
        assert call.get("why", "").strip(), f"{call['id']}: why is its answer known?"


def test_every_recorded_api_call_is_a_shape_the_fake_serves() -> None:
    """operator-calls.json's paths are templates and prose ("/api, /apis", "(list+watch)"): each
    call on the API server must come out as at least one shape HttpApi matches."""
    book = ShapeBook.recorded()
    named = {shape.id for shape in book.shapes}
    api_calls = {call["id"] for call in operator_calls() if call["path"].startswith("/")}
    assert sorted(api_calls - named) == []
    watch = {"accept": "*/*"}
    served = "/apis/hopscope.dev/v1alpha1/connectivitychecks?watch=true&allowWatchBookmarks=true"
    assert book.name("GET", served + "&resourceVersion=7", watch) == "kopf-watch-checks"
    assert book.name("GET", "/api/v1/namespaces/shop/pods/x/log", {"accept": "*/*"}) is None
