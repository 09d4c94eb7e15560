"""Property-based tests of the propeller config engine over generated configs in every accepted form.

Generated: Flyte versions of both namings; one to three config files named as each flavor names them; keyed maps
(named deployments, task type pins, per-RPC timeouts, default-for-task-types) in map form and in Flyte's
case-keeping list-of-single-key-maps form; key case varied where viper matches keys case-insensitively; plugin
ids in the case and spacing propeller's cleanString accepts; enabled-plugins absent, empty or explicit; an earlier
file's list replaced by a later one; services that are new, that update a user's deployment or take over a
user's pin; the same configs as flyte-binary and flyte-core values. The apply/remove part runs on the pure model:
the ConfigMap manifest `config render` prints, the key edit and backup restore the kube adapter writes
(tests/integration/test_propeller_config.py runs it against the API server), and the values overlay.
"""
from __future__ import annotations

import os

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings, strategies as st

from flyte_agents.errors import UserError
from flyte_agents.flyte import propeller_target as pt
from flyte_agents.flyte.config import TOOLKIT_FILE, ConfigFile, PropellerConfig, effective, lookup
from flyte_agents.flyte.config_schema import SCHEMA
from flyte_agents.flyte.lint import lint
from flyte_agents.flyte.plan import RoutingPlan, plan_routing, routing_sections
from flyte_agents.flyte.render import render_yaml
from flyte_agents.flyte.services import AgentService
from flyte_agents.flyte.versions import FlyteVersion, echo_swallows_unknown_types, naming_for, plugin_exists
from flyte_agents.kubeobjects import ConfigMapEdit, ConfigMapState

PROPERTIES = settings(max_examples=200, deadline=None, database=None, derandomize=bool(os.environ.get("CI")),
                      suppress_health_check=[HealthCheck.too_slow])
VERSIONS = ["1.13.0", "1.13.2", "1.14.1", "1.15.3", "1.16.0", "1.16.8"]
# (ConfigMap the toolkit writes, the files of propeller's config directory in order) per flavor
FLAVORS = {
    pt.Flavor.SANDBOX: ("flyte-sandbox-extra-config", ("000-core.yaml", "001-plugins.yaml", "002-database.yaml")),
    pt.Flavor.BINARY: ("flyte-flyte-binary-config", ("000-core.yaml", "001-plugins.yaml", "100-inline-config.yaml")),
    pt.Flavor.CORE: ("flyte-propeller-config", ("core.yaml", "enabled_plugins.yaml", "k8s.yaml")),
}
IDS = ["alpha", "beta-1", "gamma_x"]
TASK_TYPES = ["their_task", "other_task", "spark_job"]


def cased(draw, key: str) -> str:
    """A spelling of `key` that viper matches case-insensitively."""
    return draw(st.sampled_from([key, key.upper(), key[:1].upper() + key[1:]]))


def keyed(draw, entries: dict, case_keys: bool = False):
    """`entries` as a map or as a list of single-key maps (where keys may keep any case)."""
    if draw(st.booleans()):
        return dict(entries)
    return [{k.upper() if case_keys and draw(st.booleans()) else k: v} for k, v in entries.items()]


