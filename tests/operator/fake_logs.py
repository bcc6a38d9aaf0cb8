"""pods/log as the real API server answers it (the kubelet's side played from stored state).

- the query is decoded and validated first: a non-integer is a 400 (Go's strconv wording),
  tailLines < 0, limitBytes or sinceSeconds <= 0 are a 422 on PodLogOptions;
- a pod with no node is 204 No Content (not an error);
- two containers and no `container=` is a 400 listing them; an unknown one a 400;
- a container that has not started is a 400 `is waiting to start: REASON`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from hopscope_operator.cluster import Object

from .fake_status import BadRequest, InvalidError, cause

Query = dict[str, str]
# (container) -> the text the kubelet would serve, None when it has none
LogOf = Callable[[str], str | None]


def _integer(query: Query, key: str) -> int | None:
    if key not in query:
        return None
    try:
        return int(query[key])
    except ValueError:
        raise BadRequest(f'strconv.ParseInt: parsing "{query[key]}": invalid syntax') from None


def _options(name: str, query: Query) -> tuple[int | None, int | None]:
    tail, limit, since = (_integer(query, k) for k in ("tailLines", "limitBytes", "sinceSeconds"))
    rules = (
        ("tailLines", tail, tail is not None and tail < 0, "must be greater than or equal to 0"),
        ("limitBytes", limit, limit is not None and limit <= 0, "must be greater than 0"),
        ("sinceSeconds", since, since is not None and since <= 0, "must be greater than 0"),
    )
    for field, value, broken, rule in rules:
        if broken:
            message = f"Invalid value: {value}: {rule}"
            causes = [cause("FieldValueInvalid", message, field)]
            details = {"name": name, "kind": "PodLogOptions", "causes": causes}
            raise InvalidError(f'PodLogOptions "{name}" is invalid: {field}: {message}', details)
    return tail, limit


def _container(pod: Object, query: Query) -> str:
    name = pod["metadata"]["name"]
    spec = pod.get("spec", {})
    names = [c["name"] for c in spec.get("containers", [])]
    init = [c["name"] for c in spec.get("initContainers", [])]
    if "container" in query:
        if query["container"] not in names + init:
            raise BadRequest(f"container {query['container']} is not valid for pod {name}")
        return query["container"]
    if len(names) != 1:
        raise BadRequest(
            f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
        )
    return names[0]


def pod_log(pod: Object, query: Query, log_of: LogOf) -> str | None:
    """The log text; None for 204 No Content (a pod no node has run)."""
    name = pod["metadata"]["name"]
    tail, limit = _options(name, query)
    container = _container(pod, query)
    if not pod.get("spec", {}).get("nodeName"):
        return None
    status = pod.get("status", {})
    statuses = status.get("containerStatuses", []) + status.get("initContainerStatuses", [])
    found = next((s for s in statuses if s.get("name") == container), {})
    state = found.get("state") or {}
    if query.get("previous") == "true":
        if "terminated" not in (found.get("lastState") or {}):
            raise BadRequest(
                f'previous terminated container "{container}" in pod "{name}" not found'
            )
    elif "running" not in state and "terminated" not in state:
        reason = (state.get("waiting") or {}).get("reason", "ContainerCreating")
        raise BadRequest(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
    text = log_of(container) or ""
    if tail is not None:
        lines = text.splitlines(keepends=True)
        text = "".join(lines[len(lines) - tail :]) if tail else ""
    if query.get("timestamps") == "true":
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        text = "".join(f"{stamp} {line}" for line in text.splitlines(keepends=True))
    if limit is not None:
        text = text.encode()[:limit].decode(errors="ignore")
    return text
