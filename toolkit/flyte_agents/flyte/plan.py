"""The routing plan: the minimal change to propeller's config that routes the services' task types.

The toolkit writes its routing into one file of its own (TOOLKIT_FILE) that sorts after every other file, so the
plan is computed against the config *without* that file and the file carries only what must change. What the plan
changes (its diff, `changes`) is measured against the config *with* the toolkit's current file: a change already
applied is no change. A plan whose result has an error-level lint finding is refused (UserError).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..errors import UserError
from .config import (ConfigFile, EffectiveConfig, PropellerConfig, TOOLKIT_FILE, clean_string, effective, go_str,
                     lookup, lowercase_keys, slice_to_map)
from .endpoints import parse_endpoint
from .lint import LintFinding, lint
from .render import render_yaml, unified_diff
from .services import AgentService, validate_services
from .versions import (AGENT_PLUGIN, CONNECTOR_PLUGIN, FlyteVersion, Naming, ROUND_ROBIN, STATIC_TASK_TYPES,
                       canonical_plugins, echo_swallows_unknown_types, naming_for, pins_override_discovery,
                       plugin_exists, round_robin_is_default)


@dataclass(frozen=True)
class RoutingPlan:
    """The minimal change: the toolkit's config file and what it does to the effective config."""

    version: FlyteVersion
    naming: Naming
    file_name: str
    content: dict  # the YAML document of the toolkit's file; empty when nothing must change
    changes: tuple[str, ...]  # what the file does that the current config does not do yet
    findings: tuple[LintFinding, ...]  # of the planned config: warnings and infos only (errors refuse the plan)
    before: dict  # effective (merged, lowercased) config as it is now, the toolkit's current file included
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
    """Compute the toolkit's config file that routes `services` on top of `config` (minus any previous one).

    Raises UserError when the planned config has an error-level lint finding (the plan's own or one it keeps from
    the input): a config propeller would refuse or misroute is neither written nor rendered.
    """
    validate_services(services)
    baseline = config.without(file_name)
    naming = naming_for(version)
    base = baseline.merged()
    builder = _PlanBuilder(naming, base, effective(base))
    builder.enable_plugin(version)
    builder.pin_conflicting_types(services)
    builder.route(services, version)
    content = builder.content()
    planned = ConfigFile(file_name, render_yaml(content), "flyte-agents")
    after_config = baseline.with_file(planned) if content else baseline
    findings = lint(after_config, version, services) + builder.notes + _later_files(baseline, file_name)
    _refuse_errors(findings)
    current = config.get(file_name)
    up_to_date = (current.text if current else "") == planned.text
    after = after_config.merged()
    return RoutingPlan(version, naming, file_name, content, () if up_to_date else tuple(builder.changes),
                       tuple(findings), config.merged(), after, effective(after).enabled_plugins,
                       any(parse_endpoint(s.endpoint).needs_endpoints_rbac for s in services))


