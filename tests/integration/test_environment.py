"""Each component of `make env` is the real thing: these tests would fail against a stub or a fake."""
from __future__ import annotations

import io
import json
import subprocess
import tarfile
import time
import urllib.request
import uuid

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.conftest import free_port, grpc_health, kubectl_path

pytestmark = pytest.mark.timeout(300)


# ------------------------------------------------------------------------------------------------ Kubernetes

def test_api_server_rejects_an_invalid_object_with_422(kube_api, namespace):
    core = client.CoreV1Api(kube_api)
    bad = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="Not_A_DNS_Name"), data={"k": "v"})
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(namespace, bad)
    assert err.value.status == 422
    assert "Not_A_DNS_Name" in json.loads(err.value.body)["message"]


def test_update_with_stale_resource_version_gets_409(kube_api, namespace):
    core = client.CoreV1Api(kube_api)
    created = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm"), data={"a": "1"}))
    stale = created.metadata.resource_version
    created.data = {"a": "2"}
    core.replace_namespaced_config_map("cm", namespace, created)  # bumps the resourceVersion

    created.data = {"a": "3"}
    created.metadata.resource_version = stale
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("cm", namespace, created)
    assert err.value.status == 409
    assert core.read_namespaced_config_map("cm", namespace).data == {"a": "2"}


def _deployment(name: str, annotations: dict[str, str] | None = None) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels, annotations=annotations),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="example.invalid/never:1")]))))


def _wait_rolled_out(apps: client.AppsV1Api, name: str, namespace: str, timeout: float = 90) -> client.V1Deployment:
    """kubectl rollout status's rule: observed the latest generation, every replica updated and available."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d = apps.read_namespaced_deployment(name, namespace)
        s = d.status
        if (s.observed_generation or 0) >= d.metadata.generation and s.updated_replicas == d.spec.replicas \
                and s.replicas == d.spec.replicas and s.available_replicas == d.spec.replicas:
            return d
        time.sleep(0.3)
    raise AssertionError(f"deployment {name} did not roll out: {apps.read_namespaced_deployment(name, namespace).status}")


def test_deployment_becomes_available_and_rollout_restart_completes(kube_api, namespace):
    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    apps.create_namespaced_deployment(namespace, _deployment("web"))
    first = _wait_rolled_out(apps, "web", namespace)
    available = [c for c in first.status.conditions if c.type == "Available"]
    assert available and available[0].status == "True"
    pods_before = {p.metadata.name for p in core.list_namespaced_pod(namespace, label_selector="app=web").items}
    assert len(pods_before) == 2

    # What `kubectl rollout restart` does: stamp the pod template.
    patch = {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}}}}
    apps.patch_namespaced_deployment("web", namespace, patch)
    _wait_rolled_out(apps, "web", namespace)
    deadline = time.monotonic() + 60
    while True:  # old pods are deleted by the ReplicaSet controller and removed by kwok
        pods_after = {p.metadata.name for p in core.list_namespaced_pod(namespace, label_selector="app=web").items}
        if len(pods_after) == 2 and not pods_after & pods_before or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert len(pods_after) == 2 and not pods_after & pods_before


def test_kwok_can_hold_a_pod_in_image_pull_backoff(kube_api, namespace):
    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    apps.create_namespaced_deployment(
        namespace, _deployment("stuck", annotations={"flyte-agents.dev/fault": "image-pull-backoff"}))
    deadline = time.monotonic() + 60
    reasons: set[str] = set()
    while time.monotonic() < deadline and reasons != {"ImagePullBackOff"}:
        pods = core.list_namespaced_pod(namespace, label_selector="app=stuck").items
        reasons = {cs.state.waiting.reason for p in pods for cs in (p.status.container_statuses or [])
                   if cs.state.waiting}
        time.sleep(0.3)
    assert reasons == {"ImagePullBackOff"}
    assert not apps.read_namespaced_deployment("stuck", namespace).status.available_replicas


# ------------------------------------------------------------------------------------------------ helm

def test_helm_installs_upgrades_and_rolls_back_with_wait(helm, kube_api, namespace, tmp_path):
    chart = tmp_path / "demo"
    helm.run("create", str(chart))
    release = f"demo-h{helm.major}"  # contains the chart name, so the Deployment is named after the release
    common = ["--namespace", namespace, "--wait", "--timeout", "120s"]
    apps = client.AppsV1Api(kube_api)

    helm.run("install", release, str(chart), *common, "--set", "replicaCount=1")
    helm.run("upgrade", release, str(chart), *common, "--set", "replicaCount=3")
    # --wait returned, so the upgraded Deployment is fully available.
    assert apps.read_namespaced_deployment(release, namespace).status.available_replicas == 3
    history = json.loads(helm.run("history", release, "-n", namespace, "-o", "json").stdout)
    assert [h["revision"] for h in history] == [1, 2]
    assert history[-1]["status"] == "deployed"

    helm.run("rollback", release, "1", "--namespace", namespace, "--wait", "--timeout", "120s")
    history = json.loads(helm.run("history", release, "-n", namespace, "-o", "json").stdout)
    assert [(h["revision"], h["status"]) for h in history][-1] == (3, "deployed")
    values = json.loads(helm.run("get", "values", release, "-n", namespace, "-o", "json").stdout)
    assert values == {"replicaCount": 1}
    assert apps.read_namespaced_deployment(release, namespace).spec.replicas == 1


# ------------------------------------------------------------------------------------------------ Docker, registry

def _tiny_image(docker_client, repository: str) -> str:
    """An image made with `docker import` of a one-file tarball (no base image, no network)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = uuid.uuid4().hex.encode()
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    docker_client.api.import_image_from_data(buf.getvalue(), repository=repository, tag="t1")
    return f"{repository}:t1"


