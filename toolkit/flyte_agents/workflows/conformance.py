"""`conformance`: run every check of flyte/conformance.py against one agent server, the way propeller calls it.

The order matters only where a call needs an earlier answer: ListAgents names the categories; is_sync picks the
service whose first call (CreateTask or ExecuteTaskSync) starts each category's lifecycle; the concurrency check
repeats, side by side, only the calls that passed alone, so each misbehaviour fails exactly one check.
"""
from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from .. import userfiles
from ..adapters import grpc as rpc
from ..errors import EndpointUnreachable, NotGrpcEndpoint, TlsMismatch, UserError
from ..flyte import conformance as cf

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TaskFile:
    """A task of the user's: its template (core.TaskTemplate) and inputs (core.LiteralMap), parsed."""

    path: str
    template: Any
    inputs: Any

    @property
    def category(self) -> cf.Category:
        return cf.Category(self.template.type, self.template.task_type_version)


@dataclass(frozen=True)
class Options:
    wait: float = 30.0  # how long GetTask may stay non-terminal
    output_prefix: str = ""  # where the server may write outputs.pb (default: a fresh path under /tmp)
    tls: bool = False


# ------------------------------------------------------------------------------------------------ task files

def load_task_files(specs: tuple[str, ...]) -> dict[cf.Category, TaskFile]:
    """`TEMPLATE[:INPUTS]` per spec, validated before any connection: one file per category."""
    found: dict[cf.Category, TaskFile] = {}
    for spec in specs:
        template_path, _, inputs_path = spec.partition(":")
        task = TaskFile(template_path, _read_template(template_path),
                        _read_inputs(inputs_path) if inputs_path else _empty_inputs())
        if task.category in found:
            raise UserError(f"--task {spec}: category {task.category} is already given by {found[task.category].path}"
                            ": give one task per category")
        found[task.category] = task
    return found


def _read_template(path: str) -> Any:
    """A core.TaskTemplate, or the admin.TaskSpec that `pyflyte serialize` / `pyflyte package` write (.pb), or
    either as protobuf JSON (.json)."""
    from flyteidl.admin import task_pb2
    from flyteidl.core import tasks_pb2
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError

    data = userfiles.read_bytes(path, "--task")
    candidates = []
    for message in (task_pb2.TaskSpec(), tasks_pb2.TaskTemplate()):
        try:
            if path.endswith(".json"):
                json_format.Parse(data, message)
            else:
                message.ParseFromString(data)
        except (json_format.ParseError, DecodeError, UnicodeDecodeError, ValueError):
            continue
        candidates.append(message.template if isinstance(message, task_pb2.TaskSpec) else message)
    template = next((t for t in candidates if t.type), None)
    if template is None:
        raise UserError(f"--task {path}: not a task template with a type (a core.TaskTemplate or the admin.TaskSpec "
                        "that pyflyte serialize writes, as .pb or .json)")
    return template


def _read_inputs(path: str) -> Any:
    from flyteidl.core import literals_pb2
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError

    data = userfiles.read_bytes(path, "--task inputs")
    inputs = literals_pb2.LiteralMap()
    try:
        json_format.Parse(data, inputs) if path.endswith(".json") else inputs.ParseFromString(data)
    except (json_format.ParseError, DecodeError, UnicodeDecodeError, ValueError) as err:
        raise UserError(f"--task inputs {path}: not a core.LiteralMap (.pb or .json): {err}") from None
    return inputs


def _empty_inputs() -> Any:
    from flyteidl.core import literals_pb2

    return literals_pb2.LiteralMap()


# ------------------------------------------------------------------------------------------------ protos

def _minimal(category: cf.Category) -> tuple[Any, Any]:
    """The (TaskTemplate, LiteralMap) of cf.minimal_template(category)."""
    from flyteidl.core import identifier_pb2, interface_pb2, literals_pb2, tasks_pb2, types_pb2
    from google.protobuf import struct_pb2

    spec = cf.minimal_template(category)
    string = types_pb2.LiteralType(simple=types_pb2.STRING)
    custom = struct_pb2.Struct()
    custom.update(spec.custom)
    template = tasks_pb2.TaskTemplate(
        id=identifier_pb2.Identifier(resource_type=identifier_pb2.TASK, project="flyte-agents", domain="conformance",
                                     name=f"conformance.{category.name}", version="1"),
        type=category.name, task_type_version=category.version, custom=custom,
        metadata=tasks_pb2.TaskMetadata(runtime=tasks_pb2.RuntimeMetadata(
            type=tasks_pb2.RuntimeMetadata.OTHER, version="1", flavor="flyte-agents-conformance")),
        interface=interface_pb2.TypedInterface(inputs=interface_pb2.VariableMap(variables={
            name: interface_pb2.Variable(type=string) for name in spec.string_inputs})))
    inputs = literals_pb2.LiteralMap(literals={
        name: literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(string_value=value)))
        for name, value in spec.string_inputs.items()})
    return template, inputs


