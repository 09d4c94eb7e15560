"""What propeller expects of an agent (connector) server, as checks: what each check sends, what it accepts, and
the propeller behaviour each failure causes (flyteidl 1.16.8; the wire names did not change with the rename).

The calls are made by the workflow through the gRPC adapter; everything here judges what came back. Observations
arrive as the small dataclasses below (gRPC status codes and enum values by name), so this module stays pure.

Propeller's side, for reference (flyteplugins webapi/connector, v1.16.8):
* it lists every endpoint with ListAgents at start and every pollInterval (10 s), deadline `timeouts.ListAgents`
  (agent plugin) / `ListConnectors` (connector plugin), 3 s in the sandbox; UNIMPLEMENTED falls back to config,
  any other error drops that deployment's task types for the cycle; a later category of the same name overwrites
  an earlier one (one version per type survives);
* async: CreateTask -> resource_meta; GetTask(resource_meta, task_category, output_prefix) until a terminal
  phase; DeleteTask on abort or after the end;
* sync (is_sync=true): ExecuteTaskSync stream: header, inputs, close; it reads exactly one response, a header
  carrying the final Resource.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from enum import Enum
from typing import Sequence

# The services propeller calls, by their gRPC names (health is asked for "" and each of them).
ASYNC_SERVICE = "flyteidl.service.AsyncAgentService"
SYNC_SERVICE = "flyteidl.service.SyncAgentService"
METADATA_SERVICE = "flyteidl.service.AgentMetadataService"
HEALTH_SERVICES = ("", ASYNC_SERVICE, SYNC_SERVICE, METADATA_SERVICE)

LIST_TIMEOUT = 3.0  # propeller's ListAgents / ListConnectors deadline in the sandbox (seconds)
CALL_TIMEOUT = 10.0  # the connector plugin's defaultTimeout: CreateTask, GetTask, DeleteTask, ExecuteTaskSync
AGENT_PLUGIN_TIMEOUT = 3.0  # the agent plugin's defaultTimeout since Flyte 1.15.1
# Calls are given a longer deadline than propeller's so a slow answer is measured, not cut off.
MEASURE_TIMEOUT = 2 * CALL_TIMEOUT
POLL_INTERVAL = 0.5  # seconds between GetTask calls while the job runs (propeller: every resync, 30 s)
CONCURRENCY = 4  # parallel copies of each call in the concurrency check (propeller runs 10 workers)

# Terminal phases: propeller stops polling at SUCCEEDED, FAILED and ABORTED; RETRYABLE_FAILED ends the attempt.
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "ABORTED", "RETRYABLE_FAILED"})
# Phases propeller understands while the job runs.
RUNNING = frozenset({"QUEUED", "WAITING_FOR_RESOURCES", "INITIALIZING", "RUNNING"})
# Non-OK statuses that are no answer: a timeout or a dropped connection (every other code is a clear "no").
UNCLEAR = frozenset({"DEADLINE_EXCEEDED", "UNAVAILABLE", "CANCELLED"})


class Status(str, Enum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True, order=True)
class Category:
    name: str
    version: int = 0

    def __str__(self) -> str:
        return self.name if self.version == 0 else f"{self.name} (v{self.version})"


UNKNOWN_CATEGORY = Category("flyte_agents_conformance_unknown")


@dataclass(frozen=True)
class Agent:
    """One entry of ListAgents (or GetAgent)."""

    name: str
    is_sync: bool
    categories: tuple[Category, ...] = ()
    deprecated_types: tuple[str, ...] = ()  # supported_task_types: propeller counts each as version 0

    @property
    def served(self) -> tuple[Category, ...]:
        return tuple(dict.fromkeys([*self.categories, *(Category(t) for t in self.deprecated_types)]))

    def describe(self) -> str:
        kind = "sync" if self.is_sync else "async"
        return f"{self.name or '(no name)'} [{kind}: {', '.join(map(str, self.served)) or 'no categories'}]"


@dataclass(frozen=True)
class Outcome:
    """How a call ended: the gRPC status code by name, its details and how long it took."""

    code: str
    details: str = ""
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.code == "OK"

    def describe(self) -> str:
        detail = " ".join(self.details.split())[:160]
        return f"{self.code}{': ' + detail if detail and not self.ok else ''} in {self.elapsed:.2f}s"


@dataclass(frozen=True)
class Resource:
    """The Resource of a GetTask answer or a sync header: phase (by name), deprecated state, message, outputs."""

    phase: str
    state: str = "RETRYABLE_FAILURE"
    message: str = ""
    outputs: int | None = None  # number of inline output literals; None when the Resource carries none

    def describe(self) -> str:
        parts = [self.phase if self.phase != "UNDEFINED" else f"phase unset, state {self.state}"]
        if self.outputs is not None:
            parts.append(f"{self.outputs} inline outputs")
        if self.message:
            parts.append(repr(" ".join(self.message.split())[:100]))
        return ", ".join(parts)


@dataclass(frozen=True)
class SyncReply:
    """One message the server streamed back on ExecuteTaskSync: a header with a Resource, or an outputs part."""

    header: Resource | None


@dataclass(frozen=True)
class Task:
    """What a check runs for one category: the template's source is "minimal" or the user's file."""

    category: Category
    source: str  # "minimal" or the path of the user's file

    @property
    def minimal(self) -> bool:
        return self.source == "minimal"


@dataclass(frozen=True)
class MinimalTemplate:
    """The smallest task template of a category that its agent can run: custom fields and string inputs."""

    category: Category
    custom: dict = field(default_factory=dict)
    string_inputs: dict = field(default_factory=dict)


def minimal_template(category: Category) -> MinimalTemplate:
    """flytekit's built-in sensor needs a sensor to poke (a FileSensor on "/", which exists, succeeds at once);
    every other category gets an empty custom and no inputs."""
    if category == Category("sensor"):
        return MinimalTemplate(category, {"sensor_module": "flytekit.sensor.file_sensor",
                                          "sensor_name": "FileSensor"}, {"path": "/"})
    return MinimalTemplate(category)


@dataclass(frozen=True)
class Row:
    """One check's result: what was sent, what came back, the verdict and what propeller does when it fails."""

    check: str
    subject: str
    sent: str
    got: str
    status: Status
    consequence: str = ""

    def to_dict(self) -> dict:
        return {"check": self.check, "subject": self.subject, "sent": self.sent, "got": self.got,
                "status": self.status.value, "propeller": self.consequence}


