"""core/v1 Events as the real API server creates them (hopscope's and kopf's).

- the server adds `eventTime: null`, `reportingComponent: ""`, `reportingInstance: ""`,
  `source: {}` and null timestamps to whatever the body leaves out;
- `involvedObject.namespace` must be the event's own (an empty one too, for a namespaced event);
- an event with `eventTime` is a "new" one: its message may have at most 1024 characters, and
  one without is not limited (`type: Bogus` is accepted either way).
"""

from __future__ import annotations

import copy

from hopscope_operator.cluster import EVENTS, Object

from .fake_status import cause, invalid

DEFAULTS: Object = {
    "source": {},
    "firstTimestamp": None,
    "lastTimestamp": None,
    "eventTime": None,
    "reportingComponent": "",
    "reportingInstance": "",
}
NEW_STYLE_MESSAGE = 1024


def created(body: Object, namespace: str | None) -> Object:
    """The Event as stored; Invalid (422) for what the API server refuses."""
    event = copy.deepcopy(body)
    name = event.get("metadata", {}).get("name")
    involved = event.setdefault("involvedObject", {})
    causes = []
    # Kubernetes' legacyValidateEvent: a cluster-scoped object's Event (no involvedObject
    # namespace) may live in "default" too, "for compatibility with old clients" (as a Node's
    # do); otherwise the two namespaces agree (14-events#3 and #5 record the refusals).
    cluster_scoped = not involved.get("namespace") and namespace == "default"
    if involved.get("namespace", "") != (namespace or "") and not cluster_scoped:
        said = f'Invalid value: "{involved.get("namespace", "")}": does not match event.namespace'
        causes.append(cause("FieldValueInvalid", said, "involvedObject.namespace"))
    if event.get("eventTime") and len(event.get("message", "")) > NEW_STYLE_MESSAGE:
        said = f'Invalid value: "": can have at most {NEW_STYLE_MESSAGE} characters'
        causes.append(cause("FieldValueInvalid", said, "message"))
    if causes:
        raise invalid(EVENTS, name, causes)
    for key, value in DEFAULTS.items():
        event.setdefault(key, copy.deepcopy(value))
    return event