def test_pushed_image_is_listed_and_pulls_back_with_the_same_digest(docker_client, registry):
    repository = f"{registry}/fa-env-test/{uuid.uuid4().hex[:8]}"
    ref = _tiny_image(docker_client, repository)
    errors = [c for c in docker_client.api.push(repository, tag="t1", stream=True, decode=True) if "error" in c]
    assert not errors

    tags = json.loads(urllib.request.urlopen(f"http://{registry}/v2/{repository.split('/', 1)[1]}/tags/list").read())
    assert tags["tags"] == ["t1"]
    pushed_digest = docker_client.images.get(ref).attrs["RepoDigests"][0].split("@")[1]

    docker_client.images.remove(ref, force=True)
    pulled = docker_client.images.pull(repository, tag="t1")
    assert pulled.attrs["RepoDigests"][0].split("@")[1] == pushed_digest
    docker_client.images.remove(ref, force=True)


def test_base_image_has_python_with_venv(docker_client, base_image):
    out = docker_client.containers.run(base_image, ["python3", "-c", "import venv, sys; print(sys.version_info[0])"],
                                       remove=True)
    assert out.strip() == b"3"


# ------------------------------------------------------------------------------------------------ agent server

def test_real_agent_server_lists_its_agents(agent_server):
    import grpc
    from flyteidl.admin import agent_pb2
    from flyteidl.service import agent_pb2_grpc

    assert grpc_health(agent_server) == "SERVING"
    with grpc.insecure_channel(agent_server) as channel:
        reply = agent_pb2_grpc.AgentMetadataServiceStub(channel).ListAgents(agent_pb2.ListAgentsRequest(), timeout=10)
    task_types = {(t.name if hasattr(t, "name") else t) for a in reply.agents for t in a.supported_task_categories}
    assert "sensor" in task_types


# ------------------------------------------------------------------------------------------------ sandbox stand-in

@pytest.mark.parametrize("sandbox, naming", [("1.15", "agent"), ("1.16", "connector")], indirect=["sandbox"])
def test_sandbox_standin_has_the_flyte_sandbox_objects(sandbox, naming, kube_api):
    import yaml

    core, apps = client.CoreV1Api(kube_api), client.AppsV1Api(kube_api)
    plugins = yaml.safe_load(core.read_namespaced_config_map("flyte-sandbox-config", "flyte").data["001-plugins.yaml"])
    assert f"{naming}-service" in plugins["tasks"]["task-plugins"]["enabled-plugins"]
    endpoint_key = "defaultAgent" if naming == "agent" else "defaultConnector"
    assert plugins["plugins"][f"{naming}-service"][endpoint_key]["endpoint"] == f"k8s://flyte{naming}.flyte:8000"
    assert core.read_namespaced_config_map("flyte-sandbox-extra-config", "flyte").data is None

    propeller = apps.read_namespaced_deployment("flyte-sandbox", "flyte")
    assert propeller.spec.strategy.type == "Recreate"
    assert propeller.status.available_replicas == 1
    sources = [s.config_map.name if s.config_map else s.secret.name
               for s in propeller.spec.template.spec.volumes[0].projected.sources]
    assert sources == ["flyte-sandbox-config", "flyte-sandbox-config-secret", "flyte-sandbox-extra-config"]
    assert apps.read_namespaced_deployment(f"flyte{naming}", "flyte").status.available_replicas == 1
    assert core.read_namespaced_service("flyte-sandbox-docker-registry", "flyte").spec.ports[0].node_port == 30000

    contexts = subprocess.run([kubectl_path(), "config", "get-contexts", "flyte-sandbox", "-o", "name"],
                              capture_output=True, text=True)
    assert contexts.stdout.strip() == "flyte-sandbox"


def test_port_forward_through_the_api_server_reaches_a_real_agent_server(kube_api, namespace, agent_server):
    """kwok serves the kubelet's port-forward for a fake pod and forwards it to a real process on this machine."""
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_pod(namespace, client.V1Pod(
        metadata=client.V1ObjectMeta(name="agent"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="example.invalid/agent:1")])))
    host, port = agent_server.rsplit(":", 1)
    client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        "kwok.x-k8s.io", "v1alpha1", namespace, "portforwards",
        {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "PortForward", "metadata": {"name": "agent"},
         "spec": {"forwards": [{"ports": [8000], "target": {"address": host, "port": int(port)}}]}})
    deadline = time.monotonic() + 30
    while core.read_namespaced_pod("agent", namespace).status.phase != "Running" and time.monotonic() < deadline:
        time.sleep(0.2)

    local = free_port()
    forward = subprocess.Popen([kubectl_path(), "--context", "kwok", "-n", namespace, "port-forward", "pod/agent",
                                f"{local}:8000"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "Forwarding from" in forward.stdout.readline()
        assert grpc_health(f"127.0.0.1:{local}", timeout=10) == "SERVING"
    finally:
        forward.terminate()
        forward.wait(10)
