"""Where propeller's config lives per flavor, flavor/version detection, offline inputs and values overlays."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flyte_agents.errors import UserError
from flyte_agents.flyte import propeller_target as pt
from flyte_agents.flyte.config import ConfigFile, PropellerConfig, TOOLKIT_FILE, effective
from flyte_agents.flyte.plan import plan_routing, routing_sections
from flyte_agents.flyte.services import AgentService
from flyte_agents.flyte.versions import FlyteVersion, naming_for
from flyte_agents.kubeobjects import ContainerInfo, DeploymentInfo

DATA = Path(__file__).resolve().parent.parent / "data" / "propeller"
V = FlyteVersion.parse


def deployment(name, labels=None, image="flyte-binary:sandbox", config_dir="/etc/flyte/config.d",
               config_maps=("cfg",), args=None) -> DeploymentInfo:
    container = ContainerInfo("main", image, (), tuple(args or ("start", "--config", f"{config_dir}/*.yaml")),
                              (("config", config_dir), ("state", "/var/run/flyte")))
    return DeploymentInfo(name, "flyte", labels or {}, {}, (container,), {"config": tuple(config_maps)}, 1, 1, False)


SANDBOX = deployment("flyte-sandbox", {"helm.sh/chart": "flyte-binary-v0.1.10"},
                     config_maps=("flyte-sandbox-config", "flyte-sandbox-extra-config"))
BINARY = deployment("prod-flyte-binary", {"app.kubernetes.io/name": "flyte-binary"},
                    image="cr.flyte.org/flyteorg/flyte-binary-release:v1.16.2",
                    config_maps=("prod-flyte-binary-config", "my-inline"))
CORE = deployment("flytepropeller", image="cr.flyte.org/flyteorg/flytepropeller-release:v1.15.3",
                  config_dir="/etc/flyte/config", config_maps=("flyte-propeller-config",),
                  args=("--config", "/etc/flyte/config/*.yaml"))
AGENT = deployment("flyteagent", config_maps=())
ALL_CMS = ["flyte-sandbox-config", "flyte-sandbox-extra-config", "prod-flyte-binary-config", "my-inline",
           "flyte-propeller-config", "kube-root-ca.crt"]


@pytest.mark.parametrize("deployments, flavor, expected", [
    ([SANDBOX, AGENT], None, (pt.Flavor.SANDBOX, "flyte-sandbox", ("flyte-sandbox-config",
                                                                     "flyte-sandbox-extra-config"),
                              "flyte-sandbox-extra-config")),
    ([BINARY], None, (pt.Flavor.BINARY, "prod-flyte-binary", ("prod-flyte-binary-config", "my-inline"),
                      "prod-flyte-binary-config")),
    ([CORE, AGENT], None, (pt.Flavor.CORE, "flytepropeller", ("flyte-propeller-config",), "flyte-propeller-config")),
    ([SANDBOX, CORE], pt.Flavor.CORE, (pt.Flavor.CORE, "flytepropeller", ("flyte-propeller-config",),
                                        "flyte-propeller-config")),
])
def test_locate(deployments, flavor, expected):
    target = pt.locate("flyte", deployments, ALL_CMS, flavor)
    assert (target.flavor, target.deployment, target.config_maps, target.write_config_map) == expected
    assert target.file_name == TOOLKIT_FILE


@pytest.mark.parametrize("deployments, flavor, cms, message", [
    ([AGENT], None, ALL_CMS, "no Flyte propeller"),
    ([SANDBOX, CORE], None, ALL_CMS, "pass --flavor"),
    ([SANDBOX], pt.Flavor.CORE, ALL_CMS, "no flyte-core propeller"),
    ([SANDBOX], None, ["flyte-sandbox-config"], "flyte-sandbox-extra-config is missing"),
    ([BINARY, deployment("dev-flyte-binary", {"app.kubernetes.io/name": "flyte-binary"})], None, ALL_CMS,
     "2 flyte-binary releases"),
    ([deployment("flyte-sandbox", config_maps=("flyte-sandbox-config",))], None, ALL_CMS, "does not mount"),
])
def test_locate_errors(deployments, flavor, cms, message):
    with pytest.raises(UserError, match=message):
        pt.locate("flyte", deployments, cms, flavor)


def test_config_maps_come_from_the_volume_at_the_config_glob():
    dep = DeploymentInfo("x", "flyte", {}, {}, (ContainerInfo("c", "i", ("flyte",), ("--config=/cfg/*.yaml",),
                                                              (("a", "/other"), ("b", "/cfg/"))),),
                         {"a": ("wrong",), "b": ("right-1", "right-2")}, 1, 1, False)
    assert pt.config_volume_config_maps(dep) == ("right-1", "right-2")
    assert pt.config_volume_config_maps(deployment("x", args=("start",))) == ()


@pytest.mark.parametrize("files, propeller, names, expected", [
    ([("001.yaml", "plugins: {k8s: {co-pilot: {image: 'cr.flyte.org/flyteorg/flytecopilot:v1.15.3'}}}")], BINARY,
     [], ("1.15.3", "co-pilot image")),
    ([], BINARY, ["flyteconnector"], ("1.16.2", "image cr.flyte.org/flyteorg/flyte-binary-release:v1.16.2")),
    ([], SANDBOX, ["flyteconnector", "flyte-sandbox"], ("1.16.0", "built-in Deployment flyteconnector")),
    ([], SANDBOX, ["flyteagent"], ("1.15.0", "built-in Deployment flyteagent")),
])
def test_detect_version(files, propeller, names, expected):
    config = PropellerConfig(tuple(ConfigFile(n, t) for n, t in files))
    version, source = pt.detect_version(config, propeller, names)
    assert str(version) == expected[0] and source.startswith(expected[1])


def test_detect_version_gives_up_without_evidence():
    assert pt.detect_version(PropellerConfig(), SANDBOX, ["flyte-sandbox"]) is None


# ------------------------------------------------------------------------------------------------ offline inputs

def load(*names: str, version=None, flavor=None) -> pt.OfflineInput:
    paths = [str(DATA / n) for n in names]
    return pt.load_offline(paths, [Path(p).read_text() for p in paths], version, flavor)


@pytest.mark.parametrize("flyte", ["1.15", "1.16"])
def test_offline_config_maps_of_the_sandbox(flyte):
    offline = load(f"sandbox-{flyte}.yaml")
    assert offline.flavor is pt.Flavor.SANDBOX
    assert [f.name for f in offline.config.ordered()] == ["000-core.yaml", "001-plugins.yaml", "002-database.yaml",
                                                          "003-storage.yaml", "100-inline-config.yaml"]
    assert str(pt.detect_version(offline.config, None, [])[0]).startswith(flyte)


def test_offline_plain_config_file(tmp_path):
    path = tmp_path / "propeller.yaml"
    path.write_text("tasks: {task-plugins: {enabled-plugins: [container]}}\n")
    offline = pt.load_offline([str(path)], [path.read_text()], V("1.16"), None)
    assert offline.flavor is None and [f.name for f in offline.config.files] == ["propeller.yaml"]


@pytest.mark.parametrize("doc, kind", [
    ({"kind": "ConfigMap"}, "configmap"), ({"configmap": {}, "flytepropeller": {}}, "flyte-core"),
    ({"configuration": {}}, "flyte-binary"), ({"enabled_plugins": {}}, "flyte-binary"),
    ({"tasks": {}, "plugins": {}}, "config"), ({"Plugins": {}}, "config"),
])
def test_classify(doc, kind):
    assert pt.classify_document(doc, "f.yaml") == kind


@pytest.mark.parametrize("doc, message", [
    ({"kind": "Deployment"}, "not a ConfigMap"), ({"replicaCount": 1}, "neither propeller config"),
    ([1, 2], "not a YAML map"),
])
def test_classify_rejects(doc, message):
    with pytest.raises(UserError, match=message):
        pt.classify_document(doc, "f.yaml")


@pytest.mark.parametrize("base, overlay, expected", [
    ({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}, {"a": {"b": 1, "c": 3}}),
    ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),
    ({"a": {"b": 1}}, {"a": None}, {}),
    ({"a": 1}, {"a": {"b": 2}}, {"a": {"b": 2}}),
])
def test_helm_merge(base, overlay, expected):
    assert pt.helm_merge(base, overlay) == expected


SERVICES = [AgentService("my-agent", "k8s://my-agent.agents:8000", ("my_task", "spark")),
            AgentService("my-sync", "dns:///my-sync.agents.svc.cluster.local:8000", ("sync_task",), sync=True)]


@pytest.mark.parametrize("values_file, version, flavor", [
    ("flyte-binary-values-1.16.yaml", "1.16.8", pt.Flavor.BINARY),
    ("flyte-core-values-1.15.yaml", "1.15.3", pt.Flavor.CORE),
])
def test_values_overlay_renders_to_the_planned_routing(values_file, version, flavor):
    """Rendering the user's values plus our overlay gives propeller the routing the plan computed."""
    offline = load(values_file, version=V(version))
    assert offline.flavor is flavor
    plan = plan_routing(offline.config, V(version), SERVICES)
    overlay = pt.values_overlay(plan, flavor, offline.values)
    rendered = pt.files_from_values(pt.helm_merge(offline.values, overlay), flavor, V(version))
    assert routing_sections(rendered.merged()) == routing_sections(plan.after)
    naming = naming_for(V(version))
    view = effective(rendered.merged())
    assert view.plugins[naming.plugin].for_task_types["my_task"] == "my-agent"
    assert view.default_for_task_types.get("spark") == (naming.plugin if "spark" in view.enabled_plugins else None)
    assert naming.plugin in view.enabled_plugins


