"""The fake's garbage collection (ownerReferences), as the operator's tests rely on it: deleting
an owner deletes its dependents and theirs, in store order, and only what names it now."""

from __future__ import annotations

from hopscope_operator.cluster import CONFIG_MAPS, SERVICES, Object, Resource

from .fakeapi import FakeApi


def stored(api: FakeApi, kind: Resource, name: str, *owners: str) -> str:
    """Store an object owned by `owners` (uids); its uid."""
    meta: Object = {"name": name, "namespace": "ns"}
    if owners:
        meta["ownerReferences"] = [{"kind": "Service", "name": "x", "uid": uid} for uid in owners]
    body = {"apiVersion": "v1", "kind": kind.kind, "metadata": meta}
    api.put(kind, body)
    return str(body["metadata"]["uid"])


def deleted(api: FakeApi, since: int) -> list[str]:
    events = api.watch_events[since:]
    return [f"{e.resource.plural}/{e.name}" for e in events if e.type == "DELETED"]


def test_an_owner_takes_its_dependents_and_theirs_in_store_order(api: FakeApi) -> None:
    owner = stored(api, SERVICES, "owner")
    late = stored(api, CONFIG_MAPS, "b-first", owner)
    stored(api, SERVICES, "a-second", owner)
    stored(api, CONFIG_MAPS, "grandchild", late)
    stored(api, CONFIG_MAPS, "unrelated")
    since = len(api.watch_events)
    api.delete(SERVICES, "ns", "owner")
    assert deleted(api, since) == [
        "services/owner",
        "services/a-second",  # its kind entered the store first
        "configmaps/b-first",
        "configmaps/grandchild",
    ]
    assert [obj["metadata"]["name"] for obj in api.objects(CONFIG_MAPS)] == ["unrelated"]


def test_what_no_longer_names_the_owner_stays(api: FakeApi) -> None:
    owner = stored(api, SERVICES, "owner")
    stored(api, CONFIG_MAPS, "rewritten", owner)
    stored(api, CONFIG_MAPS, "rewritten")  # the same object, its reference removed
    stored(api, CONFIG_MAPS, "again", owner)
    api.delete(CONFIG_MAPS, "ns", "again")
    stored(api, CONFIG_MAPS, "again")  # made again, owned by nobody
    stored(api, CONFIG_MAPS, "adopted")
    stored(api, CONFIG_MAPS, "adopted", owner)  # a reference added later
    api.delete(SERVICES, "ns", "owner")
    names = [obj["metadata"]["name"] for obj in api.objects(CONFIG_MAPS)]
    assert names == ["again", "rewritten"]
