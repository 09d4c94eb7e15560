"""Table-driven tests of the pure propeller config engine (flyte_agents.flyte).

Expected values come from Flyte's code and charts (viper mergeMaps, cleanString, the agent/connector config
structs, the sandbox's 001-plugins.yaml), not from running the implementation.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flyte_agents.errors import UserError
from flyte_agents.flyte.config import (ConfigFile, MergeEvent, PluginView, PropellerConfig, TOOLKIT_FILE, effective,
                                       slice_to_map)
from flyte_agents.flyte.endpoints import Endpoint, dns_endpoint, k8s_endpoint, parse_endpoint
from flyte_agents.flyte.lint import lint
from flyte_agents.flyte.plan import RoutingPlan, plan_routing
from flyte_agents.flyte.services import AgentService
from flyte_agents.flyte.serving import discover_task_types, pinned_task_types, routing_check
from flyte_agents.flyte.versions import (AGENT_NAMING, CONNECTOR_NAMING, FlyteVersion, ROUND_ROBIN,
                                         chart_default_endpoint, chart_default_task_plugins, code_default_timeout,
                                         echo_swallows_unknown_types, naming_for, naming_of_plugin as naming_of,
                                         pins_override_discovery,
                                         plugin_exists, round_robin_is_default, version_from_image)

DATA = Path(__file__).resolve().parent.parent / "data" / "propeller"
V = FlyteVersion.parse
AGENT_VERSIONS = ["1.13.0", "1.14.1", "1.15.3"]
CONNECTOR_VERSIONS = ["1.16.0", "1.16.8"]
ALL_VERSIONS = AGENT_VERSIONS + CONNECTOR_VERSIONS


def sandbox_config(flyte: str) -> PropellerConfig:
    """The sandbox's ConfigMaps of test data, as propeller's config files."""
    files = []
    for doc in yaml.safe_load_all((DATA / f"sandbox-{flyte}.yaml").read_text()):
        for key, text in (doc.get("data") or {}).items():
            files.append(ConfigFile(key, text, doc["metadata"]["name"]))
    return PropellerConfig(tuple(files))


def sandbox_for(version: str) -> PropellerConfig:
    """The sandbox of the version's naming generation (1.15 for agent naming, 1.16 for connector naming)."""
    return sandbox_config("1.16" if V(version) >= V("1.16") else "1.15")


def cfg(*docs: tuple[str, str]) -> PropellerConfig:
    return PropellerConfig(tuple(ConfigFile(name, text) for name, text in docs))


def plugins_file(enabled: list[str], defaults: dict | None = None, section: dict | None = None,
                 plugin: str = "agent-service") -> str:
    doc = {"tasks": {"task-plugins": {"enabled-plugins": enabled,
                                      "default-for-task-types": defaults or {"container": "container"}}}}
    if section is not None:
        doc["plugins"] = {plugin: section}
    return yaml.safe_dump(doc)


def svc(id_="my-agent", types=("my_task",), **kw) -> AgentService:
    return AgentService(id_, kw.pop("endpoint", f"k8s://{id_}.flyte:8000"), tuple(types), **kw)


def routing_of(plan: RoutingPlan) -> PluginView:
    return effective(plan.after).plugins[plan.naming.plugin]


# ------------------------------------------------------------------------------------------------ versions, naming

@pytest.mark.parametrize("text, expected", [
    ("1.13", (1, 13, 0)), ("v1.15.3", (1, 15, 3)), ("1.16.0-b2", (1, 16, 0)), (" 1.16.8 ", (1, 16, 8)),
    ("1.17.1", (1, 17, 1)),
])
def test_version_parse(text, expected):
    version = V(text)
    assert (version.major, version.minor, version.patch) == expected


@pytest.mark.parametrize("text, message", [
    ("latest", "not a Flyte version"), ("1.12.9", "polling only from 1.13"), ("2.0.1", "Flyte 2"), ("", "not a"),
])
def test_version_parse_rejects(text, message):
    with pytest.raises(UserError, match=message):
        V(text)


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_naming_by_version(version):
    naming = naming_for(V(version))
    connector = version in CONNECTOR_VERSIONS
    expected = (("connector-service", "defaultConnector", "connectors", "connectorForTaskTypes", "flyteconnector")
                if connector else ("agent-service", "defaultAgent", "agents", "agentForTaskTypes", "flyteagent"))
    assert (naming.plugin, naming.default_key, naming.deployments_key, naming.for_task_types_key,
            naming.builtin_service) == expected
    assert naming.other_plugin == ("agent-service" if connector else "connector-service")


@pytest.mark.parametrize("plugin, version, expected", [
    ("agent-service", "1.13.0", "10s"), ("agent-service", "1.15.0", "10s"), ("agent-service", "1.15.1", "3s"),
    ("agent-service", "1.16.8", "3s"), ("connector-service", "1.16.0", "10s"),
])
def test_code_default_timeout(plugin, version, expected):
    assert code_default_timeout(plugin, V(version)) == expected


@pytest.mark.parametrize("version, round_robin, pins_win, echo_default, connector_exists", [
    ("1.13.0", False, False, True, False), ("1.13.2", False, False, False, False),
    ("1.14.1", False, False, False, False), ("1.15.0", True, False, False, False),
    ("1.15.1", True, False, False, True), ("1.16.0", True, True, False, True),
])
def test_version_behaviours(version, round_robin, pins_win, echo_default, connector_exists):
    v = V(version)
    assert round_robin_is_default(v) is round_robin
    assert pins_override_discovery(v) is pins_win
    assert echo_swallows_unknown_types(v) is echo_default
    assert plugin_exists("connector-service", v) is connector_exists
    assert plugin_exists("agent-service", v)


