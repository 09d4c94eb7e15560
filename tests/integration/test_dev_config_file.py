"""`flyte-agents dev --config-file`: propeller on this machine (flytectl demo start --dev) reads one config file.

Real components: the flytekit agent server dev starts from the project's source, and the real flytepropeller
v1.16.8 (make env) started on the file dev wrote, against the kwok API server, running flyte_agents_demo tasks
(hack/executions.py: compiled by kubectl-flyte, in a namespace of the test's own) on the local server before and
after a save. Bad input: one line naming the fix, the file untouched. No fakes.
"""
from __future__ import annotations

import importlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import free_port
from tests.integration.build_support import REPO, run_cli
from tests.integration.dev_support import Dev, edit, project_copy

pytestmark = [pytest.mark.kube, pytest.mark.agent, pytest.mark.timeout(600)]

DEMO = "flyte_agents_demo"
sys.path.insert(0, str(REPO / "hack"))  # test infrastructure, not a package
executions = importlib.import_module("executions")
propeller_pod = importlib.import_module("propeller_pod")
DISCOVERY = re.compile(r"\[([^\]\s]+)\] supports the following task types: \[([^\]]*)\]")


def propeller_config(tmp_path: Path, kubeconfig: str, namespace: str = "") -> Path:
    """A single binary's config file as `flyte start` would read it, with this machine's keys (no flyteadmin)."""
    doc = {
        "propeller": {"kube-config": kubeconfig, "create-flyteworkflow-crd": True,
                      "limit-namespace": namespace or f"fa-dev-{uuid.uuid4().hex[:6]}", "prof-port": free_port(),
                      "rawoutput-prefix": "file://data/raw", "metadata-prefix": "metadata/propeller"},
        "admin": {"endpoint": f"dns:///127.0.0.1:{free_port()}", "insecure": True},
        "event": {"type": "log"},
        "logger": {"level": 4},
        # the blob store hack/executions.py reads outputs from
        "storage": {"type": "stow", "stow": {"kind": "local", "config": {"path": str(propeller_pod.STORAGE)}},
                    "container": propeller_pod.STORAGE_CONTAINER},
        "catalog-cache": {"type": "noop"},
        "tasks": {"task-plugins": {"enabled-plugins": ["container", "sidecar", "k8s-array", "connector-service",
                                                       "echo"],
                                   "default-for-task-types": {"container": "container", "sidecar": "sidecar",
                                                              "container_array": "k8s-array"}}},
        "plugins": {"connector-service": {"pollInterval": "2s"}},
    }
    (propeller_pod.STORAGE / propeller_pod.STORAGE_CONTAINER).mkdir(parents=True, exist_ok=True)
    path = tmp_path / "flyte.yaml"
    path.write_text("# flyte start --config flyte.yaml\n" + yaml.safe_dump(doc, sort_keys=False))
    return path


