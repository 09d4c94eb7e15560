"""The routing plan: the minimal change to propeller's config that routes the services' task types.

The toolkit writes its routing into one file of its own (TOOLKIT_FILE) that sorts after every other file, so the
plan is computed against the config *without* that file and the file carries only what must change.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import UserError
from .config import (ConfigFile, EffectiveConfig, PropellerConfig, TOOLKIT_FILE, clean_string, effective, go_str,
                     lookup, lowercase_keys, slice_to_map)
from .endpoints import parse_endpoint
from .lint import LintFinding, lint
from .render import render_yaml, unified_diff
from .services import AgentService, validate_services
from .versions import (AGENT_PLUGIN, CONNECTOR_PLUGIN, FlyteVersion, Naming, ROUND_ROBIN, STATIC_TASK_TYPES,
                       canonical_plugins, naming_for, pins_override_discovery, round_robin_is_default)


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
        cleaned = [clean_string(p) for p in user_list]
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
                if go_str(current.get(task_type)) != service.id:
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
            result.append({key: remaining.pop(go_str(key), value)})
        else:
            result.append(item)
    result += [{k: v} for k, v in sorted(remaining.items())]
    return result