@pytest.mark.parametrize("image, expected", [
    ("cr.flyte.org/flyteorg/flytecopilot:v1.15.3", "1.15.3"),
    ("cr.flyte.org/flyteorg/flytecopilot-release:v1.16.8", "1.16.8"),
    ("ghcr.io/flyteorg/flytepropeller-release:v1.14.1", "1.14.1"),
    ("cr.flyte.org/flyteorg/flyte-binary-release:v1.16.2", "1.16.2"),
    ("flyte-binary:sandbox", None), ("cr.flyte.org/flyteorg/flyteagent:1.15.3", None),
    ("registry/flytecopilot:v0.9.0", None),
])
def test_version_from_image(image, expected):
    found = version_from_image(image)
    assert (str(found) if found else None) == expected


# ------------------------------------------------------------------------------------------------ endpoints

@pytest.mark.parametrize("text, scheme, host, port, namespace", [
    ("k8s://flyteagent.flyte:8000", "k8s", "flyteagent.flyte", 8000, ""),
    ("k8s:///flyteagent.flyte:8000", "k8s", "flyteagent.flyte", 8000, ""),
    ("k8s://flyte/flyteagent:8000", "k8s", "flyteagent", 8000, "flyte"),
    ("dns:///flyteagent.flyte.svc.cluster.local:8000", "dns", "flyteagent.flyte.svc.cluster.local", 8000, ""),
    ("localhost:8000", "", "localhost", 8000, ""),
    ("passthrough:///10.0.0.1:9000", "passthrough", "10.0.0.1", 9000, ""),
])
def test_parse_endpoint(text, scheme, host, port, namespace):
    endpoint = parse_endpoint(text)
    assert (endpoint.scheme, endpoint.host, endpoint.port, endpoint.namespace) == (scheme, host, port, namespace)
    assert endpoint.needs_endpoints_rbac is (scheme == "k8s")


@pytest.mark.parametrize("text, message", [
    ("k8s://my-agent.flyte", "no port"), ("dns:///my-agent.flyte.svc.cluster.local", "no port"),
    ("http://my-agent.flyte:8000", "scheme http"), ("k8s://my-agent:8000", "no namespace"),
    ("my agent:8000", "invalid host"), ("k8s://svc.ns:99999", "no port"), ("", "no port"),
])
def test_parse_endpoint_rejects(text, message):
    with pytest.raises(UserError, match=message):
        parse_endpoint(text)


def test_endpoint_helpers_produce_parseable_targets():
    assert parse_endpoint(k8s_endpoint("a", "b", 8000)) == Endpoint("k8s", "a.b", 8000)
    assert parse_endpoint(dns_endpoint("a", "b", 81)).host == "a.b.svc.cluster.local"


# ------------------------------------------------------------------------------------------------ merge semantics

@pytest.mark.parametrize("earlier, later, expected, event", [
    # maps merge key by key
    ("a: {x: 1, y: 2}", "a: {y: 3, z: 4}", {"a": {"x": 1, "y": 3, "z": 4}}, None),
    # lists are replaced whole
    ("a: [1, 2, 3]", "a: [4]", {"a": [4]}, "list-replaced"),
    ("a: [1, 2]", "a: [2, 1]", {"a": [2, 1]}, None),
    # keys match case-insensitively and are lowercased
    ("Plugins: {Agent: 1}", "plugins: {agent: 2}", {"plugins": {"agent": 2}}, None),
    # a non-map over a map is dropped by viper
    ("a: {x: 1}", "a: [x]", {"a": {"x": 1}}, "type-mismatch"),
    ("a: {x: 1}", "a: 5", {"a": {"x": 1}}, "type-mismatch"),
    ("a: {x: 1}", "a:", {"a": {"x": 1}}, "type-mismatch"),
    # a map over a non-map replaces it
    ("a: [x]", "a: {x: 1}", {"a": {"x": 1}}, None),
    ("a: 5", "a: {x: 1}", {"a": {"x": 1}}, None),
    # maps inside lists keep their case (Flyte's case-preserving list form)
    ("a: 1", "t: [{GetTask: 10s}]", {"a": 1, "t": [{"GetTask": "10s"}]}, None),
])
def test_merge(earlier, later, expected, event):
    events: list[MergeEvent] = []
    merged = cfg(("001.yaml", earlier), ("002.yaml", later)).merged(events)
    assert merged == expected
    assert [e.kind for e in events] == ([event] if event else [])


def test_list_replaced_names_the_earlier_file_and_only_what_no_later_file_puts_back():
    base = "tasks: {task-plugins: {enabled-plugins: [container, sidecar, echo]}}"
    dropping = "tasks: {task-plugins: {enabled-plugins: [container]}}"
    findings = lint(cfg(("001.yaml", base), ("500.yaml", dropping)), V("1.16.8"))
    replaced = [f for f in findings if f.rule == "list-replaced"]
    assert len(replaced) == 1 and "of 001.yaml" in replaced[0].message
    assert replaced[0].message.endswith("dropping sidecar, echo")
    restoring = "tasks: {task-plugins: {enabled-plugins: [container, echo]}}"
    findings = lint(cfg(("001.yaml", base), ("500.yaml", dropping), ("900.yaml", restoring)), V("1.16.8"))
    assert [f.message.rsplit(" ", 1)[-1] for f in findings if f.rule == "list-replaced"] == ["sidecar"]


