"""Flyte propeller config knowledge: agent/connector naming by version, viper merge rules, routing plan, lint.

Pure and I/O-free: every input arrives as text or dataclasses and every output is a dataclass (or the YAML text
to write). All Flyte version differences live here; callers never branch on a Flyte version themselves.

How propeller reads its config (flytestdlib `config/viper`, viper v1.11 up to Flyte 1.16.5, v1.21 after):

* every `*.yaml` file of the config directory is read in lexical (byte) order of its name and merged into the
  previous ones with viper's `MergeConfig`;
* map keys are lowercased (`insensitiviseMap`), so `GetTask` becomes `gettask`, while maps inside lists keep
  their case (that is why Flyte documents a list of single-key maps as the case-preserving form);
* maps merge key by key, case-insensitively; a list or scalar is replaced whole by a later file; a later
  non-map value for a key that holds a map is dropped with nothing but a log line (viper `mergeMaps`);
* `tasks.task-plugins.enabled-plugins` that is empty enables every registered plugin.

The toolkit writes its routing into one file of its own (TOOLKIT_FILE) that sorts after every other file, so the
plan is computed against the config *without* that file and the file carries only what must change.
"""
from __future__ import annotations

import copy
import difflib
import json
import re
from dataclasses import dataclass
from typing import Any, Sequence

import yaml

from . import yamlio
from .errors import UserError

TOOLKIT_FILE = "zz-flyte-agents.yaml"  # 'z' sorts after digits and after flyte-core's lowercase file names
DEFAULT_TIMEOUT = "10s"
ROUND_ROBIN = '{"loadBalancingConfig": [{"round_robin":{}}]}'
CANONICAL_PLUGINS = ("container", "sidecar", "k8s-array", "{plugin}", "echo")
AGENT_PLUGIN, CONNECTOR_PLUGIN = "agent-service", "connector-service"

# Task types that other propeller plugins register statically (flyteplugins `RegisteredTaskTypes` /
# `SupportedTaskTypes`). An agent serving one of them must be pinned with `default-for-task-types`, or propeller
# fails at startup with "Multiple plugins registered to handle task type".
STATIC_TASK_TYPES: dict[str, tuple[str, ...]] = {
    "container": ("container", "python-task", "raw-container"),
    "sidecar": ("sidecar",),
    "pod": ("container", "python-task", "raw-container", "sidecar"),
    "k8s-array": ("container_array",),
    "echo": ("echo",),
    "spark": ("spark",),
    "ray": ("ray",),
    "pytorch": ("pytorch",),
    "tensorflow": ("tensorflow",),
    "mpi": ("mpi",),
    "dask": ("dask",),
    "bigquery": ("bigquery_query_job_task",),
    "snowflake": ("snowflake",),
    "databricks": ("spark",),
    "athena": ("hive", "presto"),
    "presto": ("presto",),
}
# flytekit's agent server always serves these two (SensorEngine async, WebhookConnector sync since 1.15.1).
FLYTEKIT_BUILTIN_TYPES = {"sensor": False, "webhook": True}

_ID_RE = re.compile(r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$")
_TASK_TYPE_RE = re.compile(r"^[a-z0-9_][a-z0-9_.-]*$")
_DURATION_RE = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^\[[0-9A-Fa-f:.]+\]$")


# ------------------------------------------------------------------------------------------------ versions, naming

@dataclass(frozen=True, order=True)
class FlyteVersion:
    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> FlyteVersion:
        match = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+.]?[0-9A-Za-z.-]*)?", str(text).strip())
        if not match:
            raise UserError(f"--flyte-version {text!r} is not a Flyte version: use e.g. 1.15.3 or 1.16")
        version = cls(int(match[1]), int(match[2]), int(match[3] or 0))
        if version.major != 1:
            raise UserError(f"Flyte {version} is not supported: this toolkit configures Flyte 1 (1.13 to 1.16.x); "
                            "Flyte 2 uses an incompatible connector protocol")
        if version < cls(1, 13):
            raise UserError(f"Flyte {version} is not supported: agents are discovered by polling only from 1.13; "
                            "upgrade Flyte or pass --flyte-version 1.13 or newer")
        return version

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class Naming:
    """Every name that differs between the agent (≤ 1.15) and connector (≥ 1.16) generations."""

    plugin: str
    other_plugin: str
    default_key: str
    deployments_key: str
    for_task_types_key: str
    metadata_rpc: str
    builtin_service: str
    binary_values_key: str
    chart_key: str
    core_config_file: str

    @property
    def section_keys(self) -> tuple[str, str, str]:
        return (self.default_key, self.deployments_key, self.for_task_types_key)


AGENT_NAMING = Naming(AGENT_PLUGIN, CONNECTOR_PLUGIN, "defaultAgent", "agents", "agentForTaskTypes", "ListAgents",
                      "flyteagent", "agentService", "flyteagent", "agent_service.yaml")
CONNECTOR_NAMING = Naming(CONNECTOR_PLUGIN, AGENT_PLUGIN, "defaultConnector", "connectors", "connectorForTaskTypes",
                          "ListConnectors", "flyteconnector", "connectorService", "flyteconnector",
                          "connector_service.yaml")


def naming_for(version: FlyteVersion) -> Naming:
    """Charts, sandbox and flytectl switched to the connector naming in 1.16.0 (flyte #6400)."""
    return CONNECTOR_NAMING if version >= FlyteVersion(1, 16) else AGENT_NAMING


def naming_of_plugin(plugin: str) -> Naming:
    return CONNECTOR_NAMING if plugin == CONNECTOR_PLUGIN else AGENT_NAMING


def plugin_exists(plugin: str, version: FlyteVersion) -> bool:
    """The connector plugin was added to propeller in 1.15.1 (#6332); the agent plugin is still there in 1.16."""
    return plugin != CONNECTOR_PLUGIN or version >= FlyteVersion(1, 15, 1)


def code_default_timeout(plugin: str, version: FlyteVersion) -> str:
    """The `defaultTimeout` propeller uses when none is set (agent: 10s until 1.15.0, 3s from 1.15.1 #6312)."""
    if plugin == AGENT_PLUGIN and version >= FlyteVersion(1, 15, 1):
        return "3s"
    return "10s"


def round_robin_is_default(version: FlyteVersion) -> bool:
    """`defaultServiceConfig` defaults to round_robin since 1.15.0 (#6179); before, gRPC picked one pod."""
    return version >= FlyteVersion(1, 15)


