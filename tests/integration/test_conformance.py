"""`flyte-agents conformance` against real agent servers: flytekit's (the demo agent, async and sync) and the Go
server in tests/servers/goagent, whose fault variants each misbehave in one way a check must catch."""
from __future__ import annotations

import json
import os
import sys
import threading
import xml.etree.ElementTree as ET
from collections import OrderedDict
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import free_port, pyflyte_server
from tests.integration.build_support import REPO, run_cli
from tests.integration.test_deploy import image_repository, pod_runner  # noqa: F401 (fixtures)
from tests.servers.goagent import ASYNC_TYPE, SYNC_TYPE, goagent, goagent_binary, serve  # noqa: F401 (fixtures)

DEMO = REPO / "agent_image" / "flyte_agents_demo"


@pytest.fixture(scope="module")
def demo_agent(tmp_path_factory):
    """flytekit's connector server (`pyflyte serve connector`) with the demo agent: async flyte_agents_demo and
    sensor, sync webhook."""
    with pyflyte_server(tmp_path_factory.mktemp("demo-agent"), "connector", "--modules", "flyte_agents_demo",
                        env={**os.environ, "PYTHONPATH": str(DEMO)}) as address:
        yield address


def conformance(*args: str):
    result = run_cli("conformance", *args)
    return result, (json.loads(result.stdout) if "json" in args and result.stdout else None)


def statuses(data: dict) -> list[tuple[str, str, str]]:
    return [(c["check"], c["subject"], c["status"]) for c in data["checks"]]


# ------------------------------------------------------------------------------------------------ servers that pass

def test_flytekit_agent_server_passes_every_check(demo_agent, tmp_path):
    junit = tmp_path / "conformance.xml"
    result, data = conformance("--endpoint", demo_agent, "--output", "json", "--junit", str(junit))
    assert result.code == 0, result.stderr
    assert {status for _, _, status in statuses(data)} == {"PASS"}, statuses(data)
    assert data["tasks"] == [{"category": c, "version": 0, "template": "minimal"}
                             for c in ("flyte_agents_demo", "sensor", "webhook")]
    checked = {(check, subject) for check, subject, _ in statuses(data)}
    assert {("create", "flyte_agents_demo"), ("get", "sensor"), ("delete", "sensor"), ("sync", "webhook"),
            ("is-sync", "webhook"), ("unknown-category", "flyte_agents_conformance_unknown"),
            ("concurrency", "server")} <= checked
    suite = ET.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("failures")) == (str(len(data["checks"])), "0")


def test_go_agent_server_passes_every_check(goagent):
    result = run_cli("conformance", "--endpoint", goagent.address)
    assert result.code == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:] if line.strip() and not line.startswith(" " * 9)]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("health", "server", "PASS"), ("list-agents", "metadata", "PASS"), ("get-agent", "metadata", "PASS"),
        ("unknown-category", "flyte_agents_conformance_unknown", "PASS"),
        ("is-sync", ASYNC_TYPE, "PASS"), ("create", ASYNC_TYPE, "PASS"), ("get", ASYNC_TYPE, "PASS"),
        ("delete", ASYNC_TYPE, "PASS"), ("is-sync", SYNC_TYPE, "PASS"), ("sync", SYNC_TYPE, "PASS"),
        ("concurrency", "server", "PASS")]
    assert "templates: go_echo minimal, go_echo_sync minimal" in result.stderr


# ------------------------------------------------------------------------------------------------ faults

# fault -> (the one check that fails, its subject, words of the propeller consequence it must state)
CAUGHT = {
    "no-metadata": ("list-agents", "metadata", "falls back to config"),
    "wrong-is-sync": ("is-sync", ASYNC_TYPE, "propeller calls ExecuteTaskSync for go_echo (is_sync=true)"),
    "slow-list": ("list-agents", "metadata", "ListAgents deadline (3 s in the sandbox) expires"),
    "empty-resource-meta": ("create", ASYNC_TYPE, "GetTask and DeleteTask cannot name the job"),
    "never-terminal": ("get", ASYNC_TYPE, "the node stays RUNNING"),
    "sync-two-responses": ("sync", SYNC_TYPE, "reads only the first response"),
    "sync-no-response": ("sync", SYNC_TYPE, "failed to receive stream from server EOF"),
    "not-serving": ("health", "server", "readiness probe fails"),
}


@pytest.mark.parametrize("fault", sorted(CAUGHT))
def test_each_fault_is_caught_by_exactly_its_check(goagent_binary, fault):
    check, subject, words = CAUGHT[fault]
    with serve(goagent_binary, fault) as agent:
        result, data = conformance("--endpoint", agent.address, "--output", "json", "--wait", "2")
    assert result.code == 16, result.stderr
    failed = [c for c in data["checks"] if c["status"] == "FAIL"]
    assert [(c["check"], c["subject"]) for c in failed] == [(check, subject)], statuses(data)
    assert words in failed[0]["propeller"]
    assert not [c for c in data["checks"] if c["status"] == "WARN"]
    assert result.stderr.splitlines()[-1] == f"error: 1 conformance check(s) failed: {check} {subject}"


# ------------------------------------------------------------------------------------------------ task files

