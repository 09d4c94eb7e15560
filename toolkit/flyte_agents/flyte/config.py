"""Propeller's config files, viper's merge rules and the effective agent routing they add up to.

Pure and I/O-free, like all of flyte/: every input arrives as text or dataclasses and every output is a dataclass
(or the YAML text to write).

How propeller reads its config (flytestdlib `config/viper`, viper v1.11 up to Flyte 1.16.5, v1.21 after):

* every `*.yaml` file of the config directory is read in lexical (byte) order of its name and merged into the
  previous ones with viper's `MergeConfig`;
* map keys are lowercased (`insensitiviseMap`), so `GetTask` becomes `gettask`, while maps inside lists keep
  their case (that is why Flyte documents a list of single-key maps as the case-preserving form);
* maps merge key by key, case-insensitively; a list or scalar is replaced whole by a later file; a later
  non-map value for a key that holds a map is dropped with nothing but a log line (viper `mergeMaps`);
* `tasks.task-plugins.enabled-plugins` that is empty enables every registered plugin.

Viper 1.21 (Flyte 1.16.6+) lowercases the keys of maps inside lists too, and flytestdlib's parseViperConfig then
puts every list back as the files wrote it (restoreCaseSensitiveArrayKeys), so both versions end with the model
above: lists keep their items' case, and a list's value is the last file's.
"""
from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from typing import Any

from .. import yamlio
from ..errors import UserError
from . import config_schema
from .versions import AGENT_NAMING, CONNECTOR_NAMING, Naming

TOOLKIT_FILE = "zz-flyte-agents.yaml"  # 'z' sorts after digits and after flyte-core's lowercase file names


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
        """The file as parsed YAML with its original key case (an empty file is an empty map), checked against
        the config schema. Parsed once per text (a plan and its lint read every file many times); each call
        returns its own copy, which the caller may change."""
        return copy.deepcopy(_parse(self.text, self.label))


@functools.lru_cache(maxsize=256)
def _parse(text: str, label: str) -> dict:
    try:
        data = yamlio.load(text)
    except yamlio.Error as err:
        where = yamlio.at_line(err)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"config file {label} is not valid YAML{where}: {problem}; fix the YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {label} holds a {type(data).__name__}, not a map of config sections: "
                        "propeller config files are YAML maps")
    document = _stringify_keys(data)
    config_schema.check(document, label)
    return document


def _stringify_keys(value: Any) -> Any:
    """YAML allows non-string keys; Go's viper formats them with %v (true, 8000)."""
    if isinstance(value, dict):
        return {go_str(k): _stringify_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify_keys(v) for v in value]
    return value


def go_str(key: Any) -> str:
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
                events.append(MergeEvent("type-mismatch", key_path, _origin(origins, key_path), later))
            continue
        if isinstance(current, list) and isinstance(value, list) and events is not None:
            dropped = _dropped(current, value)
            if dropped:
                events.append(MergeEvent("list-replaced", key_path, _origin(origins, key_path), later, dropped))
        target[key] = copy.deepcopy(value)
        origins[key_path] = later


def _origin(origins: dict, key_path: str) -> str:
    """The file that set `key_path`: origins records the key a file added, which may be an ancestor's."""
    while key_path not in origins and "." in key_path:
        key_path = key_path.rsplit(".", 1)[0]
    return origins.get(key_path, "?")


def _dropped(earlier: list, later: list) -> tuple[str, ...]:
    """What a later list loses of an earlier one: the keys of a keyed list (list of single-key maps), else items."""
    if all(isinstance(i, dict) for i in earlier + later):
        kept = {k for item in later for k in item}
        return tuple(dict.fromkeys(k for item in earlier for k in item if k not in kept))
    return tuple(item_text(i) for i in earlier if i not in later)


def item_text(item: Any) -> str:
    """A list item as MergeEvent.dropped names it."""
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
                result.update({go_str(k): v for k, v in item.items()})
    return result


def clean_string(name: Any) -> str:
    """propeller's cleanString for plugin ids and task types."""
    return go_str(name).strip().lower()


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
    enabled = tuple(clean_string(p) for p in raw_enabled) if isinstance(raw_enabled, list) else ()
    defaults = {clean_string(k): clean_string(v) for k, v in
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
    for_types = {k: go_str(v) for k, v in slice_to_map(section.get(naming.for_task_types_key.lower())).items()}
    return PluginView(naming.plugin, True, default if default.endpoint else None, deployments, for_types)


def _deployment_view(deployment_id: str, value: Any) -> DeploymentView:
    value = lowercase_keys(value) if isinstance(value, dict) else {}
    timeouts = value.get("timeouts")
    keys = tuple(slice_to_map(timeouts)) if timeouts is not None else ()
    timeout = value.get("defaulttimeout")
    return DeploymentView(deployment_id, go_str(value.get("endpoint") or ""),
                          None if timeout is None else go_str(timeout), keys)
