"""identify: which Service or pod a destination's spelling names, over plain objects."""

from __future__ import annotations

from typing import Any

import pytest

from hopscope_operator.api import API_VERSION, KIND, ConnectivityCheck
from hopscope_operator.controller.identify import (
    PodAddressName,
    PodHostName,
    ServiceName,
    candidates,
    cluster_addresses,
    cluster_name,
    identify,
    pod_addresses,
)
from hopscope_operator.controller.resolve import NamespaceNotWatched
from hopscope_operator.resolved import ResolvedDestination, ResolvedSource

SOURCE = ResolvedSource("pod", "worker-1", "pod shop/web-0", "shop", "web-0", "uid", "10.244.1.5")


def test_a_short_name_tries_the_search_list_first_and_a_trailing_dot_nothing_else():
    assert candidates("db", "shop") == [
        "db.shop.svc.cluster.local",
        "db.svc.cluster.local",
        "db.cluster.local",
        "db",
    ]
    assert candidates("db.shop.svc.cluster.local.", "shop") == ["db.shop.svc.cluster.local"]
    # Five dots or more (ndots:5): the name as given first.
    assert candidates("a.b.c.d.e.f", None)[0] == "a.b.c.d.e.f"


@pytest.mark.parametrize(
    ("name", "named"),
    [
        ("db.shop.svc.cluster.local", ServiceName("shop", "db")),
        ("db-0.db-peers.shop.svc.cluster.local", PodHostName("shop", "db-peers", "db-0")),
        ("10-244-2-7.shop.pod.cluster.local", PodAddressName("shop", "10.244.2.7")),
        ("fd00--7.shop.pod.cluster.local", PodAddressName("shop", "fd00::7")),
        ("db.shop.svc.example.com", None),
        ("not-an-ip.shop.pod.cluster.local", None),
        ("shop.svc.cluster.local", None),
    ],
)
def test_a_name_under_the_cluster_domain_names_a_service_or_a_pod(name, named):
    assert cluster_name(name) == named


class View:
    def __init__(self, services: list[dict[str, Any]], pods: list[dict[str, Any]]) -> None:
        self.services, self.pods = services, pods

    def service(self, namespace: str, name: str) -> dict[str, Any] | None:
        if namespace == "elsewhere":
            raise NamespaceNotWatched(namespace, ["shop"])
        found = [
            s for s in self.services if s["metadata"] == {"namespace": namespace, "name": name}
        ]
        return found[0] if found else None

    def services_at(self, address: str) -> list[dict[str, Any]]:
        return [s for s in self.services if address in cluster_addresses(s)]

    def pods_at(self, address: str) -> list[dict[str, Any]]:
        return [p for p in self.pods if address in pod_addresses(p)]

    def pods_by_hostname(self, namespace: str, subdomain: str, hostname: str) -> list[Any]:
        wanted = {"hostname": hostname, "subdomain": subdomain}
        return [
            p
            for p in self.pods
            if p["metadata"]["namespace"] == namespace
            and {k: p.get("spec", {}).get(k) for k in wanted} == wanted
        ]


VIEW = View(
    [
        {"metadata": {"namespace": "shop", "name": "db"}, "spec": {"clusterIP": "10.96.0.20"}},
        {"metadata": {"namespace": "shop", "name": "db-peers"}, "spec": {"clusterIP": "None"}},
    ],
    [
        {
            "metadata": {"namespace": "shop", "name": "db-0"},
            "spec": {"hostname": "db-0", "subdomain": "db-peers"},
            "status": {"podIPs": [{"ip": "10.244.2.7"}]},
        },
        {
            "metadata": {"namespace": "kube-system", "name": "node-agent"},
            "spec": {"hostNetwork": True},
            "status": {"podIP": "10.0.0.9"},
        },
    ],
)


def named(destination: dict[str, Any], addresses: tuple[str, ...] = ()) -> tuple[Any, Any]:
    check = ConnectivityCheck.model_validate(
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": "c", "namespace": "shop"},
            "spec": {
                "source": {"pod": {"name": "web-0"}},
                "destination": destination,
                "protocol": "HTTPS" if "uri" in destination else "TCP",
            },
        }
    )
    host = destination.get("fqdn") or destination.get("ip") or "x"
    resolved = ResolvedDestination(host, 80, "d", list(addresses))
    found = identify(check, SOURCE, resolved, VIEW)
    return found.service, found.pod


@pytest.mark.parametrize(
    ("destination", "service", "pod"),
    [
        ({"fqdn": "db", "port": 80}, ("shop", "db"), None),
        ({"ip": "10.96.0.20", "port": 80}, ("shop", "db"), None),
        ({"uri": "https://db.shop:8443/x"}, ("shop", "db"), None),
        ({"fqdn": "db-peers.shop.svc", "port": 80}, ("shop", "db-peers"), None),
        ({"fqdn": "db-0.db-peers", "port": 80}, None, ("shop", "db-0")),
        ({"fqdn": "10-244-2-7.shop.pod.cluster.local", "port": 80}, None, ("shop", "db-0")),
        ({"ip": "10.244.2.7", "port": 80}, None, ("shop", "db-0")),
        # A hostNetwork pod's address is its node's: no pod is named.
        ({"ip": "10.0.0.9", "port": 80}, None, None),
        # A namespace this install does not watch: judged as a plain name.
        ({"fqdn": "db.elsewhere", "port": 80}, None, None),
        ({"fqdn": "db.shop.example.com", "port": 80}, None, None),
    ],
)
def test_every_spelling_names_its_service_or_pod(destination, service, pod):
    assert named(destination) == (service, pod)


def test_a_name_the_probe_resolved_to_a_cluster_ip_names_its_service():
    assert named({"fqdn": "db.example.com", "port": 80}, ("10.96.0.20",)) == (("shop", "db"), None)
