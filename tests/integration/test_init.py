"""`flyte-agents init` end to end: run from a wheel of the toolkit, the generated services pass their own tests in
a fresh virtualenv (flytekit 1.16 and 1.15, async and sync), then build, deploy and verify in the sandbox stand-in
next to the demo services, and pass `flyte-agents conformance`.

Real components only: a fresh virtualenv (no system site-packages) with flytekit from wheels `pip download`ed once
into a cache outside the repository (keyed by flytekit version and Python), the Docker Engine, the registry, helm 4,
the kwok API server and real flytekit agent servers run by hack/agent_pods.py.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from flyte_agents.flyte.scaffold import FLYTEKIT_RELEASES
from tests.integration.build_support import REPO, run_cli
from tests.integration.test_deploy import agent_pods, deploy_cli, helm_binary, routing_doc, snapshot

NS = "flyte"
# service id -> mode, package, task class
SERVICES = {"my-agent": ("--async", "my_agent", "MyTask"), "my-lookup": ("--sync", "my_lookup", "MyLookupTask")}

sys.path.insert(0, str(REPO / "hack"))  # test infrastructure, not a package
executions = importlib.import_module("executions")


def wheel_cache(flytekit: str) -> Path:
    """Wheels of what the fresh virtualenvs install, `pip download`ed once per requirement set and Python: flytekit,
    pytest, the build backends (of the generated packages and of flyte-agents), and what `init` needs besides
    click (ruamel.yaml)."""
    requirements = [f"flytekit=={flytekit}", "pytest>=8,<10", "setuptools>=77", "wheel",
                    "ruamel.yaml>=0.18,<0.20"]
    key = hashlib.sha256(" ".join(requirements).encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "flyte-agents" / "init-wheels" / \
        f"flytekit-{flytekit}-py{sys.version_info[0]}{sys.version_info[1]}-{key}"
    if not (cache / ".complete").exists():
        cache.mkdir(parents=True, exist_ok=True)
        pip(sys.executable, "download", "-d", str(cache), *requirements)
        (cache / ".complete").touch()
    return cache


def pip(python: str, *args: str) -> None:
    proc = subprocess.run([python, "-m", "pip", "--disable-pip-version-check", "-q", *args], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, f"pip {' '.join(args)}: {proc.stderr[-3000:]}"


@pytest.fixture(scope="module", params=["1.16", "1.15"], ids=["flyte1.16", "flyte1.15"])
def fresh_venv(request, tmp_path_factory) -> tuple[str, str, Path]:
    """(Flyte version, the venv's python, its wheel cache): flytekit of that generation, pytest, and flyte-agents
    itself installed from a wheel (not editable: its templates must be package data) without its deployment
    dependencies, which `init` does not use."""
    version = request.param
    flytekit = FLYTEKIT_RELEASES[tuple(int(p) for p in version.split("."))]
    wheels = wheel_cache(flytekit)
    root = tmp_path_factory.mktemp(f"venv-{version}")
    venv.create(root / "venv", with_pip=True, system_site_packages=False)
    python = str(root / "venv" / "bin" / "python")
    source = root / "src"  # setuptools writes build/ and egg-info next to the sources: a copy, not the repository
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "toolkit", source / "toolkit", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pip(python, "install", "--no-index", "--find-links", str(wheels), f"flytekit=={flytekit}", "pytest>=8,<10",
        "ruamel.yaml>=0.18,<0.20")
    pip(python, "install", "--no-index", "--find-links", str(wheels), "--no-deps", str(source))
    return version, python, wheels


def test_generated_services_pass_their_own_tests_in_a_fresh_virtualenv(fresh_venv, tmp_path):
    version, python, wheels = fresh_venv
    first = subprocess.run([python, "-m", "flyte_agents.cli.main", "init", "x", "--into", str(tmp_path), "--dry-run"],
                           capture_output=True, text=True, timeout=120)
    assert f"note: the project's chart {tmp_path / 'charts/flyte-agent'} does not exist" in first.stderr
    shutil.copytree(REPO / "charts" / "flyte-agent", tmp_path / "charts" / "flyte-agent")  # as the note says
    for service, (mode, package, _) in SERVICES.items():
        created = subprocess.run([python, "-m", "flyte_agents.cli.main", "init", service, mode, "--flyte-version",
                                  version, "--into", str(tmp_path)], capture_output=True, text=True, timeout=120)
        assert created.returncode == 0, created.stderr
        project = tmp_path / service / package
        pip(python, "install", "--no-index", "--find-links", str(wheels), "-e", str(project))
        tests = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project,
                               capture_output=True, text=True, timeout=600)
        assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
        assert "2 passed" in tests.stdout
    # the agent server of that generation lists both: the flytekit.plugins entry points are what it imports
    listed = subprocess.run([python, "-c", LIST_AGENTS], capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert sorted(listed.stdout.split()) == ["my_agent:async", "my_lookup:sync"]


LIST_AGENTS = """
import flytekit  # imports every flytekit.plugins entry point, as the agent server does at start-up
try:
    from flytekit.extend.backend.base_connector import ConnectorRegistry as Registry, SyncConnectorBase as Sync
except ImportError:
    from flytekit.extend.backend.base_agent import AgentRegistry as Registry, SyncAgentBase as Sync
for name in ("my_agent", "my_lookup"):
    agent = Registry.get_agent(name)
    print(f"{name}:{'sync' if isinstance(agent, Sync) else 'async'}")
"""


# ------------------------------------------------------------------------------------------------ the sandbox

def copy_project(tmp_path: Path) -> Path:
    """The repository's project (demo-prod, demo-dev, the chart, values, agent_image) in a directory of its own."""
    for folder in ("charts", "values", "agent_image"):
        shutil.copytree(REPO / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(REPO / "flyte-agents.yaml", tmp_path / "flyte-agents.yaml")
    return tmp_path / "flyte-agents.yaml"


@pytest.mark.docker
@pytest.mark.registry
@pytest.mark.kube
@pytest.mark.sandbox
@pytest.mark.agent
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("sandbox", ["1.16"], indirect=True)
def test_init_services_deploy_verify_and_run_through_propeller_next_to_the_demo(
        sandbox, kube_api, kubeconfig, docker_client, registry, base_image, propeller_tools, tmp_path):
    project = copy_project(tmp_path)
    for service, (mode, _, _) in SERVICES.items():
        created = run_cli("init", service, mode, "--into", str(tmp_path))
        assert created.code == 0, created.stderr
    helm = helm_binary(4)
    before = snapshot(kube_api)
    with agent_pods(kube_api, docker_client, NS):
        deployed = deploy_cli(project, helm, "--output", "json")
        assert deployed.code == 0, deployed.stderr[-4000:]
        result = deployed.json
        assert sorted(result["helm_upgrades"]) == ["demo-dev", "demo-prod", "my-agent", "my-lookup"]
        served = result["verify"]["services"]
        assert result["verify"]["ok"]
        assert "my_agent" in served["my-agent"]["served"] and "my_lookup" in served["my-lookup"]["served"]
        assert "flyte_agents_demo" in served["demo-prod"]["served"]
        routed = routing_doc(kube_api)["plugins"]["connector-service"]
        assert routed["connectorForTaskTypes"]["my_agent"] == "my-agent"  # the async type is pinned
        assert routed["connectorForTaskTypes"]["flyte_agents_demo"] == "demo-prod"
        assert "my_lookup" not in routed["connectorForTaskTypes"]  # sync types are discovered, never pinned (1.16)
        assert routed["connectors"]["my-lookup"]["endpoint"] == "k8s://my-lookup.flyte:8000"

        # a task of each new type runs through the real flytepropeller to the service it is routed to
        propeller = executions.Propeller(kube_api, propeller_tools.kubectl_flyte, kubeconfig, "kwok")
        for service, (_, package, task_class) in SERVICES.items():
            sys.path.insert(0, str(tmp_path / service / package))
            task = getattr(importlib.import_module(package), task_class)
            execution = propeller.run(task(name=f"{package}.greet", prefix="Hi"), {"name": "propeller"}, timeout=120)
            assert (execution.phase, execution.outputs) == ("SUCCEEDED", {"greeting": "Hi, propeller!"}), \
                execution.message

        for service in SERVICES:
            checked = run_cli("conformance", "--sandbox", "--project", str(project), "--helm", helm, "--service",
                              service, "--output", "json")
            assert checked.code == 0, checked.stdout[-3000:] + checked.stderr[-2000:]

        removed = run_cli("undeploy", "--sandbox", "--project", str(project), "--helm", helm)
        assert removed.code == 0, removed.stderr[-2000:]
    after = snapshot(kube_api)
    assert after["configmaps"] == before["configmaps"]  # the routing is back, byte for byte
    assert [o for o in after["objects"] if o.split("/", 1)[1] in SERVICES] == []