def test_values_overlay_for_flyte_binary_keeps_user_rbac_rules():
    offline = load("flyte-binary-values-1.16.yaml", version=V("1.16.8"))
    plan = plan_routing(offline.config, V("1.16.8"), SERVICES)
    rules = pt.values_overlay(plan, pt.Flavor.BINARY, offline.values)["rbac"]["extraRules"]
    assert rules[0]["apiGroups"] == ["sparkoperator.k8s.io"] and rules[-1] == pt.ENDPOINTS_RULE
    assert "rbac" not in pt.values_overlay(plan_routing(offline.config, V("1.16.8"), SERVICES[1:]),
                                           pt.Flavor.BINARY, offline.values)


def test_values_overlay_refuses_the_sandbox():
    plan = plan_routing(load("sandbox-1.16.yaml").config, V("1.16.8"), SERVICES)
    with pytest.raises(UserError, match="no Helm values"):
        pt.values_overlay(plan, pt.Flavor.SANDBOX, None)


def test_flyte_core_config_map_input_and_updated_manifest():
    offline = load("flyte-core-configmap-1.16.yaml")
    assert offline.flavor is pt.Flavor.CORE
    version = pt.detect_version(offline.config, None, [])[0]
    plan = plan_routing(offline.config, version, SERVICES)
    name = pt.write_config_map_name(offline.flavor, offline.config_maps)
    manifest = pt.updated_config_map(offline.config_maps, name, plan)
    assert manifest["metadata"]["name"] == "flyte-propeller-config"
    assert yaml.safe_load(manifest["data"][TOOLKIT_FILE]) == plan.content
    assert set(manifest["data"]) == {"core.yaml", "enabled_plugins.yaml", "connector_service.yaml", "k8s.yaml",
                                     TOOLKIT_FILE}