def _metadata(template: Any, run: str) -> Any:
    """The task_execution_metadata propeller sends: which execution, namespace, service account."""
    from flyteidl.admin import agent_pb2
    from flyteidl.core import identifier_pb2

    execution = identifier_pb2.WorkflowExecutionIdentifier(project="flyte-agents", domain="conformance", name=run)
    return agent_pb2.TaskExecutionMetadata(
        task_execution_id=identifier_pb2.TaskExecutionIdentifier(
            task_id=template.id, node_execution_id=identifier_pb2.NodeExecutionIdentifier(node_id="n0",
                                                                                          execution_id=execution)),
        namespace="flyte-agents-conformance", k8s_service_account="default", max_attempts=1)


def _agent(message: Any) -> cf.Agent:
    return cf.Agent(message.name, message.is_sync,
                    tuple(cf.Category(c.name, c.version) for c in message.supported_task_categories),
                    tuple(message.supported_task_types))


def _resource(message: Any) -> cf.Resource:
    from flyteidl.admin import agent_pb2
    from flyteidl.core import execution_pb2

    phases, states = execution_pb2.TaskExecution.Phase, agent_pb2.State
    phase = phases.Name(message.phase) if message.phase in phases.values() else str(message.phase)
    state = states.Name(message.state) if message.state in states.values() else str(message.state)
    return cf.Resource(phase, state, message.message,
                       len(message.outputs.literals) if message.HasField("outputs") else None)


def _outcome(reply: rpc.Reply) -> cf.Outcome:
    return cf.Outcome(reply.code, reply.details, reply.elapsed)


# ------------------------------------------------------------------------------------------------ the run

class _Run:
    """One conformance run: the channel, the task for each category, and the requests built from them."""

    def __init__(self, channel: rpc.AgentChannel, files: dict[cf.Category, TaskFile], options: Options) -> None:
        self.channel, self.files, self.options = channel, files, options
        self.run_id = f"conformance-{uuid.uuid4().hex[:8]}"
        self.output_prefix = options.output_prefix or f"/tmp/flyte-agents-conformance/{self.run_id}"

    def task(self, category: cf.Category) -> tuple[cf.Task, Any, Any]:
        if category in self.files:
            file = self.files[category]
            return cf.Task(category, file.path), file.template, file.inputs
        template, inputs = _minimal(category)
        return cf.Task(category, "minimal"), template, inputs

    def prefix(self, category: cf.Category) -> str:
        return f"{self.output_prefix.rstrip('/')}/{category.name}"

    def create(self, template: Any, inputs: Any, timeout: float = cf.MEASURE_TIMEOUT) -> rpc.Reply:
        from flyteidl.admin import agent_pb2

        request = agent_pb2.CreateTaskRequest(inputs=inputs, template=template,
                                              output_prefix=self.prefix(cf.Category(template.type)),
                                              task_execution_metadata=_metadata(template, self.run_id))
        return self.channel.create_task(request, timeout)

    def get(self, category: cf.Category, meta: bytes, timeout: float = cf.MEASURE_TIMEOUT) -> rpc.Reply:
        from flyteidl.admin import agent_pb2

        return self.channel.get_task(agent_pb2.GetTaskRequest(
            task_type=category.name, resource_meta=meta, output_prefix=self.prefix(category),
            task_category=agent_pb2.TaskCategory(name=category.name, version=category.version)), timeout)

    def delete(self, category: cf.Category, meta: bytes) -> rpc.Reply:
        from flyteidl.admin import agent_pb2

        return self.channel.delete_task(agent_pb2.DeleteTaskRequest(
            task_type=category.name, resource_meta=meta,
            task_category=agent_pb2.TaskCategory(name=category.name, version=category.version)), cf.MEASURE_TIMEOUT)

    def sync(self, template: Any, inputs: Any, timeout: float = cf.MEASURE_TIMEOUT) -> rpc.Reply:
        """What propeller streams: the header, then the inputs; then it closes its side."""
        from flyteidl.admin import agent_pb2

        header = agent_pb2.CreateRequestHeader(template=template, output_prefix=self.prefix(cf.Category(template.type)),
                                               task_execution_metadata=_metadata(template, self.run_id))
        return self.channel.execute_task_sync([agent_pb2.ExecuteTaskSyncRequest(header=header),
                                               agent_pb2.ExecuteTaskSyncRequest(inputs=inputs)], timeout)


