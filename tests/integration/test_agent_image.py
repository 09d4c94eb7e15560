"""agent_image/ built for real from the local base image, then run the way the chart runs it.

The container is started from the chart's rendered Deployment (args, read-only root, /tmp emptyDir, dropped
capabilities, numeric non-root user, the Secret mounted at /etc/secrets) because kwok runs no containers: this is
where the chart's container spec and its `helm test` gRPC health check meet a real agent server.
"""
from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import docker.errors
import grpc
import pytest
import yaml
from flyteidl.admin import agent_pb2
from flyteidl.service import agent_pb2_grpc

from tests.conftest import Helm, grpc_health, require

REPO = Path(__file__).resolve().parents[2]
CONTEXT = REPO / "agent_image"
CHART = REPO / "charts" / "flyte-agent"
VALUES = REPO / "values"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")  # the only bundle that trusts this network's proxy
DEMO_TASK_TYPE = "flyte_agents_demo"
SECRET = "demo-secret-value"
IMAGE_SIZE_BUDGET = 400_000_000  # bytes: 234 MB base + 151 MB venv with flytekit 1.16.31 (one-layer image: 407 MB)
ADDED_REQUIREMENT = "iniconfig"  # small, pure Python, not dependencies of flytekit
ADDED_DEPENDENCY = "tomli-w"
ANSI = re.compile(r"\x1b\[[0-9;]*m")

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]


def dockerfile_default(name: str) -> str:
    line = next(l for l in (CONTEXT / "Dockerfile").read_text().splitlines() if l.startswith(f"ARG {name}="))
    return line.split("=", 1)[1]


def build(docker_client, context: Path, tag: str, base_image: str, network_mode: str, **build_args: str) -> str:
    """Build without BuildKit (the SDK's classic builder), as the image pipeline does; returns the build log."""
    try:
        _, log = docker_client.images.build(path=str(context), tag=tag,
                                            buildargs={"BASE_IMAGE": base_image, **build_args},
                                            network_mode=network_mode, rm=True, forcerm=True, timeout=900)
    except docker.errors.BuildError as err:
        tail = "".join(chunk.get("stream", "") + chunk.get("error", "") for chunk in err.build_log)[-3000:]
        pytest.fail(f"agent_image build failed: {err.msg}\n{tail}", pytrace=False)
    return "".join(chunk.get("stream", "") for chunk in log)