@st.composite
def user_configs(draw):
    """(version, flavor, PropellerConfig) of a user's propeller config in one to three files."""
    version = FlyteVersion.parse(draw(st.sampled_from(VERSIONS)))
    naming = naming_for(version)
    flavor = draw(st.sampled_from(list(FLAVORS)))
    optional = ["sidecar", "k8s-array", "spark", "ray"]
    if not echo_swallows_unknown_types(version):
        optional.append("echo")
    if plugin_exists(naming.other_plugin, version):
        optional.append(naming.other_plugin)
    chosen = ["container"] + draw(st.lists(st.sampled_from(optional), unique=True, max_size=4))
    if draw(st.booleans()):
        chosen.append(naming.plugin)
    chosen = draw(st.permutations(chosen))
    form = draw(st.sampled_from(["explicit", "empty", "absent"]))
    spelled = [draw(st.sampled_from([p, p.title(), f" {p} "])) for p in chosen]
    # default-for-task-types: only plugins an explicit list enables (an empty list enables every plugin)
    targets = [p for p in chosen if p in ("container", "sidecar", "k8s-array", "spark", "ray")]
    if form != "explicit":
        targets += draw(st.lists(st.sampled_from(["spark", "ray", "sidecar"]), unique=True))
    defaults = {{"container": "container", "k8s-array": "container_array"}.get(p, p): p for p in targets}
    task_plugins: dict = {}
    if form != "absent":
        task_plugins[cased(draw, "enabled-plugins")] = spelled if form == "explicit" else []
    if defaults:
        task_plugins[cased(draw, "default-for-task-types")] = keyed(draw, defaults)
    files: list[dict] = [{}]
    if task_plugins:
        files[0][cased(draw, "tasks")] = {cased(draw, "task-plugins"): task_plugins}
    section = draw(plugin_sections(naming))
    if section:
        files.append({cased(draw, "plugins"): {cased(draw, naming.plugin): section}})
    if form == "explicit" and draw(st.booleans()):  # an earlier file's list that the later one replaces whole
        earlier = draw(st.lists(st.sampled_from(spelled), unique=True))
        files.insert(0, {"tasks": {"task-plugins": {"enabled-plugins": earlier}}})
    names = FLAVORS[flavor][1]  # three names for at most three files, in the order propeller loads them
    docs = {names[i]: doc for i, doc in enumerate(files)}
    return version, flavor, PropellerConfig(tuple(ConfigFile(n, yaml.safe_dump(d) if d else "")
                                                  for n, d in docs.items()))


@st.composite
def plugin_sections(draw, naming):
    section: dict = {}
    if draw(st.booleans()):
        section[cased(draw, naming.default_key)] = draw(deployments(naming, naming.builtin_service))
    ids = draw(st.lists(st.sampled_from(IDS), unique=True, max_size=3))
    if ids:
        list_form = draw(st.booleans())
        spelled = {(i.upper() if list_form and draw(st.booleans()) else i): draw(deployments(naming, i)) for i in ids}
        section[cased(draw, naming.deployments_key)] = (
            [{k: v} for k, v in spelled.items()] if list_form else spelled)
        pins = {t: draw(st.sampled_from(list(spelled)))
                for t in draw(st.lists(st.sampled_from(TASK_TYPES), unique=True, max_size=3))}
        if draw(st.integers(0, 15)) == 0:  # now and then a broken input: a pin to no deployment
            pins["broken_task"] = "nosuch"
        if pins:
            section[cased(draw, naming.for_task_types_key)] = keyed(draw, pins, case_keys=True)
    return section


@st.composite
def deployments(draw, naming, service):
    endpoint = f"k8s://{service.lower().replace('_', '-')}.flyte:8000"
    deployment = {cased(draw, "endpoint"): endpoint, "defaultTimeout": "10s"}
    if draw(st.booleans()):
        deployment["insecure"] = draw(st.booleans())
    rpcs = draw(st.lists(st.sampled_from(["CreateTask", "GetTask", naming.metadata_rpc]), unique=True))
    if rpcs:
        deployment["timeouts"] = [{rpc: "5s"} for rpc in rpcs]  # the form that keeps the RPC names' case
    return deployment


@st.composite
def service_lists(draw):
    """One to three services: new ids or a user's deployment id, new task types or a user's pinned ones."""
    ids = draw(st.lists(st.sampled_from(["my-agent", "second", *IDS]), unique=True, min_size=1, max_size=3))
    types = draw(st.lists(st.sampled_from(["my_task", "t_two", "t_three", "spark", *TASK_TYPES]), unique=True,
                          min_size=len(ids), max_size=len(ids) + 2))
    default = draw(st.sampled_from([None, *ids]))
    services = []
    for i, sid in enumerate(ids):
        own = types[i::len(ids)]
        services.append(AgentService(sid, f"k8s://{sid.replace('_', '-')}.flyte:8000", tuple(own),
                                     default=sid == default, timeout=draw(st.sampled_from(["10s", "30s"]))))
    return services


FIXED_BY_THE_PLAN = {"empty-enabled-plugins", "plugin-not-enabled"}  # the plan writes the whole enabled list


def errors_of(config: PropellerConfig, version: FlyteVersion, services) -> list[str]:
    """The input's error findings the plan does not fix."""
    return [f.rule for f in lint(config, version, services) if f.severity == "error" and
            f.rule not in FIXED_BY_THE_PLAN]