def pins_override_discovery(version: FlyteVersion) -> bool:
    """Since 1.16.0 (#6464) explicit `*ForTaskTypes` entries win over ListAgents discovery; before, discovery won."""
    return version >= FlyteVersion(1, 16)


def echo_swallows_unknown_types(version: FlyteVersion) -> bool:
    """Up to 1.13.1 the echo plugin was a default plugin: unknown task types silently 'succeeded' (#5713)."""
    return version < FlyteVersion(1, 13, 2)


def version_from_image(image: str) -> FlyteVersion | None:
    """Flyte's own images are tagged v<version>: flytecopilot, flytepropeller, flyte-binary (each also -release)."""
    match = re.search(r"/(flytecopilot|flytepropeller|flyte-binary)(-release)?:v(\d+\.\d+\.\d+)(?:$|[^0-9.])",
                      "/" + image)
    if not match:
        return None
    try:
        return FlyteVersion.parse(match[3])
    except UserError:
        return None


def version_from_builtin_service(deployment_name: str) -> FlyteVersion | None:
    """The built-in service is Deployment flyteagent up to 1.15 and flyteconnector from 1.16 (#6400)."""
    return {"flyteagent": FlyteVersion(1, 15), "flyteconnector": FlyteVersion(1, 16)}.get(deployment_name)


def chart_default_endpoint(naming: Naming, version: FlyteVersion, namespace: str = "flyte") -> str:
    """The charts' default endpoint for the built-in service: dns:/// up to 1.14, k8s:// from 1.15."""
    if version >= FlyteVersion(1, 15):
        return k8s_endpoint(naming.builtin_service, namespace, 8000)
    return dns_endpoint(naming.builtin_service, namespace, 8000)


def chart_default_task_plugins(version: FlyteVersion) -> dict:
    """`tasks.task-plugins` as flyte-binary and flyte-core render it by default (echo added in 1.14)."""
    plugins = canonical_plugins(naming_for(version))
    if version < FlyteVersion(1, 14):
        plugins.remove("echo")
    return {"enabled-plugins": plugins,
            "default-for-task-types": {"container": "container", "sidecar": "sidecar", "container_array": "k8s-array"}}


# ------------------------------------------------------------------------------------------------ endpoints

@dataclass(frozen=True)
class Endpoint:
    scheme: str  # "k8s", "dns", "passthrough" or "" (gRPC's default)
    host: str
    port: int
    namespace: str = ""

    @property
    def needs_endpoints_rbac(self) -> bool:
        """The k8s resolver watches Endpoints objects, so propeller's ServiceAccount needs get/list/watch on them."""
        return self.scheme == "k8s"


def k8s_endpoint(service: str, namespace: str, port: int) -> str:
    return f"k8s://{service}.{namespace}:{port}"


def dns_endpoint(service: str, namespace: str, port: int) -> str:
    return f"dns:///{service}.{namespace}.svc.cluster.local:{port}"


def parse_endpoint(text: str, what: str = "endpoint") -> Endpoint:
    """Parse a gRPC target as propeller dials it; the k8s resolver accepts three spellings (k8s_resolver.go)."""
    text = str(text).strip()
    scheme, rest = "", text
    if "://" in text:
        scheme, rest = text.split("://", 1)
        if scheme not in ("k8s", "dns", "passthrough"):
            raise UserError(f"{what} {text!r} has scheme {scheme}://, which propeller cannot dial: use "
                            "k8s://svc.ns:port or dns:///svc.ns.svc.cluster.local:port")
        if scheme in ("dns", "passthrough") or rest.startswith("/"):
            rest = rest.split("/", 1)[1] if "/" in rest else rest  # drop the (usually empty) authority
    namespace = ""
    if scheme == "k8s" and "/" in rest:
        namespace, rest = rest.split("/", 1)
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"{what} {text!r} has no port: add the container port, e.g. k8s://svc.ns:8000")
    if not host or not _HOST_RE.match(host):
        raise UserError(f"{what} {text!r} has an invalid host {host!r}: use a DNS name like svc.namespace")
    if scheme == "k8s" and not namespace and "." not in host:
        raise UserError(f"{what} {text!r} names no namespace: use k8s://<service>.<namespace>:<port>")
    return Endpoint(scheme, host, int(port), namespace)


def _check_duration(value: str, what: str) -> None:
    if not _DURATION_RE.match(str(value)):
        raise UserError(f"{what} {value!r} is not a Go duration: use e.g. 10s, 500ms or 1m")


# ------------------------------------------------------------------------------------------------ desired services

@dataclass(frozen=True)
class AgentService:
    """One agent (connector) service that propeller should route to."""

    id: str
    endpoint: str
    task_types: tuple[str, ...] = ()
    sync: bool = False
    default: bool = False
    insecure: bool = True
    timeout: str = DEFAULT_TIMEOUT
    sync_task_types: tuple[str, ...] = ()  # served by sync agents when the service as a whole is not `sync`

    def is_sync(self, task_type: str) -> bool:
        return self.sync or task_type in self.sync_task_types

    def validate(self) -> None:
        if not self.id or not isinstance(self.id, str):
            raise UserError("service id is empty: give every service an id like my-agent")
        if self.id != self.id.lower() and _ID_RE.match(self.id.lower()):
            raise UserError(f"service id {self.id!r} has uppercase letters, which propeller lowercases (so "
                            f"routing to it is silently ignored): use {self.id.lower()!r}")
        if not _ID_RE.match(self.id):
            raise UserError(f"service id {self.id!r} is invalid: use lowercase letters, digits, '-' and '_'")
        parse_endpoint(self.endpoint, f"service {self.id}: endpoint")
        _check_duration(self.timeout, f"service {self.id}: timeout")
        if not self.task_types and not self.default:
            raise UserError(f"service {self.id} has no task types: list the task types it serves (or make it the "
                            "default service)")
        for task_type in self.task_types:
            _check_task_type(self.id, task_type)
        if len(set(self.task_types)) != len(self.task_types):
            raise UserError(f"service {self.id} lists a task type twice: list each task type once")


