"""`flyte-agents dev --config-file`: propeller on this machine (flytectl demo start --dev) reads one config file.

Real components: the flytekit agent server dev starts from the project's source, and the real flytepropeller
v1.16.8 (make env) started on the file dev wrote, against the kwok API server, running flyte_agents_demo tasks
(hack/executions.py: compiled by kubectl-flyte, in a namespace of the test's own) on the local server before and
after a save. Bad input: one line naming the fix, the file untouched. No fakes.
"""
from __future__ import annotations

import signal
import socket
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.build_support import run_cli
from tests.integration.dev_support import (Dev, discovery, edit, executions, local_propeller, project_copy,
                                           propeller_config)

pytestmark = [pytest.mark.kube, pytest.mark.agent, pytest.mark.timeout(600)]

DEMO = "flyte_agents_demo"


@pytest.mark.parametrize("plugin, key, serve", [("connector-service", "connectorfortasktypes", "connector"),
                                               ("agent-service", "agentfortasktypes", "agent")],
                         ids=["flyte1.16-connector", "flyte1.15-agent"])
def test_dev_routes_a_local_propeller_through_its_config_file(plugin, key, serve, tmp_path, kubeconfig, kube_api,
                                                              namespace, propeller_tools):
    project, agent_py = project_copy(tmp_path)
    config = propeller_config(tmp_path, kubeconfig, namespace, plugin)
    context = yaml.safe_load(Path(kubeconfig).read_text())["current-context"]
    runs = executions.Propeller(kube_api, propeller_tools.kubectl_flyte, kubeconfig, context, namespace)
    sys.path.insert(0, str(agent_py.parent.parent))
    import flyte_agents_demo
    original = config.read_bytes()
    dev = Dev("--project", str(project), "--config-file", str(config), "--python", sys.executable)
    try:
        started = dev.wait_for(r"^server: pyflyte serve (\w+) --port \d+; log: (\S+)$")
        assert started.group(1) == serve
        log_of_server = Path(started.group(2))
        port = dev.serving().group(3)
        dev.wait_for(rf"^routing: {DEMO} -> dns:///127\.0\.0\.1:{port} written into")
        routed = yaml.safe_load(config.read_text())
        assert routed["plugins"][plugin][key] == {DEMO: "demo-prod"}

        # the real propeller reads the file and reaches the local server
        log = tmp_path / "propeller.log"
        with local_propeller(propeller_tools.propeller, config, log) as propeller:
            assert DEMO in discovery(log, f"dns:///127.0.0.1:{port}")

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
            again = runs.run(flyte_agents_demo.DemoTask(name="demo.greet"))
            assert again.phase == "SUCCEEDED", again.message
            assert again.outputs["greeting"].startswith("hello again from "), again.outputs

            # a save that breaks the agent: its error is shown and dev keeps watching; the fix serves again
            edit(agent_py, "class DemoAgent(AsyncBase):", "class DemoAgent(AsyncBase)")
            dev.wait_for(r"^reload 2: the server failed after [0-9.]+s; fix the source, dev reloads on save:$")
            dev.wait_for(r"SyntaxError")
            edit(agent_py, "class DemoAgent(AsyncBase)", "class DemoAgent(AsyncBase):")
            assert dev.serving().group(1) == "reload 3"
            assert propeller.poll() is None  # one propeller process throughout
    finally:
        code = dev.stop(signal.SIGINT)
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