def _row(check: str, subject: str, sent: str, got: str, status: Status, consequence: str = "") -> Row:
    return Row(check, subject, sent, got, status, consequence if status in (Status.FAIL, Status.WARN) else "")


# ------------------------------------------------------------------------------------------------ health

def _service(name: str) -> str:
    return name.rpartition(".")[2] if name else '""'


NOT_READY = ("the chart's gRPC readiness probe fails: the pod never becomes Ready, its Service has no endpoints and "
             "propeller's calls to it fail UNAVAILABLE")


def judge_health(answers: dict[str, str]) -> Row:
    """answers: service name -> SERVING / NOT_SERVING / UNKNOWN, or a gRPC code (NOT_FOUND: not registered)."""
    got = ", ".join(f"{_service(name)}: {status}" for name, status in answers.items())
    sent = "grpc.health.v1.Health/Check for " + ", ".join(map(_service, answers))
    overall = answers.get("")
    bad = [name for name, status in answers.items() if name and status not in ("SERVING", "NOT_FOUND")]
    if overall == "UNIMPLEMENTED":
        return _row("health", "server", sent, "no grpc.health.v1 service (UNIMPLEMENTED)", Status.FAIL, NOT_READY)
    if overall != "SERVING" or bad:
        return _row("health", "server", sent, got, Status.FAIL, NOT_READY)
    return _row("health", "server", sent, got, Status.PASS)


# ------------------------------------------------------------------------------------------------ metadata

NO_DISCOVERY = ("propeller cannot discover this server's task types and falls back to config: each type must be "
                "listed in supportedTaskTypes or connectorForTaskTypes, and is always called as async")
LIST_ERROR = ("propeller logs the error and drops this deployment's task types for that poll (every 10 s), so "
              "their tasks are not routed here (Flyte <= 1.12 panics at start)")
LIST_SLOW = (f"propeller's ListAgents deadline ({LIST_TIMEOUT:g} s in the sandbox) expires: every poll fails, this "
             "deployment's task types are dropped and its tasks are not routed here; start-up waits the timeout")
