"""Credentials in a check's spec are never shown: a URI's userinfo goes nowhere (not even to
the probe pod, which never used it); an Authorization header's value reaches only the probe's
batch (HOPSCOPE_BATCH, see the README's security section), never a label, Event or status."""

from __future__ import annotations

import json

import pytest

from hopscope_operator.api import Destination
from hopscope_operator.cluster import CHECKS
from hopscope_operator.kubectl.plugin import destination_text
from hopscope_operator.redact import without_userinfo

from . import test_reconcile as story
from .conftest import Clock
from .fakeapi import FakeApi
from .test_reconcile import apply_check, batch_of, finish, probe_pods, reachable_result, source_pod

PASSWORD, TOKEN = "s3cret-pass", "s3cret-token"
URI = f"https://alice:{PASSWORD}@api.example.com:8443/health?probe=1"


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        (URI, "https://api.example.com:8443/health?probe=1"),
        ("http://bob@[2001:db8::1]/", "http://[2001:db8::1]/"),
        ("http://u:p%40ss@h.example/", "http://h.example/"),
        ("https://api.example.com/a@b", "https://api.example.com/a@b"),  # no userinfo
    ],
)
def test_userinfo_is_taken_out_of_a_uri(uri: str, shown: str) -> None:
    assert without_userinfo(uri) == shown


def test_no_credential_of_the_spec_lands_in_a_label_event_status_or_pod_annotation(
    api: FakeApi,
) -> None:
    source_pod(api)
    apply_check(
        api,
        protocol="HTTPS",
        destination={"uri": URI},
        http={"headers": [{"name": "Authorization", "value": f"Bearer {TOKEN}"}]},
    )
    reconciler = story.make_reconciler(api, Clock())
    reconciler.tick()
    [pod] = probe_pods(api)
    assert PASSWORD not in json.dumps(pod)  # the probe never used it: it is not sent
    [request] = [item.request for item in batch_of(pod).checks]
    assert request.uri == "https://api.example.com:8443/health?probe=1"
    assert [h.value for h in request.http.headers] == [f"Bearer {TOKEN}"]  # what it must send
    assert TOKEN not in json.dumps(pod["metadata"])  # annotations and labels: never
    finish(api, pod, {item.id: reachable_result() for item in batch_of(pod).checks})
    assert reconciler.tick().collected == 1

    status = api.get(CHECKS, "shop", "web-to-db")["status"]
    shown = "\n".join(
        [
            json.dumps(status),
            json.dumps(api.events_for("web-to-db")),
            reconciler.metrics.exposition().decode(),
        ]
    )
    assert "api.example.com:8443/health" in shown  # the destination is still named
    for secret in (PASSWORD, "alice", TOKEN):
        assert secret not in shown


def test_kubectl_hopscope_names_a_uri_without_its_userinfo() -> None:
    shown = destination_text(Destination(uri=URI), "shop")
    assert shown == "https://api.example.com:8443/health?probe=1"
