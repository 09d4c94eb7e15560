"""`flyte-agents dev` against a cluster: what it creates, how it stops, what a killed one leaves.

Real components: the kwok API server (Lease, Service, Endpoints, propeller's ConfigMap and rollout), helm (the
project's releases, none installed here), and the flytekit agent server dev starts from the project's source. The
Endpoints' address is dialled from this machine as propeller's k8s:// resolver would dial it. Propeller is a
flyte-binary-shaped install in a namespace of the test's own (kwok pretends to run it), so these tests need not wait
for the shared sandbox stand-in; executions through the stand-in's real propeller (`--sandbox`) are in
test_dev_executions.py. No fakes.
"""
from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass

import pytest
import yaml
from kubernetes import client

from flyte_agents.adapters.grpc import probe
from tests.integration.build_support import run_cli
from tests.integration.dev_support import Dev, edit, project_copy
from tests.integration.flyte_installs import FLYTE_BINARY_116, install_propeller

pytestmark = [pytest.mark.kube, pytest.mark.helm, pytest.mark.agent, pytest.mark.timeout(600)]

DEMO = "flyte_agents_demo"
NAME = "flyte-agents-dev-demo-prod"
LABEL = "flyte-agents.dev/dev-service"
CONFIG = FLYTE_BINARY_116["config_map"]
PLUGINS = {"tasks": {"task-plugins": {"enabled-plugins": ["container", "sidecar", "connector-service"],
                                      "default-for-task-types": {"container": "container"}}}}


@dataclass
class Cluster:
    core: object
    coordination: object
    namespace: str
    config: str = CONFIG  # the ConfigMap the toolkit writes propeller's routing into

    def args(self) -> list[str]:
        """Where dev, status and undeploy go: propeller and the releases in the test's namespace."""
        return ["--propeller-namespace", self.namespace, "--namespace", self.namespace, "--flavor", "flyte-binary",
                "--helm", helm()]

    def config_map(self) -> tuple[dict, dict]:
        raw = self.core.read_namespaced_config_map(self.config, self.namespace)
        return dict(raw.data or {}), dict(raw.metadata.annotations or {})

    def dev_objects(self) -> list[str]:
        ns = self.namespace
        found = [f"Service/{s.metadata.name}" for s in self.core.list_namespaced_service(ns, label_selector=LABEL).items]
        found += [f"Endpoints/{e.metadata.name}"
                  for e in self.core.list_namespaced_endpoints(ns, label_selector=LABEL).items]
        found += [f"Lease/{x.metadata.name}"
                  for x in self.coordination.list_namespaced_lease(ns, label_selector=LABEL).items]
        return sorted(found)


@pytest.fixture
def cluster(kube_api, namespace):
    install_propeller(kube_api, namespace, **FLYTE_BINARY_116, data={"000-config.yaml": yaml.safe_dump(PLUGINS)})
    return Cluster(client.CoreV1Api(kube_api), client.CoordinationV1Api(kube_api), namespace)


def helm() -> str:
    return os.environ.get("FA_HELM3") or "helm"


def start(project, cluster: Cluster) -> Dev:
    return Dev("--project", str(project), "--python", sys.executable, *cluster.args())


def check_running(dev: Dev, cluster: Cluster) -> str:
    """dev serves and routes: Service + Endpoints at a non-loopback address of this machine, the Lease, the
    routing key pointing demo-prod at the dev endpoint; the Endpoints' address answers ListAgents."""
    port = dev.serving().group(3)
    ns = cluster.namespace
    dev.wait_for(rf"^routing: {DEMO} -> k8s://{NAME}\.{ns}:{port} \(")
    assert cluster.dev_objects() == [f"Endpoints/{NAME}", f"Lease/{NAME}", f"Service/{NAME}"]
    subset = cluster.core.read_namespaced_endpoints(NAME, ns).subsets[0]
    address = subset.addresses[0].ip
    assert not address.startswith("127.") and subset.ports[0].port == int(port)
    assert DEMO in probe(f"{address}:{port}").served
    routing = cluster.config_map()[0]["zz-flyte-agents.yaml"]
    assert f"endpoint: k8s://{NAME}.{ns}:{port}" in routing and f"{DEMO}: demo-prod" in routing
    return port


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_dev_routes_to_this_machine_and_leaves_the_cluster_as_it_was(stop, cluster, tmp_path):
    project, agent_py = project_copy(tmp_path)
    before = cluster.config_map()
    dev = start(project, cluster)
    try:
        port = check_running(dev, cluster)

        # status shows the service in dev mode and where it routes
        status = run_cli("status", "--project", str(project), *cluster.args(), "--output", "json")
        assert status.code == 0, status.stderr[-2000:]
        modes = status.json["dev"]
        assert [(m["service"], m["endpoint"], m["stale"]) for m in modes] == \
            [("demo-prod", f"k8s://{NAME}.{cluster.namespace}:{port}", False)]

        # a second dev for the service says one is running, and changes nothing
        second = run_cli("dev", "--project", str(project), "--python", sys.executable, *cluster.args())
        assert second.code == 2 and "dev for demo-prod is running" in second.stderr, second.stderr
        busy = run_cli("undeploy", "--project", str(project), *cluster.args())
        assert busy.code == 2 and "dev for demo-prod is running" in busy.stderr, busy.stderr
        assert len(cluster.dev_objects()) == 3

        # a save: the server restarts with the new code on the same port; the cluster is not touched
        routed = cluster.config_map()
        edit(agent_py, 'name = "Flyte Agents Demo"', 'name = "Flyte Agents Demo v2"')
        reload = dev.serving()
        assert reload.group(1) == "reload 1" and reload.group(3) == port
        assert "Flyte Agents Demo v2" in {a.name for a in probe(f"127.0.0.1:{port}").agents}
        assert cluster.config_map() == routed
    finally:
        code = dev.stop(stop)
    assert code == 0, dev.text()
    assert cluster.config_map() == before
    assert cluster.dev_objects() == []


@pytest.mark.parametrize("cleaner", ["dev", "undeploy"])
def test_what_a_killed_dev_left_is_cleaned_by_the_next_dev_or_undeploy(cleaner, cluster, tmp_path):
    project, _ = project_copy(tmp_path)
    before = cluster.config_map()
    dev = start(project, cluster)
    check_running(dev, cluster)
    dev.kill()
    assert len(cluster.dev_objects()) == 3 and cluster.config_map() != before

    status = run_cli("status", "--project", str(project), *cluster.args())
    assert status.code == 0 and "was left by a stopped dev" in status.stdout, status.stdout + status.stderr
    if cleaner == "dev":
        again = start(project, cluster)
        again.wait_for(r"^cleaning what a stopped dev of demo-prod left")
        check_running(again, cluster)
        assert again.stop() == 0, again.text()
    else:
        removed = run_cli("undeploy", "--project", str(project), *cluster.args())
        assert removed.code == 0, removed.stderr[-2000:]
    assert cluster.config_map() == before
    assert cluster.dev_objects() == []


def test_bad_input_in_the_cluster_changes_nothing(cluster, tmp_path):
    project, _ = project_copy(tmp_path)
    before = cluster.config_map()
    result = run_cli("dev", "--project", str(project), "--python", sys.executable, *cluster.args(),
                     "--host-address", "127.0.0.1")
    assert result.code == 2, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "--host-address" in result.stderr
    assert cluster.config_map() == before and cluster.dev_objects() == []
