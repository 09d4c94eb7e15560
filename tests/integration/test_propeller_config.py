"""The propeller config engine against a real API server: the sandbox stand-in (Flyte 1.15 and 1.16) on kwok,
plus flyte-binary- and flyte-core-shaped installs in a fresh namespace."""
from __future__ import annotations

import json

import pytest
import yaml

from flyte_agents.adapters.kube import Kube
from flyte_agents.cli.main import main
from flyte_agents.errors import ConflictError, RolloutTimeout
from flyte_agents.flyte.config import TOOLKIT_FILE
from flyte_agents.flyte.services import AgentService
from flyte_agents.flyte.versions import FlyteVersion, Naming, naming_for
from flyte_agents.kubeobjects import BACKUP_ANNOTATION
from flyte_agents.workflows.routing import CONFIG_HASH_ANNOTATION, apply_routing, remove_routing
from tests.integration.flyte_installs import FLYTE_BINARY_116, PLUGINS_116, install_propeller

pytestmark = [pytest.mark.kube, pytest.mark.sandbox]

NS = "flyte"
CONFIG_MAPS = ("flyte-sandbox-config", "flyte-sandbox-extra-config")
SERVICES = [AgentService("my-agent", "k8s://my-agent.flyte:8000", ("my_task",)),
            AgentService("my-sync", "dns:///my-sync.flyte.svc.cluster.local:8000", ("my_sync_task",), sync=True)]
SERVICE_ARGS = ["--service", "id=my-agent,endpoint=k8s://my-agent.flyte:8000,task-types=my_task",
                "--service", "id=my-sync,endpoint=dns:///my-sync.flyte.svc.cluster.local:8000,task-types=my_sync_task,"
                             "sync"]
BOTH = pytest.mark.parametrize("sandbox", ["1.15", "1.16"], indirect=True)


@pytest.fixture
def kube(kubeconfig, kube_api):
    connection = Kube.connect(kubeconfig, "kwok")
    yield connection
    connection.close()


@pytest.fixture
def core(kube_api):
    from kubernetes import client

    return client.CoreV1Api(kube_api)  # a second, independent client: the "other writer"


def snapshot(core, namespace: str = NS, names=CONFIG_MAPS) -> dict:
    """What must come back byte for byte: each ConfigMap's data, labels and annotations."""
    result = {}
    for name in names:
        cm = core.read_namespaced_config_map(name, namespace)
        result[name] = (cm.data, cm.metadata.labels, cm.metadata.annotations)
    return result


def generation(kube: Kube, name: str = "flyte-sandbox", namespace: str = NS) -> int:
    return kube.deployment(namespace, name).generation


def naming(flyte: str) -> Naming:
    return naming_for(FlyteVersion.parse(flyte))


@BOTH
def test_apply_is_idempotent_and_remove_restores_byte_for_byte(sandbox, kube, core, kubeconfig, capsys):
    original, gen0 = snapshot(core), generation(kube)
    names = naming(sandbox)

    first = apply_routing(kube, SERVICES, timeout=120)
    assert (first.written, first.effective_changed, first.restarted) == (True, True, True)
    assert first.target.write_config_map == "flyte-sandbox-extra-config"
    assert f"{first.version.major}.{first.version.minor}" == sandbox
    assert generation(kube) == gen0 + 1
    extra = core.read_namespaced_config_map("flyte-sandbox-extra-config", NS)
    written = yaml.safe_load(extra.data[TOOLKIT_FILE])["plugins"][names.plugin]
    assert set(written[names.deployments_key]) == {"my-agent", "my-sync"}
    # the sync service is pinned only before 1.16, where a pin cannot force it async
    assert written[names.for_task_types_key] == (
        {"my_task": "my-agent"} if sandbox == "1.16" else {"my_task": "my-agent", "my_sync_task": "my-sync"})
    assert core.read_namespaced_config_map("flyte-sandbox-config", NS).data == original["flyte-sandbox-config"][0]
    template = kube.deployment(NS, "flyte-sandbox").template_annotations
    assert template["kubectl.kubernetes.io/restartedAt"] and template[CONFIG_HASH_ANNOTATION]
    status = kube.apps.read_namespaced_deployment_status("flyte-sandbox", NS).status
    assert status.observed_generation == gen0 + 1 and status.updated_replicas == status.available_replicas == 1

    # again, through the CLI: no write, no restart
    rv = extra.metadata.resource_version
    code = main(["config", "apply", "--kubeconfig", kubeconfig, "--context", "kwok", "-o", "json", *SERVICE_ARGS])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and (report["written"], report["restarted"]) == (False, False)
    assert core.read_namespaced_config_map("flyte-sandbox-extra-config", NS).metadata.resource_version == rv
    assert generation(kube) == gen0 + 1

    removed = remove_routing(kube, timeout=120)
    assert (removed.written, removed.restarted) == (True, True)
    assert snapshot(core) == original
    assert generation(kube) == gen0 + 2

    again = remove_routing(kube, timeout=120)
    assert (again.written, again.restarted) == (False, False)
    assert generation(kube) == gen0 + 2