def _check_task_type(service_id: str, task_type: Any) -> None:
    if not isinstance(task_type, str) or not task_type.strip():
        raise UserError(f"service {service_id}: task type {task_type!r} is empty or not a string")
    if task_type != task_type.strip() or " " in task_type or "\t" in task_type:
        raise UserError(f"service {service_id}: task type {task_type!r} contains spaces: task types are single "
                        "words such as my_task")
    if task_type != task_type.lower():
        raise UserError(f"service {service_id}: task type {task_type!r} has uppercase letters, which propeller "
                        "lowercases in its config maps: rename the task type in lowercase")
    if not _TASK_TYPE_RE.match(task_type):
        raise UserError(f"service {service_id}: task type {task_type!r} is invalid: use lowercase letters, "
                        "digits, '_', '-' and '.'")


def validate_services(services: Sequence[AgentService]) -> None:
    seen_ids: set[str] = set()
    owner: dict[str, str] = {}
    for service in services:
        service.validate()
        if service.id in seen_ids:
            raise UserError(f"service id {service.id!r} is given twice: service ids must be unique")
        seen_ids.add(service.id)
        for task_type in service.task_types:
            if task_type in owner:
                raise UserError(f"task type {task_type!r} is served by both {owner[task_type]} and {service.id}: "
                                "two services advertising one task type route at random; give it to one service")
            owner[task_type] = service.id
    defaults = [s.id for s in services if s.default]
    if len(defaults) > 1:
        raise UserError(f"services {', '.join(defaults)} are all marked default: mark at most one service default")


# ------------------------------------------------------------------------------------------------ config files, merge

@dataclass(frozen=True)
class ConfigFile:
    """One file of propeller's config directory (a ConfigMap key, or a file on disk)."""

    name: str
    text: str
    origin: str = ""  # where it came from, for messages: "ConfigMap flyte/flyte-sandbox-config"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.origin})" if self.origin else self.name

    def document(self) -> dict:
        """The file as parsed YAML with its original key case (an empty file is an empty map)."""
        try:
            data = yamlio.load(self.text)
        except yamlio.Error as err:
            where = yamlio.at_line(err)
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise UserError(f"config file {self.label} is not valid YAML{where}: {problem}; fix the YAML") from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise UserError(f"config file {self.label} holds a {type(data).__name__}, not a map of config "
                            "sections: propeller config files are YAML maps")
        return _stringify_keys(data)


def _stringify_keys(value: Any) -> Any:
    """YAML allows non-string keys; Go's viper formats them with %v (true, 8000)."""
    if isinstance(value, dict):
        return {_go_str(k): _stringify_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify_keys(v) for v in value]
    return value