def plan_or_refusal(config, version, services) -> RoutingPlan | None:
    """The plan, or None when it is refused, which it may be only for a config that is already broken."""
    try:
        plan = plan_routing(config, version, services)
    except UserError as err:
        event("refused: the input config is broken")
        assert "\n" not in str(err)
        assert str(err).startswith("the planned propeller config would be broken: [")
        assert errors_of(config, version, services), f"a valid config was refused: {err}"
        return None
    event("planned")
    return plan


# ------------------------------------------------------------------------------------------------ properties

@PROPERTIES
@given(user_configs(), service_lists())
def test_the_plan_keeps_every_user_entry_routes_ours_and_applied_is_a_fixed_point(generated, services):
    version, _, config = generated
    plan = plan_or_refusal(config, version, services)
    if plan is None:
        return
    naming = naming_for(version)
    before, after = effective(config.merged()), effective(plan.after)
    ours = {t for s in services for t in s.task_types}
    # every plugin the user enabled, or (all enabled) relied on, is still enabled
    relied_on = before.enabled_plugins if before.enabled_explicit else tuple(before.default_for_task_types.values())
    assert all(after.is_enabled(p) for p in relied_on)
    assert after.is_enabled(naming.plugin) and after.enabled_explicit
    # every default-for-task-types entry but the types the plan pins to our plugin
    assert {t: p for t, p in before.default_for_task_types.items() if t not in ours} == \
        {t: p for t, p in after.default_for_task_types.items() if t not in ours}
    # every named deployment and pin of both plugins (ours only updated where a service takes its id)
    for plugin, view in before.plugins.items():
        kept = after.plugins[plugin]
        ids = {s.id for s in services} if plugin == naming.plugin else set()
        assert {d.id: d for d in view.deployments if d.id not in ids} == \
            {d.id: d for d in kept.deployments if d.id not in ids}
        assert {t: d for t, d in view.for_task_types.items() if t not in ours or plugin != naming.plugin} == \
            {t: d for t, d in kept.for_task_types.items() if t not in ours or plugin != naming.plugin}
    # and ours is routed
    routed = after.plugins[naming.plugin]
    deployed = {d.id: d.endpoint for d in routed.deployments}
    for service in services:
        if service.default:
            assert routed.default is not None and routed.default.endpoint == service.endpoint
        else:
            assert deployed[service.id] == service.endpoint
            assert all(routed.for_task_types[t] == service.id for t in service.task_types)
    assert not [f for f in plan.findings if f.severity == "error"]
    # rendering again after apply is a no-op and the diff is empty
    assert yaml.safe_load(plan.text or "{}") == plan.content
    applied = config.with_file(plan.config_file()) if plan.content else config
    again = plan_routing(applied, version, services)
    assert again.text == plan.text and again.after == plan.after == applied.merged()
    assert again.changes == () and again.effective_diff() == "" and not again.changes_effective_config


@PROPERTIES
@given(user_configs(), service_lists())
def test_render_apply_remove_restores_every_config_map_byte_for_byte(generated, services):
    version, flavor, config = generated
    write_map, names = FLAVORS[flavor]
    data = {f.name: f.text for f in config.files}
    manifests = manifests_of(flavor, write_map, data)
    offline = pt.load_offline(["cm.yaml"], [render_yaml_all(manifests)], version, None)
    assert offline.flavor is flavor and offline.config.merged() == config.merged()
    plan = plan_or_refusal(offline.config, version, services)
    if plan is None:
        return
    # render: the updated ConfigMap manifest, as `config render --from` prints it, parses back to itself
    rendered = pt.updated_config_map(offline.config_maps, pt.write_config_map_name(flavor, offline.config_maps),
                                     plan)
    assert yaml.safe_load(render_yaml(rendered)) == rendered
    original = next(m for m in manifests if m["metadata"]["name"] == write_map)
    assert {k: v for k, v in rendered.get("data", {}).items() if k != TOOLKIT_FILE} == original.get("data", {})
    # apply, as the kube adapter writes it (the key and its backup), then remove: the data byte for byte
    state = ConfigMapState(write_map, "flyte", original.get("data", {}), {}, {}, "1")
    applied = ConfigMapEdit({TOOLKIT_FILE: plan.text or None}).applied_to(state)
    backup = {TOOLKIT_FILE: state.data.get(TOOLKIT_FILE)}
    removed = ConfigMapEdit(backup).applied_to(ConfigMapState(write_map, "flyte", applied, {}, {}, "2"))
    assert removed == dict(original.get("data", {}))
    # and the applied ConfigMaps read back as the planned config
    live = [m if m is not original else {**m, "data": applied} for m in manifests]
    assert pt.load_offline(["cm.yaml"], [render_yaml_all(live)], version, None).config.merged() == plan.after