def test_a_serialised_flytekit_task_is_run_and_named(demo_agent, tmp_path):
    from flytekit.configuration import ImageConfig, SerializationSettings
    from flytekit.tools.translator import get_serializable

    sys.path.insert(0, str(DEMO))
    import flyte_agents_demo as demo

    task = demo.DemoTask(name="conformance.demo", seconds=1)
    spec = get_serializable(OrderedDict(), SerializationSettings(ImageConfig.auto_default_image()), task)
    path = tmp_path / "demo_task.pb"  # what `pyflyte serialize` writes: an admin.TaskSpec
    path.write_bytes(spec.to_flyte_idl().SerializeToString())
    result, data = conformance("--endpoint", demo_agent, "--output", "json", "--task", str(path))
    assert result.code == 0, result.stderr
    assert {"category": "flyte_agents_demo", "version": 0, "template": str(path)} in data["tasks"]
    get = next(c for c in data["checks"] if (c["check"], c["subject"]) == ("get", "flyte_agents_demo"))
    assert "RUNNING -> SUCCEEDED" in get["got"] and "1 inline outputs" in get["got"]  # the greeting
    create = next(c for c in data["checks"] if (c["check"], c["subject"]) == ("create", "flyte_agents_demo"))
    assert f"template from {path}" in create["sent"]


def test_json_template_and_inputs_reach_the_server(goagent, tmp_path):
    from flyteidl.core import identifier_pb2, literals_pb2, tasks_pb2
    from google.protobuf import json_format

    template = tasks_pb2.TaskTemplate(type=ASYNC_TYPE, id=identifier_pb2.Identifier(
        resource_type=identifier_pb2.TASK, project="p", domain="d", name="echo", version="1"))
    inputs = literals_pb2.LiteralMap(literals={name: literals_pb2.Literal(scalar=literals_pb2.Scalar(
        primitive=literals_pb2.Primitive(integer=n))) for n, name in enumerate("abc")})
    (tmp_path / "t.json").write_text(json_format.MessageToJson(template))
    (tmp_path / "in.json").write_text(json_format.MessageToJson(inputs))
    result, data = conformance("--endpoint", goagent.address, "--output", "json",
                               "--task", f"{tmp_path / 't.json'}:{tmp_path / 'in.json'}")
    assert result.code == 0, result.stderr
    get = next(c for c in data["checks"] if (c["check"], c["subject"]) == ("get", ASYNC_TYPE))
    assert "3 inline outputs" in get["got"]  # the Go server echoes the three inputs back


def test_a_user_task_the_server_refuses_fails_at_create(goagent, tmp_path):
    from flyteidl.core import tasks_pb2

    (tmp_path / "other.pb").write_bytes(tasks_pb2.TaskTemplate(type="not_served_here").SerializeToString())
    result, data = conformance("--endpoint", goagent.address, "--output", "json", "--task",
                               str(tmp_path / "other.pb"))
    assert result.code == 16
    rows = {(c["check"], c["subject"]): c for c in data["checks"]}
    assert rows[("create", "not_served_here")]["status"] == "FAIL"
    assert "fails at CreateTask with NOT_FOUND" in rows[("create", "not_served_here")]["propeller"]
    assert rows[("is-sync", "not_served_here")]["status"] == "SKIP"  # neither service runs it


# ------------------------------------------------------------------------------------------------ endpoint problems

@pytest.fixture
def http_server():
    """A real HTTP/1 server on a loopback port: not gRPC."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def one_error_line(result) -> str:
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_unreachable_endpoint_is_one_line_exit_13():
    address = f"127.0.0.1:{free_port()}"
    result = run_cli("conformance", "--endpoint", address)
    assert result.code == 13
    assert one_error_line(result).startswith(f"error: {address} is unreachable (")


def test_a_port_that_is_not_grpc_is_one_line_exit_14(http_server):
    result = run_cli("conformance", "--endpoint", http_server)
    assert result.code == 14
    assert "is not a gRPC server" in one_error_line(result)


def test_tls_to_a_plaintext_port_and_plaintext_to_a_tls_port_exit_15(goagent_binary):
    with serve(goagent_binary) as plain:
        to_plain = run_cli("conformance", "--endpoint", plain.address, "--tls")
    with serve(goagent_binary, None, "-tls") as tls:
        to_tls = run_cli("conformance", "--endpoint", tls.address)
    assert (to_plain.code, to_tls.code) == (15, 15)
    assert "speaks plaintext gRPC, not TLS: drop --tls" in one_error_line(to_plain)
    assert "speaks TLS: add --tls" in one_error_line(to_tls)


# ------------------------------------------------------------------------------------------------ --service

def test_a_project_service_is_checked_through_the_api_server(sandbox, kube_api, image_repository, pod_runner,
                                                             tmp_path):
    """--service ID reaches the service's ready pod the way verify does (port-forward through the API server)."""
    from tests.integration.test_deploy import deploy_cli, helm_binary, write_project

    helm = helm_binary(4)
    project = write_project(tmp_path, image_repository)
    deployed = deploy_cli(project, helm, "--service", "demo-prod")
    assert deployed.code == 0, deployed.stderr[-3000:]
    try:
        result, data = conformance("--sandbox", "--project", str(project), "--helm", helm, "--service", "demo-prod",
                                   "--output", "json")
        assert result.code == 0, result.stderr[-3000:]
        assert data["via"].startswith("pod flyte/demo-prod-") and data["via"].endswith("(port-forward)")
        assert {status for _, _, status in statuses(data)} == {"PASS"}, statuses(data)
        assert {t["category"] for t in data["tasks"]} == {"flyte_agents_demo", "sensor", "webhook"}
    finally:
        run_cli("undeploy", "--sandbox", "--project", str(project), "--helm", helm)
