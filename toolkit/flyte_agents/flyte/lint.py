"""Lint of propeller's effective agent routing: findings with a rule id, a severity, a message and a fix."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import UserError
from .config import (DeploymentView, EffectiveConfig, MergeEvent, PluginView, PropellerConfig, effective,
                     item_text, lookup, slice_to_map)
from .endpoints import parse_endpoint
from .services import AgentService
from .versions import (AGENT_NAMING, AGENT_PLUGIN, CONNECTOR_NAMING, CONNECTOR_PLUGIN, DEFAULT_TIMEOUT,
                       FLYTEKIT_BUILTIN_TYPES, FlyteVersion, Naming, STATIC_TASK_TYPES, canonical_plugins,
                       code_default_timeout, echo_swallows_unknown_types, naming_for, naming_of_plugin,
                       pins_override_discovery, plugin_exists)


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
    findings += _lint_merge_events(events, merged)
    findings += _lint_file_keys(config)
    findings += _lint_plugins(view, version, naming)
    for plugin_view in view.plugins.values():
        if plugin_view.present:
            findings += _lint_plugin_section(merged, plugin_view, view, version, services)
    return findings


def _lint_merge_events(events: list[MergeEvent], merged: dict) -> list[LintFinding]:
    findings = []
    for event in events:
        if event.kind == "list-replaced":
            lost = _still_dropped(event, merged)
            if lost:
                findings.append(LintFinding(
                    "list-replaced", "error" if event.path.endswith("enabled-plugins") else "warning",
                    f"{event.later} replaces the list {event.path} of {event.earlier} (lists are not merged), "
                    f"dropping {', '.join(lost)}", f"repeat the whole list in {event.later}"))
        else:
            findings.append(LintFinding(
                "type-mismatch", "error",
                f"{event.later} sets {event.path} to a non-map while {event.earlier} has a map there: propeller "
                "ignores the later value",
                f"use the same form (map or list) for {event.path} in every file"))
    return findings


def _still_dropped(event: MergeEvent, merged: dict) -> tuple[str, ...]:
    """What a later file's list dropped that no file after it put back: propeller sees only the last list."""
    final = lookup(merged, *event.path.split("."))
    final = final if isinstance(final, list) else []
    present = {item_text(i) for i in final} | {k for i in final if isinstance(i, dict) for k in i}
    return tuple(d for d in event.dropped if d not in present)


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
    handlers = [p for p, types in STATIC_TASK_TYPES.items() if "python-task" in types]
    if view.enabled_explicit and not any(p in view.enabled_plugins for p in handlers):
        findings.append(LintFinding(
            "no-container-plugin", "error",
            f"enabled-plugins has none of {', '.join(handlers)}: ordinary Python tasks (python-task, container) have "
            "no handler, so they fail (or, with echo as the default plugin, silently succeed)",
            "add container to tasks.task-plugins.enabled-plugins (the whole list: lists are replaced)"))
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
        findings += _lint_discovery_timeout(dep, where, naming)
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
                f"{', '.join(shared)}: the last one polled serves them, and propeller polls {naming.default_key} "
                f"first, then the entries of {naming.deployments_key} in random order, so an entry takes them from "
                f"{naming.default_key}", fix))
    return findings


def _lint_discovery_timeout(dep: DeploymentView, where: str, naming: Naming) -> list[LintFinding]:
    """The agent plugin reads its discovery timeout as timeouts.ListAgents, the connector plugin (1.15.1+) as
    timeouts.ListConnectors (flyteplugins webapi/connector/client.go); the 1.16 sandbox and flyte-binary chart
    still write ListAgents under the connector section."""
    wrong = naming_of_plugin(naming.other_plugin).metadata_rpc
    ignored = [k for k in dep.timeout_keys if k.lower() == wrong.lower()]
    if not ignored or any(k.lower() == naming.metadata_rpc.lower() for k in dep.timeout_keys):
        return []
    return [LintFinding(
        "discovery-timeout-key", "warning",
        f"{where}.timeouts sets {ignored[0]}, which the {naming.plugin} plugin never reads: it looks its discovery "
        f"timeout up as {naming.metadata_rpc}, so discovery uses defaultTimeout",
        f"write the key the plugin reads, in list form (map keys are lowercased): "
        f"timeouts: [{{{naming.metadata_rpc}: 3s}}]")]


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