def check_endpoint(address: str, tls: bool) -> None:
    """Raise one clear error when nothing (or not plaintext/TLS gRPC as asked) answers at address."""
    wire, detail = rpc.sniff(address, tls_first=tls)
    if wire is rpc.Wire.UNREACHABLE:
        raise EndpointUnreachable(f"{address} is unreachable ({detail}): start the agent server or fix the address")
    if wire is rpc.Wire.PLAIN_HTTP2 and tls:
        raise TlsMismatch(f"{address} speaks plaintext gRPC, not TLS: drop --tls (propeller: insecure: true)")
    if wire is rpc.Wire.TLS and not tls:
        raise TlsMismatch(f"{address} speaks TLS: add --tls (propeller: insecure: false)")
    if wire is rpc.Wire.OTHER:
        raise NotGrpcEndpoint(f"{address} is not a gRPC server ({detail}, and no TLS handshake): point at the agent "
                              "server's gRPC port (8000 by default)")


def run(address: str, via: str, files: dict[cf.Category, TaskFile], options: Options,
        progress: Progress = lambda _: None) -> cf.Report:
    check_endpoint(address, options.tls)
    with rpc.AgentChannel(address, options.tls) as channel:
        runner = _Run(channel, files, options)
        rows = [_health(channel, address, options.tls, progress)]
        listed, agents, list_row = _list_agents(channel, progress)
        rows.append(list_row)
        rows.append(_get_agent(channel, agents) if agents else
                    cf.skipped("get-agent", "metadata", "ListAgents named no agent"))
        declared = {c: a.is_sync for a in agents for c in a.served}
        for category in files:
            declared.setdefault(category, False)  # not listed: propeller sends it to the default endpoint as async
        progress("unknown task category")
        rows.append(_unknown(runner))
        passed: dict[str, Callable[[], cf.Outcome]] = {}
        if listed.ok:
            passed["ListAgents"] = lambda: _outcome(channel.list_agents(cf.MEASURE_TIMEOUT))
        tasks = []
        for category, is_sync in sorted(declared.items()):
            progress(f"{category}: {'sync' if is_sync else 'async'} lifecycle")
            task, task_rows, again = _lifecycle(runner, category, is_sync)
            tasks.append(task)
            rows += task_rows
            if again is not None:
                passed[f"{'ExecuteTaskSync' if again[1] else 'CreateTask+GetTask+DeleteTask'} {category}"] = again[0]
        if not declared:
            rows.append(cf.skipped("lifecycle", "tasks", "no task category to run: ListAgents named none and no "
                                                         "--task was given"))
        progress("concurrency")
        rows.append(_concurrency(passed))
    return cf.Report(address, via, tuple(tasks), tuple(rows))


def _health(channel: rpc.AgentChannel, address: str, tls: bool, progress: Progress) -> cf.Row:
    progress("health")
    answers = {}
    for service in cf.HEALTH_SERVICES:
        reply = channel.health(service, cf.CALL_TIMEOUT)
        if reply.code == "UNAVAILABLE":  # it speaks HTTP/2 or TLS, but no call gets through: nothing to check
            hint = "; with --tls its certificate must verify against the system's roots, as propeller's does" \
                if tls else ""
            raise EndpointUnreachable(f"{address}: gRPC calls fail UNAVAILABLE ({' '.join(reply.details.split())})"
                                      f"{hint}")
        answers[service] = reply.value if reply.ok else reply.code
    return cf.judge_health(answers)


def _list_agents(channel: rpc.AgentChannel, progress: Progress) -> tuple[rpc.Reply, list[cf.Agent], cf.Row]:
    progress("ListAgents")
    reply = channel.list_agents(cf.MEASURE_TIMEOUT)
    agents = [_agent(a) for a in reply.value.agents] if reply.ok else []
    return reply, agents, cf.judge_list_agents(_outcome(reply), agents)


def _get_agent(channel: rpc.AgentChannel, agents: list[cf.Agent]) -> cf.Row:
    answers = {}
    for agent in agents:
        reply = channel.get_agent(agent.name, cf.CALL_TIMEOUT)
        answers[agent.name] = (_outcome(reply), _agent(reply.value.agent) if reply.ok else None)
    return cf.judge_get_agent(agents, answers)


def _unknown(runner: _Run) -> cf.Row:
    """An unknown category on each service: each call must say no within propeller's deadline."""
    template, inputs = _minimal(cf.UNKNOWN_CATEGORY)
    calls = {"CreateTask": lambda: runner.create(template, inputs, cf.CALL_TIMEOUT),
             "GetTask": lambda: runner.get(cf.UNKNOWN_CATEGORY, b"flyte-agents-conformance", cf.CALL_TIMEOUT),
             "ExecuteTaskSync": lambda: runner.sync(template, inputs, cf.CALL_TIMEOUT)}
    return cf.judge_unknown_category({name: _outcome(call()) for name, call in calls.items()})


