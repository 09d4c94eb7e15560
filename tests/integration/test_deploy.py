"""`flyte-agents deploy --sandbox | verify | status | undeploy` end to end against the sandbox stand-in.

Real components only: the agent image is built from agent_image/ by the Docker Engine and pushed to the real
registry, helm 3 and helm 4 install the chart into the kwok cluster, propeller's ConfigMap is written through the
API server, and verify port-forwards through the API server to the real agent server: hack/agent_pods.py runs each
agent pod's image and args as a container and points kwok's PortForward for that pod at it.

The only injected fault is the concurrent ConfigMap writer of the 409 test (a real API server answers 409; the
writer itself runs in-process between our read and our write, since no component writes on demand).
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.conftest import free_port, require
from tests.integration.build_support import REPO, run_cli
from tests.integration.flyte_installs import FLYTE_BINARY_116, PLUGINS_116, install_propeller

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.kube, pytest.mark.sandbox, pytest.mark.agent,
              pytest.mark.timeout(900)]

HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
NS = "flyte"
DEMO = "flyte_agents_demo"


def _load_pod_runner():
    spec = importlib.util.spec_from_file_location("agent_pods", REPO / "hack" / "agent_pods.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="session")
def image_repository(docker_client, registry, base_image) -> str:
    """A repository of our own in the real registry, with the agent image built ONCE per session (not pushed: the
    first deploy pushes it). Later deploys find it by its content tag."""
    name = f"fa-deploy-{uuid.uuid4().hex[:8]}/agent"
    result = run_cli("build", "agent_image", "--name", name, "--registry", "localhost:30000", "--network", "host",
                     "--ca-bundle", HOST_CA_BUNDLE, "--output", "json")
    if result.code != 0:
        pytest.fail(f"building the agent image failed: {result.stderr[-3000:]}", pytrace=False)
    yield name
    for image in docker_client.images.list(name=f"localhost:30000/{name}"):
        for tag in image.tags:
            docker_client.images.remove(tag, noprune=True)


def write_project(tmp_path: Path, repository: str, prod: dict | None = None, dev: dict | None = None,
                  extra_dev_values: dict | None = None, omit: tuple[str, ...] = ()) -> Path:
    """The repository's example project on `repository`; `omit` drops fields such as "demo-prod.taskTypes"."""
    dev_values = [str(REPO / "values/base.yaml"), str(REPO / "values/dev.yaml")]
    if extra_dev_values is not None:
        (tmp_path / "dev-extra.yaml").write_text(yaml.safe_dump(extra_dev_values))
        dev_values.append(str(tmp_path / "dev-extra.yaml"))
    doc = {
        "apiVersion": "flyte-agents.dev/v1alpha1", "kind": "Project", "namespace": NS,
        "chart": str(REPO / "charts/flyte-agent"),
        "images": {"agent": {"context": str(REPO / "agent_image"), "repository": repository}},
        "services": {
            "demo-prod": {"environment": "prod", "image": "agent", "default": True, "taskTypes": [DEMO],
                          "values": [str(REPO / "values/base.yaml"), str(REPO / "values/prod.yaml")],
                          "sandboxValues": [str(REPO / "values/sandbox.yaml")], **(prod or {})},
            "demo-dev": {"environment": "dev", "image": "agent", "taskTypes": [DEMO], "route": False,
                         "values": dev_values, "sandboxValues": [str(REPO / "values/sandbox.yaml")], **(dev or {})},
        },
        "sandbox": {"builtin": "keep"},
    }
    for field in omit:
        service, key = field.split(".")
        del doc["services"][service][key]
    path = tmp_path / "flyte-agents.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def pod_runner(kube_api, docker_client, sandbox):
    """hack/agent_pods.py in a thread: every agent pod of namespace flyte answers through a real container."""
    with agent_pods(kube_api, docker_client, NS) as runner:
        yield runner


@contextlib.contextmanager
def agent_pods(kube_api, docker_client, namespace: str):
    runner = _load_pod_runner().PodRunner(kube_api, docker_client, namespace)
    stop = threading.Event()
    errors: list[str] = []

    def loop() -> None:
        while not stop.is_set():
            try:
                runner.sync()
            except Exception as err:  # noqa: BLE001 - pods come and go between list and create
                errors.append(repr(err))
            stop.wait(0.5)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield runner
    stop.set()
    thread.join(30)
    runner.clean()


