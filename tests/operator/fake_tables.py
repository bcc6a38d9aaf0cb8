"""Table output (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, what kubectl get asks
for) for Pods, with the API server's columns; other kinds are shown by Name and Age."""

from __future__ import annotations

from hopscope_operator.cluster import PODS, Object, Resource

POD_COLUMNS = (
    "Name",
    "Ready",
    "Status",
    "Restarts",
    "Age",
    "IP",
    "Node",
    "Nominated Node",
    "Readiness Gates",
)


def wants_table(accept: str | None) -> bool:
    first = (accept or "").split(",")[0].replace(" ", "").split(";")
    return first[0] == "application/json" and "as=Table" in first[1:]


def table(resource: Resource, objects: list[Object]) -> Object:
    names = POD_COLUMNS if resource == PODS else ("Name", "Age")
    columns = [
        {
            "name": n,
            "type": "string",
            "format": "name" if n == "Name" else "",
            "description": "",
            "priority": 0,
        }
        for n in names
    ]
    rows = [
        {
            "cells": _cells(resource, o),
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": o["metadata"],
            },
        }
        for o in objects
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": columns,
        "rows": rows,
    }


def _cells(resource: Resource, obj: Object) -> list[object]:
    name, age = obj["metadata"]["name"], "<unknown>"
    if resource != PODS:
        return [name, age]
    status = obj.get("status", {})
    statuses = status.get("containerStatuses", [])
    ready = (
        f"{sum(bool(s.get('ready')) for s in statuses)}/{len(obj['spec'].get('containers', []))}"
    )
    restarts = sum(s.get("restartCount", 0) for s in statuses)
    ip, node = status.get("podIP", "<none>"), obj["spec"].get("nodeName", "<none>")
    return [name, ready, status.get("phase", ""), restarts, age, ip, node, "<none>", "<none>"]