def test_files_merge_in_lexical_order_not_given_order():
    config = cfg(("100-b.yaml", "a: second"), ("099-z.yaml", "a: first"), ("zz.yaml", "a: last"))
    assert config.merged() == {"a": "last"}
    assert [f.name for f in config.ordered()] == ["099-z.yaml", "100-b.yaml", "zz.yaml"]


def test_toolkit_file_sorts_after_every_flavors_files():
    names = ["000-core.yaml", "100-inline-config.yaml", "999-extra-config.yaml", "012-database-secrets.yaml",
             "task_logs.yaml", "storage.yaml", "resource_manager.yaml", "connector_service.yaml"]
    assert sorted(names + [TOOLKIT_FILE], key=str.encode)[-1] == TOOLKIT_FILE


@pytest.mark.parametrize("value, expected", [
    ({"a": "x"}, {"a": "x"}), ([{"a": "x"}, {"b": "y"}], {"a": "x", "b": "y"}),
    ([{"a": "x"}, {"a": "z"}], {"a": "z"}), (None, {}), ("junk", {}),
])
def test_slice_to_map(value, expected):
    assert slice_to_map(value) == expected


def test_effective_view_cleans_plugin_names_like_propeller():
    view = effective(cfg(("a.yaml", plugins_file([" Container ", "AGENT-SERVICE"],
                                                    {"Spark": " Agent-Service "}))).merged())
    assert view.enabled_plugins == ("container", "agent-service")
    assert view.default_for_task_types == {"spark": "agent-service"}
    assert view.is_enabled("agent-service") and not view.is_enabled("connector-service")


# ------------------------------------------------------------------------------------------------ the plan

@pytest.mark.parametrize("flyte", ["1.15", "1.16"])
def test_plan_on_sandbox_adds_deployment_and_pins_only(flyte):
    version = V("1.15.3" if flyte == "1.15" else "1.16.8")
    plan = plan_routing(sandbox_config(flyte), version, [svc()])
    naming = naming_for(version)
    # the sandbox already enables the plugin: the list is left alone (not frozen into our file)
    assert "tasks" not in plan.content
    section = plan.content["plugins"][naming.plugin]
    assert section[naming.deployments_key] == {"my-agent": {"endpoint": "k8s://my-agent.flyte:8000",
                                                             "insecure": True, "defaultTimeout": "10s"}}
    assert section[naming.for_task_types_key] == {"my_task": "my-agent"}
    assert naming.default_key not in section
    view = routing_of(plan)
    assert view.default.endpoint == f"k8s://{naming.builtin_service}.flyte:8000"  # the built-in stays default
    assert {d.id for d in view.deployments} == {"my-agent"}
    assert plan.changes_effective_config


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize("user_plugins", [
    ["container", "sidecar", "k8s-array", "echo"],
    ["container", "sidecar", "k8s-array", "spark", "ray", "echo"],
    ["ray", "container"],
])
def test_plan_adds_plugin_keeping_user_plugins_in_order(version, user_plugins):
    naming = naming_for(V(version))
    plan = plan_routing(cfg(("001-plugins.yaml", plugins_file(user_plugins))), V(version), [svc()])
    enabled = plan.content["tasks"]["task-plugins"]["enabled-plugins"]
    assert enabled == user_plugins + [naming.plugin]
    assert plan.enabled_plugins == tuple(user_plugins + [naming.plugin])
    assert naming.other_plugin not in enabled


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_plan_leaves_enabled_plugins_alone_when_plugin_present(version):
    naming = naming_for(V(version))
    user = ["container", naming.plugin, "spark"]
    plan = plan_routing(cfg(("001-plugins.yaml", plugins_file(user))), V(version), [svc()])
    assert "tasks" not in plan.content
    assert plan.enabled_plugins == tuple(user)


@pytest.mark.parametrize("version", CONNECTOR_VERSIONS)
def test_plan_on_1_16_with_legacy_agent_plugin_pins_types_to_connector(version):
    user = ["container", "sidecar", "agent-service", "echo"]
    plan = plan_routing(cfg(("001-plugins.yaml", plugins_file(user))), V(version), [svc(types=("a", "b"))])
    task_plugins = plan.content["tasks"]["task-plugins"]
    assert task_plugins["enabled-plugins"] == ["container", "sidecar", "agent-service", "connector-service", "echo"]
    assert task_plugins["default-for-task-types"] == {"a": "connector-service", "b": "connector-service"}
    assert effective(plan.after).default_for_task_types["container"] == "container"  # the map merged
    assert any(f.rule == "legacy-naming" for f in plan.findings)
    assert any(f.rule == "both-agent-plugins" for f in plan.findings)


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_plan_replaces_empty_enabled_plugins_with_explicit_list(version):
    naming = naming_for(V(version))
    plan = plan_routing(cfg(("001.yaml", "tasks: {task-plugins: {enabled-plugins: []}}")), V(version), [svc()])
    echo = [] if V(version) < V("1.13.2") else ["echo"]  # echo swallowed unknown task types before 1.13.2
    assert plan.content["tasks"]["task-plugins"]["enabled-plugins"] == [
        "container", "sidecar", "k8s-array", naming.plugin] + echo
    assert [f.rule for f in plan.findings] == ["empty-enabled-plugins"]  # the warning about the plan's list


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize("plugin, task_type", [("spark", "spark"), ("databricks", "spark"), ("ray", "ray"),
                                               ("bigquery", "bigquery_query_job_task")])