@BOTH
def test_concurrent_writer_gets_409_and_retry_keeps_its_change(sandbox, kube, core):
    plugin = naming(sandbox).plugin
    # the other writer's file drops the agent plugin (lists are replaced): our retry must see it and re-add it
    # (it keeps k8s-array and echo: without k8s-array, default-for-task-types' container_array stops propeller, and
    # the toolkit refuses to write a config propeller would refuse)
    theirs = yaml.safe_dump({"tasks": {"task-plugins": {"enabled-plugins": ["container", "sidecar", "k8s-array",
                                                                            "echo", "ray"]}}})
    seen: list[str] = []

    def other_writer(state):
        if not seen:
            core.patch_namespaced_config_map("flyte-sandbox-extra-config", NS, {"data": {"999-extra-config.yaml":
                                                                                         theirs}})
        seen.append(state.resource_version)

    result = apply_routing(kube, SERVICES, before_write=other_writer, timeout=120)
    assert result.attempts == 2 and seen[0] != seen[1]  # the first write met a real 409
    data = core.read_namespaced_config_map("flyte-sandbox-extra-config", NS).data
    assert data["999-extra-config.yaml"] == theirs
    ours = yaml.safe_load(data[TOOLKIT_FILE])
    assert ours["tasks"]["task-plugins"]["enabled-plugins"] == ["container", "sidecar", "k8s-array", "echo", "ray",
                                                               plugin]

    remove_routing(kube, timeout=120)
    cm = core.read_namespaced_config_map("flyte-sandbox-extra-config", NS)
    assert cm.data == {"999-extra-config.yaml": theirs}
    assert BACKUP_ANNOTATION not in (cm.metadata.annotations or {})


def test_a_writer_that_always_wins_ends_in_conflict_error(sandbox, kube, core):
    original, gen0 = snapshot(core), generation(kube)
    count = iter(range(100))

    def always_first(_state):
        core.patch_namespaced_config_map("flyte-sandbox-extra-config", NS, {"metadata": {"annotations": {
            "other-writer": str(next(count))}}})

    with pytest.raises(ConflictError) as info:
        apply_routing(kube, SERVICES, before_write=always_first)
    assert info.value.exit_code == 12 and "5 conflicts" in str(info.value)
    data = core.read_namespaced_config_map("flyte-sandbox-extra-config", NS).data
    assert data == original["flyte-sandbox-extra-config"][0]
    assert generation(kube) == gen0


def test_dry_run_persists_nothing(sandbox, kube, core, kubeconfig, capsys):
    original, gen0 = snapshot(core), generation(kube)
    code = main(["config", "apply", "--kubeconfig", kubeconfig, "--context", "kwok", "--dry-run", *SERVICE_ARGS])
    out = capsys.readouterr().out
    assert code == 0
    assert "[dry run]" in out and "would write" in out and "would restart" in out
    assert snapshot(core) == original and generation(kube) == gen0


CLUSTER_ERRORS = [
    (["--context", "nope"], "kube context 'nope' is not in"),
    (["--kubeconfig", "/nonexistent/kubeconfig"], "does not exist"),
    (["--namespace", "nowhere"], "no Flyte propeller in namespace nowhere"),
    (["--flavor", "flyte-core"], "no flyte-core propeller Deployment"),
    (["--flavor", "k3d"], "--flavor 'k3d'"),
    (["--flyte-version", "1.9"], "not supported"),
    (["--service", "id=x,endpoint=k8s://x.flyte,task-types=t"], "has no port"),
    (["--service", "id=x,endpoint=k8s://x.flyte:8000,task-types=my_task"], "route at random"),
    (["-o", "yaml"], "--output 'yaml'"),
]