def _go_str(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return "" if key is None else str(key)


def lowercase_keys(value: Any) -> Any:
    """viper's insensitiviseMap: lowercase every map key, but not inside lists (Flyte restores those)."""
    if isinstance(value, dict):
        return {k.lower(): lowercase_keys(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class MergeEvent:
    """Something a later file did to an earlier file's value that users do not expect."""

    kind: str  # "list-replaced" or "type-mismatch"
    path: str
    earlier: str
    later: str
    dropped: tuple[str, ...] = ()


def merge_into(target: dict, source: dict, origins: dict, later: str, path: str = "",
               events: list[MergeEvent] | None = None) -> None:
    """viper mergeMaps on lowercased maps: maps merge, a non-map replaces, a non-map over a map is dropped."""
    for key, value in source.items():
        key_path = f"{path}.{key}" if path else key
        if key not in target:
            target[key] = copy.deepcopy(value)
            origins[key_path] = later
            continue
        current = target[key]
        if isinstance(current, dict):
            if isinstance(value, dict):
                merge_into(current, value, origins, later, key_path, events)
            elif events is not None:
                events.append(MergeEvent("type-mismatch", key_path, origins.get(key_path, "?"), later))
            continue
        if isinstance(current, list) and isinstance(value, list) and events is not None:
            dropped = tuple(_item_text(i) for i in current if i not in value)
            if dropped:
                events.append(MergeEvent("list-replaced", key_path, origins.get(key_path, "?"), later, dropped))
        target[key] = copy.deepcopy(value)
        origins[key_path] = later


def _item_text(item: Any) -> str:
    return item if isinstance(item, str) else json.dumps(item, sort_keys=True, default=str)


@dataclass(frozen=True)
class PropellerConfig:
    """Propeller's config as the set of files it loads (order is by name, as propeller globs them)."""

    files: tuple[ConfigFile, ...] = ()

    def __post_init__(self) -> None:
        names = [f.name for f in self.files]
        for name in names:
            if not name.endswith(".yaml"):
                raise UserError(f"config file {name!r} does not end in .yaml, so propeller's *.yaml glob never "
                                "loads it: rename it")
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate:
            raise UserError(f"config file {duplicate!r} is given twice (a projected volume cannot hold two files "
                            "of one name): keep one")

    def ordered(self) -> tuple[ConfigFile, ...]:
        return tuple(sorted(self.files, key=lambda f: f.name.encode()))

    def without(self, name: str) -> PropellerConfig:
        return PropellerConfig(tuple(f for f in self.files if f.name != name))

    def with_file(self, new: ConfigFile) -> PropellerConfig:
        return PropellerConfig(self.without(new.name).files + (new,))

    def get(self, name: str) -> ConfigFile | None:
        return next((f for f in self.files if f.name == name), None)

    def merged(self, events: list[MergeEvent] | None = None) -> dict:
        result: dict = {}
        origins: dict = {}
        for config_file in self.ordered():
            merge_into(result, lowercase_keys(config_file.document()), origins, config_file.label, "", events)
        return result


def lookup(tree: Any, *path: str) -> Any:
    """Look a path up case-insensitively, as viper does."""
    for key in path:
        if not isinstance(tree, dict):
            return None
        tree = next((v for k, v in tree.items() if k.lower() == key.lower()), None)
    return tree


def slice_to_map(value: Any) -> dict[str, Any]:
    """Flyte's sliceToMapHook: a list of single-key maps reads as one map (later entries win)."""
    if isinstance(value, dict):
        return dict(value)
    result: dict[str, Any] = {}
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                result.update({_go_str(k): v for k, v in item.items()})
    return result


def _clean(name: Any) -> str:
    """propeller's cleanString for plugin ids and task types."""
    return _go_str(name).strip().lower()


# ------------------------------------------------------------------------------------------------ effective view

@dataclass(frozen=True)
class DeploymentView:
    id: str  # "" for the default deployment
    endpoint: str
    default_timeout: str | None
    timeout_keys: tuple[str, ...]


@dataclass(frozen=True)
class PluginView:
    plugin: str
    present: bool
    default: DeploymentView | None
    deployments: tuple[DeploymentView, ...]
    for_task_types: dict[str, str]


@dataclass(frozen=True)
class EffectiveConfig:
    """What propeller would see for task routing after merging every file."""

    enabled_plugins: tuple[str, ...]
    enabled_explicit: bool  # False: the list is empty or absent, so every plugin is enabled
    default_for_task_types: dict[str, str]
    plugins: dict[str, PluginView]

    def is_enabled(self, plugin: str) -> bool:
        return not self.enabled_explicit or plugin in self.enabled_plugins


def effective(merged: dict) -> EffectiveConfig:
    raw_enabled = lookup(merged, "tasks", "task-plugins", "enabled-plugins")
    enabled = tuple(_clean(p) for p in raw_enabled) if isinstance(raw_enabled, list) else ()
    defaults = {_clean(k): _clean(v) for k, v in
                slice_to_map(lookup(merged, "tasks", "task-plugins", "default-for-task-types")).items()}
    plugins = {n.plugin: _plugin_view(merged, n) for n in (AGENT_NAMING, CONNECTOR_NAMING)}
    return EffectiveConfig(enabled, bool(enabled), defaults, plugins)


def _plugin_view(merged: dict, naming: Naming) -> PluginView:
    section = lookup(merged, "plugins", naming.plugin)
    if not isinstance(section, dict):
        return PluginView(naming.plugin, section is not None, None, (), {})
    default = _deployment_view("", section.get(naming.default_key.lower()))
    deployments = tuple(_deployment_view(k, v) for k, v in
                        slice_to_map(section.get(naming.deployments_key.lower())).items())
    for_types = {k: _go_str(v) for k, v in slice_to_map(section.get(naming.for_task_types_key.lower())).items()}
    return PluginView(naming.plugin, True, default if default.endpoint else None, deployments, for_types)


def _deployment_view(deployment_id: str, value: Any) -> DeploymentView:
    value = lowercase_keys(value) if isinstance(value, dict) else {}
    timeouts = value.get("timeouts")
    keys = tuple(slice_to_map(timeouts)) if timeouts is not None else ()
    timeout = value.get("defaulttimeout")
    return DeploymentView(deployment_id, _go_str(value.get("endpoint") or ""),
                          None if timeout is None else _go_str(timeout), keys)


# ------------------------------------------------------------------------------------------------ lint

@dataclass(frozen=True)
class LintFinding:
    rule: str
    severity: str  # "error" (propeller misroutes or fails), "warning" (likely wrong), "info"
    message: str
    fix: str

    def line(self) -> str:
        return f"{self.severity}: [{self.rule}] {self.message}; fix: {self.fix}"


def lint(config: PropellerConfig, version: FlyteVersion, services: Sequence[AgentService] = ()) -> list[LintFinding]:
    """Every known pitfall in `config` for Flyte `version` (and for the services about to be routed)."""
    events: list[MergeEvent] = []
    merged = config.merged(events)
    view = effective(merged)
    naming = naming_for(version)
    findings: list[LintFinding] = []
    findings += _lint_merge_events(events)
    findings += _lint_file_keys(config)
    findings += _lint_plugins(view, version, naming)
    for plugin_view in view.plugins.values():
        if plugin_view.present:
            findings += _lint_plugin_section(merged, plugin_view, view, version, services)
    return findings


def _lint_merge_events(events: list[MergeEvent]) -> list[LintFinding]:
    findings = []
    for event in events:
        if event.kind == "list-replaced":
            findings.append(LintFinding(
                "list-replaced", "error" if event.path.endswith("enabled-plugins") else "warning",
                f"{event.later} replaces the list {event.path} of {event.earlier} (lists are not merged), dropping "
                f"{', '.join(event.dropped)}",
                f"repeat the whole list in {event.later}"))
        else:
            findings.append(LintFinding(
                "type-mismatch", "error",
                f"{event.later} sets {event.path} to a non-map while {event.earlier} has a map there: propeller "
                "ignores the later value",
                f"use the same form (map or list) for {event.path} in every file"))
    return findings


def _lint_file_keys(config: PropellerConfig) -> list[LintFinding]:
    """Uppercase map keys that viper lowercases: ids, task types and per-RPC timeouts."""
    findings = []
    for config_file in config.ordered():
        document = config_file.document()
        for naming in (AGENT_NAMING, CONNECTOR_NAMING):
            section = lookup(document, "plugins", naming.plugin)
            if not isinstance(section, dict):
                continue
            section = lowercase_keys_shallow(section)
            findings += _lint_section_case(config_file.label, naming, section)
    return findings


def lowercase_keys_shallow(value: Any) -> Any:
    return {k.lower(): v for k, v in value.items()} if isinstance(value, dict) else value


def _lint_section_case(label: str, naming: Naming, section: dict) -> list[LintFinding]:
    findings = []
    path = f"plugins.{naming.plugin}"
    deployments = section.get(naming.deployments_key.lower())
    if isinstance(deployments, dict):
        for dep_id in deployments:
            if dep_id != dep_id.lower():
                findings.append(LintFinding(
                    "lowercased-key", "error",
                    f"{label}: {path}.{naming.deployments_key} id {dep_id!r} is lowercased by propeller to "
                    f"{dep_id.lower()!r}, so references to {dep_id!r} are silently ignored",
                    f"rename the id to {dep_id.lower()!r} everywhere"))
    pins = section.get(naming.for_task_types_key.lower())
    if isinstance(pins, dict):
        for task_type in pins:
            if task_type != task_type.lower():
                findings.append(LintFinding(
                    "lowercased-key", "error",
                    f"{label}: {path}.{naming.for_task_types_key} task type {task_type!r} is lowercased to "
                    f"{task_type.lower()!r} and no longer matches the task",
                    f"write it in list form (- {task_type}: <id>) or use a lowercase task type"))
    for dep_id, value in _section_deployments(section, naming):
        timeouts = value.get("timeouts") if isinstance(value, dict) else None
        if isinstance(timeouts, dict) and any(k != k.lower() for k in timeouts):
            findings.append(LintFinding(
                "lowercased-timeouts", "warning",
                f"{label}: {path}.{dep_id}.timeouts keys {', '.join(sorted(timeouts))} are lowercased by "
                "propeller, so these per-RPC timeouts are ignored and defaultTimeout applies",
                "set defaultTimeout, or write timeouts as a list: - GetTask: 10s"))
    return findings


def _section_deployments(section: dict, naming: Naming) -> list[tuple[str, Any]]:
    entries = [(naming.default_key, lowercase_keys_shallow(section.get(naming.default_key.lower())))]
    entries += [(f"{naming.deployments_key}.{k}", lowercase_keys_shallow(v))
                for k, v in slice_to_map(section.get(naming.deployments_key.lower())).items()]
    return entries


def _lint_plugins(view: EffectiveConfig, version: FlyteVersion, naming: Naming) -> list[LintFinding]:
    findings = []
    if not view.enabled_explicit:
        findings.append(LintFinding(
            "empty-enabled-plugins", "error",
            "tasks.task-plugins.enabled-plugins is empty or missing, which enables every registered plugin "
            f"(both {AGENT_PLUGIN} and {CONNECTOR_PLUGIN}, spark, ray, …) and invites task type conflicts",
            f"list the plugins explicitly, e.g. [{', '.join(canonical_plugins(naming))}]"))
    agent_like = [p for p in (AGENT_PLUGIN, CONNECTOR_PLUGIN) if p in view.enabled_plugins]
    if len(agent_like) == 2:
        findings.append(LintFinding(
            "both-agent-plugins", "warning",
            f"both {AGENT_PLUGIN} and {CONNECTOR_PLUGIN} are enabled: both discover the same task types from "
            "the same servers",
            f"keep only {naming.plugin}, or pin each task type with default-for-task-types"))
    for plugin in view.enabled_plugins:
        if plugin in (AGENT_PLUGIN, CONNECTOR_PLUGIN) and not plugin_exists(plugin, version):
            findings.append(LintFinding(
                "unknown-plugin", "error",
                f"enabled-plugins lists {plugin}, which Flyte {version} does not have (added in 1.15.1), so it "
                "is silently not loaded", f"use {naming.plugin}"))
        elif plugin == naming.other_plugin and naming.plugin == CONNECTOR_PLUGIN:
            findings.append(LintFinding(
                "legacy-naming", "warning",
                f"enabled-plugins lists {AGENT_PLUGIN}: Flyte {version} renamed agents to connectors "
                f"({AGENT_PLUGIN} is deprecated)", f"use {CONNECTOR_PLUGIN} and plugins.{CONNECTOR_PLUGIN}"))
    for task_type, plugin in sorted(view.default_for_task_types.items()):
        if view.enabled_explicit and plugin not in view.enabled_plugins:
            findings.append(LintFinding(
                "default-plugin-not-enabled", "error",
                f"default-for-task-types maps {task_type} to {plugin}, which is not in enabled-plugins: propeller "
                "refuses to start", f"add {plugin} to enabled-plugins or drop the {task_type} entry"))
    findings += _lint_static_conflicts(view)
    if "echo" in view.enabled_plugins and echo_swallows_unknown_types(version):
        findings.append(LintFinding(
            "echo-default", "warning",
            f"in Flyte {version} the echo plugin is a default plugin: tasks of unknown types silently succeed",
            "remove echo from enabled-plugins, or upgrade to Flyte 1.13.2 or newer"))
    return findings


def _lint_static_conflicts(view: EffectiveConfig) -> list[LintFinding]:
    """Two enabled plugins registering one task type fail propeller at startup unless it is pinned."""
    findings = []
    agent_enabled = any(p in view.enabled_plugins for p in (AGENT_PLUGIN, CONNECTOR_PLUGIN))
    for plugin in ("bigquery", "snowflake", "databricks"):
        if plugin in view.enabled_plugins and agent_enabled:
            types = [t for t in STATIC_TASK_TYPES[plugin] if t not in view.default_for_task_types]
            if types:
                findings.append(LintFinding(
                    "plugin-conflict", "warning",
                    f"the {plugin} plugin and the agent plugin both handle {', '.join(types)}",
                    f"pin each with default-for-task-types ({types[0]}: <plugin>) or disable one plugin"))
    return findings


def _lint_plugin_section(merged: dict, plugin_view: PluginView, view: EffectiveConfig, version: FlyteVersion,
                         services: Sequence[AgentService]) -> list[LintFinding]:
    plugin = plugin_view.plugin
    naming = naming_of_plugin(plugin)
    findings: list[LintFinding] = []
    section = lowercase_keys_shallow(lookup(merged, "plugins", plugin))
    other = naming_of_plugin(naming.other_plugin)
    for key in other.section_keys:
        if key.lower() in section:
            findings.append(LintFinding(
                "wrong-section-key", "error",
                f"plugins.{plugin}.{key} belongs to {other.plugin}: the {plugin} plugin ignores it",
                f"rename it to {dict(zip(other.section_keys, naming.section_keys, strict=True))[key]}"))
    configured = plugin_view.default is not None or plugin_view.deployments
    if configured and view.enabled_explicit and plugin not in view.enabled_plugins:
        findings.append(LintFinding(
            "plugin-not-enabled", "error",
            f"plugins.{plugin} has deployments but {plugin} is not in enabled-plugins: its task types fall "
            "through to the container plugin and sit QUEUED or fail with no clear error",
            f"add {plugin} to tasks.task-plugins.enabled-plugins (the whole list: lists are replaced)"))
    if plugin == AGENT_PLUGIN and naming_for(version).plugin == CONNECTOR_PLUGIN and configured:
        findings.append(LintFinding(
            "legacy-naming", "warning",
            f"plugins.{AGENT_PLUGIN} is the pre-1.16 name: Flyte {version} charts and sandbox use "
            f"plugins.{CONNECTOR_PLUGIN}", f"move it to plugins.{CONNECTOR_PLUGIN} with connector key names"))
    findings += _lint_deployments(plugin_view, naming, version)
    findings += _lint_pins(plugin_view, naming, version, services)
    findings += _lint_list_pins(section, naming)
    return findings


def _lint_deployments(plugin_view: PluginView, naming: Naming, version: FlyteVersion) -> list[LintFinding]:
    findings = []
    all_deps = ([plugin_view.default] if plugin_view.default else []) + list(plugin_view.deployments)
    for dep in all_deps:
        where = f"plugins.{naming.plugin}.{naming.default_key if not dep.id else naming.deployments_key + '.' + dep.id}"
        try:
            endpoint = parse_endpoint(dep.endpoint, f"{where}.endpoint")
        except UserError:
            findings.append(LintFinding(
                "endpoint-format", "error", f"{where}.endpoint {dep.endpoint!r} is not a gRPC target propeller can "
                "dial (scheme://host:port)", "use k8s://<svc>.<ns>:<port> or dns:///<svc>.<ns>.svc.cluster.local:<port>"))
            continue
        if naming.plugin == CONNECTOR_PLUGIN and endpoint.host.startswith("flyteagent."):
            findings.append(LintFinding(
                "legacy-naming", "warning",
                f"{where}.endpoint points at service flyteagent: since 1.16 the built-in service is flyteconnector",
                "point it at flyteconnector (or at your own service)"))
        if dep.default_timeout is None:
            findings.append(LintFinding(
                "no-default-timeout", "info",
                f"{where} sets no defaultTimeout, so Flyte {version} uses "
                f"{code_default_timeout(naming.plugin, version)}", f"set defaultTimeout: {DEFAULT_TIMEOUT}"))
    if len(all_deps) > 1:
        pinned = set(plugin_view.for_task_types)
        shared = sorted(t for t in FLYTEKIT_BUILTIN_TYPES if t not in pinned)
        if shared:
            fix = (f"if it matters which server runs sensor tasks, pin sensor in {naming.for_task_types_key} to an "
                   f"entry of {naming.deployments_key}; never pin the sync webhook"
                   if pins_override_discovery(version)
                   else "serve them from one deployment only (before 1.16 pins do not override discovery)")
            findings.append(LintFinding(
                "ambiguous-task-type", "info",
                f"{len(all_deps)} deployments are polled and every flytekit server advertises "
                f"{', '.join(shared)}: the last one polled (random order) serves them", fix))
    return findings


def _lint_pins(plugin_view: PluginView, naming: Naming, version: FlyteVersion,
               services: Sequence[AgentService]) -> list[LintFinding]:
    findings = []
    ids = {d.id for d in plugin_view.deployments}  # propeller looks the id up exactly
    sync_types = {t for s in services for t in s.task_types if s.is_sync(t)}
    sync_types |= {t for t, is_sync in FLYTEKIT_BUILTIN_TYPES.items() if is_sync}
    for task_type, dep_id in sorted(plugin_view.for_task_types.items()):
        if dep_id not in ids:
            hint = (f"the id is {dep_id.lower()!r} after lowercasing" if dep_id.lower() in ids
                    else f"add {naming.deployments_key}.{dep_id.lower()} or fix the id")
            findings.append(LintFinding(
                "missing-deployment", "error",
                f"plugins.{naming.plugin}.{naming.for_task_types_key} routes {task_type} to {dep_id!r}, which is "
                f"not in {naming.deployments_key}: propeller silently ignores the entry", hint))
        if task_type in sync_types and pins_override_discovery(version):
            findings.append(LintFinding(
                "sync-pinned", "error",
                f"{naming.for_task_types_key} pins sync task type {task_type}: since 1.16 a pin makes propeller "
                "call CreateTask instead of ExecuteTaskSync", f"remove the {task_type} entry (discovery routes it)"))
    return findings


def _lint_list_pins(section: dict, naming: Naming) -> list[LintFinding]:
    value = section.get(naming.for_task_types_key.lower())
    if not isinstance(value, list):
        return []
    seen: dict[str, str] = {}
    findings = []
    for item in value:
        for task_type, dep_id in (item.items() if isinstance(item, dict) else []):
            if task_type in seen and seen[task_type] != dep_id:
                findings.append(LintFinding(
                    "duplicate-task-type", "error",
                    f"{naming.for_task_types_key} routes {task_type} to both {seen[task_type]} and {dep_id} (the "
                    "last one wins)", f"keep one entry for {task_type}"))
            seen[task_type] = dep_id
    return findings


# ------------------------------------------------------------------------------------------------ the plan

def canonical_plugins(naming: Naming) -> list[str]:
    return [p.format(plugin=naming.plugin) for p in CANONICAL_PLUGINS]


@dataclass(frozen=True)
class RoutingPlan:
    """The minimal change: the toolkit's config file and what it does to the effective config."""

    version: FlyteVersion
    naming: Naming
    file_name: str
    content: dict  # the YAML document of the toolkit's file; empty when nothing must change
    changes: tuple[str, ...]
    findings: tuple[LintFinding, ...]
    before: dict  # effective (merged, lowercased) config without the toolkit's file
    after: dict   # effective config with the planned file
    enabled_plugins: tuple[str, ...]  # the effective list after the change
    endpoints_rbac: bool  # some endpoint uses k8s://, so propeller needs get/list/watch on endpoints

    @property
    def text(self) -> str:
        return render_yaml(self.content) if self.content else ""

    @property
    def changes_effective_config(self) -> bool:
        return self.before != self.after

    def config_file(self) -> ConfigFile | None:
        return ConfigFile(self.file_name, self.text, "flyte-agents") if self.content else None

    def effective_diff(self) -> str:
        """A unified diff of the routing sections only (other sections may hold credentials)."""
        return unified_diff(render_yaml(routing_sections(self.before)), render_yaml(routing_sections(self.after)),
                            "effective (current)", "effective (planned)")

    def to_dict(self) -> dict:
        return {
            "flyte_version": str(self.version), "plugin": self.naming.plugin, "file": self.file_name,
            "content": self.content, "changes": list(self.changes),
            "changes_effective_config": self.changes_effective_config,
            "enabled_plugins": list(self.enabled_plugins), "endpoints_rbac": self.endpoints_rbac,
            "findings": [f.__dict__ for f in self.findings],
        }


def plan_routing(config: PropellerConfig, version: FlyteVersion, services: Sequence[AgentService],
                 file_name: str = TOOLKIT_FILE) -> RoutingPlan:
    """Compute the toolkit's config file that routes `services` on top of `config` (minus any previous one)."""
    validate_services(services)
    baseline = config.without(file_name)
    naming = naming_for(version)
    before = baseline.merged()
    view = effective(before)
    builder = _PlanBuilder(naming, before, view)
    builder.enable_plugin()
    builder.pin_conflicting_types(services)
    builder.route(services, version)
    content = builder.content()
    after_config = baseline.with_file(ConfigFile(file_name, render_yaml(content))) if content else baseline
    after = after_config.merged()
    findings = lint(baseline, version, services)
    findings += [f for f in lint(after_config, version, services) if f not in findings]  # pitfalls the plan adds
    findings += builder.notes + _later_files(baseline, file_name)
    return RoutingPlan(version, naming, file_name, content, tuple(builder.changes), tuple(findings), before, after,
                       effective(after).enabled_plugins,
                       any(parse_endpoint(s.endpoint).needs_endpoints_rbac for s in services))


def routing_sections(merged: dict) -> dict:
    """The parts of a merged config that decide task routing."""
    sections: dict[str, Any] = {}
    task_plugins = lookup(merged, "tasks", "task-plugins")
    if task_plugins is not None:
        sections["tasks"] = {"task-plugins": task_plugins}
    plugins = {p: lookup(merged, "plugins", p) for p in (AGENT_PLUGIN, CONNECTOR_PLUGIN)
               if lookup(merged, "plugins", p)}
    if plugins:
        sections["plugins"] = plugins
    return sections


def _later_files(config: PropellerConfig, file_name: str) -> list[LintFinding]:
    later = [f.label for f in config.ordered() if f.name.encode() > file_name.encode()]
    if not later:
        return []
    return [LintFinding("overridden-by-later-file", "warning",
                        f"{', '.join(later)} load after {file_name} and can override the routing it writes",
                        f"rename them to sort before {file_name}")]


class _PlanBuilder:
    """Accumulates the minimal file content: only values whose effective value differs."""

    def __init__(self, naming: Naming, before: dict, view: EffectiveConfig) -> None:
        self.naming, self.before, self.view = naming, before, view
        self.enabled: list[str] | None = None
        self.pins: dict[str, str] = {}
        self.section: dict[str, Any] = {}
        self.changes: list[str] = []
        self.notes: list[LintFinding] = []

    def enable_plugin(self) -> None:
        raw = lookup(self.before, "tasks", "task-plugins", "enabled-plugins")
        if raw is not None and not isinstance(raw, list):
            raise UserError("tasks.task-plugins.enabled-plugins is not a list: write it as a YAML list of plugin ids")
        plugin = self.naming.plugin
        if not self.view.enabled_explicit:
            self.enabled = canonical_plugins(self.naming)
            self.changes.append(f"enabled-plugins was empty (all plugins enabled): set it to {self.enabled}")
            self.notes.append(LintFinding(
                "empty-enabled-plugins", "warning",
                f"the plan replaces the empty enabled-plugins with {self.enabled}: plugins not listed are disabled",
                "add any other plugin you use (spark, ray, …) to the list"))
            return
        if plugin in self.view.enabled_plugins:
            return
        user_list = [str(p) for p in raw]
        cleaned = [_clean(p) for p in user_list]
        position = cleaned.index(self.naming.other_plugin) + 1 if self.naming.other_plugin in cleaned else len(cleaned)
        self.enabled = user_list[:position] + [plugin] + user_list[position:]
        self.changes.append(f"add {plugin} to enabled-plugins (the whole list is written: lists are replaced)")

    def pin_conflicting_types(self, services: Sequence[AgentService]) -> None:
        """Pin a task type to our plugin where another enabled plugin could claim it."""
        plugin = self.naming.plugin
        enabled = set(self.enabled or self.view.enabled_plugins)
        claimed = {t: p for p, types in STATIC_TASK_TYPES.items() if p in enabled for t in types}
        both = self.naming.other_plugin in enabled
        for task_type in sorted(t for s in services for t in s.task_types):
            current = self.view.default_for_task_types.get(task_type)
            if current == plugin:
                continue
            reason = (f"it is pinned to {current}" if current else
                      f"the {claimed[task_type]} plugin also registers it" if task_type in claimed else
                      f"{self.naming.other_plugin} is enabled too" if both else None)
            if reason:
                self.pins[task_type] = plugin
                self.changes.append(f"pin task type {task_type} to {plugin} in default-for-task-types ({reason})")

    def route(self, services: Sequence[AgentService], version: FlyteVersion) -> None:
        naming = self.naming
        section = lookup(self.before, "plugins", naming.plugin)
        section = section if isinstance(section, dict) else {}
        for service in services:
            desired = self._deployment(service, version)
            if service.default:
                current = section.get(naming.default_key.lower())
                delta = _leaf_delta(current, desired)
                if delta:
                    self.section[naming.default_key] = delta
                    self.changes.append(f"make {service.id} ({service.endpoint}) the {naming.default_key}")
                continue
            current = slice_to_map(section.get(naming.deployments_key.lower())).get(service.id)
            delta = _leaf_delta(current, desired)
            if delta:
                self.section.setdefault(naming.deployments_key, {})[service.id] = delta
                self.changes.append(f"add {naming.deployments_key}.{service.id} -> {service.endpoint}")
        self._pin_deployments(services, version, section)

    def _deployment(self, service: AgentService, version: FlyteVersion) -> dict:
        desired: dict[str, Any] = {"endpoint": service.endpoint, "insecure": service.insecure,
                                   "defaultTimeout": service.timeout}
        if not round_robin_is_default(version):
            desired["defaultServiceConfig"] = ROUND_ROBIN  # spread calls over the service's pods, as 1.15+ does
        return desired

    def _pin_deployments(self, services: Sequence[AgentService], version: FlyteVersion, section: dict) -> None:
        naming = self.naming
        key = naming.for_task_types_key
        current = slice_to_map(section.get(key.lower()))
        wanted: dict[str, str] = {}
        for service in services:
            if service.default:
                continue
            for task_type in service.task_types:
                if service.is_sync(task_type) and pins_override_discovery(version):
                    if task_type in current:
                        self.notes.append(LintFinding(
                            "sync-pinned", "error",
                            f"{key} already pins sync task type {task_type} to {current[task_type]}, which forces "
                            "CreateTask instead of ExecuteTaskSync", f"remove the {task_type} entry from {key}"))
                    continue
                if _go_str(current.get(task_type)) != service.id:
                    wanted[task_type] = service.id
                    self.changes.append(f"route task type {task_type} to {service.id} ({key})")
        if wanted:
            self.section[key] = _overlay(section.get(key.lower()), wanted)

    def content(self) -> dict:
        content: dict[str, Any] = {}
        task_plugins: dict[str, Any] = {}
        if self.enabled is not None:
            task_plugins["enabled-plugins"] = self.enabled
        if self.pins:
            task_plugins["default-for-task-types"] = _overlay(
                lookup(self.before, "tasks", "task-plugins", "default-for-task-types"), self.pins)
        if task_plugins:
            content["tasks"] = {"task-plugins": task_plugins}
        if self.section:
            content["plugins"] = {self.naming.plugin: self.section}
        return content


def _leaf_delta(current: Any, desired: dict) -> dict:
    current = lowercase_keys(current) if isinstance(current, dict) else {}
    return {k: v for k, v in desired.items() if current.get(k.lower()) != v}


def _overlay(existing: Any, entries: dict[str, str]) -> Any:
    """Entries to write over an existing map-valued key, respecting its form.

    A map merges key by key, so only the new entries are written. A list of single-key maps is replaced whole by a
    later file, so the whole list is written again with the entries updated in place.
    """
    if not isinstance(existing, list):
        return dict(sorted(entries.items()))
    remaining = dict(entries)
    result = []
    for item in existing:
        if isinstance(item, dict) and len(item) == 1:
            (key, value), = item.items()
            result.append({key: remaining.pop(_go_str(key), value)})
        else:
            result.append(item)
    result += [{k: v} for k, v in sorted(remaining.items())]
    return result


# ------------------------------------------------------------------------------------------------ rendering

class _Dumper(yaml.SafeDumper):
    """Multi-line strings (config files inside ConfigMaps) as literal blocks, as people write them."""


_Dumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def render_yaml(document: Any) -> str:
    if document in ({}, None):
        return ""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def unified_diff(old: str, new: str, old_name: str, new_name: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=old_name, tofile=new_name))


# ------------------------------------------------------------------------------------------------ deploy support

def serve_command(version: FlyteVersion) -> str:
    """`pyflyte serve agent` up to 1.15, `pyflyte serve connector` from 1.16 (same gRPC protocol, #6400)."""
    return "connector" if naming_for(version) is CONNECTOR_NAMING else "agent"


def routing_check(merged: dict, version: FlyteVersion, services: Sequence[AgentService],
                  served: dict[str, set[str]]) -> list[LintFinding]:
    """Cross-check propeller's effective routing against what each routed service serves (ListAgents).

    Errors: a service propeller has no (or another) endpoint for; a task type routed to a service that does not
    serve it (stale pins included); a task type a service is meant to serve that propeller sends elsewhere.
    """
    naming = naming_for(version)
    view = effective(merged).plugins[naming.plugin]
    deployments = {d.id: d for d in view.deployments}
    findings: list[LintFinding] = []
    ours = {s.id for s in services}
    for service in services:
        current = view.default if service.default else deployments.get(service.id)
        where = naming.default_key if service.default else f"{naming.deployments_key}.{service.id}"
        if current is None or current.endpoint != service.endpoint:
            findings.append(LintFinding(
                "service-not-routed", "error",
                f"propeller's {where} is {current.endpoint if current else 'missing'}, not {service.endpoint}",
                "run `flyte-agents deploy` to write the routing"))
        for task_type in service.task_types:
            pinned = view.for_task_types.get(task_type)
            expected = None if service.default or (service.is_sync(task_type) and pins_override_discovery(version)) \
                else service.id
            if pinned != expected and not (expected is None and pinned == service.id):
                elsewhere = pinned or f"the {naming.default_key}"
                findings.append(LintFinding(
                    "routed-elsewhere", "error",
                    f"task type {task_type} is served by {service.id} but propeller routes it to {elsewhere}",
                    f"run `flyte-agents deploy`, or fix {naming.for_task_types_key}.{task_type} by hand"))
    for task_type, target in sorted(view.for_task_types.items()):
        if target in ours and task_type not in served.get(target, set()):
            findings.append(LintFinding(
                "routed-not-served", "error",
                f"task type {task_type} is routed to {target}, which does not serve it (it serves "
                f"{', '.join(sorted(served.get(target, set()))) or 'nothing'})",
                f"add the agent for {task_type} to {target}'s image, or drop {task_type} from its taskTypes"))
    for service in services:  # unpinned types: propeller finds them by discovery, so they must be served
        unpinned = [t for t in service.task_types
                    if service.default or (service.is_sync(t) and pins_override_discovery(version))]
        if unpinned:
            missing = [t for t in unpinned if t not in served.get(service.id, set())]
            findings += [LintFinding("routed-not-served", "error",
                                     f"task type {t} is routed to {service.id}, which does not serve it",
                                     f"add the agent for {t} to {service.id}'s image, or drop it from its taskTypes")
                         for t in missing]
    return findings


@dataclass(frozen=True)
class DiscoveredTypes:
    """The task types a service's image serves (ListAgents), as the routing of a service without taskTypes."""

    task_types: tuple[str, ...]
    sync_task_types: tuple[str, ...]  # those served by sync agents: never pinned from 1.16 on
    builtin: tuple[str, ...]  # flytekit's built-ins it also serves, left to propeller's default service


def discover_task_types(pods: Sequence[Sequence[tuple[str, bool]]]) -> DiscoveredTypes:
    """Select what to route from each pod's ListAgents answer, as (task type, served by a sync agent) pairs.

    A type is routed only when every pod serves it (a rollout half done must not route to pods that do not), and
    flytekit's built-ins are left out: every flytekit server advertises sensor and webhook, and routing them to
    one service would take them from the default service; a service that should own them lists them in taskTypes.
    """
    if not pods:
        return DiscoveredTypes((), (), ())
    common = set.intersection(*({t for t, _ in pod} for pod in pods))
    sync = {t for pod in pods for t, is_sync in pod if is_sync and t in common}
    routed = sorted(common - set(FLYTEKIT_BUILTIN_TYPES))
    return DiscoveredTypes(tuple(routed), tuple(t for t in routed if t in sync),
                           tuple(sorted(common & set(FLYTEKIT_BUILTIN_TYPES))))


def pinned_task_types(merged: dict, version: FlyteVersion) -> dict[str, tuple[str, ...]]:
    """Service id -> the task types propeller's effective config pins to it (what a past discovery routed)."""
    pins = effective(merged).plugins[naming_for(version).plugin].for_task_types
    found: dict[str, list[str]] = {}
    for task_type, service_id in sorted(pins.items()):
        found.setdefault(service_id, []).append(task_type)
    return {k: tuple(v) for k, v in found.items()}