def test_plan_pins_types_another_enabled_plugin_registers(version, plugin, task_type):
    naming = naming_for(V(version))
    config = cfg(("001.yaml", plugins_file(["container", plugin, naming.plugin])))
    plan = plan_routing(config, V(version), [svc(types=(task_type, "other_task"))])
    assert plan.content["tasks"]["task-plugins"]["default-for-task-types"] == {task_type: naming.plugin}
    assert effective(plan.after).default_for_task_types[task_type] == naming.plugin


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_plan_overrides_existing_pin_to_another_plugin(version):
    naming = naming_for(V(version))
    config = cfg(("001.yaml", plugins_file(["container", naming.plugin], {"my_task": "container"})))
    plan = plan_routing(config, V(version), [svc()])
    assert plan.content["tasks"]["task-plugins"]["default-for-task-types"] == {"my_task": naming.plugin}


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize("form", ["map", "list"])
def test_plan_respects_map_and_list_forms_of_existing_pins(version, form):
    naming = naming_for(V(version))
    pins = {"their_task": "theirs", "my_task": "theirs"}
    section = {naming.deployments_key: {"theirs": {"endpoint": "k8s://theirs.flyte:8000", "defaultTimeout": "5s"}},
               naming.for_task_types_key: pins if form == "map" else [{k: v} for k, v in pins.items()]}
    config = cfg(("001.yaml", plugins_file(["container", naming.plugin], section=section, plugin=naming.plugin)))
    plan = plan_routing(config, V(version), [svc()])
    written = plan.content["plugins"][naming.plugin][naming.for_task_types_key]
    if form == "map":
        assert written == {"my_task": "my-agent"}  # maps merge: only our entry
    else:
        assert written == [{"their_task": "theirs"}, {"my_task": "my-agent"}]  # lists replace: the whole list
    view = routing_of(plan)
    assert view.for_task_types == {"their_task": "theirs", "my_task": "my-agent"}
    assert {d.id for d in view.deployments} == {"theirs", "my-agent"}


@pytest.mark.parametrize("version", ["1.15.3", "1.16.8"])
def test_plan_keeps_list_form_deployments_and_updates_an_entry_in_place(version):
    naming = naming_for(V(version))
    theirs = {"endpoint": "k8s://theirs.flyte:8000", "defaultTimeout": "5s", "timeouts": [{"GetTask": "20s"}]}
    section = {naming.deployments_key: [{"Theirs": theirs}, {"my-agent": {"Endpoint": "k8s://old.flyte:8000",
                                                                          "defaultTimeout": "7s"}}],
               naming.for_task_types_key: {"their_task": "Theirs"}}
    config = cfg(("001.yaml", plugins_file(["container", naming.plugin], section=section, plugin=naming.plugin)))
    plan = plan_routing(config, V(version), [svc()])
    written = plan.content["plugins"][naming.plugin][naming.deployments_key]
    # a later list replaces the user's list whole: the whole list again, our entry updated in place, case kept
    assert written == [{"Theirs": theirs}, {"my-agent": {"Endpoint": "k8s://my-agent.flyte:8000",
                                                         "defaultTimeout": "10s", "insecure": True}}]
    deployments = {d.id: d for d in routing_of(plan).deployments}
    assert set(deployments) == {"Theirs", "my-agent"}
    assert deployments["Theirs"].timeout_keys == ("GetTask",)
    assert routing_of(plan).for_task_types == {"their_task": "Theirs", "my_task": "my-agent"}
    assert "missing-deployment" not in {f.rule for f in plan.findings}


def test_plan_keeps_list_form_default_for_task_types_matching_keys_as_propeller_cleans_them():
    existing = "tasks: {task-plugins: {enabled-plugins: [container, spark, connector-service], "
    existing += "default-for-task-types: [{container: container}, {' Spark ': spark}]}}"
    plan = plan_routing(cfg(("001.yaml", existing)), V("1.16.8"), [svc(types=("spark",))])
    assert plan.content["tasks"]["task-plugins"]["default-for-task-types"] == [
        {"container": "container"}, {" Spark ": "connector-service"}]
    assert effective(plan.after).default_for_task_types == {"container": "container", "spark": "connector-service"}


@pytest.mark.parametrize("version", ["1.15.3", "1.16.0", "1.16.8"])  # where both agent plugins exist
def test_plan_replacing_empty_enabled_plugins_keeps_the_plugins_the_config_relies_on(version):
    naming = naming_for(V(version))
    other = {"endpoint": "k8s://old.flyte:8000", "defaultTimeout": "10s"}
    doc = {"tasks": {"task-plugins": {"default-for-task-types": {"spark": "spark", "ray": "Ray"}}},
           "plugins": {naming.other_plugin: {naming_of(naming.other_plugin).deployments_key: {"old": other}}}}
    plan = plan_routing(cfg(("001.yaml", yaml.safe_dump(doc))), V(version), [svc()])
    enabled = plan.content["tasks"]["task-plugins"]["enabled-plugins"]
    assert {"spark", "ray", naming.other_plugin, naming.plugin, "container"} <= set(enabled)
    assert "default-plugin-not-enabled" not in {f.rule for f in plan.findings}