@PROPERTIES
@given(user_configs(), service_lists(), st.sampled_from([pt.Flavor.BINARY, pt.Flavor.CORE]))
def test_the_values_overlay_over_the_users_values_renders_the_planned_routing(generated, services, flavor):
    version, _, config = generated
    values = values_of(config, flavor, version)
    files = pt.files_from_values(values, flavor, version)
    plan = plan_or_refusal(files, version, services)
    if plan is None:
        return
    overlay = pt.values_overlay(plan, flavor, values)  # passed after the user's values: -f theirs -f overlay
    rendered = pt.files_from_values(pt.helm_merge(values, overlay), flavor, version)
    assert routing_sections(rendered.merged()) == routing_sections(plan.after)


def values_of(config: PropellerConfig, flavor: pt.Flavor, version: FlyteVersion) -> dict:
    """The user's config as the chart's values: task-plugins and the plugin section where each chart takes them."""
    naming = naming_for(version)
    merged = config.merged()
    tasks, section = lookup(merged, "tasks"), lookup(merged, "plugins", naming.plugin)
    if flavor is pt.Flavor.BINARY:
        values = {"configuration": {naming.binary_values_key: section or {}}, naming.chart_key: {"enabled": True}}
        return {**values, "enabled_plugins": {"tasks": tasks}} if tasks else values
    values = {"configmap": {"enabled_plugins": {"tasks": tasks} if tasks else {}}}
    if section:
        values[naming.chart_key] = {"enabled": True, "plugin_config": {"plugins": {naming.plugin: section}}}
    return values


def manifests_of(flavor: pt.Flavor, write_map: str, data: dict[str, str]) -> list[dict]:
    def config_map(name: str, files: dict) -> dict:
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "flyte"},
                **({"data": files} if files else {})}

    if flavor is pt.Flavor.SANDBOX:  # the sandbox's own files, and the extra ConfigMap the toolkit writes into
        return [config_map("flyte-sandbox-config", data), config_map(write_map, {})]
    return [config_map(write_map, data)]


def render_yaml_all(documents: list[dict]) -> str:
    return "---\n".join(render_yaml(d) for d in documents)


# ------------------------------------------------------------------------------------------------ typed reading

def schema_paths(document: dict, shape=SCHEMA, path: tuple = ()) -> list[tuple[tuple, object]]:
    """(key path, shape) of every value in `document` the schema types, keys spelled as the document has them."""
    found = []
    for key, value in document.items():
        child = shape.fields.get(key.lower())
        if child is None:
            continue
        found.append((path + (key,), child))
        if child.kind == "map" and isinstance(value, dict):
            found += schema_paths(value, child, path + (key,))
    return found


WRONG = {"map": ["a-string", ["a", "list"], 5], "keyed": ["a-string", 5, ["a", "b"]], "list": ["x", {"a": 1}],
         "scalar": [{"a": 1}, ["a"]]}


@PROPERTIES
@given(user_configs(), service_lists(), st.data())
def test_a_wrongly_typed_section_is_one_error_naming_file_path_and_kinds(generated, services, data):
    version, _, config = generated
    candidates = [(f, p, s) for f in config.files for p, s in schema_paths(f.document())]
    if not candidates:
        return
    config_file, path, shape = data.draw(st.sampled_from(candidates))
    document = config_file.document()
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = data.draw(st.sampled_from(WRONG[shape.kind]))
    broken = config.with_file(ConfigFile(config_file.name, yaml.safe_dump(document)))
    with pytest.raises(UserError) as info:
        plan_routing(broken, version, services)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"config file {config_file.name}: {'.'.join(path)}")
    assert f"expected {shape.expected}" in message or "expected a single-key map" in message
