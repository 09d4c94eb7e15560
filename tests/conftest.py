"""Fixtures for the real components started by `make env` (hack/devenv.py).

Outside CI a missing component skips the test with a reason naming the make target that provides it. In CI
(CI=true) nothing may skip: a missing component fails the test with the tail of that component's log.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _load_env_sh() -> None:
    """Let a bare `pytest` find the components: take .dev/env.sh's exports for variables not already set."""
    env_sh = REPO / ".dev" / "env.sh"
    if not env_sh.exists():
        return
    for line in env_sh.read_text().splitlines():
        if line.startswith("export ") and "=" in line and "$" not in line:
            key, value = line[len("export "):].split("=", 1)
            os.environ.setdefault(key, value)


_load_env_sh()


def log_tail(component: str, lines: int = 20) -> str:
    path = Path(os.environ.get("FA_STATE_DIR", "/tmp/flyte-agents-env")) / "logs" / f"{component}.log"
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def require(component: str, problem: str | None, target: str = "env", log: str | None = None) -> None:
    """Skip (outside CI) or fail (in CI) when `problem` says a component is missing."""
    if problem is None:
        return
    if IN_CI:
        tail = f"\n--- last lines of {log}.log ---\n{log_tail(log)}" if log else ""
        pytest.fail(f"{component} is required in CI but {problem}{tail}", pytrace=False)
    pytest.skip(f"{component} not available ({problem}): run `make {target}`")


# ------------------------------------------------------------------------------------------------ Docker, registry

@pytest.fixture(scope="session")
def docker_client():
    import docker

    try:
        client = docker.DockerClient(base_url=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"))
        client.ping()
    except Exception as err:  # noqa: BLE001 - any failure means "no daemon"
        require("Docker Engine", f"the daemon does not answer: {err}", log="dockerd")
    yield client
    client.close()


@pytest.fixture(scope="session")
def registry() -> str:
    import urllib.request

    host = os.environ.get("FA_REGISTRY", "127.0.0.1:30000")
    try:
        urllib.request.urlopen(f"http://{host}/v2/", timeout=3).close()
    except OSError as err:
        require("OCI registry", f"http://{host}/v2/ does not answer: {err}", log="registry")
    return host


@pytest.fixture(scope="session")
def base_image(docker_client) -> str:
    import docker.errors

    name = os.environ.get("FA_BASE_IMAGE", "flyte-agents/base-python:bookworm")
    try:
        docker_client.images.get(name)
    except docker.errors.ImageNotFound:
        require("base image", f"{name} is not in the Docker Engine")
    return name


# ------------------------------------------------------------------------------------------------ helm

@dataclass(frozen=True)
class Helm:
    major: int
    path: str

    def run(self, *args: str, kubeconfig: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "KUBECONFIG": kubeconfig or os.environ.get("KUBECONFIG", "")}
        proc = subprocess.run([self.path, *args], capture_output=True, text=True, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc


@pytest.fixture(scope="session", params=[3, 4], ids=["helm3", "helm4"])
def helm(request) -> Helm:
    path = os.environ.get(f"FA_HELM{request.param}")
    if not path or not os.access(path, os.X_OK):
        require(f"helm {request.param}", f"FA_HELM{request.param}={path!r} is not an executable")
    return Helm(request.param, path)


# ------------------------------------------------------------------------------------------------ Kubernetes

@pytest.fixture(scope="session")
def kubeconfig() -> str:
    path = os.environ.get("KUBECONFIG", "")
    if not path or not Path(path).exists():
        require("Kubernetes control plane", f"KUBECONFIG={path!r} does not exist", log="kube-apiserver")
    return path


@pytest.fixture(scope="session")
def kube_api(kubeconfig):
    """An ApiClient for the kwok cluster (context `kwok`, whatever the current context is)."""
    from kubernetes import client, config

    try:
        api = config.new_client_from_config(config_file=kubeconfig, context="kwok")
        client.VersionApi(api).get_code(_request_timeout=5)
    except Exception as err:  # noqa: BLE001
        require("Kubernetes control plane", f"the API server does not answer: {err}", log="kube-apiserver")
    yield api
    api.close()


@pytest.fixture
def namespace(kube_api):
    """A fresh namespace for one test, deleted afterwards."""
    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(kube_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"flyte-agents/test": "1"})))
    yield name
    core.delete_namespace(name, propagation_policy="Background")