def _refuse_errors(findings: Sequence[LintFinding]) -> None:
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        more = f" (and {len(errors) - 1} more: {', '.join(f.rule for f in errors[1:])})" if len(errors) > 1 else ""
        raise UserError(f"the planned propeller config would be broken: [{errors[0].rule}] {errors[0].message}; "
                        f"fix: {errors[0].fix}{more}")


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
    """Accumulates the minimal file content: only values whose effective value differs.

    Every keyed map the file writes (default-for-task-types, the deployments, the pins) is written in the form the
    merged config holds it: a map merges key by key, so only the new entries are written; a list of single-key
    maps (Flyte's case-keeping form) is replaced whole by a later file, so the whole list is written again with
    the entries updated in place and the new ones appended. Either way every user entry stays effective.
    """

    def __init__(self, naming: Naming, before: dict, view: EffectiveConfig) -> None:
        self.naming, self.before, self.view = naming, before, view
        self.enabled: list[str] | None = None
        self.pins: dict[str, str] = {}
        self.section: dict[str, Any] = {}
        self.changes: list[str] = []
        self.notes: list[LintFinding] = []

    def enable_plugin(self, version: FlyteVersion) -> None:
        plugin = self.naming.plugin
        if not self.view.enabled_explicit:
            self.enabled = self._explicit_list(version)
            self.changes.append(f"enabled-plugins was empty (all plugins enabled): set it to {self.enabled}")
            self.notes.append(LintFinding(
                "empty-enabled-plugins", "warning",
                f"the plan replaces the empty enabled-plugins with {self.enabled}: plugins not listed are disabled",
                "add any other plugin you use (spark, ray, …) to the list"))
            return
        if plugin in self.view.enabled_plugins:
            return
        user_list = [go_str(p) for p in lookup(self.before, "tasks", "task-plugins", "enabled-plugins")]
        cleaned = [clean_string(p) for p in user_list]
        position = cleaned.index(self.naming.other_plugin) + 1 if self.naming.other_plugin in cleaned else len(cleaned)
        self.enabled = user_list[:position] + [plugin] + user_list[position:]
        self.changes.append(f"add {plugin} to enabled-plugins (the whole list is written: lists are replaced)")

    def _explicit_list(self, version: FlyteVersion) -> list[str]:
        """The list that replaces an empty one: the canonical plugins (without echo where it swallows unknown task
        types), then every plugin the config relies on: default-for-task-types targets, which propeller refuses to
        start without, and the other agent plugin when it has deployments (and exists in this version)."""
        canonical = [p for p in canonical_plugins(self.naming)
                     if p != "echo" or not echo_swallows_unknown_types(version)]
        needed = list(self.view.default_for_task_types.values())
        other = self.view.plugins[self.naming.other_plugin]
        if (other.default is not None or other.deployments) and plugin_exists(other.plugin, version):
            needed.append(other.plugin)
        return list(dict.fromkeys(canonical + needed))

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
        deployments = section.get(naming.deployments_key.lower())
        updates: dict[str, dict] = {}
        for service in services:
            desired = self._deployment(service, version)
            if service.default:
                current = section.get(naming.default_key.lower())
                delta = _leaf_delta(current, desired)
                if delta:
                    self.section[naming.default_key] = delta
                    self.changes.append(f"make {service.id} ({service.endpoint}) the {naming.default_key}")
                continue
            delta = _leaf_delta(slice_to_map(deployments).get(service.id), desired)
            if delta:
                updates[service.id] = delta
                self.changes.append(f"add {naming.deployments_key}.{service.id} -> {service.endpoint}")
        if updates:
            self.section[naming.deployments_key] = _keyed_write(deployments, updates, go_str)
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
                if go_str(current.get(task_type)) != service.id:
                    wanted[task_type] = service.id
                    self.changes.append(f"route task type {task_type} to {service.id} ({key})")
        if wanted:
            self.section[key] = _keyed_write(section.get(key.lower()), wanted, go_str)

    def content(self) -> dict:
        content: dict[str, Any] = {}
        task_plugins: dict[str, Any] = {}
        if self.enabled is not None:
            task_plugins["enabled-plugins"] = self.enabled
        if self.pins:
            task_plugins["default-for-task-types"] = _keyed_write(
                lookup(self.before, "tasks", "task-plugins", "default-for-task-types"), self.pins, clean_string)
        if task_plugins:
            content["tasks"] = {"task-plugins": task_plugins}
        if self.section:
            content["plugins"] = {self.naming.plugin: self.section}
        return content


def _leaf_delta(current: Any, desired: dict) -> dict:
    current = lowercase_keys(current) if isinstance(current, dict) else {}
    return {k: v for k, v in desired.items() if current.get(k.lower()) != v}


def _keyed_write(existing: Any, updates: dict[str, Any], key_of: Callable[[Any], str]) -> Any:
    """What to write over a keyed map so that the merged result has `updates` and keeps every other entry.

    `existing` is the merged value (a map, a list of single-key maps, or None); `key_of` is how propeller reads
    a list item's key (cleanString for default-for-task-types, the key as written elsewhere). A map merges key by
    key: only the updates. A list is replaced whole: every item again, each entry with that key updated (a map
    value keeps its other fields: the item replaces the user's whole entry), new entries appended.
    """
    if not isinstance(existing, list):
        return dict(sorted(updates.items()))
    result = []
    for item in existing:
        result.append({k: _updated(v, updates[key_of(k)]) if key_of(k) in updates else v for k, v in item.items()}
                      if isinstance(item, dict) else item)
    written = {key_of(k) for item in existing if isinstance(item, dict) for k in item}
    return result + [{k: v} for k, v in sorted(updates.items()) if k not in written]


def _updated(value: Any, update: Any) -> Any:
    """`value` with `update` applied: map fields replaced by name (case-insensitively, as viper reads them)."""
    if not (isinstance(value, dict) and isinstance(update, dict)):
        return update
    lowered = {k.lower(): v for k, v in update.items()}
    result = {k: lowered.pop(k.lower(), v) for k, v in value.items()}
    return {**result, **{k: v for k, v in update.items() if k.lower() in lowered}}
