"""events.k8s.io/v1 Events: the same objects as core/v1 Events, in another shape. The API
server stores one kind and converts on the way in and out (regarding is involvedObject, note is
message, reportingController is reportingComponent, the rest `deprecated*`), with omitempty
where the Go type has it; a v1 Event needs eventTime, reportingController and action."""

from __future__ import annotations

import copy
import re

from hopscope_operator.cluster import EVENTS, Object

from .fake_status import cause, invalid

EVENTS_V1_VERSION = "events.k8s.io/v1"
# (core field, v1 field): renamed on conversion
RENAMED = (
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("count", "deprecatedCount"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
)
SAME = ("metadata", "eventTime", "reportingInstance", "action", "reason", "type", "related")
V1_OMITEMPTY = ("reportingController", "reportingInstance", "action", "reason", "note", "type")
NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
NAME_PART_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


def to_v1(core: Object) -> Object:
    event: Object = {"kind": "Event", "apiVersion": EVENTS_V1_VERSION}
    for key in SAME:
        if key in core:
            event[key] = copy.deepcopy(core[key])
    for old, new in RENAMED:
        if old in core:
            event[new] = copy.deepcopy(core[old])
    for key in V1_OMITEMPTY:
        if event.get(key) == "":
            del event[key]
    event.setdefault("eventTime", None)
    event.setdefault("deprecatedSource", {})
    return event


def to_core(v1: Object) -> Object:
    event: Object = {"kind": "Event", "apiVersion": "v1"}
    for key in SAME:
        if key in v1:
            event[key] = copy.deepcopy(v1[key])
    for old, new in RENAMED:
        if new in v1:
            event[old] = copy.deepcopy(v1[new])
    return event


def check(v1: Object) -> None:
    """The v1 rules a core Event does not have: a 422 naming the Event."""
    causes = []
    if not v1.get("eventTime"):
        causes.append(cause("FieldValueRequired", "Required value", "eventTime"))
    controller = v1.get("reportingController", "")
    if not controller:
        causes.append(cause("FieldValueRequired", "Required value", "reportingController"))
    part = controller.rsplit("/", 1)[-1]
    if not part:
        said = 'Invalid value: "": name part must be non-empty'
        causes.append(cause("FieldValueInvalid", said, "reportingController"))
    if not NAME_PART.fullmatch(part):
        said = f'Invalid value: "{part}": {NAME_PART_MESSAGE}'
        causes.append(cause("FieldValueInvalid", said, "reportingController"))
    if not v1.get("action"):
        causes.append(cause("FieldValueRequired", "Required value", "action"))
    if causes:
        raise invalid(EVENTS, v1.get("metadata", {}).get("name"), causes)