def helm_binary(major: int) -> str:
    path = os.environ.get(f"FA_HELM{major}", "")
    if not os.access(path, os.X_OK):
        require(f"helm {major}", f"FA_HELM{major}={path!r} is not an executable")
    return path


def deploy_cli(project: Path, helm: str, *args: str):
    return run_cli("deploy", "--sandbox", "--project", str(project), "--helm", helm, "--network", "host",
                   "--ca-bundle", HOST_CA_BUNDLE, "--verify-timeout", "90", *args)


def snapshot(kube_api) -> dict:
    """What a failed command must leave untouched: ConfigMaps byte for byte, objects, propeller's generation."""
    core, apps = client.CoreV1Api(kube_api), client.AppsV1Api(kube_api)
    policy = client.PolicyV1Api(kube_api)
    net = client.NetworkingV1Api(kube_api)
    return {
        "configmaps": {c.metadata.name: (c.data, c.metadata.annotations)
                       for c in core.list_namespaced_config_map(NS).items},
        "objects": sorted(
            [f"Deployment/{d.metadata.name}" for d in apps.list_namespaced_deployment(NS).items]
            + [f"Service/{s.metadata.name}" for s in core.list_namespaced_service(NS).items]
            + [f"Secret/{s.metadata.name}" for s in core.list_namespaced_secret(NS).items]
            + [f"ServiceAccount/{s.metadata.name}" for s in core.list_namespaced_service_account(NS).items]
            + [f"PDB/{p.metadata.name}" for p in policy.list_namespaced_pod_disruption_budget(NS).items]
            + [f"NetworkPolicy/{p.metadata.name}" for p in net.list_namespaced_network_policy(NS).items]),
        "propeller_generation": apps.read_namespaced_deployment("flyte-sandbox", NS).metadata.generation,
    }


