"""fake_selectors against what a real kube-apiserver v1.36.2 answered (../shared/kube-api).

Every list or watch in the recordings that carries a selector (05, 06, 13#7, 13#11, 14#17, 19#0-2,
23#2-3) is replayed through the parsers: a refused one must raise the recorded 400 message byte for
byte, an accepted one must pick out of the objects that were there exactly the ones the recorded
response lists. Every create in 08 (and 07#7, a bad name, and 14#4, no name) goes through
`metadata_causes`, compared with the recorded causes and the 422 message.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from tests.operator.fake_selectors import (
    SelectorError,
    go_quote,
    invalid_message,
    metadata_causes,
    parse_field_selector,
    parse_label_selector,
)

# CI clones the repository with shared/ beside it.
RECORDINGS = Path(__file__).resolve().parents[3] / "shared" / "kube-api" / "scenarios"
# The recording cluster's one node: the running pod of 06 is on it (06#0 selects it by name).
NODE = "k8s-real-node"

pytestmark = pytest.mark.skipif(not RECORDINGS.is_dir(), reason="recordings not present")


def _scenario(name: str) -> dict:
    return json.loads((RECORDINGS / name).read_text())


def _expand(value: object) -> object:
    """Expand `<repeat:C:N>` templates inside request bodies."""
    if isinstance(value, str):
        return re.sub(r"<repeat:(.):(\d+)>", lambda m: m.group(1) * int(m.group(2)), value)
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    return value


def _stored(obj: dict, namespace: str) -> dict:
    """A `given` object as the server holds it when the exchanges run.

    The recordings give manifests plus the status that matters; the real server also defaulted
    spec.schedulerName and spec.serviceAccountName, and a pod that runs was bound to the node
    and given an IP by the kubelet. Those are the fields 06 selects on.
    """
    obj = copy.deepcopy(obj)
    obj.setdefault("metadata", {}).setdefault("namespace", namespace)
    if obj.get("kind") == "Pod":
        spec = obj.setdefault("spec", {})
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("serviceAccountName", "default")
        if (obj.get("status") or {}).get("phase") == "Running":
            spec.setdefault("nodeName", NODE)
            obj["status"].setdefault("podIP", "10.42.0.9")
            obj["status"].setdefault("podIPs", [{"ip": "10.42.0.9"}])
    return obj


def _given(scenario: dict) -> list[dict]:
    namespace = scenario["given"]["namespace"]
    return [_stored(o.get("object", o), namespace) for o in scenario["given"]["objects"]]


def _created_events(scenario: dict, before: int) -> list[dict]:
    """14: the Events that the exchanges before `before` created (201), as core/v1 Events.

    The real server names a generateName'd Event in its response; an events.k8s.io/v1 Event
    reads through core/v1 with `regarding` as `involvedObject`.
    """
    events = []
    for exchange in scenario["exchanges"][:before]:
        request, response = exchange["request"], exchange["response"]
        if request["method"] != "POST" or response["status"] != 201:
            continue
        event = copy.deepcopy(request["body"])
        event["kind"] = "Event"
        event["metadata"] = {**event["metadata"], "name": response["body"]["metadata"]["name"]}
        event["metadata"]["namespace"] = scenario["given"]["namespace"]
        if "regarding" in event:
            event["involvedObject"] = event.pop("regarding")
        events.append(event)
    return events


def _recorded_slices(scenario: dict) -> list[dict]:
    """19: the EndpointSlices the controller made (one per Service), as 19#0 and 19#1 list them.

    Their names are generated ("<any>"), so they are told apart by generateName.
    """
    slices = []
    for exchange in scenario["exchanges"][:2]:
        for item in exchange["response"]["body"]["items"]:
            slices.append({"kind": "EndpointSlice", **item})
    return slices


def _selector_cases() -> list[pytest.param]:
    cases = []
    for file in (
        "05-label-selectors.json",
        "06-field-selectors.json",
        "13-watch.json",
        "14-events.json",
        "19-endpointslices-networkpolicies.json",
        "23-list-shapes.json",
    ):
        scenario = _scenario(file)
        for i, exchange in enumerate(scenario["exchanges"]):
            request = exchange["request"]
            raw = request.get("rawQuery") or ""
            if request["method"] != "GET" or "Selector=" not in raw:
                continue
            if file.startswith("14"):
                population = _created_events(scenario, i)
            elif file.startswith("19"):
                population = _recorded_slices(scenario)
            else:
                population = _given(scenario)
            cases.append(pytest.param(exchange, population, id=f"{file[:2]}#{i}"))
    return cases


SELECTOR_CASES = _selector_cases()


def test_the_recordings_give_the_selector_exchanges_this_file_claims() -> None:
    # Guards the parametrisation: if the files moved or changed shape, the tests below would
    # otherwise pass by running nothing.
    ids = [c.id for c in SELECTOR_CASES]
    assert ids == [
        *(f"05#{i}" for i in range(26)),
        *(f"06#{i}" for i in range(21)),
        *("13#7", "13#11", "14#17", "19#0", "19#1", "19#2", "23#2", "23#3"),
    ]


KINDS = {
    "pods": "Pod",
    "connectivitychecks": "ConnectivityCheck",
    "events": "Event",
    "endpointslices": "EndpointSlice",
}


def _plural(path: str) -> str:
    return path.rstrip("/").split("/")[-1]


def _identity(item: dict) -> str:
    meta = item["metadata"]
    return meta["generateName"] if meta.get("name") == "<any>" else meta["name"]


@pytest.mark.parametrize(("exchange", "population"), SELECTOR_CASES)
def test_selector_as_the_real_server_answered(exchange: dict, population: list[dict]) -> None:
    request, response = exchange["request"], exchange["response"]
    # The raw query is what went on the wire; decode it as Go's url.ParseQuery does ('+' is a
    # space), and check that this agrees with the recorder's own decoding.
    query = {k: v[0] for k, v in parse_qs(request["rawQuery"], keep_blank_values=True).items()}
    assert query == request["query"]
    plural = _plural(request["path"])
    namespace = re.search(r"/namespaces/([^/]+)/", request["path"])
    listed = [
        o
        for o in population
        if o.get("kind") == KINDS[plural]
        and (namespace is None or o["metadata"]["namespace"] == namespace.group(1))
    ]

    def select() -> list[dict]:
        chosen = listed
        if "labelSelector" in query:
            matches = parse_label_selector(query["labelSelector"])
            chosen = [o for o in chosen if matches(o["metadata"].get("labels") or {})]
        if "fieldSelector" in query:
            matches_fields = parse_field_selector(query["fieldSelector"], plural)
            chosen = [o for o in chosen if matches_fields(o)]
        return chosen

    if response["status"] == 400:
        body = response["body"]
        assert body["reason"] == "BadRequest"
        with pytest.raises(SelectorError) as refused:
            select()
        assert str(refused.value) == body["message"]
        return

    assert response["status"] == 200
    if response.get("bodyFormat") == "watch":
        # 13#11 watches pods by metadata.name=x with none there: only BOOKMARKs come back.
        assert all(event["type"] == "BOOKMARK" for event in response["body"])
        assert select() == []
        return
    if not listed:
        # No ConnectivityChecks are in `given` of 05/06 (and none with that label in 23#2):
        # there what is checked is that the selector is accepted and the list is empty.
        assert response["body"]["items"] == []
    # Lists trimmed by the recorder (23) keep metadata.name, which is all that is compared. A
    # name that is "<any>" (19's generated slice names) is compared by its generateName.
    recorded = [_identity(item) for item in response["body"]["items"]]
    assert sorted(_identity(o) for o in select()) == sorted(recorded)


def _metadata_cases() -> list[pytest.param]:
    cases = []
    for file, prefix, only in (
        ("08-metadata-limits.json", "08", None),
        ("07-create-get-errors.json", "07", {7}),
        ("14-events.json", "14", {4}),
    ):
        for i, exchange in enumerate(_scenario(file)["exchanges"]):
            if only is not None and i not in only:
                continue
            if exchange["request"]["method"] == "POST":
                cases.append(pytest.param(exchange, id=f"{prefix}#{i}"))
    return cases


METADATA_CASES = _metadata_cases()


def test_the_recordings_give_the_metadata_exchanges_this_file_claims() -> None:
    assert [c.id for c in METADATA_CASES] == [f"08#{i}" for i in range(14)] + ["07#7", "14#4"]


@pytest.mark.parametrize("exchange", METADATA_CASES)
def test_metadata_limits_as_the_real_server_answered(exchange: dict) -> None:
    request, response = exchange["request"], exchange["response"]
    obj = _expand(request["body"])
    kind = obj.get("kind") or {"events": "Event"}[_plural(request["path"])]
    causes = metadata_causes(obj, kind)
    if response["status"] == 201:
        assert causes == []
        return
    assert response["status"] == 422
    body = response["body"]
    assert causes == body["details"]["causes"]
    assert invalid_message(kind, body["details"].get("name", ""), causes) == body["message"]


# --- hand cases: semantics the recordings show, stated on their own --------------------------


def _pick(selector: str, pods: dict[str, dict[str, str]]) -> set[str]:
    matches = parse_label_selector(selector)
    return {name for name, labels in pods.items() if matches(labels)}


PODS = {"with-a": {"app": "a"}, "with-b": {"app": "b"}, "empty": {"app": ""}, "none": {"tier": "x"}}


def test_not_equal_and_notin_match_an_object_without_the_key() -> None:  # 05#2, 05#4
    assert _pick("app!=a", PODS) == {"with-b", "empty", "none"}
    assert _pick("app notin (a)", PODS) == {"with-b", "empty", "none"}
    assert _pick("app=a", PODS) == {"with-a"}


def test_existence_and_its_negation() -> None:  # 05#5, 05#6
    assert _pick("app", PODS) == {"with-a", "with-b", "empty"}
    assert _pick("!app", PODS) == {"none"}


def test_an_empty_set_and_an_empty_value_mean_the_empty_string() -> None:  # 05#9, 05#20
    assert _pick("app in ()", PODS) == {"empty"}
    assert _pick("app=", PODS) == {"empty"}


def test_an_empty_selector_matches_everything_even_no_labels() -> None:  # 05#7
    assert _pick("", {**PODS, "bare": {}}) == {*PODS, "bare"}


def test_a_space_inside_a_value_is_a_parse_error_not_a_value_error() -> None:  # 05#12
    with pytest.raises(SelectorError, match=r"^found 'b', expected: ',' or 'end of string'$"):
        parse_label_selector("app=a b")


def test_in_and_notin_are_ordinary_values_after_an_operator() -> None:
    # From labels.Parse: the keywords read as identifiers where a value is expected.
    assert _pick("app in (in, notin)", {"x": {"app": "in"}, "y": {"app": "z"}}) == {"x"}


def test_gt_and_lt_compare_as_integers() -> None:
    pods = {"two": {"n": "2"}, "ten": {"n": "10"}, "word": {"n": "x"}, "none": {}}
    assert _pick("n>3", pods) == {"ten"}
    assert _pick("n<3", pods) == {"two"}


def test_field_not_equal_matches_an_unset_field_as_the_empty_string() -> None:  # 06#1, 06#10
    pending = {"metadata": {"name": "p", "namespace": "n"}, "status": {"phase": "Pending"}}
    assert parse_field_selector("spec.nodeName=", "pods")(pending)
    assert not parse_field_selector("status.podIP!=", "pods")(pending)
    assert parse_field_selector("status.phase!=Running", "pods")(pending)


def test_field_selector_escapes_and_the_old_spec_host_label() -> None:
    pod = {"metadata": {"name": "a,b", "namespace": "n"}, "spec": {"nodeName": "node-1"}}
    assert parse_field_selector(r"metadata.name=a\,b", "pods")(pod)
    assert parse_field_selector("spec.host=node-1", "pods")(pod)
    with pytest.raises(
        SelectorError, match=r"^invalid field selector: unescaped character in value: 61$"
    ):
        parse_field_selector("metadata.name=a=b", "pods")


def test_a_custom_resource_selects_on_name_and_namespace_only() -> None:  # 06#17-19
    check = {"metadata": {"name": "x", "namespace": "conf-6"}, "status": {"phase": "Completed"}}
    assert parse_field_selector("metadata.name=x,metadata.namespace=conf-6", "connectivitychecks")(
        check
    )
    with pytest.raises(SelectorError, match=r"^field label not supported: status.phase$"):
        parse_field_selector("status.phase=Completed", "connectivitychecks")


def test_an_event_name_is_not_held_to_253_characters_but_a_pod_name_is() -> None:  # 08#10, 08#12
    name = "e" * 300
    assert metadata_causes({"metadata": {"name": name}}, "Event") == []
    assert [c["field"] for c in metadata_causes({"metadata": {"name": name}}, "Pod")] == [
        "metadata.name"
    ]


def test_annotations_count_keys_and_values_together() -> None:  # 08#0, 08#1
    at_limit = {"metadata": {"name": "a", "annotations": {"big": "x" * (262144 - 3)}}}
    assert metadata_causes(at_limit, "Pod") == []
    at_limit["metadata"]["annotations"]["big"] += "x"
    assert [c["reason"] for c in metadata_causes(at_limit, "Pod")] == ["FieldValueTooLong"]


def test_go_quote_escapes_as_strconv_quote() -> None:
    assert go_quote('a"b\\c') == r'"a\"b\\c"'
    assert go_quote("tab\there\x01") == r'"tab\there\x01"'
    assert go_quote("é") == '"é"'
