"""Who a request is, and whether RBAC lets them: the fake API server's authentication and
authorization, in the real server's order (authenticate, then authorize, then look up).

- no Authorization header is `system:anonymous`, who may read only the public info
  (/version, /healthz, ...) and is refused everything else with a 403, not a 401;
- a bearer token nobody issued is a 401, even where anonymous would pass;
- the operator's ServiceAccount has the chart's RBAC (`install.allows`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from hopscope_operator.install.rbac import allows
from hopscope_operator.names import NAME as OPERATOR_ACCOUNT_NAME
from hopscope_operator.names import NAMESPACE as OPERATOR_NAMESPACE

from .fake_status import Forbidden
from .rbac import Authorizer as RbacAuthorizer
from .rbac import Manifest

# (verb, group, resource incl. subresource, namespace, name) -> allowed
Authorizer = Callable[[str, str, str, str | None, str | None], bool]
PUBLIC_PATHS = ("/version", "/healthz", "/livez", "/readyz")  # system:public-info-viewer


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...]
    may: Authorizer


def _everything(*_: object) -> bool:
    return True


def _nothing(*_: object) -> bool:
    return False


def _chart_rbac(verb: str, group: str, resource: str, ns: str | None, name: str | None) -> bool:
    return allows(verb, resource, ns, name, group=group)


OPERATOR_ACCOUNT = (OPERATOR_NAMESPACE, OPERATOR_ACCOUNT_NAME)
ADMIN = Identity("kubernetes-admin", ("system:masters", "system:authenticated"), _everything)
ANONYMOUS = Identity("system:anonymous", ("system:unauthenticated",), _nothing)
OPERATOR = Identity(
    f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT_NAME}",
    ("system:serviceaccounts", f"system:serviceaccounts:{OPERATOR_NAMESPACE}"),
    _chart_rbac,
)


def refusing(who: Identity) -> Identity:
    """`who`, refused everything (HttpApi.refuse: a test plays a narrower RBAC)."""
    return replace(who, may=_nothing)


def service_account(namespace: str, name: str, rbac: Sequence[Manifest] = ()) -> Identity:
    """An account granted what the Roles, ClusterRoles and bindings in `rbac` grant it (none:
    a workload's, with no RBAC of its own)."""
    groups = ("system:serviceaccounts", f"system:serviceaccounts:{namespace}")
    authorizer = RbacAuthorizer(list(rbac))

    def may(verb: str, group: str, resource: str, ns: str | None, obj: str | None) -> bool:
        return authorizer.allows((namespace, name), verb, resource, ns, obj, group=group)

    return Identity(f"system:serviceaccount:{namespace}:{name}", groups, may)


def authorize(
    who: Identity,
    verb: str,
    group: str,
    resource: str,
    namespace: str | None,
    name: str | None,
) -> None:
    """Raises the real server's 403 when `who` may not."""
    if who.may(verb, group, resource, namespace, name):
        return
    plural = resource.split("/")[0]
    qualified = f"{plural}.{group}" if group else plural
    subject = f'{qualified} "{name}"' if name else qualified
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    message = (
        f'{subject} is forbidden: User "{who.user}" cannot {verb} resource "{resource}" '
        f'in API group "{group}" {where}'
    )
    details: dict[str, str] = {"name": name} if name else {}
    if group:
        details["group"] = group
    details["kind"] = plural
    raise Forbidden(message, details)
