"""The typed reading of propeller's config: the kind of value every key the toolkit reads or writes must hold.

Propeller decodes its sections into Go structs (mapstructure, weakly typed), so a value of the wrong kind there
either stops propeller at startup or is dropped by viper's merge with nothing but a log line. Every config file is
checked against this schema when it is read (ConfigFile.document), so a wrongly typed section is one error naming
the file, the key path, what was found and what is expected: never a traceback further on, never silently absent.
The Helm values and Kubernetes manifests that `--from` reads are typed the same way (check_document).

* Keys match case-insensitively, as viper's do; keys outside the schema belong to other components and are not
  checked. A null value is the Go zero value (absent), which is allowed everywhere.
* A keyed map (named deployments, task type pins, per-RPC timeouts, default-for-task-types) may be written as a
  map or, to keep the keys' case, as a list of single-key maps (flytestdlib's sliceToMapHook). Each list item must
  be a map: sliceToMapHook gives any other list back unchanged and the decode into a Go map fails.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError
from .versions import AGENT_NAMING, CONNECTOR_NAMING, Naming

_SCALARS = (str, int, float, bool, datetime.date)  # YAML dates reach Go as strings


@dataclass(frozen=True)
class Shape:
    """What a key holds: `kind` is scalar, map, list (of `item`) or keyed (a map or list of single-key maps)."""

    kind: str
    expected: str  # for messages, e.g. "a list of plugin ids"
    fields: dict[str, Shape] = field(default_factory=dict)  # map: key (lowercased for viper) -> shape of its value
    item: Shape | None = None  # list: every item; keyed: every value
    exact_keys: bool = False  # Helm values and manifests match keys exactly; viper case-insensitively


def _scalar(expected: str) -> Shape:
    return Shape("scalar", expected)


def _keyed(expected: str, value: Shape) -> Shape:
    return Shape("keyed", f"{expected} (or a list of single-key maps)", item=value)


def _map(expected: str, **fields: Shape) -> Shape:
    return Shape("map", expected, {k.replace("_", "-").lower(): v for k, v in fields.items()})


_DEPLOYMENT = Shape("map", "a map of endpoint, insecure, defaultTimeout, timeouts…", {
    "endpoint": _scalar("a gRPC target such as k8s://my-agent.flyte:8000"),
    "insecure": _scalar("true or false"),
    "defaultserviceconfig": _scalar("a gRPC service config (JSON text)"),
    "defaulttimeout": _scalar("a duration such as 10s"),
    "timeouts": _keyed("a map of RPC name to duration", _scalar("a duration such as 10s")),
})


def _plugin_section(naming: Naming) -> Shape:
    return Shape("map", f"a map of {', '.join(naming.section_keys)}…", {
        naming.default_key.lower(): _DEPLOYMENT,
        naming.deployments_key.lower(): _keyed("a map of deployment id to deployment", _DEPLOYMENT),
        naming.for_task_types_key.lower(): _keyed("a map of task type to deployment id",
                                                  _scalar("a deployment id")),
        "supportedtasktypes": Shape("list", "a list of task types", item=_scalar("a task type")),
    })


SCHEMA = _map(
    "a map of config sections",
    tasks=_map("a map (task-plugins: …)", task_plugins=_map(
        "a map of enabled-plugins and default-for-task-types",
        enabled_plugins=Shape("list", "a list of plugin ids", item=_scalar("a plugin id")),
        default_for_task_types=_keyed("a map of task type to plugin id", _scalar("a plugin id")))),
    plugins=Shape("map", "a map of plugin sections", {
        n.plugin: _plugin_section(n) for n in (AGENT_NAMING, CONNECTOR_NAMING)}),
)


# The Helm values (flyte-binary, flyte-core) the toolkit reads propeller's config from, and the Kubernetes manifests
# it reads ConfigMaps from. Helm and Kubernetes match keys exactly: a key in another case is not the chart's and is
# not checked, like any other key outside the schema.
def _exact(expected: str, **fields: Shape) -> Shape:
    return Shape("map", expected, fields, exact_keys=True)


_TOGGLE = _exact("a map (enabled: true|false)", enabled=_scalar("true or false"))
BINARY_VALUES = _exact(
    "a map of flyte-binary values",
    configuration=_exact("a map (inline, connectorService, …)", agentService=_plugin_section(AGENT_NAMING),
                         connectorService=_plugin_section(CONNECTOR_NAMING), inline=SCHEMA),
    enabled_plugins=_exact("a map (tasks: …)", tasks=SCHEMA.fields["tasks"]),
    flyteagent=_TOGGLE, flyteconnector=_TOGGLE,
    rbac=_exact("a map (extraRules: …)", extraRules=Shape("list", "a list of RBAC rules",
                                                         item=_exact("an RBAC rule (apiGroups, resources, verbs)"))),
)
_CORE_TOGGLE = _exact("a map (enabled, plugin_config)", enabled=_scalar("true or false"), plugin_config=SCHEMA)
CORE_VALUES = _exact(
    "a map of flyte-core values",
    configmap=_exact("a map of propeller config files (core, enabled_plugins, k8s, …)", **{
        key: SCHEMA for key in ("admin", "catalog", "copilot", "core", "enabled_plugins", "k8s", "logger", "otel",
                                "resource_manager", "task_logs")}),
    flyteagent=_CORE_TOGGLE, flyteconnector=_CORE_TOGGLE,
)
CONFIG_MAP = _exact("a ConfigMap manifest",
                    metadata=_exact("a map (name, namespace, …)", name=_scalar("the ConfigMap's name"),
                                    namespace=_scalar("a namespace")),
                    data=_exact("a map of file name to text"))
KUBE_LIST = _exact("a Kubernetes List", items=Shape("list", "a list of objects", item=_exact("a Kubernetes object")))


def check(document: dict, label: str) -> None:
    """Raise one UserError for the first value of `document` (a config file's YAML) of the wrong kind."""
    check_document(document, SCHEMA, f"config file {label}")


def check_document(document: Any, schema: Shape, where: str) -> None:
    """The same for any document and schema (Helm values, manifests); `where` names the document."""
    _check(document, schema, "", where)


def _check(value: Any, shape: Shape, path: str, where: str) -> None:
    if value is None:
        return
    if shape.kind == "scalar":
        ok = isinstance(value, _SCALARS)
    elif shape.kind == "keyed":
        ok = isinstance(value, (dict, list))
    else:
        ok = isinstance(value, dict if shape.kind == "map" else list)
    if not ok:
        what = f"{path} is" if path else "the file holds"
        raise UserError(f"{where}: {what} {describe(value)}, expected {shape.expected}: rewrite it in that form")
    if shape.kind == "scalar":
        return
    if shape.kind == "map":
        for key, child in value.items():
            child_shape = shape.fields.get(str(key) if shape.exact_keys else str(key).lower())
            if child_shape is not None:
                _check(child, child_shape, f"{path}.{key}" if path else str(key), where)
    elif shape.kind == "list":
        for i, item in enumerate(value):
            _check(item, shape.item, f"{path}[{i}]", where)
    elif isinstance(value, dict):
        for key, child in value.items():
            _check(child, shape.item, f"{path}.{key}", where)
    else:
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise UserError(f"{where}: {path}[{i}] is {describe(item)}, expected a single-key map (- key: value) "
                                f"as every item of {path}: rewrite it in that form")
            for key, child in item.items():
                _check(child, shape.item, f"{path}[{i}].{key}", where)


def describe(value: Any) -> str:
    """The kind of a YAML value, for messages."""
    if isinstance(value, dict):
        return "a map"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    text = str(value)
    return f"a string ({text[:40] + '…' if len(text) > 40 else text!r})"
