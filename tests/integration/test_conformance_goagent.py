"""The Go agent server (tests/servers/goagent), asked over the raw flyteidl protocol the way propeller asks it.

These tests prove the second-language server the conformance tests rely on: without a fault it keeps the contract;
each -fault really misbehaves in the one way it names.
"""
from __future__ import annotations

import time

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import identifier_pb2, interface_pb2, literals_pb2, tasks_pb2, types_pb2
from flyteidl.core.execution_pb2 import TaskExecution
from flyteidl.service import agent_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.servers.goagent import ASYNC_TYPE, FAULTS, SYNC_TYPE, goagent, goagent_binary, serve  # noqa: F401

SERVICES = ("", "flyteidl.service.AsyncAgentService", "flyteidl.service.SyncAgentService",
            "flyteidl.service.AgentMetadataService")


def template(task_type: str) -> tasks_pb2.TaskTemplate:
    x = interface_pb2.Variable(type=types_pb2.LiteralType(simple=types_pb2.INTEGER))
    return tasks_pb2.TaskTemplate(
        id=identifier_pb2.Identifier(resource_type=identifier_pb2.TASK, project="p", domain="d", name="t",
                                     version="1"),
        type=task_type, interface=interface_pb2.TypedInterface(inputs=interface_pb2.VariableMap(variables={"x": x}),
                                                               outputs=interface_pb2.VariableMap(variables={"x": x})))


INPUTS = literals_pb2.LiteralMap(literals={"x": literals_pb2.Literal(scalar=literals_pb2.Scalar(
    primitive=literals_pb2.Primitive(integer=7)))})


def health(channel, service: str) -> str:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def create(channel, task_type: str = ASYNC_TYPE) -> bytes:
    return agent_pb2_grpc.AsyncAgentServiceStub(channel).CreateTask(
        agent_pb2.CreateTaskRequest(template=template(task_type), inputs=INPUTS, output_prefix="file:///tmp/o"),
        timeout=5).resource_meta


def get(channel, meta: bytes) -> agent_pb2.Resource:
    return agent_pb2_grpc.AsyncAgentServiceStub(channel).GetTask(agent_pb2.GetTaskRequest(
        resource_meta=meta, task_category=agent_pb2.TaskCategory(name=ASYNC_TYPE)), timeout=5).resource


def execute_sync(channel) -> tuple[list[agent_pb2.ExecuteTaskSyncResponse], grpc.StatusCode]:
    """What propeller sends (header, inputs, close) and every response the server gives before it ends the call."""
    requests = [agent_pb2.ExecuteTaskSyncRequest(header=agent_pb2.CreateRequestHeader(template=template(SYNC_TYPE),
                                                                                       output_prefix="file:///tmp/o")),
                agent_pb2.ExecuteTaskSyncRequest(inputs=INPUTS)]
    call = agent_pb2_grpc.SyncAgentServiceStub(channel).ExecuteTaskSync(iter(requests), timeout=5)
    responses = list(call)
    return responses, call.code()