def _lifecycle(runner: _Run, category: cf.Category, declared_sync: bool
               ) -> tuple[cf.Task, list[cf.Row], tuple[Callable[[], cf.Outcome], bool] | None]:
    """is_sync, then the lifecycle on the service that ran the task: (the task, its rows, and the call to repeat
    in the concurrency check with whether it is sync, when every row passed)."""
    task, template, inputs = runner.task(category)
    start = {True: lambda: runner.sync(template, inputs), False: lambda: runner.create(template, inputs)}
    first = start[declared_sync]()
    other = None if first.ok else start[not declared_sync]()
    rows = [cf.judge_is_sync(task, declared_sync, _outcome(first), _outcome(other) if other else None)]
    is_sync, reply = (not declared_sync, other) if other is not None and other.ok else (declared_sync, first)
    if is_sync:
        row = cf.judge_sync(task, _outcome(reply), [_sync_reply(m) for m in reply.value or []])
        again = (lambda: _outcome(runner.sync(template, inputs)), True)
        return task, rows + [row], again if reply.ok and row.status is not cf.Status.FAIL else None
    meta = reply.value.resource_meta if reply.ok else b""
    rows.append(cf.judge_create(task, _outcome(reply), meta))
    if not meta:
        return task, rows + [cf.skipped(check, str(category), "CreateTask gave no resource_meta to ask about")
                             for check in ("get", "delete")], None
    outcomes, resources = _poll(runner, category, meta)
    rows.append(cf.judge_poll(task, outcomes, resources, runner.options.wait))
    rows.append(cf.judge_delete(task, _outcome(runner.delete(category, meta)),
                                _outcome(runner.delete(category, meta))))
    passed = all(r.status is not cf.Status.FAIL for r in rows[1:])
    return task, rows, (lambda: _create_get_delete(runner, template, inputs), False) if passed else None


def _sync_reply(message: Any) -> cf.SyncReply:
    return cf.SyncReply(_resource(message.header.resource) if message.HasField("header") else None)


def _poll(runner: _Run, category: cf.Category, meta: bytes) -> tuple[list[cf.Outcome], list[cf.Resource]]:
    """GetTask until a phase propeller stops at, an error, or --wait ran out."""
    outcomes, resources = [], []
    deadline = time.monotonic() + runner.options.wait
    while True:
        reply = runner.get(category, meta)
        outcomes.append(_outcome(reply))
        if not reply.ok:
            break
        resources.append(_resource(reply.value.resource))
        if not cf.keeps_running(resources[-1]) or time.monotonic() >= deadline:
            break
        time.sleep(cf.POLL_INTERVAL)
    return outcomes, resources


def _create_get_delete(runner: _Run, template: Any, inputs: Any) -> cf.Outcome:
    """One async task as a propeller worker drives it (one GetTask): the first failure, or OK with the total time."""
    category = cf.Category(template.type, template.task_type_version)
    created = runner.create(template, inputs)
    if not created.ok:
        return _outcome(created)
    total = created.elapsed
    for reply in (runner.get(category, created.value.resource_meta),
                  runner.delete(category, created.value.resource_meta)):
        if not reply.ok:
            return _outcome(reply)
        total += reply.elapsed
    return cf.Outcome("OK", "", total)


def _concurrency(passed: dict[str, Callable[[], cf.Outcome]]) -> cf.Row:
    if not passed:
        return cf.judge_concurrency({})
    with ThreadPoolExecutor(len(passed) * cf.CONCURRENCY, thread_name_prefix="conformance") as pool:
        futures = {label: [pool.submit(call) for _ in range(cf.CONCURRENCY)] for label, call in passed.items()}
        return cf.judge_concurrency({label: [f.result() for f in found] for label, found in futures.items()})


def run_service(kube: Any, release: Any, files: dict[cf.Category, TaskFile], options: Options,
                progress: Progress = lambda _: None) -> cf.Report:
    """run() against a project's service: its first ready pod, reached through the API server as verify does."""
    from . import deploy as dp

    pods, missing = dp.service_pods(kube, release)
    if not pods:
        raise EndpointUnreachable(f"service {release.service.id} has no ready pod to check "
                                  f"({missing or 'none is Running and Ready'}): deploy it, or pass --endpoint")
    via = f"pod {release.namespace}/{pods[0]} (port-forward)"
    progress(f"{release.service.id}: {via}")
    with dp.pod_forward(kube, release, pods[0]) as forward:
        return run(forward.address, via, files, options, progress)
