"""Where propeller's config lives, per Flyte flavor, and how to tell flavors and versions apart.

Pure decisions over facts the caller gathered (Deployments and ConfigMaps from the cluster, or files from disk):

* sandbox: Deployment `flyte-sandbox` (namespace flyte) reads ConfigMaps `flyte-sandbox-config` and
  `flyte-sandbox-extra-config`; the toolkit writes into `flyte-sandbox-extra-config`, which the sandbox's Helm
  release does not own.
* flyte-binary: Deployment `<release>-flyte-binary` reads `<release>-flyte-binary-config` (plus an optional
  inlineConfigMap); the toolkit writes into `<release>-flyte-binary-config`.
* flyte-core: Deployment `flytepropeller` reads and the toolkit writes `flyte-propeller-config`.

The toolkit's file is one key (flyte.config.TOOLKIT_FILE) that sorts after every other file. Secrets projected
into the same directory (database and storage credentials) are never read: they hold no routing.
"""
from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from typing import Any, Iterable, Sequence


from .. import yamlio
from ..errors import UserError
from ..kubeobjects import ConfigMapState, DeploymentInfo
from .config import ConfigFile, PropellerConfig, TOOLKIT_FILE, lookup
from .config_schema import BINARY_VALUES, CONFIG_MAP, CORE_VALUES, KUBE_LIST, check_document
from .plan import RoutingPlan
from .render import render_yaml
from .versions import (FlyteVersion, chart_default_endpoint, chart_default_task_plugins, naming_for,
                       version_from_builtin_service, version_from_image)

SANDBOX_DEPLOYMENT = "flyte-sandbox"
SANDBOX_EXTRA_CONFIG = "flyte-sandbox-extra-config"
CORE_DEPLOYMENT = "flytepropeller"
CORE_CONFIG = "flyte-propeller-config"
ENDPOINTS_RULE = {"apiGroups": [""], "resources": ["endpoints"], "verbs": ["get", "list", "watch"]}


class Flavor(str, enum.Enum):
    SANDBOX = "sandbox"
    BINARY = "flyte-binary"
    CORE = "flyte-core"


def parse_flavor(text: str | None) -> Flavor | None:
    if text in (None, "", "auto"):
        return None
    try:
        return Flavor(text)
    except ValueError:
        raise UserError(f"--flavor {text!r} is unknown: use auto, sandbox, flyte-binary or flyte-core") from None


@dataclass(frozen=True)
class PropellerTarget:
    flavor: Flavor
    namespace: str
    deployment: str
    config_maps: tuple[str, ...]  # projected into propeller's config directory, in volume order
    write_config_map: str
    file_name: str = TOOLKIT_FILE

    def notes(self, plan: RoutingPlan) -> list[str]:
        if self.flavor is Flavor.BINARY and plan.endpoints_rbac:
            return [f"k8s:// endpoints need propeller's ServiceAccount to get/list/watch endpoints; the flyte-binary "
                    f"ClusterRole lacks it: add {ENDPOINTS_RULE} to the release's rbac.extraRules"]
        return []


# ------------------------------------------------------------------------------------------------ cluster detection

def _is_binary(dep: DeploymentInfo) -> bool:
    return (dep.labels.get("app.kubernetes.io/name") == "flyte-binary"
            or dep.labels.get("helm.sh/chart", "").startswith("flyte-binary-"))


def propeller_deployments(deployments: Iterable[DeploymentInfo]) -> dict[Flavor, list[DeploymentInfo]]:
    found: dict[Flavor, list[DeploymentInfo]] = {f: [] for f in Flavor}
    for dep in deployments:
        if dep.name == SANDBOX_DEPLOYMENT:
            found[Flavor.SANDBOX].append(dep)
        elif dep.name == CORE_DEPLOYMENT or dep.labels.get("app.kubernetes.io/name") == CORE_DEPLOYMENT:
            found[Flavor.CORE].append(dep)
        elif _is_binary(dep):
            found[Flavor.BINARY].append(dep)
    return found