def test_plan_whose_result_has_an_error_is_refused():
    # the user's pin names a deployment that does not exist: propeller silently ignores it
    section = {"connectors": {"x": {"endpoint": "k8s://x.flyte:8000", "defaultTimeout": "1s"}},
               "connectorForTaskTypes": {"their_task": "nope"}}
    config = cfg(("001.yaml", plugins_file(["container", "connector-service"], section=section,
                                           plugin="connector-service")))
    with pytest.raises(UserError, match=r"\[missing-deployment\] .*routes their_task to 'nope'.*; fix: add "):
        plan_routing(config, V("1.16.8"), [svc()])


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_after_apply_the_plan_is_up_to_date_and_the_diff_empty(version):
    config = sandbox_for(version)
    plan = plan_routing(config, V(version), [svc(), svc("b", ("b_task",), default=True)])
    assert plan.changes and plan.effective_diff()
    again = plan_routing(config.with_file(plan.config_file()), V(version), [svc(), svc("b", ("b_task",),
                                                                                        default=True)])
    assert again.text == plan.text and again.changes == () and again.effective_diff() == ""
    assert not again.changes_effective_config


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_plan_with_preexisting_identical_agent_changes_nothing(version):
    naming = naming_for(V(version))
    desired = {"endpoint": "k8s://my-agent.flyte:8000", "insecure": True, "defaultTimeout": "10s"}
    if not round_robin_is_default(V(version)):
        desired["defaultServiceConfig"] = ROUND_ROBIN
    section = {naming.deployments_key: {"my-agent": desired}, naming.for_task_types_key: {"my_task": "my-agent"}}
    config = cfg(("001.yaml", plugins_file(["container", naming.plugin], section=section, plugin=naming.plugin)))
    plan = plan_routing(config, V(version), [svc()])
    assert plan.content == {} and plan.text == "" and not plan.changes_effective_config
    assert plan.config_file() is None


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_plan_writes_only_the_fields_that_differ(version):
    naming = naming_for(V(version))
    section = {naming.deployments_key: {"my-agent": {"endpoint": "k8s://old.flyte:8000", "insecure": True,
                                                     "defaultTimeout": "10s",
                                                     "defaultServiceConfig": ROUND_ROBIN}},
               naming.for_task_types_key: {"my_task": "my-agent"}}
    config = cfg(("001.yaml", plugins_file(["container", naming.plugin], section=section, plugin=naming.plugin)))
    plan = plan_routing(config, V(version), [svc()])
    assert plan.content == {"plugins": {naming.plugin: {naming.deployments_key: {
        "my-agent": {"endpoint": "k8s://my-agent.flyte:8000"}}}}}


@pytest.mark.parametrize("version, expected", [("1.13.0", True), ("1.14.1", True), ("1.15.0", False),
                                               ("1.16.8", False)])
def test_plan_sets_round_robin_where_it_is_not_the_default(version, expected):
    plan = plan_routing(sandbox_config("1.15"), V(version), [svc()])
    naming = naming_for(V(version))
    deployment = plan.content["plugins"][naming.plugin][naming.deployments_key]["my-agent"]
    assert ("defaultServiceConfig" in deployment) is expected


@pytest.mark.parametrize("version, pinned", [(v, v in AGENT_VERSIONS) for v in ALL_VERSIONS])
def test_sync_services_are_not_pinned_from_1_16(version, pinned):
    plan = plan_routing(sandbox_for(version), V(version), [svc("sync-one", ("sync_task",), sync=True)])
    naming = naming_for(V(version))
    section = plan.content["plugins"][naming.plugin]
    assert ("sync_task" in section.get(naming.for_task_types_key, {})) is pinned
    assert "sync-one" in section[naming.deployments_key]  # still polled, so discovery routes it


def test_sync_service_already_pinned_on_1_16_is_reported():
    section = {"connectors": {"old": {"endpoint": "k8s://old.flyte:8000"}},
               "connectorForTaskTypes": {"sync_task": "old"}}
    config = cfg(("001.yaml", plugins_file(["container", "connector-service"], section=section,
                                           plugin="connector-service")))
    with pytest.raises(UserError, match=r"^the planned propeller config would be broken: \[sync-pinned\] .* "
                                        r"fix: remove the sync_task entry .*\(and 1 more: sync-pinned\)$"):
        plan_routing(config, V("1.16.8"), [svc("sync-one", ("sync_task",), sync=True)])


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_default_service_becomes_default_deployment(version):
    naming = naming_for(V(version))
    plan = plan_routing(sandbox_config("1.16" if version in CONNECTOR_VERSIONS else "1.15"), V(version),
                           [svc("main", ("a",), default=True, timeout="30s"), svc("extra", ("b",))])
    section = plan.content["plugins"][naming.plugin]
    assert section[naming.default_key]["endpoint"] == "k8s://main.flyte:8000"
    assert section[naming.default_key]["defaultTimeout"] == "30s"
    assert section[naming.for_task_types_key] == {"b": "extra"}  # the default needs no pin
    view = routing_of(plan)
    assert view.default.endpoint == "k8s://main.flyte:8000"
    assert view.default.timeout_keys == ("gettask", "listagents")  # the earlier file's keys merged in