def test_keeps_the_contract(goagent):
    with grpc.insecure_channel(goagent.address) as channel:
        assert [health(channel, s) for s in SERVICES] == ["SERVING"] * 4

        metadata = agent_pb2_grpc.AgentMetadataServiceStub(channel)
        agents = metadata.ListAgents(agent_pb2.ListAgentsRequest(), timeout=5).agents
        assert {(a.name, a.is_sync, tuple(c.name for c in a.supported_task_categories)) for a in agents} == {
            ("Go Echo Agent", False, (ASYNC_TYPE,)), ("Go Echo Sync Agent", True, (SYNC_TYPE,))}
        for agent in agents:
            assert metadata.GetAgent(agent_pb2.GetAgentRequest(name=agent.name), timeout=5).agent == agent

        meta = create(channel)
        assert meta
        phases = []
        while not phases or phases[-1].phase == TaskExecution.RUNNING:
            phases.append(get(channel, meta))
            time.sleep(0.1)
        assert phases[0].phase == TaskExecution.RUNNING  # -run-for defaults to 300 ms
        assert phases[-1].phase == TaskExecution.SUCCEEDED and phases[-1].outputs == INPUTS
        delete = agent_pb2.DeleteTaskRequest(resource_meta=meta, task_category=agent_pb2.TaskCategory(name=ASYNC_TYPE))
        for _ in range(2):
            agent_pb2_grpc.AsyncAgentServiceStub(channel).DeleteTask(delete, timeout=5)

        responses, code = execute_sync(channel)
        assert code == grpc.StatusCode.OK and len(responses) == 1
        assert responses[0].header.resource.phase == TaskExecution.SUCCEEDED
        assert responses[0].header.resource.outputs == INPUTS

        with pytest.raises(grpc.RpcError) as unknown:
            create(channel, "no_such_type")
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    # the server's own record of what it ran
    assert "CreateTask go_echo t: 1 inputs" in goagent.log_text()
    assert "ExecuteTaskSync go_echo_sync t: 1 inputs" in goagent.log_text()


def observe(channel, fault: str):
    """The one observation that shows the fault (the same observation on a healthy server differs)."""
    metadata = agent_pb2_grpc.AgentMetadataServiceStub(channel)
    if fault in ("no-metadata", "slow-list"):
        try:
            metadata.ListAgents(agent_pb2.ListAgentsRequest(), timeout=3)  # propeller's ListAgents timeout
        except grpc.RpcError as err:
            return err.code()
        return grpc.StatusCode.OK
    if fault == "wrong-is-sync":
        return {a.name: a.is_sync for a in metadata.ListAgents(agent_pb2.ListAgentsRequest(), timeout=5).agents}
    if fault == "empty-resource-meta":
        return create(channel)
    if fault == "never-terminal":
        meta = create(channel)
        time.sleep(1)
        return TaskExecution.Phase.Name(get(channel, meta).phase)
    if fault in ("sync-two-responses", "sync-no-response"):
        responses, code = execute_sync(channel)
        return len(responses), code
    assert fault == "not-serving"
    return health(channel, "")


HEALTHY = {
    "no-metadata": grpc.StatusCode.OK, "slow-list": grpc.StatusCode.OK,
    "wrong-is-sync": {"Go Echo Agent": False, "Go Echo Sync Agent": True},
    "empty-resource-meta": "non-empty", "never-terminal": "SUCCEEDED",
    "sync-two-responses": (1, grpc.StatusCode.OK), "sync-no-response": (1, grpc.StatusCode.OK),
    "not-serving": "SERVING",
}
FAULTY = {
    "no-metadata": grpc.StatusCode.UNIMPLEMENTED, "slow-list": grpc.StatusCode.DEADLINE_EXCEEDED,
    "wrong-is-sync": {"Go Echo Agent": True, "Go Echo Sync Agent": True},
    "empty-resource-meta": b"", "never-terminal": "RUNNING",
    "sync-two-responses": (2, grpc.StatusCode.OK), "sync-no-response": (0, grpc.StatusCode.OK),
    "not-serving": "NOT_SERVING",
}


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_misbehaves_as_named(goagent_binary, fault):
    with serve(goagent_binary, fault, "-run-for", "0s") as agent, grpc.insecure_channel(agent.address) as channel:
        seen = observe(channel, fault)
    assert seen == FAULTY[fault]
    with serve(goagent_binary, None, "-run-for", "0s") as agent, grpc.insecure_channel(agent.address) as channel:
        healthy = observe(channel, fault)
    assert (healthy != b"" if fault == "empty-resource-meta" else healthy == HEALTHY[fault])


def test_unknown_fault_is_refused(goagent_binary):
    import subprocess

    proc = subprocess.run([str(goagent_binary), "-fault", "typo"], capture_output=True, text=True, timeout=10)
    assert proc.returncode == 2 and 'unknown -fault "typo"' in proc.stderr