def locate(namespace: str, deployments: Sequence[DeploymentInfo], config_map_names: Iterable[str],
           flavor: Flavor | None = None) -> PropellerTarget:
    """Pick propeller's Deployment (by flavor, or the only one found) and the ConfigMaps of its config."""
    found = propeller_deployments(deployments)
    if flavor is None:
        present = [f for f in Flavor if found[f]]
        if not present:
            raise UserError(f"no Flyte propeller in namespace {namespace} (looked for Deployment flyte-sandbox, "
                            "flytepropeller or a flyte-binary release): pass --namespace")
        if len(present) > 1:
            raise UserError(f"namespace {namespace} has {' and '.join(f.value for f in present)}: pass --flavor")
        flavor = present[0]
    candidates = found[flavor]
    if not candidates:
        raise UserError(f"no {flavor.value} propeller Deployment in namespace {namespace}: check --flavor and "
                        "--namespace")
    if len(candidates) > 1:
        raise UserError(f"namespace {namespace} has {len(candidates)} {flavor.value} releases "
                        f"({', '.join(d.name for d in candidates)}): this toolkit configures one per namespace")
    dep = candidates[0]
    sources = config_volume_config_maps(dep) or _default_sources(flavor, dep.name)
    write = {Flavor.SANDBOX: SANDBOX_EXTRA_CONFIG, Flavor.CORE: CORE_CONFIG}.get(flavor, f"{dep.name}-config")
    names = set(config_map_names)
    missing = [n for n in (*sources, write) if n not in names]
    if missing:
        raise UserError(f"{flavor.value} in {namespace}: ConfigMap {missing[0]} is missing (Deployment {dep.name} "
                        "mounts it): repair the Flyte installation first")
    if write not in sources:
        raise UserError(f"Deployment {namespace}/{dep.name} does not mount ConfigMap {write}, so a change there "
                        "would not reach propeller")
    return PropellerTarget(flavor, namespace, dep.name, sources, write)


def _default_sources(flavor: Flavor, deployment: str) -> tuple[str, ...]:
    return {Flavor.SANDBOX: ("flyte-sandbox-config", SANDBOX_EXTRA_CONFIG),
            Flavor.CORE: (CORE_CONFIG,)}.get(flavor, (f"{deployment}-config",))


def config_volume_config_maps(dep: DeploymentInfo) -> tuple[str, ...]:
    """The ConfigMaps of the volume mounted where `--config <dir>/*.yaml` points."""
    for container in dep.containers:
        argv = (*container.command, *container.args)
        for i, arg in enumerate(argv):
            glob = argv[i + 1] if arg == "--config" and i + 1 < len(argv) else (
                arg.split("=", 1)[1] if arg.startswith("--config=") else None)
            if glob:
                directory = os.path.dirname(glob).rstrip("/")
                for volume, path in container.mounts:
                    if path.rstrip("/") == directory and volume in dep.volume_config_maps:
                        return dep.volume_config_maps[volume]
    return ()


def config_from_config_maps(states: Sequence[ConfigMapState]) -> PropellerConfig:
    files = [ConfigFile(key, text, f"ConfigMap {s.namespace}/{s.name}")
             for s in states for key, text in sorted(s.data.items()) if key.endswith(".yaml")]
    return PropellerConfig(tuple(files))


def detect_version(config: PropellerConfig, propeller: DeploymentInfo | None,
                   deployment_names: Iterable[str]) -> tuple[FlyteVersion, str] | None:
    """The Flyte version, and what told us: co-pilot image in the config, propeller's image, built-in service."""
    image = lookup(config.merged(), "plugins", "k8s", "co-pilot", "image")
    if isinstance(image, str) and version_from_image(image):
        return version_from_image(image), f"co-pilot image {image}"
    for container in propeller.containers if propeller else ():
        if version_from_image(container.image):
            return version_from_image(container.image), f"image {container.image}"
    for name in sorted(deployment_names):
        version = version_from_builtin_service(name)
        if version:
            return version, f"built-in Deployment {name} (assumed {version.major}.{version.minor})"
    return None


# ------------------------------------------------------------------------------------------------ files from disk