# the 1.16 sandbox enables connector-service, which Flyte before 1.15.1 does not have (an unknown-plugin error)
@pytest.mark.parametrize("version, flyte", [(v, f) for v in ALL_VERSIONS for f in ("1.15", "1.16")
                                            if f == "1.15" or v not in AGENT_VERSIONS])
def test_plan_is_idempotent(version, flyte):
    services = [svc("a", ("t1", "spark")), svc("b", ("t2",), sync=True), svc("c", ("t3",), default=True)]
    plan = plan_routing(sandbox_config(flyte), V(version), services)
    again = plan_routing(sandbox_config(flyte).with_file(plan.config_file()), V(version), services)
    assert again.content == plan.content and again.after == plan.after
    with_ours = sandbox_config(flyte).with_file(plan.config_file())
    assert with_ours.merged() == plan.after != with_ours.without(TOOLKIT_FILE).merged()


def test_plan_with_no_services_changes_nothing():
    plan = plan_routing(sandbox_config("1.16"), V("1.16.8"), [])
    assert plan.content == {} and plan.before == plan.after


def test_plan_reports_files_loading_after_ours():
    config = sandbox_config("1.16").with_file(ConfigFile("zzz-late.yaml", "a: 1"))
    plan = plan_routing(config, V("1.16.8"), [svc()])
    assert any(f.rule == "overridden-by-later-file" and "zzz-late.yaml" in f.message for f in plan.findings)


def test_plan_flags_endpoints_rbac_only_for_k8s_resolver():
    assert plan_routing(sandbox_config("1.16"), V("1.16.8"), [svc()]).endpoints_rbac
    dns = svc(endpoint=dns_endpoint("my-agent", "flyte", 8000))
    assert not plan_routing(sandbox_config("1.16"), V("1.16.8"), [dns]).endpoints_rbac


def test_effective_diff_shows_only_routing_sections():
    plan = plan_routing(sandbox_config("1.16"), V("1.16.8"), [svc()])
    diff = plan.effective_diff()
    assert "+    connectors:" in diff and "+      my_task: my-agent" in diff
    assert "miniostorage" not in diff and "postgres" not in diff


def test_plan_json_is_serializable():
    import json

    data = json.loads(json.dumps(plan_routing(sandbox_config("1.15"), V("1.15.3"), [svc()]).to_dict()))
    assert data["plugin"] == "agent-service" and data["changes_effective_config"] is True


# ------------------------------------------------------------------------------------------------ lint

CLEAN = plugins_file(["container", "agent-service"], section={"defaultAgent": {
    "endpoint": "k8s://flyteagent.flyte:8000", "defaultTimeout": "10s"}})


def rules(config: PropellerConfig, version: str = "1.15.3", services=()) -> set[str]:
    return {f.rule for f in lint(config, V(version), services)}


def test_lint_clean_config_has_no_findings():
    assert lint(cfg(("001.yaml", CLEAN)), V("1.15.3")) == []