LIST_SENT = f"ListAgents (propeller: at start and every 10 s, deadline {LIST_TIMEOUT:g} s)"


def judge_list_agents(outcome: Outcome, agents: Sequence[Agent]) -> Row:
    if outcome.code == "UNIMPLEMENTED":
        return _row("list-agents", "metadata", LIST_SENT, outcome.describe(), Status.FAIL, NO_DISCOVERY)
    if not outcome.ok:
        return _row("list-agents", "metadata", LIST_SENT, outcome.describe(), Status.FAIL, LIST_ERROR)
    got = f"{len(agents)} agents in {outcome.elapsed:.2f}s: " + "; ".join(a.describe() for a in agents)
    if outcome.elapsed > LIST_TIMEOUT:
        return _row("list-agents", "metadata", LIST_SENT, got, Status.FAIL, LIST_SLOW)
    problem = shape_problem(agents)
    if problem:
        return _row("list-agents", "metadata", LIST_SENT, f"{got} ({problem[0]})", problem[1], problem[2])
    if outcome.elapsed > LIST_TIMEOUT / 2:
        return _row("list-agents", "metadata", LIST_SENT, got, Status.WARN,
                    f"half of propeller's {LIST_TIMEOUT:g} s deadline: a busier server misses it and its types "
                    "are dropped for that poll")
    return _row("list-agents", "metadata", LIST_SENT, got, Status.PASS)


def shape_problem(agents: Sequence[Agent]) -> tuple[str, Status, str] | None:
    """The first thing wrong with the list's shape, as (what, verdict, propeller consequence)."""
    if not agents:
        return "no agents", Status.FAIL, "propeller routes no task type to this server"
    seen: dict[str, Agent] = {}
    for agent in agents:
        if not agent.served:
            return (f"agent {agent.name or '(no name)'} lists no task category", Status.WARN,
                    "propeller routes nothing to this agent")
        for category in agent.served:
            if not category.name:
                return (f"agent {agent.name or '(no name)'} lists a category without a name", Status.FAIL,
                        "propeller registers a task type named \"\" that no task has")
            earlier = seen.get(category.name)
            if earlier is not None and earlier is not agent:
                return (f"category {category.name} is listed by {earlier.name} and {agent.name}", Status.FAIL,
                        "propeller keeps only the last agent listed for a task type (its is_sync and version): "
                        "the other's tasks are called the wrong way")
            seen[category.name] = agent
        versions = [c.version for c in agent.served]
        names = [c.name for c in agent.served]
        if len(set(names)) != len(names):
            return (f"agent {agent.name} lists one category in several versions ({versions})", Status.WARN,
                    "propeller keeps one version per task type: tasks of the other versions are sent to the "
                    "default endpoint")
    if any(not a.name for a in agents):
        return "an agent has no name", Status.WARN, "GetAgent cannot name it; propeller itself only uses categories"
    return None


GET_AGENT_MISMATCH = ("propeller never calls GetAgent, but clients that do (the HTTP gateway's GET "
                      "/api/v1/agent/{name}) see a different agent than the one propeller routes by")


def judge_get_agent(listed: Sequence[Agent], answers: dict[str, tuple[Outcome, Agent | None]]) -> Row:
    """answers: agent name -> (outcome, the agent GetAgent returned)."""
    sent = f"GetAgent for each of the {len(listed)} listed agents"
    problems, unimplemented = [], []
    for agent in listed:
        outcome, got = answers[agent.name]
        if outcome.code == "UNIMPLEMENTED":
            unimplemented.append(agent.name)
        elif not outcome.ok:
            problems.append(f"{agent.name}: {outcome.describe()}")
        elif got is None or (got.name, got.is_sync, set(got.served)) != (agent.name, agent.is_sync, set(agent.served)):
            problems.append(f"{agent.name}: GetAgent says {got.describe() if got else 'nothing'}, "
                            f"ListAgents {agent.describe()}")
    if problems:
        return _row("get-agent", "metadata", sent, "; ".join(problems), Status.FAIL, GET_AGENT_MISMATCH)
    if unimplemented:
        return _row("get-agent", "metadata", sent, f"UNIMPLEMENTED for {', '.join(unimplemented)}", Status.WARN,
                    "propeller never calls GetAgent; only other clients (the HTTP gateway) miss it")
    return _row("get-agent", "metadata", sent, f"{len(listed)} agents, each as listed", Status.PASS)