def private_context(tmp_path: Path) -> Path:
    """A copy of agent_image/ whose extra/ the test may fill."""
    context = tmp_path / "agent_image"
    shutil.copytree(CONTEXT, context, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for item in (context / "extra").iterdir():
        if item.name != ".gitkeep":
            shutil.rmtree(item) if item.is_dir() else item.unlink()
    return context


@pytest.fixture(scope="module")
def agent_image(docker_client, base_image, tmp_path_factory):
    """The image, built online through this network's TLS-intercepting proxy: exactly the extra CA bundle case."""
    context = private_context(tmp_path_factory.mktemp("online"))
    shutil.copy(HOST_CA_BUNDLE, context / "extra" / "ca-bundle.crt")
    tag = f"flyte-agents-test/agent:{uuid.uuid4().hex[:10]}"
    build(docker_client, context, tag, base_image, network_mode="host")
    yield tag
    docker_client.images.remove(tag, noprune=True)  # keep the layers: the next run's build is then cached


@pytest.fixture(scope="module")
def chart_helm() -> Helm:
    """One helm major is enough to render the chart here; test_chart.py covers both."""
    for major in (4, 3):
        path = os.environ.get(f"FA_HELM{major}")
        if path and os.access(path, os.X_OK):
            return Helm(major, path)
    require("helm", "neither FA_HELM4 nor FA_HELM3 is an executable")


def render(helm: Helm, image: str, tmp_path: Path, **values) -> list[dict]:
    """The sandbox dev release as the deploy tooling renders it, with this test's image and values."""
    repository, tag = image.rsplit(":", 1)
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(yaml.safe_dump({"image": {"repository": repository, "tag": tag}, **values}))
    proc = helm.run("template", "demo-dev", str(CHART), "--namespace", "agents",
                    *(a for f in ("base", "dev", "sandbox") for a in ("-f", str(VALUES / f"{f}.yaml"))),
                    "-f", str(overrides))
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def one(docs: list[dict], kind: str, hook: bool = False) -> dict:
    (doc,) = [d for d in docs if d["kind"] == kind and ("helm.sh/hook" in d["metadata"].get("annotations", {})) == hook]
    return doc


def docker_security(container: dict) -> dict:
    """The container's securityContext as Docker run options."""
    security = container["securityContext"]
    return {"user": f"{security['runAsUser']}:{security['runAsGroup']}",
            "read_only": security["readOnlyRootFilesystem"],
            "cap_drop": security["capabilities"]["drop"],
            "security_opt": [] if security["allowPrivilegeEscalation"] else ["no-new-privileges"]}


def run_like_kubelet(docker_client, docs: list[dict], tmp_path: Path):
    """Start the chart's Deployment container in Docker, mapping each pod-spec field that matters."""
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    for source in container.get("envFrom", []):
        env.update(one(docs, "ConfigMap")["data"] if "configMapRef" in source else {})
    tmpfs, binds = {}, {}
    for mount in container["volumeMounts"]:
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        if "emptyDir" in volume:
            tmpfs[mount["mountPath"]] = f"size={volume['emptyDir']['sizeLimit'].replace('Mi', 'm')}"
        elif "secret" in volume:  # files as the kubelet writes them: defaultMode, group-owned by fsGroup
            secret = one(docs, "Secret")
            directory = tmp_path / "secret-volume"
            directory.mkdir(mode=0o755)
            for key, value in secret["data"].items():
                (directory / key).write_bytes(base64.b64decode(value))
                os.chown(directory / key, 0, pod["securityContext"]["fsGroup"])
                (directory / key).chmod(volume["secret"]["defaultMode"])
            binds[str(directory)] = {"bind": mount["mountPath"], "mode": "ro"}
    return docker_client.containers.run(
        container["image"], container["args"], detach=True, environment=env, tmpfs=tmpfs, volumes=binds,
        name=f"fa-test-agent-{uuid.uuid4().hex[:8]}", **docker_security(container))


def address_of(container, port: int) -> str:
    container.reload()
    return f"{container.attrs['NetworkSettings']['IPAddress']}:{port}"


def wait_serving(container, address: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while grpc_health(address, timeout=2) != "SERVING":
        container.reload()
        if container.status == "exited" or time.monotonic() > deadline:
            logs = container.logs().decode(errors="replace")[-3000:]
            pytest.fail(f"the agent container did not serve on {address} ({container.status}):\n{logs}", pytrace=False)
        time.sleep(0.5)


def task_types(address: str) -> set[str]:
    with grpc.insecure_channel(address) as channel:
        reply = agent_pb2_grpc.AgentMetadataServiceStub(channel).ListAgents(agent_pb2.ListAgentsRequest(), timeout=10)
    return {t for agent in reply.agents for t in agent.supported_task_types}


def grpc_port(docs: list[dict]) -> int:
    (container,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return container["startupProbe"]["grpc"]["port"]


# ------------------------------------------------------------------------------------------------ the image


def test_image_contract(docker_client, agent_image):
    config = docker_client.images.get(agent_image).attrs["Config"]
    assert config["User"] == "65532:65532"  # numeric: the chart's runAsNonRoot can verify it
    assert config["Entrypoint"] == ["/usr/bin/tini", "--"]
    assert set(config["ExposedPorts"]) == {"8000/tcp", "9090/tcp"}
    assert config["Labels"]["dev.flyte-agents.flytekit-version"] == dockerfile_default("FLYTEKIT_VERSION")
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["HOME"] == "/tmp"
    assert not {"PIP_CERT", "SSL_CERT_FILE", "PIP_FIND_LINKS", "PIP_NO_INDEX"} & set(env)  # build-only settings
    # Every container create copies the whole image on the vfs driver: pip, setuptools and build files stay out.
    assert docker_client.images.get(agent_image).attrs["Size"] < IMAGE_SIZE_BUDGET

    # As root, so that no directory is unreadable to the search.
    out = docker_client.containers.run(agent_image, ["sh", "-c", "find / -xdev -name ca-bundle.crt; ls -d /build 2>&1; "
                                                     "ls /opt/venv/bin"], user="0", remove=True).decode()
    assert "ca-bundle.crt" not in out and "No such file" in out  # neither the bundle nor the build context
    assert "pyflyte" in out.split() and "pip" not in out.split()



def layers(docker_client, tag: str) -> list[str]:
    return docker_client.images.get(tag).attrs["RootFS"]["Layers"]


def with_ca_bundle(context: Path) -> Path:
    shutil.copy(HOST_CA_BUNDLE, context / "extra" / "ca-bundle.crt")
    return context


@pytest.mark.parametrize("edited", ["agent.py", "__init__.py"])
def test_a_code_change_adds_one_small_layer_on_the_same_dependency_layers(docker_client, agent_image, base_image,
                                                                          tmp_path, edited):
    """One changed file of a local package, a module or the package's __init__.py: everything but the last layer
    is shared with the image built before (the venv is not reinstalled), and the last layer holds only the local
    package's code, which the image runs."""
    context = with_ca_bundle(private_context(tmp_path))
    changed = context / "flyte_agents_demo" / "flyte_agents_demo" / edited
    changed.write_text(changed.read_text() + "\nCODE_CHANGE = 'seen'\n")
    module = "flyte_agents_demo" + ("" if edited == "__init__.py" else ".agent")
    tag = f"flyte-agents-test/agent-code:{uuid.uuid4().hex[:10]}"
    build(docker_client, context, tag, base_image, network_mode="host")
    try:
        before, after = layers(docker_client, agent_image), layers(docker_client, tag)
        assert len(after) == len(before) and after[:-1] == before[:-1] and after[-1] != before[-1]
        top = docker_client.api.history(tag)[0]  # newest first: the COPY of the local package's code
        assert "/opt/agent" in top["CreatedBy"] and top["Size"] < 100_000
        out = docker_client.containers.run(tag, ["python", "-c", f"import {module} as m; print(m.CODE_CHANGE)"],
                                           remove=True)
        assert out.decode().strip() == "seen"
    finally:
        docker_client.images.remove(tag, noprune=True)


@pytest.mark.parametrize("metadata, real", [
    ("", False),
    ('[tool.setuptools.dynamic]\nversion = {attr = "flyte_agents_demo.__version__"}\n', True),
])
def test_the_venv_stage_gets_a_package_init_only_where_the_metadata_may_read_it(docker_client, base_image,
                                                                                tmp_path, metadata, real):
    """The context stage's /meta (what the venv stage installs from): an empty __init__.py for a package whose
    metadata is static, the real one where it is `dynamic` (here: the version read from __version__)."""
    context = private_context(tmp_path)
    pyproject = context / "flyte_agents_demo" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + metadata)
    tag = f"flyte-agents-test/agent-context:{uuid.uuid4().hex[:10]}"
    docker_client.images.build(path=str(context), tag=tag, target="context", buildargs={"BASE_IMAGE": base_image},
                               rm=True, forcerm=True)
    try:
        out = docker_client.containers.run(tag, ["cat", "/meta/flyte_agents_demo/flyte_agents_demo/__init__.py"],
                                           remove=True)
        source = (context / "flyte_agents_demo" / "flyte_agents_demo" / "__init__.py").read_bytes()
        assert out == (source if real else b"")
    finally:
        docker_client.images.remove(tag)


def test_a_local_requirement_that_is_no_package_fails_the_build_with_one_line(docker_client, base_image, tmp_path):
    """A local package line of requirements.txt must name a directory with a pyproject.toml or setup.py: otherwise
    the build stops before pip runs, with one `error:` line naming it."""
    context = with_ca_bundle(private_context(tmp_path))
    (context / "other_agent").mkdir()
    (context / "other_agent" / "agent.py").write_text("")
    requirements = context / "requirements.txt"
    requirements.write_text(requirements.read_text() + "./other_agent[extra]\n")
    with pytest.raises(docker.errors.BuildError) as failed:
        docker_client.images.build(path=str(context), buildargs={"BASE_IMAGE": base_image}, network_mode="host",
                                   rm=True, forcerm=True, timeout=900)
    output = ANSI.sub("", "".join(chunk.get("stream", "") for chunk in failed.value.build_log))  # stderr is red
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output[-3000:]
    assert "local package ./other_agent has no pyproject.toml or setup.py" in errors[0]
    assert "Collecting" not in output  # it stopped before pip resolved anything

@pytest.fixture(scope="module")
def connector_server(docker_client, agent_image, chart_helm, tmp_path_factory):
    """`pyflyte serve connector` started from the chart's container spec, with a chart-managed secret."""
    tmp_path = tmp_path_factory.mktemp("connector")
    docs = render(chart_helm, agent_image, tmp_path, agent={"serve": "connector"}, secrets={"data": {"api_key": SECRET}})
    container = run_like_kubelet(docker_client, docs, tmp_path)
    address = address_of(container, grpc_port(docs))
    try:
        wait_serving(container, address)
        yield docs, container, address
    finally:
        container.remove(force=True)


def test_serves_health_and_lists_the_demo_task_type(connector_server):
    _, _, address = connector_server
    assert grpc_health(address) == "SERVING"
    types = task_types(address)
    assert DEMO_TASK_TYPE in types
    assert {"sensor", "webhook"} <= types  # flytekit's built-ins still load next to the plugin


def test_agent_reads_the_mounted_secret_through_flytekit(connector_server):
    _, container, _ = connector_server
    code, out = container.exec_run(
        ["python", "-c", "import flytekit; print(flytekit.current_context().secrets.get(key='api_key'))"])
    assert (code, out.decode().strip().splitlines()[-1]) == (0, SECRET)


def test_metrics_port_serves_prometheus(connector_server, docker_client):
    docs, container, _ = connector_server
    (spec,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    port = next(p["containerPort"] for p in spec["ports"] if p["name"] == "metrics")
    with urllib.request.urlopen(f"http://{address_of(container, port)}/metrics", timeout=10) as reply:
        assert reply.status == 200 and b"python_info" in reply.read()


def test_helm_test_hook_reports_serving(connector_server, docker_client):
    """The chart's `helm test` pod, run for real: it resolves the Service name (here: an /etc/hosts entry for the
    container's IP) and exits 0 only on SERVING."""
    docs, container, address = connector_server
    hook = one(docs, "Pod", hook=True)
    (spec,) = hook["spec"]["containers"]
    service_host = spec["args"][-1].rsplit(":", 1)[0]
    out = docker_client.containers.run(
        spec["image"], spec["args"], remove=True, environment={e["name"]: e["value"] for e in spec["env"]},
        extra_hosts={service_host: address.split(":")[0]}, **docker_security(spec)).decode()
    assert out.strip().endswith("SERVING")


# ------------------------------------------------------------------------------------------------ agent naming, stop


def test_serve_agent_lists_the_demo_and_stops_on_sigterm(docker_client, agent_image, chart_helm, tmp_path):
    """`pyflyte serve agent` (Flyte <= 1.15 naming) serves the same registry; tini makes `docker stop` prompt."""
    docs = render(chart_helm, agent_image, tmp_path, agent={"serve": "agent"})
    container = run_like_kubelet(docker_client, docs, tmp_path)
    try:
        address = address_of(container, grpc_port(docs))
        wait_serving(container, address)
        assert DEMO_TASK_TYPE in task_types(address)

        started = time.monotonic()
        container.stop(timeout=10)
        seconds = time.monotonic() - started
        status = container.wait(timeout=10)["StatusCode"]
    finally:
        container.remove(force=True)
    # 143 = 128 + SIGTERM: the server died of the forwarded signal; 137 would mean Docker had to SIGKILL it after
    # the 10 s timeout. The time bound is generous: it checks signal handling, not speed (`docker stop` < 2 s here).
    assert status == 143
    assert seconds < 5, f"docker stop took {seconds:.1f}s"


def test_flytekit_1_15_build_serves_the_demo_under_the_agent_naming(docker_client, base_image, tmp_path):
    """FLYTEKIT_EXTRA=agent with a flytekit that predates connectors: the demo registers through base_agent, and
    the image's default command (no chart args) runs `pyflyte serve agent`."""
    context = private_context(tmp_path)
    shutil.copy(HOST_CA_BUNDLE, context / "extra" / "ca-bundle.crt")
    tag = f"flyte-agents-test/agent-115:{uuid.uuid4().hex[:10]}"
    build(docker_client, context, tag, base_image, "host", FLYTEKIT_VERSION="1.15.4", FLYTEKIT_EXTRA="agent")
    container = docker_client.containers.run(tag, detach=True, read_only=True, tmpfs={"/tmp": ""},
                                             name=f"fa-test-agent-{uuid.uuid4().hex[:8]}")
    try:
        address = address_of(container, 8000)
        wait_serving(container, address)
        assert DEMO_TASK_TYPE in task_types(address)
        assert "Agent Metadata" in container.logs().decode()  # what `serve agent` prints, not `serve connector`
    finally:
        container.remove(force=True)
        docker_client.images.remove(tag, noprune=True)


# ------------------------------------------------------------------------------------------------ offline build


def test_builds_offline_from_a_wheelhouse_and_a_requirements_change_reaches_the_venv(docker_client, base_image,
                                                                                      agent_image, tmp_path):
    """No network at all in the build (network_mode none): pip installs only from extra/wheelhouse. The context's
    requirements.txt, and the demo package's pyproject.toml, each have one more dependency than the module's image:
    both are in the rebuilt venv."""
    context = private_context(tmp_path)
    requirements = context / "requirements.txt"
    requirements.write_text(requirements.read_text() + f"{ADDED_REQUIREMENT}\n")
    pyproject = context / "flyte_agents_demo" / "pyproject.toml"
    text = pyproject.read_text()
    assert "dependencies = [" in text
    pyproject.write_text(text.replace("dependencies = [", f'dependencies = ["{ADDED_DEPENDENCY}", ', 1))
    wheelhouse = context / "extra" / "wheelhouse"
    extra = dockerfile_default("FLYTEKIT_EXTRA")
    download = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--dest", str(wheelhouse),
         f"flytekit[{extra}]=={dockerfile_default('FLYTEKIT_VERSION')}", "-r", "requirements.txt", "setuptools>=77"],
        cwd=context, capture_output=True, text=True, env={**os.environ, "PIP_CERT": str(HOST_CA_BUNDLE)})
    if download.returncode != 0:
        require("package index", f"pip download failed: {download.stderr.strip()[-500:]}")
    tag = f"flyte-agents-test/agent-offline:{uuid.uuid4().hex[:10]}"
    log = build(docker_client, context, tag, base_image, network_mode="none")
    try:
        image = docker_client.images.get(tag)
        assert image.labels["dev.flyte-agents.serve"] == extra
        # A cached build skips the RUN; its log then has no pip output, and the cache came from this same context.
        assert "Looking in links: /build/wheelhouse" in log or "Using cache" in log
        modules = [ADDED_REQUIREMENT, ADDED_DEPENDENCY.replace("-", "_")]
        code = ["python", "-c", f"import importlib.util; print([bool(importlib.util.find_spec(m)) for m in {modules}])"]
        installed = {ref: docker_client.containers.run(ref, code, remove=True).decode().strip()
                     for ref in (tag, agent_image)}
        # Both came with the change: one from requirements.txt, one from the local package's own dependencies.
        assert installed == {tag: "[True, True]", agent_image: "[False, False]"}
    finally:
        docker_client.images.remove(tag, noprune=True)