# ------------------------------------------------------------------------------------------------ sandbox stand-in

def kubectl_path() -> str:
    return os.environ.get("FA_KUBECTL") or shutil.which("kubectl") or "kubectl"


@pytest.fixture(scope="session")
def sandbox_lock():
    """There is one stand-in (namespace flyte) per cluster: a second pytest run on the machine waits for this one."""
    path = Path(os.environ.get("FA_STATE_DIR", "/tmp/flyte-agents-env")) / "sandbox.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture
def sandbox(request, kube_api, sandbox_lock):
    """The Flyte sandbox stand-in, freshly reset. Parametrize indirectly with "1.15" or "1.16" (default 1.16)."""
    flyte = getattr(request, "param", "1.16")
    proc = subprocess.run([sys.executable, str(REPO / "hack" / "standin.py"), "reset", "--flyte", flyte],
                          capture_output=True, text=True, env={**os.environ, "FA_KUBECTL": kubectl_path()})
    if proc.returncode != 0:
        require("Flyte sandbox stand-in", f"`standin.py reset` failed: {proc.stderr.strip() or proc.stdout.strip()}",
                target=f"sandbox FLYTE={flyte}")
    return flyte


@dataclass(frozen=True)
class PropellerTools:
    propeller: str  # flytepropeller v1.16.8 with the sandbox's plugins (hack/build-propeller.sh)
    kubectl_flyte: str  # its workflow compiler


@pytest.fixture(scope="session")
def propeller_tools() -> PropellerTools:
    """The flytepropeller and kubectl-flyte binaries `make env` builds (FA_PROPELLER, FA_KUBECTL_FLYTE)."""
    tools = PropellerTools(os.environ.get("FA_PROPELLER", ""), os.environ.get("FA_KUBECTL_FLYTE", ""))
    for name, path in (("flytepropeller", tools.propeller), ("kubectl-flyte", tools.kubectl_flyte)):
        if not path or not os.access(path, os.X_OK):
            require(name, f"{path!r} is not an executable (FA_PROPELLER / FA_KUBECTL_FLYTE in .dev/env.sh)")
    return tools


# ------------------------------------------------------------------------------------------------ agent server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def grpc_health(address: str, timeout: float = 2.0) -> str | None:
    """The gRPC health status name of the server at address, or None if it does not answer."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError:
            return None
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


@contextmanager
def pyflyte_server(log_dir: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """A real flytekit agent server (`pyflyte serve ARGS`, e.g. `agent` or `connector --modules M`) on a free
    loopback port until the block ends; yields "127.0.0.1:PORT" once it reports SERVING."""
    pyflyte = Path(sys.executable).parent / "pyflyte"
    if not pyflyte.exists():
        require("flytekit agent server", f"{pyflyte} is missing", target="venv")
    port, metrics = free_port(), free_port()
    log = log_dir / "agent.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(pyflyte), "serve", *args, "--port", str(port), "--prometheus_port", str(metrics)],
                                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while grpc_health(address, timeout=1) != "SERVING":
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            require("flytekit agent server", f"it did not serve on {address}: {log.read_text()[-2000:]}",
                    target="venv")
        time.sleep(0.2)
    try:
        yield address
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def agent_server(tmp_path_factory):
    """A real flytekit agent server (`pyflyte serve agent`) on a free loopback port; yields "127.0.0.1:PORT"."""
    with pyflyte_server(tmp_path_factory.mktemp("agent"), "agent") as address:
        yield address