# ------------------------------------------------------------------------------------------------ is_sync

def judge_is_sync(task: Task, declared_sync: bool, declared: Outcome, other: Outcome | None) -> Row:
    """declared: the call to the service is_sync names; other: the other service's answer (asked only when the
    declared one refused)."""
    service, other_service = ("SyncAgentService", "AsyncAgentService") if declared_sync else \
        ("AsyncAgentService", "SyncAgentService")
    call = "ExecuteTaskSync" if declared_sync else "CreateTask"
    sent = f"is_sync={str(declared_sync).lower()}: {call} on {service} ({_source(task)})"
    if declared.ok:
        return _row("is-sync", str(task.category), sent, f"{service} runs it: {declared.describe()}", Status.PASS)
    got = f"{service}: {declared.describe()}"
    if other is not None and other.ok:
        return _row("is-sync", str(task.category), sent, f"{got}; {other_service} runs it: {other.describe()}",
                    Status.FAIL, f"propeller calls {call} for {task.category.name} (is_sync="
                    f"{str(declared_sync).lower()}) and every such task fails with {declared.code}")
    got += f"; {other_service}: {other.describe()}" if other else ""
    return _row("is-sync", str(task.category), sent, got + " (neither service ran it)", Status.SKIP)


def _source(task: Task) -> str:
    return "minimal template" if task.minimal else f"template from {task.source}"


# ------------------------------------------------------------------------------------------------ unknown category

def judge_unknown_category(answers: dict[str, Outcome]) -> Row:
    """answers: call name (CreateTask, GetTask, ExecuteTaskSync) -> how it ended for UNKNOWN_CATEGORY."""
    sent = f"CreateTask, GetTask and ExecuteTaskSync for task type {UNKNOWN_CATEGORY.name} " \
           f"(deadline {CALL_TIMEOUT:g} s)"
    got = "; ".join(f"{call}: {outcome.describe()}" for call, outcome in answers.items())
    hung = [call for call, outcome in answers.items() if outcome.code in UNCLEAR]
    accepted = [call for call, outcome in answers.items() if outcome.ok]
    if hung:
        return _row("unknown-category", UNKNOWN_CATEGORY.name, sent, got, Status.FAIL,
                    f"{', '.join(hung)} did not say no: a task propeller sends here by mistake (unknown types go "
                    "to the default endpoint as async) waits out every deadline and fails with DEADLINE_EXCEEDED "
                    "after its retries instead of a clear error")
    if accepted:
        return _row("unknown-category", UNKNOWN_CATEGORY.name, sent, got, Status.FAIL,
                    f"{', '.join(accepted)} accepted a task type it does not serve: a task routed here by mistake "
                    "looks started or done without running")
    return _row("unknown-category", UNKNOWN_CATEGORY.name, sent, got, Status.PASS)


# ------------------------------------------------------------------------------------------------ async lifecycle

def judge_create(task: Task, outcome: Outcome, resource_meta: bytes) -> Row:
    sent = f"CreateTask ({_source(task)}, inputs, output_prefix, task_execution_metadata)"
    subject = str(task.category)
    if not outcome.ok:
        return _refused("create", task, sent, outcome, "CreateTask")
    got = f"resource_meta of {len(resource_meta)} bytes, {outcome.describe()}"
    if not resource_meta:
        return _row("create", subject, sent, got, Status.FAIL,
                    "propeller stores an empty resource_meta: GetTask and DeleteTask cannot name the job, so its "
                    "status is never known and an abort cannot cancel it")
    if outcome.elapsed > AGENT_PLUGIN_TIMEOUT:
        return _row("create", subject, sent, got, Status.WARN,
                    f"slower than the agent plugin's {AGENT_PLUGIN_TIMEOUT:g} s defaultTimeout (the connector "
                    f"plugin allows {CALL_TIMEOUT:g} s): CreateTask times out there and the task is retried")
    return _row("create", subject, sent, got, Status.PASS)