def registry_has(registry: str, repository: str, tag: str) -> bool:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"http://{registry}/v2/{repository}/manifests/{tag}", method="HEAD", headers={
        "Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    try:
        urllib.request.urlopen(request, timeout=5).close()
        return True
    except urllib.error.HTTPError:
        return False


def routing_doc(kube_api) -> dict:
    data = client.CoreV1Api(kube_api).read_namespaced_config_map("flyte-sandbox-extra-config", NS).data or {}
    return yaml.safe_load(data.get("zz-flyte-agents.yaml", "{}") or "{}")


# ------------------------------------------------------------------------------------------------ the happy path

@pytest.mark.parametrize("sandbox, major", [("1.15", 3), ("1.16", 4)], indirect=["sandbox"],
                         ids=["flyte1.15-helm3", "flyte1.16-helm4"])
def test_deploy_redeploy_verify_status_undeploy(sandbox, major, kube_api, registry, image_repository, pod_runner,
                                               tmp_path):
    helm = helm_binary(major)
    project = write_project(tmp_path, image_repository)
    before = snapshot(kube_api)
    apps = client.AppsV1Api(kube_api)

    first = deploy_cli(project, helm, "--output", "json")
    assert first.code == 0, first.stderr[-3000:]
    result = first.json
    ref = result["plan"]["images"]["images"][0]
    assert ref["repository"] == f"localhost:30000/{image_repository}"
    assert registry_has(registry, image_repository, ref["tag"])
    assert sorted(result["helm_upgrades"]) == ["demo-dev", "demo-prod"]
    for name in ("demo-prod", "demo-dev"):
        deployment = apps.read_namespaced_deployment(name, NS)
        available = {c.type: c.status for c in deployment.status.conditions}["Available"]
        assert available == "True" and deployment.spec.template.spec.containers[0].image.endswith(ref["tag"])
        assert deployment.spec.template.spec.containers[0].args[2] == ("agent" if sandbox == "1.15" else "connector")
    plugin, key, section = (("agent-service", "agentForTaskTypes", "agents") if sandbox == "1.15" else
                            ("connector-service", "connectorForTaskTypes", "connectors"))
    routed = routing_doc(kube_api)["plugins"][plugin]
    # builtin keep: from 1.16 the built-in becomes an entry too, and sensor is pinned to it (before 1.16 a pin
    # loses to discovery, so nothing is pinned); webhook is sync and never pinned
    kept = {} if sandbox == "1.15" else {"sensor": "flyteconnector"}
    assert routed[key] == {DEMO: "demo-prod", **kept}
    assert routed[section]["demo-prod"]["endpoint"] == "k8s://demo-prod.flyte:8000"
    assert "demo-dev" not in routed[section]  # route: false: deployed and verified, never routed
    assert result["propeller_restarted"] is True
    assert apps.read_namespaced_deployment("flyte-sandbox", NS).metadata.generation == \
        before["propeller_generation"] + 1  # restarted exactly once
    served = result["verify"]["services"]
    assert result["verify"]["ok"] and DEMO in served["demo-prod"]["served"] and DEMO in served["demo-dev"]["served"]
    assert all("port-forward" in p["via"] for s in served.values() for p in s["probes"])

    generation = apps.read_namespaced_deployment("flyte-sandbox", NS).metadata.generation
    second = deploy_cli(project, helm, "--output", "json")
    assert second.code == 0, second.stderr[-3000:]
    assert (second.json["builds"], second.json["pushes"], second.json["helm_upgrades"],
            second.json["routing_written"], second.json["propeller_restarted"]) == (0, 0, [], False, False)
    assert "nothing to do: 0 builds, 0 pushes, 0 helm upgrades, routing unchanged, 0 restarts" in second.stderr
    assert apps.read_namespaced_deployment("flyte-sandbox", NS).metadata.generation == generation

    checked = run_cli("verify", "--sandbox", "--project", str(project), "--helm", helm, "--output", "json")
    assert checked.code == 0, checked.stderr[-2000:]
    assert checked.json["ok"] and DEMO in checked.json["services"]["demo-prod"]["served"]

    shown = run_cli("status", "--sandbox", "--project", str(project), "--helm", helm, "--output", "json")
    assert shown.code == 0, shown.stderr[-2000:]
    rows = {r["service"]: r for r in shown.json["services"]}
    assert rows["demo-prod"]["revision"] == 1 and rows["demo-prod"]["ready"] == "1/1"
    assert rows["demo-prod"]["routed"] == [DEMO] and rows["demo-dev"]["routed"] == []
    assert rows["demo-prod"]["drift"] == [] and shown.json["routing_drift"] is False

    # Someone re-routes the task type by hand: verify names the conflict and the fix.
    core = client.CoreV1Api(kube_api)
    edited = routing_doc(kube_api)
    edited["plugins"][plugin][key][DEMO] = "someone-else"
    core.patch_namespaced_config_map("flyte-sandbox-extra-config", NS,
                                     {"data": {"zz-flyte-agents.yaml": yaml.safe_dump(edited)}})
    misrouted = run_cli("verify", "--sandbox", "--project", str(project), "--helm", helm)
    assert misrouted.code == 11
    assert f"task type {DEMO} is served by demo-prod but propeller routes it to someone-else" in misrouted.error
    assert "run `flyte-agents deploy`" in misrouted.error
    # the table output shows the warnings too: webhook is sync, never pinned, so a project service may run it
    assert "warning: [builtin-type-taken] task type webhook is served by the default" in misrouted.stderr

    removed = run_cli("undeploy", "--sandbox", "--project", str(project), "--helm", helm, "--output", "json")
    assert removed.code == 0, removed.stderr[-2000:]
    after = snapshot(kube_api)
    assert after["configmaps"] == before["configmaps"]  # byte for byte, backup annotation gone
    assert after["objects"] == before["objects"]


# ------------------------------------------------------------------------------------------------ discovery

@pytest.mark.parametrize("sandbox", ["1.16"], indirect=True)
def test_task_types_omitted_are_discovered_from_the_image(sandbox, kube_api, image_repository, pod_runner, tmp_path):
    helm = helm_binary(4)
    project = write_project(tmp_path, image_repository, omit=("demo-prod.taskTypes",))
    before = snapshot(kube_api)

    planned = deploy_cli(project, helm, "--dry-run")
    assert planned.code == 0, planned.stderr[-2000:]
    assert "task types of demo-prod: discovered at deploy time from its pods" in planned.stdout
    assert "routed now: nothing" in planned.stdout
    assert snapshot(kube_api) == before

    first = deploy_cli(project, helm, "--output", "json")
    assert first.code == 0, first.stderr[-3000:]
    assert f"discover demo-prod: ListAgents serves {DEMO}" in first.stderr
    assert first.json["routed"] == {"demo-prod": [DEMO], "flyteconnector": ["sensor"]}  # the built-in keeps sensor
    routed = routing_doc(kube_api)["plugins"]["connector-service"]
    assert routed["connectorForTaskTypes"] == {DEMO: "demo-prod", "sensor": "flyteconnector"}
    assert routed["connectors"]["demo-prod"]["endpoint"] == "k8s://demo-prod.flyte:8000"
    assert routed["connectors"]["flyteconnector"]["endpoint"] == "k8s://flyteconnector.flyte:8000"
    assert first.json["propeller_restarted"] is True

    second = deploy_cli(project, helm, "--output", "json")
    assert second.code == 0, second.stderr[-3000:]
    assert (second.json["helm_upgrades"], second.json["routing_written"], second.json["propeller_restarted"]) == \
        ([], False, False)
    assert second.json["plan"]["routing"]["discovered_at_deploy"] == {"demo-prod": [DEMO]}

    checked = run_cli("verify", "--sandbox", "--project", str(project), "--helm", helm, "--output", "json")
    assert checked.code == 0, checked.stderr[-2000:]
    assert checked.json["ok"]  # one warning: webhook (sync, never pinned) goes to whichever entry is polled last
    assert [(f["rule"], f["message"].split()[2]) for f in checked.json["findings"]] == [("builtin-type-taken",
                                                                                         "webhook")]
    shown = run_cli("status", "--sandbox", "--project", str(project), "--helm", helm, "--output", "json")
    assert shown.code == 0, shown.stderr[-2000:]
    rows = {r["service"]: r for r in shown.json["services"]}
    assert rows["demo-prod"]["routed"] == [DEMO] and rows["demo-prod"]["drift"] == []
    assert shown.json["routing_drift"] is False

    removed = run_cli("undeploy", "--sandbox", "--project", str(project), "--helm", helm)
    assert removed.code == 0, removed.stderr[-2000:]
    assert snapshot(kube_api)["configmaps"] == before["configmaps"]


# ------------------------------------------------------------------------------------------------ other flavors

def test_deploy_env_prod_into_flyte_binary(kube_api, docker_client, namespace, image_repository, tmp_path):
    install_propeller(kube_api, namespace, **FLYTE_BINARY_116, data={"001-plugins.yaml": PLUGINS_116})
    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    propeller, config_map = FLYTE_BINARY_116["deployment"], FLYTE_BINARY_116["config_map"]
    generation = apps.read_namespaced_deployment(propeller, namespace).metadata.generation
    project = write_project(tmp_path, image_repository)
    args = ("deploy", "--env", "prod", "--project", str(project), "--context", "kwok", "--namespace", namespace,
            "--propeller-namespace", namespace, "--registry", "localhost:30000", "--helm", helm_binary(4),
            "--network", "host", "--ca-bundle", HOST_CA_BUNDLE, "--verify-timeout", "90", "--output", "json")

    with agent_pods(kube_api, docker_client, namespace):
        first = run_cli(*args)
        assert first.code == 0, first.stderr[-3000:]
        assert first.json["plan"]["cluster"]["flavor"] == "flyte-binary"
        assert first.json["helm_upgrades"] == ["demo-prod"]  # --env prod: demo-dev is not deployed
        ours = yaml.safe_load(core.read_namespaced_config_map(config_map, namespace).data["zz-flyte-agents.yaml"])
        section = ours["plugins"]["connector-service"]  # outside the sandbox, the default service is propeller's
        assert section["defaultConnector"]["endpoint"] == f"k8s://demo-prod.{namespace}:8000"
        assert "connector-service" in ours["tasks"]["task-plugins"]["enabled-plugins"]
        assert first.json["propeller_restarted"] is True
        assert apps.read_namespaced_deployment(propeller, namespace).metadata.generation == generation + 1
        assert len(first.json["verify"]["services"]["demo-prod"]["probes"]) == 2  # prod.yaml: two replicas

        data = core.read_namespaced_config_map(config_map, namespace).data
        second = run_cli(*args)
        assert second.code == 0, second.stderr[-3000:]
        assert (second.json["builds"], second.json["pushes"], second.json["helm_upgrades"],
                second.json["routing_written"], second.json["propeller_restarted"]) == (0, 0, [], False, False)
        assert core.read_namespaced_config_map(config_map, namespace).data == data
        assert apps.read_namespaced_deployment(propeller, namespace).metadata.generation == generation + 1


# ------------------------------------------------------------------------------------------------ Ctrl-C

@pytest.mark.parametrize("sandbox", ["1.16"], indirect=True)
def test_ctrl_c_once_helm_started_leaves_the_cluster_as_it_was(sandbox, kube_api, image_repository, tmp_path):
    """SIGINT to the whole process group, as a terminal's Ctrl-C (helm gets it too), once demo-prod's release
    record exists. No pod runner: verify cannot pass, so however late the signal lands, propeller is untouched."""
    helm = helm_binary(4)
    project = write_project(tmp_path, image_repository)
    before = snapshot(kube_api)
    core = client.CoreV1Api(kube_api)
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flyte_agents.cli.main", "deploy", "--sandbox", "--project", str(project), "--helm",
             helm, "--network", "host", "--ca-bundle", HOST_CA_BUNDLE, "--verify-timeout", "90"],
            cwd=REPO, stdout=stdout, stderr=stderr, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not core.list_namespaced_secret(NS, label_selector="owner=helm,name=demo-prod").items:
            assert proc.poll() is None, err.read_text()[-2000:]
            assert time.monotonic() < deadline, "helm never started"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    stderr_text = err.read_text()
    assert code == 130, stderr_text[-2000:]
    assert stderr_text.strip().splitlines()[-1] == \
        "error: interrupted (Ctrl-C): the cluster is as it was before this command"
    assert "Traceback" not in stderr_text and "rollback: uninstalling demo-prod" in stderr_text
    _assert_unchanged(kube_api, before, helm)