def discovery(log: Path, endpoint: str, timeout: float = 90) -> set[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {e: t for e, t in DISCOVERY.findall(log.read_text(errors="replace").replace('\\"', '"'))}
        if endpoint in found:
            return {t.strip() for t in found[endpoint].split(",") if t.strip()}
        time.sleep(1)
    raise AssertionError(f"propeller never discovered {endpoint}:\n{log.read_text(errors='replace')[-3000:]}")


def test_dev_routes_a_local_propeller_through_its_config_file(tmp_path, kubeconfig, kube_api, namespace,
                                                              propeller_tools):
    project, agent_py = project_copy(tmp_path)
    config = propeller_config(tmp_path, kubeconfig, namespace)
    context = yaml.safe_load(Path(kubeconfig).read_text())["current-context"]
    runs = executions.Propeller(kube_api, propeller_tools.kubectl_flyte, kubeconfig, context, namespace)
    sys.path.insert(0, str(agent_py.parent.parent))
    import flyte_agents_demo
    original = config.read_bytes()
    dev = Dev("--project", str(project), "--config-file", str(config), "--python", sys.executable)
    propeller = None
    try:
        log_of_server = Path(dev.wait_for(r"^server log: (\S+)$").group(1))
        port = dev.serving().group(3)
        dev.wait_for(rf"^routing: {DEMO} -> dns:///127\.0\.0\.1:{port} written into")
        routed = yaml.safe_load(config.read_text())
        assert routed["plugins"]["connector-service"]["connectorfortasktypes"] == {DEMO: "demo-prod"}

        # the real propeller reads the file and reaches the local server
        log = tmp_path / "propeller.log"
        with open(log, "wb") as out:
            propeller = subprocess.Popen([propeller_tools.propeller, "--config", str(config)], stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        endpoint = f"dns:///127.0.0.1:{port}"
        assert DEMO in discovery(log, endpoint)

        # an execution of the demo type runs on the local server: its own log line names the job
        first = runs.run(flyte_agents_demo.DemoTask(name="demo.greet"))
        assert first.phase == "SUCCEEDED", first.message
        greeting = first.outputs["greeting"]
        assert greeting.startswith(f"hello from {socket.gethostname()} ("), greeting
        job = greeting.rsplit("(", 1)[1].rstrip(")")
        assert f"CreateTask demo.greet -> job {job} on {socket.gethostname()}" in log_of_server.read_text()

        # a save restarts the server, never propeller; the next execution returns the new code's output
        edit(agent_py, 'GREETING = "hello"', 'GREETING = "hello again"')
        reload = dev.serving()
        assert reload.group(1) == "reload 1" and reload.group(3) == port
        assert propeller.poll() is None
        again = runs.run(flyte_agents_demo.DemoTask(name="demo.greet"))
        assert again.phase == "SUCCEEDED", again.message
        assert again.outputs["greeting"].startswith("hello again from "), again.outputs

        # a save that breaks the agent: its error is shown and dev keeps watching; the fix serves again
        edit(agent_py, "class DemoAgent(AsyncBase):", "class DemoAgent(AsyncBase)")
        dev.wait_for(r"^reload 2: the server failed after [0-9.]+s; fix the source, dev reloads on save:$")
        dev.wait_for(r"SyntaxError")
        edit(agent_py, "class DemoAgent(AsyncBase)", "class DemoAgent(AsyncBase):")
        assert dev.serving().group(1) == "reload 3"
        assert propeller.poll() is None
    finally:
        code = dev.stop(signal.SIGINT)
        if propeller is not None:
            os.killpg(propeller.pid, signal.SIGTERM)
            propeller.wait(30)
    assert code == 0, dev.text()
    assert config.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("flyte.yaml")) == ["flyte.yaml"]
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", int(port))) != 0, "the server still listens"


def test_kill_9_leaves_the_file_routed_and_the_next_dev_restores_it(tmp_path, kubeconfig):
    project, _ = project_copy(tmp_path)
    config = propeller_config(tmp_path, kubeconfig)
    original = config.read_bytes()
    first = Dev("--project", str(project), "--config-file", str(config), "--python", sys.executable)
    port = first.serving().group(3)
    first.wait_for("^routing: ")
    first.kill()
    assert config.read_bytes() != original
    deadline = time.monotonic() + 15
    while True:  # the kernel stops the orphaned server (PR_SET_PDEATHSIG)
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", int(port))) != 0:
                break
        assert time.monotonic() < deadline, "the server outlived its dev"
        time.sleep(0.2)
    second = Dev("--project", str(project), "--config-file", str(config), "--python", sys.executable)
    second.wait_for(r"^cleaning what a stopped dev \(pid \d+\) left")
    second.wait_for("^routing: ")
    assert second.stop(signal.SIGTERM) == 0, second.text()
    assert config.read_bytes() == original


@pytest.mark.parametrize("case", ["no-such-service", "port-in-use", "python-without-flytekit", "no-local-source"])
def test_bad_input_is_one_line_and_changes_nothing(case, tmp_path, kubeconfig):
    project, _ = project_copy(tmp_path)
    config = propeller_config(tmp_path, kubeconfig)
    original = config.read_bytes()
    args = ["dev", "--project", str(project), "--config-file", str(config), "--python", sys.executable]
    busy = socket.socket(socket.AF_INET6)
    busy.bind(("", 0))
    busy.listen()
    if case == "no-such-service":
        args += ["--service", "nope"]
        expected = "service 'nope' is not in"
    elif case == "port-in-use":
        args += ["--port", str(busy.getsockname()[1])]
        expected = "is in use on this machine: pick another --port"
    elif case == "python-without-flytekit":
        bare = tmp_path / "python"
        bare.write_text(f"#!/bin/sh\nexec {sys.base_prefix}/bin/python3 -S -I \"$@\"\n")
        bare.chmod(0o755)
        args[-1] = str(bare)
        expected = "cannot run a flytekit agent server"
    else:
        (tmp_path / "agent_image" / "requirements.txt").write_text("flytekit\n")
        expected = "installs no local package"
    try:
        result = run_cli(*args)
    finally:
        busy.close()
    assert result.code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert config.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("flyte.yaml")) == ["flyte.yaml"]
