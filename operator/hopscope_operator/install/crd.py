"""Generates the ConnectivityCheck and ClusterConnectivityCheck CRDs from the models in `api`.

    python -m hopscope_operator.install.crd > crds/connectivitycheck.yaml  # regenerate
    python -m hopscope_operator.install.crd --cluster > crds/clusterconnectivitycheck.yaml
    python -m hopscope_operator.install.crd [--cluster] --check  # exit 1 when it is stale

The API server wants a structural OpenAPI v3 schema, which pydantic's JSON Schema is not: `$ref`s
are inlined, titles dropped, `X | None` becomes a plain optional property (nothing writes null),
numeric `exclusiveMinimum` takes OpenAPI v3's boolean form, and `additionalProperties: false`
goes (the API server itself prunes, or with strict field validation rejects, unknown fields).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, NoDefault
from pydantic_core import core_schema

from hopscope_operator import api

Resource = type[api.ConnectivityCheck]
CRD_PATH = Path("crds/connectivitycheck.yaml")
CLUSTER_CRD_PATH = Path("crds/clusterconnectivitycheck.yaml")
COMMAND = "python -m hopscope_operator.install.crd"
DESCRIPTION = (
    "Checks a connection from a source in the cluster to a destination: reachability, latency,"
    " the hop-by-hop path and located issues with hints."
)
CLUSTER_DESCRIPTION = (
    "A cluster-scoped ConnectivityCheck: the same spec and status, for sources beyond one"
    " namespace (a node, another namespace's pods); every namespace in it is named."
)
# What Kubernetes' own types say of these three, as `kubectl explain` shows them for a Pod.
API_VERSION_DESCRIPTION = (
    "APIVersion defines the versioned schema of this representation of an object; here"
    f" {api.API_VERSION}."
)
METADATA_DESCRIPTION = "Standard object's metadata: name, namespace, labels, annotations."
# Key order in each schema node, so the YAML reads top-down; other keys keep pydantic's order.
_FIRST = ("description", "type", "format")
_LAST = ("items", "additionalProperties", "properties", "required")


class _OpenAPIGenerator(GenerateJsonSchema):
    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is None or schema.get("default_factory_takes_data"):
            default = schema.get("default", NoDefault)
            return NoDefault if default is None else default
        value = factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return {}  # the API server then applies the model's own field defaults
        return value or NoDefault  # an absent list means the same as an empty one

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def sort(self, value: JsonSchemaValue, parent_key: str | None = None) -> JsonSchemaValue:
        return value  # keep declaration order: fields as in the model, CEL `rule` first


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # shared sub-schemas are written out in full, not as &anchors


def _to_openapi(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = defs[node["$ref"].removeprefix("#/$defs/")]
        node = {**target, **{key: value for key, value in node.items() if key != "$ref"}}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" or (key == "additionalProperties" and value is False):
            continue
        if key == "properties":
            out[key] = {name: _to_openapi(prop, defs) for name, prop in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = _to_openapi(value, defs)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [_to_openapi(branch, defs) for branch in value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = value
    return _ordered(out)


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    def rank(key: str) -> int:
        if key in _FIRST:
            return _FIRST.index(key)
        if key in _LAST:
            return len(_FIRST) + 1 + _LAST.index(key)
        if key.startswith("x-kubernetes-"):
            return len(_FIRST) + len(_LAST) + 1
        return len(_FIRST)

    return {key: node[key] for key in sorted(node, key=rank)}


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model as a structural OpenAPI v3 schema, every reference inlined."""
    schema = model.model_json_schema(by_alias=True, schema_generator=_OpenAPIGenerator)
    return _to_openapi(schema, schema.pop("$defs", {}))


def kind_of(resource: Resource) -> str:
    return str(get_args(resource.model_fields["kind"].annotation)[0])


def custom_resource_definition(resource: Resource = api.ConnectivityCheck) -> dict[str, Any]:
    kind = kind_of(resource)
    spec = resource.model_fields["spec"].annotation
    assert isinstance(spec, type) and issubclass(spec, BaseModel)
    cluster = resource.scope == "Cluster"
    root = {
        "description": CLUSTER_DESCRIPTION if cluster else DESCRIPTION,
        "type": "object",
        "properties": {
            "apiVersion": {"description": API_VERSION_DESCRIPTION, "type": "string"},
            "kind": {
                "description": f"Kind is the REST resource this object represents; here {kind}.",
                "type": "string",
            },
            "metadata": {
                "description": "Standard object's metadata: name, labels, annotations."
                if cluster
                else METADATA_DESCRIPTION,
                "type": "object",
            },
            "spec": openapi_schema(spec),
            "status": openapi_schema(api.ConnectivityCheckStatus),
        },
        "required": ["spec"],
    }
    columns = [
        {"name": c.name, "type": c.type, "jsonPath": c.json_path, "description": c.description}
        for c in resource.printer_columns
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{resource.plural}.{api.GROUP}"},
        "spec": {
            "group": api.GROUP,
            "scope": resource.scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": resource.plural,
                "singular": kind.lower(),
                "shortNames": list(resource.short_names),
                "categories": list(resource.categories),
            },
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def render(resource: Resource = api.ConnectivityCheck) -> str:
    command = COMMAND + (" --cluster" if resource.scope == "Cluster" else "")
    header = f"# Generated from hopscope_operator/api.py by `{command}`.\n"
    crd = custom_resource_definition(resource)
    return header + yaml.dump(crd, Dumper=_Dumper, sort_keys=False, width=1000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hopscope_operator.install.crd", description=__doc__
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="the ClusterConnectivityCheck CRD rather than the ConnectivityCheck one",
    )
    parser.add_argument(
        "--check",
        nargs="?",
        const=True,
        metavar="PATH",
        help=f"compare with PATH (default {CRD_PATH}, or {CLUSTER_CRD_PATH} with --cluster)"
        " instead of printing; exit 1 if it differs",
    )
    args = parser.parse_args(argv)
    resource = api.ClusterConnectivityCheck if args.cluster else api.ConnectivityCheck
    generated = render(resource)
    if args.check is None:
        sys.stdout.write(generated)
        return 0
    if args.check is True:
        args.check = CLUSTER_CRD_PATH if args.cluster else CRD_PATH
    args.check = Path(args.check)
    committed = args.check.read_text() if args.check.exists() else ""
    if committed == generated:
        return 0
    diff = difflib.unified_diff(
        committed.splitlines(keepends=True),
        generated.splitlines(keepends=True),
        str(args.check),
        "generated",
    )
    sys.stderr.writelines(diff)
    sys.stderr.write(
        f"{args.check} is stale: run {COMMAND}{' --cluster' if args.cluster else ''}"
        f" > {args.check}\n"
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