# ------------------------------------------------------------------------------------------------ faults

def _assert_unchanged(kube_api, before: dict, helm: str) -> None:
    import subprocess

    assert snapshot(kube_api) == before
    listed = subprocess.run([helm, "list", "-n", NS, "-a", "-q"] if "v3" in helm else [helm, "list", "-n", NS, "-q"],
                            capture_output=True, text=True)
    assert listed.stdout.strip() == ""


@pytest.mark.parametrize("sandbox, major", [("1.16", 3), ("1.16", 4)], indirect=["sandbox"],
                         ids=["helm3", "helm4"])
def test_a_release_left_pending_by_a_killed_helm_is_rolled_back_then_upgraded(sandbox, major, kube_api,
                                                                             image_repository, pod_runner, tmp_path):
    """A helm killed mid-upgrade (SIGKILL while it waits for a pod that never pulls its image) leaves the release
    pending-upgrade, which refuses every later upgrade. The next deploy must see that in its plan, roll it back
    and upgrade it."""
    helm = helm_binary(major)
    project = write_project(tmp_path, image_repository)
    assert deploy_cli(project, helm).code == 0
    env = {**os.environ, "HELM_KUBECONTEXT": "flyte-sandbox"}
    stuck = subprocess.Popen(
        [helm, "upgrade", "demo-dev", str(REPO / "charts/flyte-agent"), "-n", NS, "--reuse-values", "--wait",
         "--timeout", "120s", "--set-string", "podAnnotations.flyte-agents\\.dev/fault=image-pull-backoff"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def status() -> str:
        shown = subprocess.run([helm, "status", "demo-dev", "-n", NS, "-o", "json"], env=env, capture_output=True,
                               text=True)
        return json.loads(shown.stdout)["info"]["status"] if shown.returncode == 0 else shown.stderr

    deadline = time.monotonic() + 60
    while status() != "pending-upgrade":
        assert stuck.poll() is None, stuck.stderr.read()
        assert time.monotonic() < deadline, status()
        time.sleep(0.2)
    stuck.kill()
    stuck.wait()
    assert status() == "pending-upgrade"

    result = deploy_cli(project, helm, "--output", "json")
    assert result.code == 0, result.stderr[-3000:]
    history = json.loads(subprocess.run([helm, "history", "demo-dev", "-n", NS, "-o", "json"], env=env,
                                        capture_output=True, text=True, check=True).stdout)
    assert [(h["revision"], h["status"]) for h in history][-2:] == [(3, "superseded"), (4, "deployed")]
    assert history[-2]["description"] == "Rollback to 1"
    apps = client.AppsV1Api(kube_api)
    annotations = apps.read_namespaced_deployment("demo-dev", NS).spec.template.metadata.annotations or {}
    assert "flyte-agents.dev/fault" not in annotations
    assert status() == "deployed"


@pytest.mark.parametrize("sandbox", ["1.16"], indirect=True)
def test_registry_down_changes_nothing(sandbox, kube_api, image_repository, tmp_path):
    helm = helm_binary(4)
    before = snapshot(kube_api)
    result = deploy_cli(write_project(tmp_path, image_repository), helm, "--registry", f"127.0.0.1:{free_port()}")
    assert result.code == 5, result.stderr
    assert "does not answer" in result.error and "flytectl demo start" in result.error
    _assert_unchanged(kube_api, before, helm)


@pytest.mark.parametrize("sandbox, major", [("1.16", 3), ("1.16", 4)], indirect=["sandbox"],
                         ids=["helm3", "helm4"])
def test_helm_failure_from_a_bad_value_rolls_everything_back(sandbox, major, kube_api, image_repository,
                                                            pod_runner, tmp_path):
    helm = helm_binary(major)
    before = snapshot(kube_api)
    project = write_project(tmp_path, image_repository, extra_dev_values={"grpc": {"port": 99999}})
    result = deploy_cli(project, helm)
    assert result.code == 9, result.stderr[-2000:]
    assert result.error.startswith("error: helm upgrade --install demo-dev failed") and "grpc" in result.error
    assert "rollback: uninstalling demo-prod" in result.stderr  # prod was installed first, then removed again
    _assert_unchanged(kube_api, before, helm)


@pytest.mark.parametrize("sandbox", ["1.16"], indirect=True)
def test_rollout_that_never_becomes_ready_rolls_everything_back(sandbox, kube_api, image_repository, pod_runner,
                                                                tmp_path):
    helm = helm_binary(4)
    before = snapshot(kube_api)
    project = write_project(tmp_path, image_repository,
                            extra_dev_values={"podAnnotations": {"flyte-agents.dev/fault": "image-pull-backoff"}})
    result = deploy_cli(project, helm, "--timeout", "20s")
    assert result.code == 9, result.stderr[-2000:]
    assert "demo-dev" in result.error
    _assert_unchanged(kube_api, before, helm)


@pytest.mark.parametrize("sandbox", ["1.16"], indirect=True)
def test_agent_not_serving_a_routed_task_type_fails_before_propeller_is_touched(sandbox, kube_api, image_repository,
                                                                                pod_runner, tmp_path):
    helm = helm_binary(4)
    before = snapshot(kube_api)
    project = write_project(tmp_path, image_repository, prod={"taskTypes": [DEMO, "not_served_type"]})
    result = deploy_cli(project, helm)
    assert result.code == 11, result.stderr[-2000:]
    assert "not_served_type" in result.error and "demo-prod" in result.error
    assert "routing: writing" not in result.stderr
    _assert_unchanged(kube_api, before, helm)


@pytest.mark.parametrize("sandbox", ["1.16"], indirect=True)
def test_conflicts_on_the_configmap_roll_the_releases_back(sandbox, kube_api, image_repository, pod_runner,
                                                           tmp_path, docker_client):
    from flyte_agents.adapters.docker import DockerEngine
    from flyte_agents.adapters.helm import Helm
    from flyte_agents.errors import ConflictError
    from flyte_agents.workflows import deploy as dp
    from flyte_agents.workflows.project import load
    from flyte_agents.workflows.sandbox import detect_sandbox

    helm_path = helm_binary(4)
    project = load(write_project(tmp_path, image_repository))
    cluster, kube = detect_sandbox(os.environ["KUBECONFIG"])
    helm = Helm(helm_path, cluster.kubeconfig, cluster.context)
    docker = DockerEngine.connect()
    options = dp.Options(verify_timeout=90)
    deploy_plan = dp.plan(project, cluster, kube, helm, docker, project.services, options)
    before = snapshot(kube_api)
    core = client.CoreV1Api(kube_api)

    def concurrent_writer(_state) -> None:
        """Another writer touches the ConfigMap between our read and our write, every time (net: no change)."""
        for value in ("1", None):
            core.patch_namespaced_config_map("flyte-sandbox-extra-config", NS,
                                             {"metadata": {"annotations": {"test/other-writer": value}}})

    with pytest.raises(ConflictError, match="kept changing"):
        dp.apply(deploy_plan, project, kube, helm, docker, options, before_write=concurrent_writer)
    _assert_unchanged(kube_api, before, helm_path)


# ------------------------------------------------------------------------------------------------ detection

def test_sandbox_not_running_is_one_line_with_the_fix(tmp_path):
    empty = tmp_path / "kubeconfig"
    empty.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": [], "contexts": [],
                                     "users": []}))
    result = run_cli("deploy", "--sandbox", "--kubeconfig", str(empty), "--dry-run")
    assert result.code == 2
    assert result.error == (f"error: the Flyte sandbox is not running (no kube context flyte-sandbox in {empty}): "
                            "start it with `flytectl demo start`")
    assert "Traceback" not in result.stderr