LINT_CASES = [
    # (rule, version, files) - each triggers exactly the rule named (among others maybe)
    ("list-replaced", "1.15.3", [("001.yaml", CLEAN), ("999.yaml", "tasks: {task-plugins: {enabled-plugins: "
                                                                   "[container, agent-service2]}}")]),
    ("type-mismatch", "1.15.3", [("001.yaml", CLEAN), ("999.yaml", "tasks: {task-plugins: {default-for-task-types:"
                                                                   " [{x: container}]}}")]),
    ("lowercased-key", "1.15.3", [("001.yaml", plugins_file(["agent-service"], section={
        "agents": {"MyAgent": {"endpoint": "k8s://a.b:1", "defaultTimeout": "1s"}},
        "agentForTaskTypes": {"t": "myagent"}}))]),
    ("lowercased-key", "1.16.8", [("001.yaml", plugins_file(["connector-service"], plugin="connector-service",
                                                           section={"connectorForTaskTypes": {"MyTask": "x"},
                                                                    "connectors": {"x": {"endpoint": "a:1"}}}))]),
    ("lowercased-timeouts", "1.15.3", [("001.yaml", plugins_file(["agent-service"], section={"defaultAgent": {
        "endpoint": "k8s://a.b:1", "defaultTimeout": "1s", "timeouts": {"GetTask": "10s"}}}))]),
    ("missing-deployment", "1.15.3", [("001.yaml", plugins_file(["agent-service"], section={
        "defaultAgent": {"endpoint": "k8s://a.b:1", "defaultTimeout": "1s"}, "agentForTaskTypes": {"t": "nope"}}))]),
    ("empty-enabled-plugins", "1.15.3", [("001.yaml", "plugins: {agent-service: {defaultAgent: {endpoint: a:1}}}")]),
    ("plugin-not-enabled", "1.15.3", [("001.yaml", plugins_file(["container"], section={"defaultAgent": {
        "endpoint": "k8s://a.b:1", "defaultTimeout": "1s"}}))]),
    ("default-plugin-not-enabled", "1.15.3", [("001.yaml", plugins_file(["container"], {"t": "agent-service"}))]),
    ("both-agent-plugins", "1.16.8", [("001.yaml", plugins_file(["agent-service", "connector-service"]))]),
    ("unknown-plugin", "1.14.1", [("001.yaml", plugins_file(["container", "connector-service"]))]),
    ("legacy-naming", "1.16.8", [("001.yaml", plugins_file(["container", "agent-service"]))]),
    ("legacy-naming", "1.16.8", [("001.yaml", plugins_file(["connector-service"], plugin="connector-service",
                                                          section={"defaultConnector": {
                                                              "endpoint": "k8s://flyteagent.flyte:8000",
                                                              "defaultTimeout": "1s"}}))]),
    ("wrong-section-key", "1.16.8", [("001.yaml", plugins_file(["connector-service"], plugin="connector-service",
                                                              section={"defaultAgent": {"endpoint": "a:1"}}))]),
    ("plugin-conflict", "1.15.3", [("001.yaml", plugins_file(["agent-service", "bigquery"]))]),
    ("echo-default", "1.13.0", [("001.yaml", plugins_file(["container", "agent-service", "echo"]))]),
    ("endpoint-format", "1.15.3", [("001.yaml", plugins_file(["agent-service"], section={"defaultAgent": {
        "endpoint": "k8s://flyteagent.flyte", "defaultTimeout": "1s"}}))]),
    ("no-default-timeout", "1.15.3", [("001.yaml", plugins_file(["agent-service"], section={"defaultAgent": {
        "endpoint": "k8s://a.b:1"}}))]),
    ("ambiguous-task-type", "1.16.8", [("001.yaml", plugins_file(["connector-service"], plugin="connector-service",
                                                                section={"defaultConnector": {"endpoint": "a:1"},
                                                                         "connectors": {"x": {"endpoint": "b:1"}}}))]),
    ("sync-pinned", "1.16.8", [("001.yaml", plugins_file(["connector-service"], plugin="connector-service", section={
        "connectors": {"x": {"endpoint": "b:1"}}, "connectorForTaskTypes": {"webhook": "x"}}))]),
    ("no-container-plugin", "1.16.8", [("001.yaml", plugins_file(["sidecar", "k8s-array", "connector-service"]))]),
    ("discovery-timeout-key", "1.16.8", [("001.yaml", plugins_file(["container", "connector-service"],
                                                                  plugin="connector-service", section={
        "defaultConnector": {"endpoint": "k8s://a.b:1", "defaultTimeout": "1s",
                             "timeouts": [{"ListAgents": "3s"}]}}))]),
    ("discovery-timeout-key", "1.15.3", [("001.yaml", plugins_file(["container", "agent-service"], section={
        "agents": {"x": {"endpoint": "k8s://a.b:1", "defaultTimeout": "1s",
                         "timeouts": [{"ListConnectors": "3s"}]}}}))]),
    ("duplicate-task-type", "1.15.3", [("001.yaml", plugins_file(["agent-service"], section={
        "agents": {"x": {"endpoint": "b:1"}, "y": {"endpoint": "c:1"}},
        "agentForTaskTypes": [{"t": "x"}, {"t": "y"}]}))]),
]


@pytest.mark.parametrize("rule, version, files", LINT_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(LINT_CASES)])
def test_lint_rule_fires(rule, version, files):
    findings = [f for f in lint(cfg(*files), V(version)) if f.rule == rule]
    assert findings, f"{rule} did not fire"
    for finding in findings:
        assert finding.severity in ("error", "warning", "info")
        assert finding.message and finding.fix and "\n" not in finding.line()


def test_every_lint_rule_is_covered():
    assert {c[0] for c in LINT_CASES} >= {
        "list-replaced", "type-mismatch", "lowercased-key", "lowercased-timeouts", "missing-deployment",
        "empty-enabled-plugins", "plugin-not-enabled", "default-plugin-not-enabled", "both-agent-plugins",
        "unknown-plugin", "legacy-naming", "wrong-section-key", "plugin-conflict", "echo-default", "endpoint-format",
        "no-default-timeout", "ambiguous-task-type", "sync-pinned", "duplicate-task-type", "no-container-plugin",
        "discovery-timeout-key"}


@pytest.mark.parametrize("rule, version, files", [
    # negative controls: the same shapes written correctly
    ("list-replaced", "1.15.3", [("001.yaml", CLEAN), ("999.yaml", "tasks: {task-plugins: {enabled-plugins: "
                                                                   "[container, agent-service, spark]}}")]),
    ("lowercased-timeouts", "1.15.3", [("001.yaml", plugins_file(["agent-service"], section={"defaultAgent": {
        "endpoint": "k8s://a.b:1", "defaultTimeout": "1s", "timeouts": [{"GetTask": "10s"}]}}))]),
    ("missing-deployment", "1.15.3", [("001.yaml", plugins_file(["agent-service"], section={
        "agents": {"yes": {"endpoint": "k8s://a.b:1"}}, "agentForTaskTypes": {"t": "yes"}}))]),
    ("missing-deployment", "1.15.3", [("001.yaml", plugins_file(["agent-service"], section={  # list form keeps case
        "agents": [{"MyAgent": {"endpoint": "k8s://a.b:1"}}], "agentForTaskTypes": [{"t": "MyAgent"}]}))]),
    ("echo-default", "1.13.2", [("001.yaml", plugins_file(["container", "agent-service", "echo"]))]),
    ("no-container-plugin", "1.16.8", [("001.yaml", plugins_file(["pod", "connector-service"]))]),
    ("no-container-plugin", "1.16.8", [("001.yaml", "tasks: {task-plugins: {enabled-plugins: []}}")]),  # all
    ("discovery-timeout-key", "1.16.8", [("001.yaml", plugins_file(["container", "connector-service"],
                                                                  plugin="connector-service", section={
        "defaultConnector": {"endpoint": "k8s://a.b:1", "defaultTimeout": "1s",
                             "timeouts": [{"ListConnectors": "3s"}]}}))]),
    ("sync-pinned", "1.15.3", [("001.yaml", plugins_file(["agent-service"], section={
        "agents": {"x": {"endpoint": "b:1"}}, "agentForTaskTypes": {"webhook": "x"}}))]),
    ("legacy-naming", "1.15.3", [("001.yaml", plugins_file(["container", "agent-service"]))]),
    ("unknown-plugin", "1.15.1", [("001.yaml", plugins_file(["container", "connector-service"]))]),
    ("plugin-conflict", "1.15.3", [("001.yaml", plugins_file(["agent-service", "bigquery"],
                                                            {"bigquery_query_job_task": "agent-service"}))]),
])
def test_lint_rule_stays_quiet_when_correct(rule, version, files):
    assert rule not in rules(cfg(*files), version)