@dataclass(frozen=True)
class OfflineInput:
    """What `--from` files amount to: the config files, the flavor they imply, and values when given values."""

    config: PropellerConfig
    flavor: Flavor | None
    values: dict | None = None
    config_maps: tuple[dict, ...] = ()  # the ConfigMap manifests, for rendering the updated one


_PROPELLER_SECTIONS = {"tasks", "plugins", "propeller", "admin", "storage", "logger", "catalog-cache", "webhook",
                       "database", "cluster_resources", "flyte", "task_resources", "k8s", "event", "otel", "server"}


def classify_document(doc: Any, path: str) -> str:
    if not isinstance(doc, dict):
        raise UserError(f"{path}: holds a {type(doc).__name__}, not a YAML map: give a ConfigMap manifest, a "
                        "propeller config file or a flyte-binary/flyte-core values file")
    if doc.get("kind") == "ConfigMap":
        return "configmap"
    if "kind" in doc or "apiVersion" in doc:
        raise UserError(f"{path}: a {doc.get('kind') or 'Kubernetes object'} is not a ConfigMap: give propeller's "
                        "ConfigMap manifests")
    if "configmap" in doc or "flytepropeller" in doc or "flyteadmin" in doc:
        return "flyte-core"
    if {"configuration", "enabled_plugins"} & set(doc) or "deployment" in doc and "rbac" in doc:
        return "flyte-binary"
    if set(doc) and set(doc) <= _PROPELLER_SECTIONS | {k for k in doc if k.lower() in _PROPELLER_SECTIONS}:
        return "config"
    raise UserError(f"{path}: top-level keys {', '.join(sorted(map(str, doc))[:4])} are neither propeller config "
                    "sections nor flyte-binary/flyte-core values: check the file")


def load_offline(paths: Sequence[str], texts: Sequence[str], version: FlyteVersion | None,
                 flavor: Flavor | None) -> OfflineInput:
    """Turn `--from` files (already read) into propeller's config files."""
    files: list[ConfigFile] = []
    values_docs: list[tuple[str, dict]] = []
    values_paths: list[str] = []
    manifests: list[dict] = []
    for path, text in zip(paths, texts, strict=True):
        for doc in _documents(path, text):
            kind = classify_document(doc, path)
            if kind == "configmap":
                manifests.append(doc)
                files += _config_map_files(doc, path)
            elif kind == "config":
                files.append(ConfigFile(os.path.basename(path), text, path))
            else:
                check_document(doc, BINARY_VALUES if kind == "flyte-binary" else CORE_VALUES, path)
                values_docs.append((kind, doc))
                values_paths.append(path)
    if values_docs and (files or manifests):
        raise UserError("--from mixes Helm values files with ConfigMaps or config files: give one kind")
    if values_docs:
        kinds = {k for k, _ in values_docs}
        if len(kinds) > 1:
            raise UserError("--from mixes flyte-binary and flyte-core values files: give one chart's values")
        values_flavor = Flavor(kinds.pop())
        if flavor not in (None, values_flavor):
            raise UserError(f"--flavor {flavor.value} contradicts the {values_flavor.value} values given with --from")
        if version is None:
            raise UserError("values files do not say the Flyte version: pass --flyte-version")
        values: dict = {}
        for _, doc in values_docs:
            values = helm_merge(values, doc)
        return OfflineInput(files_from_values(values, values_flavor, version, ", ".join(dict.fromkeys(values_paths))),
                            values_flavor, values)
    if not files and not manifests:
        raise UserError("--from gave no config: pass ConfigMap manifests, config files or a values file")
    return OfflineInput(PropellerConfig(tuple(files)), flavor or _flavor_of_manifests(manifests),
                        None, tuple(manifests))


def _documents(path: str, text: str) -> list[Any]:
    try:
        docs = [d for d in yamlio.load_all(text) if d is not None]
    except yamlio.Error as err:
        problem = getattr(err, "problem", None) or "parse error"
        raise UserError(f"{path}: not valid YAML{yamlio.at_line(err)}: {problem}") from None
    if not docs:
        raise UserError(f"{path}: is empty: give a ConfigMap manifest, a config file or a values file")
    expanded: list[Any] = []
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "List":
            check_document(doc, KUBE_LIST, path)
            expanded += doc.get("items") or []
        else:
            expanded.append(doc)
    return expanded


