"""The pure part of `flyte-agents dev` (flyte/dev.py): names, the session record, routing, the pod's view, the host address."""
from __future__ import annotations

import pytest

from flyte_agents.errors import UserError
from flyte_agents.flyte import dev
from flyte_agents.flyte.services import AgentService


def test_object_name_is_a_dns_label_for_any_service_id():
    assert dev.object_name("demo_prod") == "flyte-agents-dev-demo-prod"
    long = dev.object_name("a" * 80)
    assert len(long) <= 63 and not long.endswith("-")
    assert dev.dev_endpoint("demo-prod", "flyte", 18000) == "k8s://flyte-agents-dev-demo-prod.flyte:18000"


def test_session_round_trips_through_its_record():
    session = dev.DevSession("demo-prod", "k8s://x.flyte:1", "192.0.2.2:1", ("a",), "box:42", "t").with_routing(
        "flyte/extra", "zz-flyte-agents.yaml", None, True)
    again = dev.DevSession.from_json(session.to_json())
    assert again == session and again.host == "box" and again.pid == 42
    with pytest.raises(UserError, match="unreadable"):
        dev.DevSession.from_json("{not json")


@pytest.mark.parametrize("since, same_host, alive, stale", [
    (1, True, True, False),      # renewed, holder alive
    (1, True, False, True),      # kill -9 on this machine: the next dev need not wait for the lease to lapse
    (1, False, False, False),    # another machine's holder: trusted while it renews
    (dev.LEASE_SECONDS + 1, False, False, True),
])
def test_staleness(since, same_host, alive, stale):
    assert dev.is_stale(since, same_host, alive) is stale


def test_dev_routing_takes_the_service_types_from_whoever_had_them():
    prod = AgentService("demo-prod", "k8s://demo-prod.flyte:8000", ("flyte_agents_demo",))
    other = AgentService("other", "k8s://other.flyte:8000", ("x", "flyte_agents_demo2"))
    local = AgentService("demo-dev", "k8s://flyte-agents-dev-demo-dev.flyte:1", ("flyte_agents_demo", "x"))
    routed = dev.dev_routing([prod, other], local)
    assert [s.id for s in routed] == ["other", "demo-dev"]  # prod lost its only type
    assert routed[0].task_types == ("flyte_agents_demo2",)
    replaced = dev.dev_routing([prod], AgentService("demo-prod", "k8s://dev.flyte:1", ("flyte_agents_demo",)))
    assert [(s.id, s.endpoint) for s in replaced] == [("demo-prod", "k8s://dev.flyte:1")]


def test_local_requirements_are_the_path_lines():
    text = "flytekit==1.16\n./flyte_agents_demo  # ours\n# ./commented\n/abs/pkg\n-r other.txt\n"
    assert dev.local_requirements(text) == ("./flyte_agents_demo", "/abs/pkg")


def test_pod_view_is_what_the_chart_gives_the_pod():
    view = dev.pod_view({"config": {"LEVEL": 20}, "env": [{"name": "A", "value": "1"},
                                                          {"name": "B", "valueFrom": {"secretKeyRef": {}}}],
                         "secrets": {"data": {"API_KEY": "s3cret"}, "existingSecret": ""}})
    assert view.env == {"LEVEL": "20", "A": "1"} and view.skipped == ("B",)
    assert view.secrets == {"api_key": "s3cret"} and view.existing_secret is None


def test_object_store_env_reaches_an_in_cluster_endpoint_through_its_node_port():
    env = {"FLYTE_AWS_ENDPOINT": "http://flyte-sandbox-minio.flyte:9000", "FLYTE_AWS_ACCESS_KEY_ID": "minio",
           "FLYTE_AWS_SECRET_ACCESS_KEY": "miniostorage", "OTHER": "x"}
    assert dev.in_cluster_service(env["FLYTE_AWS_ENDPOINT"]) == ("flyte-sandbox-minio", "flyte", 9000)
    assert dev.object_store_env(env, 30002, "172.17.0.2") == {
        "FLYTE_AWS_ENDPOINT": "http://172.17.0.2:30002", "FLYTE_AWS_ACCESS_KEY_ID": "minio",
        "FLYTE_AWS_SECRET_ACCESS_KEY": "miniostorage"}
    # No NodePort for it (or not an in-cluster name): passed on as the pod has it
    assert dev.object_store_env(env, None, "x")["FLYTE_AWS_ENDPOINT"] == env["FLYTE_AWS_ENDPOINT"]
    assert dev.in_cluster_service("https://s3.amazonaws.com") is None