def _refused(check: str, task: Task, sent: str, outcome: Outcome, call: str) -> Row:
    """The server said no to our task: a WARN for a minimal template (its agent may need real fields), a FAIL for
    the user's own task."""
    if task.minimal and outcome.code not in UNCLEAR:
        return _row(check, str(task.category), sent, outcome.describe(), Status.WARN,
                    f"the server refused the minimal template, so {check} was not checked: pass --task with a "
                    "real task of this category")
    return _row(check, str(task.category), sent, outcome.describe(), Status.FAIL,
                f"every task of this type fails at {call} with {outcome.code}")


def judge_poll(task: Task, outcomes: Sequence[Outcome], resources: Sequence[Resource], waited: float) -> Row:
    """The GetTask calls made every second until a terminal phase, an error or the wait ran out."""
    sent = f"GetTask(resource_meta, task_category) every {POLL_INTERVAL:g} s, up to {waited:g} s"
    subject = str(task.category)
    phases = " -> ".join(dict.fromkeys(r.phase for r in resources)) or "nothing"
    if outcomes and not outcomes[-1].ok:
        return _row("get", subject, sent, f"{phases}, then {outcomes[-1].describe()}", Status.FAIL,
                    "propeller counts each GetTask error as a system failure and retries; after maxSystemFailures "
                    "(5) the task fails")
    last = resources[-1] if resources else None
    got = f"{len(resources)} answers: {phases}; last: {last.describe() if last else 'none'}"
    if last is None:
        return _row("get", subject, sent, got, Status.FAIL, "propeller gets no status for the job")
    unknown = [r.phase for r in resources if r.phase not in TERMINAL | RUNNING and
               not (r.phase == "UNDEFINED" and r.state in STATES)]
    if unknown:
        return _row("get", subject, sent, got, Status.FAIL,
                    f"propeller fails the task with a system error: unknown execution phase [{unknown[0]}]")
    if effective_phase(last) not in TERMINAL:
        return _row("get", subject, sent, got, Status.FAIL,
                    "propeller keeps polling GetTask and the node stays RUNNING until the task's or workflow's "
                    "timeout")
    if last.phase == "UNDEFINED" and last.state == "RETRYABLE_FAILURE":
        return _row("get", subject, sent, got, Status.FAIL,
                    "phase and state are unset: propeller reads the deprecated state, whose default means "
                    "RETRYABLE_FAILURE, and fails the attempt")
    if last.phase == "UNDEFINED":
        return _row("get", subject, sent, got, Status.WARN,
                    "phase is unset: propeller falls back to the deprecated state field; set phase")
    return _row("get", subject, sent, got, Status.PASS)


# The deprecated admin.State values propeller still maps when phase is UNDEFINED, and their phase.
STATES = {"PENDING": "INITIALIZING", "RUNNING": "RUNNING", "PERMANENT_FAILURE": "FAILED",
          "RETRYABLE_FAILURE": "RETRYABLE_FAILED", "SUCCEEDED": "SUCCEEDED"}


def effective_phase(resource: Resource) -> str:
    """The phase propeller acts on: phase, or the deprecated state when phase is UNDEFINED."""
    if resource.phase != "UNDEFINED":
        return resource.phase
    return STATES.get(resource.state, "UNDEFINED")


def keeps_running(resource: Resource) -> bool:
    """Whether propeller would poll again: a running phase (or state), not a terminal or unknown one."""
    return effective_phase(resource) in RUNNING


def judge_delete(task: Task, first: Outcome, second: Outcome) -> Row:
    sent = "DeleteTask(resource_meta, task_category) twice"
    got = f"first {first.describe()}; second {second.describe()}"
    subject = str(task.category)
    if not first.ok:
        return _row("delete", subject, sent, got, Status.FAIL,
                    "when a task is aborted or times out, propeller's DeleteTask fails and the remote job keeps "
                    "running")
    if not second.ok:
        return _row("delete", subject, sent, got, Status.FAIL,
                    "propeller may delete again (an abort after the job ended, a retried finalize): the second "
                    "DeleteTask failing fails the abort")
    return _row("delete", subject, sent, got, Status.PASS)


# ------------------------------------------------------------------------------------------------ sync stream