@pytest.mark.parametrize("flyte, version", [("1.15", "1.15.3"), ("1.16", "1.16.8")])
def test_lint_of_the_sandbox_reports_the_ignored_timeouts(flyte, version):
    findings = lint(sandbox_config(flyte), V(version))
    # the 1.16 sandbox still sets ListAgents under the connector plugin, which reads ListConnectors
    expected = ["lowercased-timeouts"] + (["discovery-timeout-key"] if flyte == "1.16" else [])
    assert [f.rule for f in findings] == expected
    assert "GetTask" in findings[0].message


def test_missing_deployment_after_lowercasing_names_the_lowercased_id():
    section = {"agents": {"MyAgent": {"endpoint": "k8s://a.b:1"}}, "agentForTaskTypes": {"t": "MyAgent"}}
    findings = lint(cfg(("001.yaml", plugins_file(["container", "agent-service"], section=section))), V("1.15.3"))
    missing = [f for f in findings if f.rule == "missing-deployment"]
    assert len(missing) == 1 and "'myagent' after lowercasing" in missing[0].fix


def test_lint_flags_desired_sync_service_pinned_by_existing_config():
    section = {"connectors": {"x": {"endpoint": "b:1"}}, "connectorForTaskTypes": {"my_sync": "x"}}
    config = cfg(("001.yaml", plugins_file(["connector-service"], plugin="connector-service", section=section)))
    assert "sync-pinned" not in rules(config, "1.16.8")
    assert "sync-pinned" in rules(config, "1.16.8", [svc("s", ("my_sync",), sync=True)])


def test_chart_defaults_by_version():
    assert chart_default_endpoint(AGENT_NAMING, V("1.14.1")) == "dns:///flyteagent.flyte.svc.cluster.local:8000"
    assert chart_default_endpoint(CONNECTOR_NAMING, V("1.16.0")) == "k8s://flyteconnector.flyte:8000"
    assert "echo" not in chart_default_task_plugins(V("1.13.0"))["enabled-plugins"]
    assert chart_default_task_plugins(V("1.16.0"))["enabled-plugins"][3] == "connector-service"


# ------------------------------------------------------------------------------------------------ discovery

@pytest.mark.parametrize("pods, routed, sync, builtin", [
    # flytekit's server lists the demo agent next to its built-ins: only the demo type is routed
    ([[("flyte_agents_demo", False), ("sensor", False), ("webhook", True)]], ("flyte_agents_demo",), (),
     ("sensor", "webhook")),
    # a sync agent's type is marked sync
    ([[("my_sync", True), ("b_async", False), ("webhook", True)]], ("b_async", "my_sync"), ("my_sync",),
     ("webhook",)),
    # two pods mid-rollout: only what both serve
    ([[("a", False), ("b", False)], [("a", False)]], ("a",), (), ()),
    # only built-ins, or no pod: nothing to route
    ([[("sensor", False), ("webhook", True)]], (), (), ("sensor", "webhook")),
    ([], (), (), ()),
], ids=["builtins-excluded", "sync-marked", "every-pod", "only-builtins", "no-pods"])
def test_discovered_task_types_selection(pods, routed, sync, builtin):
    found = discover_task_types(pods)
    assert (found.task_types, found.sync_task_types, found.builtin) == (routed, sync, builtin)


@pytest.mark.parametrize("version, pinned", [(v, v in AGENT_VERSIONS) for v in ALL_VERSIONS])
def test_discovered_sync_types_of_an_async_service_are_not_pinned_from_1_16(version, pinned):
    mixed = svc("mixed", ("async_task", "sync_task"), sync_task_types=("sync_task",))
    plan = plan_routing(sandbox_for(version), V(version), [mixed])
    pins = plan.content["plugins"][naming_for(V(version)).plugin][naming_for(V(version)).for_task_types_key]
    assert pins == ({"async_task": "mixed", "sync_task": "mixed"} if pinned else {"async_task": "mixed"})
    served = {"mixed": {"async_task", "sync_task"}}
    assert routing_check(plan.after, V(version), [mixed], served) == []
    assert pinned_task_types(plan.after, V(version))["mixed"] == tuple(sorted(pins))