def _config_map_files(doc: dict, path: str) -> list[ConfigFile]:
    check_document(doc, CONFIG_MAP, path)
    meta = doc.get("metadata") or {}
    name, namespace = meta.get("name"), meta.get("namespace") or "flyte"
    if not name:
        raise UserError(f"{path}: a ConfigMap without metadata.name: add its name")
    data = doc.get("data") or {}
    not_config = sorted(k for k in data if not str(k).endswith(".yaml"))
    if not_config or (not data and name != SANDBOX_EXTRA_CONFIG):
        what = f"key {not_config[0]!r} is not a *.yaml file" if not_config else "it has no data"
        raise UserError(f"{path}: ConfigMap {name} is not propeller's config ({what}): give propeller's ConfigMaps")
    files = []
    for key, text in data.items():
        if not isinstance(text, str):
            raise UserError(f"{path}: ConfigMap {name} key {key} is not text: quote it as a YAML string")
        files.append(ConfigFile(str(key), text, f"ConfigMap {namespace}/{name} in {path}"))
    return files


def _flavor_of_manifests(manifests: Sequence[dict]) -> Flavor | None:
    names = {(m.get("metadata") or {}).get("name", "") for m in manifests}
    if names & {"flyte-sandbox-config", SANDBOX_EXTRA_CONFIG}:
        return Flavor.SANDBOX
    if CORE_CONFIG in names:
        return Flavor.CORE
    if any(n.endswith("-config") for n in names):
        return Flavor.BINARY
    return None


def write_config_map_name(flavor: Flavor, manifests: Sequence[dict]) -> str:
    names = [(m.get("metadata") or {}).get("name", "") for m in manifests]
    if flavor is Flavor.SANDBOX:
        return SANDBOX_EXTRA_CONFIG
    if flavor is Flavor.CORE:
        return CORE_CONFIG
    binary = [n for n in names if n.endswith("-flyte-binary-config")] or [n for n in names if n.endswith("-config")]
    if not binary:
        raise UserError("no <release>-flyte-binary-config ConfigMap among --from: give the release's ConfigMap")
    return binary[0]


# ------------------------------------------------------------------------------------------------ Helm values

def helm_merge(base: Any, overlay: Any) -> Any:
    """Helm's values coalescing: maps merge key by key, anything else is replaced, null deletes."""
    if not isinstance(base, dict) or not isinstance(overlay, dict):
        return overlay
    result = dict(base)
    for key, value in overlay.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = helm_merge(result.get(key), value)
    return result


def chart_defaults(flavor: Flavor, version: FlyteVersion) -> dict:
    """The routing-relevant chart defaults a user's values file is layered on."""
    naming = naming_for(version)
    default = {"endpoint": chart_default_endpoint(naming, version), "insecure": True}
    tasks = {"task-plugins": chart_default_task_plugins(version)}
    if flavor is Flavor.CORE:
        return {"configmap": {"enabled_plugins": {"tasks": tasks}},
                naming.chart_key: {"enabled": False, "plugin_config": {"plugins": {naming.plugin: {
                    naming.default_key: default, "supportedTaskTypes": []}}}}}
    return {"configuration": {naming.binary_values_key: {naming.default_key: {**default, "defaultTimeout": "10s"}},
                              "inline": {}},
            "enabled_plugins": {"tasks": tasks}, naming.chart_key: {"enabled": False}, "rbac": {"extraRules": []}}


