"""The routing proven by running agent tasks on the real flytepropeller of the sandbox stand-in.

hack/agent_pods.py does what a kubelet would: the stand-in's flyte-sandbox pod runs flytepropeller v1.16.8 on the
pod's own mounted config files (plus one file of host-specific keys), the built-in flyteconnector/flyteagent pod runs
a real flytekit agent server, and every agent pod's image runs as a container on the pod's IP, which propeller's
k8s:// resolver finds through the Service's Endpoints. hack/executions.py runs one-node workflows: serialised by
flytekit, compiled and created by propeller's `kubectl-flyte create`, outputs read from propeller's blob store.
Which server ran a task is shown by that server: the demo agent's own log line, flytekit's Prometheus counters.
No fakes.
"""
from __future__ import annotations

import importlib
import re
import shutil
import sys
import time
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.integration.build_support import REPO, run_cli
from tests.integration.test_deploy import agent_pods, deploy_cli, helm_binary, write_project

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.kube, pytest.mark.sandbox, pytest.mark.agent,
              pytest.mark.timeout(1800)]

NS = "flyte"
DEMO = "flyte_agents_demo"
DISCOVERY = re.compile(r"\[([^\]\s]+)\] supports the following task types: \[([^\]]*)\]")
BUILTIN = {"1.15": "flyteagent", "1.16": "flyteconnector"}  # the sandbox's own agent service


sys.path.insert(0, str(REPO / "hack"))  # test infrastructure, not a package; agent_pods.py imports the same way
executions = importlib.import_module("executions")
propeller_pod = importlib.import_module("propeller_pod")


# ------------------------------------------------------------------------------------------------ the stand-in