@pytest.mark.parametrize("override, gateway, toward, default, expected", [
    ("10.1.2.3", ["172.17.0.1"], [], None, "10.1.2.3"),
    (None, ["172.17.0.1"], ["10.0.0.9"], None, "172.17.0.1"),       # the sandbox's flyte-sandbox-local
    (None, [], ["172.17.0.1"], "192.0.2.2", "172.17.0.1"),          # k3s in a container: the bridge gateway
    (None, [], ["127.0.0.1"], "192.0.2.2", "192.0.2.2"),            # the node is this machine
])
def test_host_address(override, gateway, toward, default, expected):
    assert dev.pick_host_address(override, gateway, toward, default)[0] == expected


@pytest.mark.parametrize("override, toward, default", [
    ("127.0.0.1", [], None),       # Kubernetes refuses loopback Endpoints
    ("not-an-ip", [], None),
    (None, ["127.0.0.1"], None),   # no default route
    (None, [], "192.0.2.2"),       # no node at all
])
def test_host_address_that_cannot_be_told_names_the_option(override, toward, default):
    with pytest.raises(UserError, match="--host-address"):
        dev.pick_host_address(override, [], toward, default)


def test_server_command_runs_pyflyte_through_the_given_python():
    command = dev.server_command("/venv/bin/python", "connector", 18000, 19000, ["flyte_agents_demo"])
    assert command[0] == "/venv/bin/python"
    assert command[3:] == ["serve", "connector", "--port", "18000", "--prometheus_port", "19000", "--modules",
                           "flyte_agents_demo"]


# ------------------------------------------------------------------------------------------------ propeller's own file

LOCAL_CONFIG = """\
# the single binary's file
propeller:
  kube-config: /root/.flyte/sandbox/kubeconfig
storage:
  type: stow
  stow:
    kind: s3
    config: {endpoint: "http://localhost:30002", access_key_id: minio, secret_key: miniostorage}
tasks:
  task-plugins:
    enabled-plugins: [container, sidecar, connector-service, echo]
plugins:
  connector-service:
    defaultConnector: {endpoint: "", insecure: true}
"""


def test_the_file_tells_its_version_and_object_store():
    from flyte_agents.flyte.config import ConfigFile, PropellerConfig

    merged = PropellerConfig((ConfigFile("flyte.yaml", LOCAL_CONFIG),)).merged()
    assert str(dev.version_of_config(merged)) == "1.16.0"
    assert dev.version_of_config({"tasks": {"task-plugins": {"enabled-plugins": ["agent-service"]}}}).minor == 15
    assert dev.version_of_config({}) is None
    assert dev.object_store_of_config(merged) == {"FLYTE_AWS_ENDPOINT": "http://localhost:30002",
                                                  "FLYTE_AWS_ACCESS_KEY_ID": "minio",
                                                  "FLYTE_AWS_SECRET_ACCESS_KEY": "miniostorage"}


def test_routing_merged_into_the_file_is_what_a_later_file_would_do():
    from flyte_agents.flyte.config import ConfigFile, PropellerConfig, TOOLKIT_FILE
    from flyte_agents.flyte.plan import plan_routing
    from flyte_agents.flyte.versions import FlyteVersion

    version = FlyteVersion(1, 16)
    service = AgentService("demo-prod", dev.local_endpoint(18000), ("flyte_agents_demo",))
    routed = dev.route_into_file("flyte.yaml", LOCAL_CONFIG, version, [service])
    one_file = PropellerConfig((ConfigFile("flyte.yaml", routed),)).merged()
    plan = plan_routing(PropellerConfig((ConfigFile("flyte.yaml", LOCAL_CONFIG),)), version, [service], TOOLKIT_FILE)
    assert one_file == plan.after
    assert one_file["plugins"]["connector-service"]["connectorfortasktypes"] == {"flyte_agents_demo": "demo-prod"}