def judge_sync(task: Task, outcome: Outcome, replies: Sequence[SyncReply]) -> Row:
    sent = f"ExecuteTaskSync: header ({_source(task)}), inputs, close"
    subject = str(task.category)
    if not outcome.ok:
        return _refused("sync", task, sent, outcome, "ExecuteTaskSync")
    kinds = ", ".join("header: " + r.header.describe() if r.header else "outputs" for r in replies)
    got = f"{len(replies)} responses ({kinds or 'none'}), stream {outcome.describe()}"
    if not replies:
        return _row("sync", subject, sent, got, Status.FAIL,
                    "propeller's Recv gets end-of-stream and the task fails ('failed to receive stream from "
                    "server EOF')")
    if replies[0].header is None:
        return _row("sync", subject, sent, got, Status.FAIL,
                    "propeller fails the task: 'expected header in the response, but got none'")
    if len(replies) > 1:
        return _row("sync", subject, sent, got, Status.FAIL,
                    "propeller reads only the first response and cancels the stream: whatever the later ones "
                    "carry (outputs, the final phase) is lost")
    if effective_phase(replies[0].header) not in TERMINAL:
        return _row("sync", subject, sent, got, Status.FAIL,
                    "propeller takes the one response as final; a non-terminal phase makes it poll GetTask "
                    "without a resource_meta, which fails the task")
    return _row("sync", subject, sent, got, Status.PASS)


# ------------------------------------------------------------------------------------------------ concurrency

def judge_concurrency(calls: dict[str, list[Outcome]]) -> Row:
    """calls: call label -> the outcomes of its CONCURRENCY simultaneous copies (only calls that passed alone)."""
    sent = f"{CONCURRENCY} simultaneous copies of: {', '.join(calls) or 'nothing'}"
    failed = [f"{label}: {o.describe()}" for label, outcomes in calls.items() for o in outcomes if not o.ok]
    if not calls:
        return _row("concurrency", "server", sent, "no call passed alone", Status.SKIP)
    slowest = max((o.elapsed for outcomes in calls.values() for o in outcomes), default=0.0)
    got = f"{sum(len(o) for o in calls.values())} calls, slowest {slowest:.2f}s"
    if failed:
        return _row("concurrency", "server", sent, f"{got}; " + "; ".join(failed[:4]), Status.FAIL,
                    "propeller's workers (10 by default) call at the same time: calls that fail only together "
                    "fail tasks at random")
    return _row("concurrency", "server", sent, got, Status.PASS)


def skipped(check: str, subject: str, reason: str) -> Row:
    return Row(check, subject, "-", reason, Status.SKIP)


# ------------------------------------------------------------------------------------------------ the report

@dataclass(frozen=True)
class Report:
    endpoint: str
    via: str
    tasks: tuple[Task, ...]
    rows: tuple[Row, ...]

    @property
    def ok(self) -> bool:
        return not any(r.status is Status.FAIL for r in self.rows)

    def counts(self) -> dict[str, int]:
        return {s.value: sum(r.status is s for r in self.rows) for s in Status}

    def to_dict(self) -> dict:
        return {"endpoint": self.endpoint, "via": self.via, "ok": self.ok, "counts": self.counts(),
                "tasks": [{"category": t.category.name, "version": t.category.version, "template": t.source}
                          for t in self.tasks],
                "checks": [r.to_dict() for r in self.rows]}

    def to_junit(self) -> str:
        """JUnit XML for CI: one testcase per row; FAIL is a failure, SKIP skipped, WARN passes with its note."""
        counts = self.counts()
        suite = ET.Element("testsuite", name="flyte-agents conformance", tests=str(len(self.rows)),
                           failures=str(counts["FAIL"]), skipped=str(counts["SKIP"]), errors="0")
        ET.SubElement(ET.SubElement(suite, "properties"), "property", name="endpoint", value=self.endpoint)
        for row in self.rows:
            case = ET.SubElement(suite, "testcase", classname=f"conformance.{row.check}",
                                 name=f"{row.check} {row.subject}")
            if row.status is Status.FAIL:
                ET.SubElement(case, "failure", message=row.consequence).text = f"sent: {row.sent}\ngot: {row.got}"
            elif row.status is Status.SKIP:
                ET.SubElement(case, "skipped", message=row.got)
            out = f"{row.status.value}\nsent: {row.sent}\ngot: {row.got}"
            ET.SubElement(case, "system-out").text = out + (f"\npropeller: {row.consequence}" if row.consequence
                                                            else "")
        return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