def files_from_values(values: dict, flavor: Flavor, version: FlyteVersion, source: str = "") -> PropellerConfig:
    """The propeller config files the chart renders from `values` (only the routing-relevant ones); `source`
    names the values files in errors."""
    naming = naming_for(version)
    merged = helm_merge(chart_defaults(flavor, version), values)
    origin = f"{flavor.value} values" + (f" {source}" if source else "")
    if flavor is Flavor.CORE:
        files = [ConfigFile(f"{key}.yaml", render_yaml(merged["configmap"][key]), origin)
                 for key in ("admin", "catalog", "copilot", "core", "enabled_plugins", "k8s", "logger", "otel",
                             "resource_manager", "task_logs") if (merged.get("configmap") or {}).get(key)]
        chart = merged.get(naming.chart_key) or {}
        if chart.get("enabled") and chart.get("plugin_config"):
            files.append(ConfigFile(naming.core_config_file, render_yaml(chart["plugin_config"]), origin))
        return PropellerConfig(tuple(files))
    configuration = merged.get("configuration") or {}
    plugins: dict[str, Any] = {}
    if (merged.get(naming.chart_key) or {}).get("enabled"):
        plugins[naming.plugin] = configuration.get(naming.binary_values_key) or {}
    plugins_file = {"tasks": (merged.get("enabled_plugins") or {}).get("tasks") or {}}
    if plugins:
        plugins_file["plugins"] = plugins
    files = [ConfigFile("001-plugins.yaml", render_yaml(plugins_file), origin)]
    if configuration.get("inline"):
        files.append(ConfigFile("100-inline-config.yaml", render_yaml(configuration["inline"]), origin))
    return PropellerConfig(tuple(files))


def values_overlay(plan: RoutingPlan, flavor: Flavor, values: dict | None) -> dict:
    """A values file to pass after the user's own (`-f theirs.yaml -f this.yaml`) that applies the plan.

    flyte-binary: the plugin section goes to `configuration.inline` (rendered last, whatever the chart toggles),
    `tasks.task-plugins` to `enabled_plugins.tasks` (or to `configuration.inline` if the user's inline already
    overrides it), and k8s:// endpoints add the endpoints rule to `rbac.extraRules` (a list: repeated whole).
    flyte-core: both go to `configmap.enabled_plugins`, rendered into enabled_plugins.yaml; no
    `flyteconnector.enabled` needed (that would also deploy the chart's built-in connector).
    """
    if flavor is Flavor.SANDBOX:
        raise UserError("the sandbox has no Helm values to commit: use --output yaml or `config apply`")
    values = values or {}
    content = plan.content
    tasks = content.get("tasks")
    plugins = content.get("plugins")
    overlay: dict[str, Any] = {}
    if flavor is Flavor.CORE:
        section = {**({"tasks": tasks} if tasks else {}), **({"plugins": plugins} if plugins else {})}
        if section:
            overlay["configmap"] = {"enabled_plugins": section}
        return overlay
    inline = (values.get("configuration") or {}).get("inline") or {}
    inline_overlay: dict[str, Any] = {}
    if plugins:
        inline_overlay["plugins"] = plugins
    if tasks and lookup(inline, "tasks", "task-plugins") is not None:
        inline_overlay["tasks"] = tasks
    elif tasks:
        overlay["enabled_plugins"] = {"tasks": tasks}
    if inline_overlay:
        overlay["configuration"] = {"inline": inline_overlay}
    if plan.endpoints_rbac:
        rules = list((values.get("rbac") or {}).get("extraRules") or [])
        if ENDPOINTS_RULE not in rules:
            overlay["rbac"] = {"extraRules": rules + [ENDPOINTS_RULE]}
    return overlay


def updated_config_map(manifests: Sequence[dict], name: str, plan: RoutingPlan) -> dict:
    """The ConfigMap manifest `name` with the toolkit's file set (or dropped when the plan is empty)."""
    source = next((m for m in manifests if (m.get("metadata") or {}).get("name") == name), None)
    if source is None:
        raise UserError(f"ConfigMap {name} is not among --from: give it too (the change is written there)")
    meta = source.get("metadata") or {}
    data = {k: v for k, v in (source.get("data") or {}).items() if k != plan.file_name}
    if plan.content:
        data[plan.file_name] = plan.text
    result: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {k: meta[k] for k in ("name", "namespace", "labels", "annotations")
                                           if meta.get(k)}}
    if data:
        result["data"] = data
    return result