@pytest.mark.parametrize("extra, fragment", CLUSTER_ERRORS, ids=[c[1].split()[0] + str(i)
                                                                  for i, c in enumerate(CLUSTER_ERRORS)])
def test_cluster_command_errors_change_nothing(sandbox, kube, core, kubeconfig, capsys, extra, fragment):
    original, gen0 = snapshot(core), generation(kube)
    args = ["--kubeconfig", kubeconfig, "--context", "kwok", *SERVICE_ARGS]
    code = main(["config", "apply", *args, *extra])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and fragment in err
    assert snapshot(core) == original and generation(kube) == gen0


def test_remove_errors_change_nothing(sandbox, kube, core, kubeconfig, capsys):
    apply_routing(kube, SERVICES, timeout=120)
    applied, gen1 = snapshot(core), generation(kube)
    code = main(["config", "remove", "--kubeconfig", kubeconfig, "--context", "kwok", "--namespace", "nowhere"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and "nowhere" in err
    assert snapshot(core) == applied and generation(kube) == gen1


# ------------------------------------------------------------------------------------------------ other flavors

@pytest.mark.parametrize("flavor, deployment, labels, image, config_dir, config_map", [
    ("flyte-core", "flytepropeller", {}, "cr.flyte.org/flyteorg/flytepropeller-release:v1.16.8",
     "/etc/flyte/config", "flyte-propeller-config"),
    ("flyte-binary", *FLYTE_BINARY_116.values()),
])
def test_flyte_core_and_flyte_binary(kube_api, kube, namespace, flavor, deployment, labels, image, config_dir,
                                     config_map):
    from kubernetes import client

    install_propeller(kube_api, namespace, deployment, labels, image, config_dir, config_map,
                      {"enabled_plugins.yaml" if flavor == "flyte-core" else "001-plugins.yaml": PLUGINS_116})
    core = client.CoreV1Api(kube_api)
    original, gen0 = snapshot(core, namespace, [config_map]), generation(kube, deployment, namespace)
    services = [AgentService("my-agent", "k8s://my-agent.agents:8000", ("my_task", "spark"))]

    result = apply_routing(kube, services, namespace=namespace, timeout=60)
    assert result.target.flavor.value == flavor and str(result.version) == "1.16.8"
    assert result.restarted and generation(kube, deployment, namespace) == gen0 + 1
    ours = yaml.safe_load(core.read_namespaced_config_map(config_map, namespace).data[TOOLKIT_FILE])
    assert ours["tasks"]["task-plugins"] == {"enabled-plugins": ["container", "sidecar", "spark", "connector-service"],
                                             "default-for-task-types": {"spark": "connector-service"}}
    assert bool(result.notes) is (flavor == "flyte-binary")  # the endpoints RBAC note

    remove_routing(kube, namespace=namespace, timeout=60)
    assert snapshot(core, namespace, [config_map]) == original
    assert generation(kube, deployment, namespace) == gen0 + 2


# ------------------------------------------------------------------------------------------------ rollout wait

def test_rollout_timeout_names_pod_reasons_and_events(kube_api, kube, namespace):
    from kubernetes import client

    selector = {"app": "stuck"}
    client.AppsV1Api(kube_api).create_namespaced_deployment(namespace, {
        "metadata": {"name": "stuck"},
        "spec": {"replicas": 1, "selector": {"matchLabels": selector}, "template": {
            "metadata": {"labels": selector, "annotations": {"flyte-agents.dev/fault": "image-pull-backoff"}},
            "spec": {"containers": [{"name": "main", "image": "127.0.0.1:30000/missing:1"}]}}}})
    with pytest.raises(RolloutTimeout) as info:
        kube.wait_rollout(namespace, "stuck", timeout=8, poll=0.5)
    message = str(info.value)
    assert info.value.exit_code == 10 and "\n" not in message
    assert "not ready after 8s" in message and "ImagePullBackOff" in message
    assert "events:" in message and "ReplicaSet/stuck-" in message