class Stand:
    """The running stand-in of one test: pods, propeller processes, executions, agent servers' own evidence."""

    def __init__(self, flyte: str, runner, kube_api, tools, kubeconfig: str) -> None:
        self.flyte = flyte
        self.runner = runner
        self.core = client.CoreV1Api(kube_api)
        self.apps = client.AppsV1Api(kube_api)
        self.builtin = BUILTIN[flyte]
        self.propeller = executions.Propeller(kube_api, tools.kubectl_flyte, kubeconfig, "kwok")

    # --- propeller processes
    def processes(self) -> list:
        return list(self.runner.propeller.history)

    def wait_new_process(self, seen: int, timeout: float = 120):
        """The one process started after the first `seen`; fails if none or more than one started."""
        deadline = time.monotonic() + timeout
        while len(self.processes()) <= seen:
            assert time.monotonic() < deadline, "no new propeller process started"
            time.sleep(0.5)
        time.sleep(3)  # a second restart would have started by now
        started = self.processes()[seen:]
        assert len(started) == 1, f"{len(started)} propeller processes started: {started}"
        return started[0]

    def wait_discovery(self, process, expected: dict[str, set], timeout: float = 90) -> dict[str, set]:
        """Wait until the process's discovery log shows `expected` (endpoint -> task types), and return it."""
        deadline = time.monotonic() + timeout
        while True:
            found = discovered(process.log_text())
            if all(found.get(endpoint) == types for endpoint, types in expected.items()):
                return found
            assert process.popen.poll() is None, f"propeller exited: {process.log_text()[-3000:]}"
            assert time.monotonic() < deadline, f"discovery shows {found}, expected {expected}"
            time.sleep(1)

    def restart_propeller(self) -> None:
        """What `kubectl rollout restart` does."""
        now = datetime.now(timezone.utc).isoformat()
        self.apps.patch_namespaced_deployment("flyte-sandbox", NS, {"spec": {"template": {"metadata": {
            "annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}})

    # --- agent servers
    def pod(self, prefix: str):
        pods = [p for p in self.core.list_namespaced_pod(NS).items
                if p.metadata.name.startswith(f"{prefix}-") and p.metadata.deletion_timestamp is None]
        assert pods, f"no pod of {prefix}"
        return pods[0]

    def server_log(self, prefix: str) -> str:
        pods = [p for p in self.core.list_namespaced_pod(NS).items if p.metadata.name.startswith(f"{prefix}-")]
        return "".join(self.runner.container_of(p.metadata.name).logs().decode(errors="replace") for p in pods
                       if self.runner.container_of(p.metadata.name) is not None)

    def create_count(self, prefix: str, task_type: str) -> float:
        """CreateTask requests for task_type counted by flytekit's Prometheus metrics of every pod of a service."""
        total = 0.0
        for pod in self.core.list_namespaced_pod(NS).items:
            if pod.metadata.name.startswith(f"{prefix}-") and pod.status.pod_ip:
                total += create_requests(metrics(pod.status.pod_ip), task_type)
        return total

    def wait_servers(self, *prefixes: str, timeout: float = 120) -> None:
        """Every pod of the services answers metrics (its container is up), so counters can be read."""
        deadline = time.monotonic() + timeout
        for prefix in prefixes:
            while True:
                try:
                    metrics(self.pod(prefix).status.pod_ip)
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"{prefix} serves no metrics"
                    time.sleep(1)


def discovered(log: str) -> dict[str, set]:
    """endpoint -> task types from propeller's latest discovery log line for each endpoint."""
    found: dict[str, set] = {}
    for endpoint, types in DISCOVERY.findall(log.replace('\\"', '"')):
        found[endpoint] = {t.strip() for t in types.split(",") if t.strip()}
    return found


def metrics(ip: str) -> str:
    with urllib.request.urlopen(f"http://{ip}:{9090}/metrics", timeout=3) as response:
        return response.read().decode()


def create_requests(text: str, task_type: str) -> float:
    """flytekit's counter of answered CreateTask requests (flyte_connector_… from 1.16, flyte_agent_… before)."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(r'^flyte_(?:connector|agent)_requests_success_total\{([^}]*)\} ([0-9.e+]+)$', line)
        if match and 'operation="create"' in match.group(1) and f'task_type="{task_type}"' in match.group(1):
            total += float(match.group(2))
    return total


@pytest.fixture
def stand(sandbox, kube_api, kubeconfig, docker_client, propeller_tools):
    with agent_pods(kube_api, docker_client, NS) as runner:
        stand = Stand(sandbox, runner, kube_api, propeller_tools, kubeconfig)
        first = stand.wait_new_process(0)
        stand.wait_discovery(first, {f"k8s://{stand.builtin}.flyte:8000": {"sensor", "webhook"}})
        stand.wait_servers(stand.builtin)
        yield stand


def demo_task():
    sys.path.insert(0, str(REPO / "agent_image" / "flyte_agents_demo"))
    import flyte_agents_demo

    return flyte_agents_demo.DemoTask(name="demo.greet")


def sensor_task():
    from flytekit.sensor.file_sensor import FileSensor

    return FileSensor(name="demo.sensor")


def run_sensor(stand: Stand):
    execution = stand.propeller.run(sensor_task(), {"path": "/etc/hostname"})  # exists in every container
    assert execution.phase == "SUCCEEDED", execution.message
    return execution


def leaf_keys(document, prefix: tuple = ()) -> set:
    if isinstance(document, dict):
        return set().union(*(leaf_keys(v, (*prefix, str(k).lower())) for k, v in document.items())) \
            if document else {prefix}
    return {prefix}


def assert_host_file_sets_no_key_of_the_toolkit(process) -> None:
    host = yaml.safe_load((process.config_dir / propeller_pod.HOST_FILE).read_text())
    ours = yaml.safe_load((process.config_dir / "zz-flyte-agents.yaml").read_text())
    shared = {k for k in leaf_keys(host) for o in leaf_keys(ours) if k[:len(o)] == o or o[:len(k)] == k}
    assert not shared, f"the stand-in's host file sets keys the toolkit writes: {shared}"


def project_with_own_context(tmp_path: Path, repository: str) -> tuple[Path, Path]:
    """The example project, its image built from a private copy of agent_image/ the test may edit."""
    context = tmp_path / "agent_image"
    shutil.copytree(REPO / "agent_image", context, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    project = write_project(tmp_path, repository)
    doc = yaml.safe_load(project.read_text())
    doc["images"]["agent"]["context"] = str(context)
    project.write_text(yaml.safe_dump(doc, sort_keys=False))
    return project, context


# ------------------------------------------------------------------------------------------------ the acceptance

@pytest.mark.parametrize("sandbox, major", [("1.15", 3), ("1.16", 4)], indirect=["sandbox"],
                         ids=["flyte1.15-helm3", "flyte1.16-helm4"])
def test_agent_tasks_run_where_the_routing_says(stand, major, tmp_path, registry):
    helm = helm_binary(major)
    builtin_endpoint = f"k8s://{stand.builtin}.flyte:8000"
    builtin_types = {"sensor", "webhook"}
    project, context = project_with_own_context(tmp_path, f"fa-exec-{uuid.uuid4().hex[:8]}/agent")

    # deploy --sandbox, builtin keep: one new propeller process, which discovers the demo type on demo-prod
    seen = len(stand.processes())
    first = deploy_cli(project, helm, "--output", "json")
    assert first.code == 0, first.stderr[-3000:]
    process = stand.wait_new_process(seen)
    stand.wait_discovery(process, {builtin_endpoint: builtin_types,
                                   "k8s://demo-prod.flyte:8000": {DEMO, *builtin_types}})
    assert_host_file_sets_no_key_of_the_toolkit(process)
    stand.wait_servers("demo-prod", "demo-dev")

    # the demo task runs on demo-prod, and demo-prod's own log says so
    demo = stand.propeller.run(demo_task())
    print(f"one execution of {DEMO}: {demo.seconds:.1f}s")
    assert demo.phase == "SUCCEEDED", demo.message
    greeting = demo.outputs["greeting"]
    assert re.fullmatch(r"hello from demo-prod-\S+ \((demo-\d+)\)", greeting), greeting
    job = greeting.rsplit("(", 1)[1].rstrip(")")
    assert f"CreateTask demo.greet -> job {job} on demo-prod-" in stand.server_log("demo-prod")
    assert job not in stand.server_log("demo-dev") and job not in stand.server_log(stand.builtin)

    # builtin: keep. Propeller polls the default deployment first and each entry after it, and a later answer takes
    # the task type: demo-prod (a flytekit server, so it serves sensor and webhook too) would take sensor from the
    # built-in. From 1.16 the routing pins sensor to the built-in as an entry of its own; before 1.16 a pin loses to
    # discovery, so demo-prod runs sensor, and the deploy's verify warns about it.
    before = stand.create_count(stand.builtin, "sensor"), stand.create_count("demo-prod", "sensor")
    run_sensor(stand)
    after = stand.create_count(stand.builtin, "sensor"), stand.create_count("demo-prod", "sensor")
    assert sum(after) == sum(before) + 1
    sensor_ran_on = stand.builtin if after[0] == before[0] + 1 else "demo-prod"
    warned = {f["message"].split()[2]: f for f in first.json["verify"]["findings"]}
    assert {f["rule"] for f in warned.values()} == {"builtin-type-taken"}
    if stand.flyte == "1.16":
        assert sensor_ran_on == stand.builtin
        assert set(warned) == {"webhook"}  # sync: never pinned, so the warning names where propeller sends it
        assert f"whichever of demo-prod, {stand.builtin} it polls last" in warned["webhook"]["message"]
    else:
        assert sensor_ran_on == "demo-prod"
        assert set(warned) == {"sensor", "webhook"}
        assert "sends sensor to demo-prod" in warned["sensor"]["message"]

    if stand.flyte == "1.16":
        # a one-file code change: new image, helm upgrade, routing unchanged -> propeller keeps running
        agent_py = context / "flyte_agents_demo" / "flyte_agents_demo" / "agent.py"
        agent_py.write_text(agent_py.read_text().replace('GREETING = "hello"', 'GREETING = "hello again"'))
        seen = len(stand.processes())
        changed = deploy_cli(project, helm, "--output", "json")
        assert changed.code == 0, changed.stderr[-3000:]
        assert changed.json["helm_upgrades"] and changed.json["propeller_restarted"] is False
        time.sleep(3)
        assert len(stand.processes()) == seen and process.popen.poll() is None  # restarted nothing
        stand.wait_servers("demo-prod")
        again = stand.propeller.run(demo_task())
        assert again.phase == "SUCCEEDED", again.message
        assert again.outputs["greeting"].startswith("hello again from demo-prod-"), again.outputs

        # builtin: replace -> a routing change: exactly one new process; the project's default serves sensor
        seen = len(stand.processes())
        replaced = deploy_cli(project, helm, "--builtin", "replace", "--output", "json")
        assert replaced.code == 0, replaced.stderr[-3000:]
        process = stand.wait_new_process(seen)
        found = stand.wait_discovery(process, {"k8s://demo-prod.flyte:8000": {DEMO, *builtin_types}})
        assert_host_file_sets_no_key_of_the_toolkit(process)
        before = stand.create_count(stand.builtin, "sensor"), stand.create_count("demo-prod", "sensor")
        run_sensor(stand)
        assert (stand.create_count(stand.builtin, "sensor"), stand.create_count("demo-prod", "sensor")) == \
            (before[0], before[1] + 1), found

    # undeploy: one new process, discovering only the built-in; the demo type reaches nobody
    seen = len(stand.processes())
    removed = run_cli("undeploy", "--sandbox", "--project", str(project), "--helm", helm)
    assert removed.code == 0, removed.stderr[-2000:]
    process = stand.wait_new_process(seen)
    found = stand.wait_discovery(process, {builtin_endpoint: builtin_types})
    assert set(found) == {builtin_endpoint}
    orphan = stand.propeller.run(demo_task(), timeout=90)
    assert orphan.phase != "SUCCEEDED", orphan
    before = stand.create_count(stand.builtin, "sensor")
    run_sensor(stand)
    assert stand.create_count(stand.builtin, "sensor") == before + 1


# ------------------------------------------------------------------------------------------------ lint vs propeller

LINT_CASE_KEY = "zz-lint-case.yaml"
LINT_CASES = {
    # rule -> (config file added after the sandbox's own, what the real propeller does with it)
    "default-plugin-not-enabled": (
        {"tasks": {"task-plugins": {"default-for-task-types": {"sensor": "spark"}}}}, "refuses to start"),
    "plugin-not-enabled": (  # a later file's list replaces the sandbox's: connector-service is dropped
        {"tasks": {"task-plugins": {"enabled-plugins": ["container", "sidecar", "k8s-array", "echo"]}}},
        "sensor unhandled"),
    "endpoint-format": (
        {"plugins": {"connector-service": {"defaultConnector": {"endpoint": "http://flyteconnector.flyte:8000"}}}},
        "sensor unhandled"),
    "missing-deployment": (  # "silently ignores the entry": the built-in still serves sensor
        {"plugins": {"connector-service": {"connectorForTaskTypes": {"sensor": "nosuch"}}}}, "sensor on builtin"),
}


def lint_rules(config_dir: Path) -> set[str]:
    files = sorted(p for p in config_dir.glob("*.yaml") if p.name != propeller_pod.HOST_FILE)
    result = run_cli("config", "lint", *[a for f in files for a in ("--from", str(f))], "--flyte-version", "1.16.8",
                     "--fail-on", "never", "--output", "json")
    assert result.code == 0, result.stderr[-2000:]
    return {finding["rule"] for finding in result.json}


@pytest.mark.parametrize("sandbox", ["1.16"], indirect=True)
def test_lint_findings_are_what_the_real_propeller_does(stand, kube_api):
    from flyte_agents.adapters.kube import Kube
    from flyte_agents.errors import RolloutTimeout

    core = client.CoreV1Api(kube_api)
    for rule, (document, effect) in LINT_CASES.items():
        core.patch_namespaced_config_map("flyte-sandbox-extra-config", NS,
                                         {"data": {LINT_CASE_KEY: yaml.safe_dump(document)}})
        seen = len(stand.processes())
        stand.restart_propeller()
        process = stand.wait_new_process(seen)
        assert rule in lint_rules(process.config_dir), rule

        if effect == "refuses to start":
            assert process.popen.wait(60) != 0
            pod = wait_pod_status(stand, lambda s: s.container_statuses[0].state.waiting is not None)
            status = pod.status.container_statuses[0]
            assert status.state.waiting.reason == "CrashLoopBackOff" and status.restart_count >= 1
            assert not status.ready and "cannot set default plugin [spark]" in status.state.waiting.message
            # the toolkit's rollout wait (as after a routing change) sees the failure and says why
            with pytest.raises(RolloutTimeout, match=r"CrashLoopBackOff.*cannot set default plugin \[spark\]"):
                Kube(kube_api).wait_rollout(NS, "flyte-sandbox", timeout=5)
            continue
        time.sleep(5)  # two discovery rounds: what the process routes is settled
        before = stand.create_count(stand.builtin, "sensor")
        execution = stand.propeller.run(sensor_task(), {"path": "/etc/hostname"},
                                        timeout=60 if effect == "sensor unhandled" else 180)
        if effect == "sensor unhandled":
            assert execution.phase != "SUCCEEDED", execution
            assert stand.create_count(stand.builtin, "sensor") == before
        else:
            assert execution.phase == "SUCCEEDED", execution.message
            assert stand.create_count(stand.builtin, "sensor") == before + 1

    core.patch_namespaced_config_map("flyte-sandbox-extra-config", NS, [
        {"op": "remove", "path": f"/data/{LINT_CASE_KEY.replace('/', '~1')}"}])


def wait_pod_status(stand: Stand, check, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        pod = stand.pod("flyte-sandbox")
        if pod.status.container_statuses and check(pod.status):
            return pod
        assert time.monotonic() < deadline, f"flyte-sandbox pod status: {pod.status}"
        time.sleep(0.5)
