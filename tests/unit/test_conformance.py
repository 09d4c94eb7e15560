"""The conformance checks' verdicts (flyte/conformance.py): each observation a server can give, judged the way
propeller would be affected by it."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from flyte_agents.flyte import conformance as cf
from flyte_agents.flyte.conformance import Agent, Category, Outcome, Resource, Status, SyncReply, Task

OK = Outcome("OK", elapsed=0.01)
DEMO = Category("demo")
ASYNC = Agent("Demo", False, (DEMO,))
SYNC = Agent("Hook", True, (Category("webhook"),))
MINIMAL = Task(DEMO, "minimal")
FILE = Task(DEMO, "task.pb")


def code(name: str, elapsed: float = 0.01) -> Outcome:
    return Outcome(name, f"{name.lower()} details", elapsed)


# ------------------------------------------------------------------------------------------------ models

def test_category_shows_its_version_only_when_not_zero():
    assert (str(Category("a")), str(Category("a", 2))) == ("a", "a (v2)")


def test_deprecated_task_types_count_as_version_zero_once():
    agent = Agent("x", False, (Category("a"), Category("b", 1)), ("a", "c"))
    assert agent.served == (Category("a"), Category("b", 1), Category("c"))


def test_minimal_templates_know_flytekits_sensor_and_default_to_empty():
    sensor = cf.minimal_template(Category("sensor"))
    assert sensor.custom["sensor_name"] == "FileSensor" and sensor.string_inputs == {"path": "/"}
    assert cf.minimal_template(DEMO) == cf.MinimalTemplate(DEMO, {}, {})


@pytest.mark.parametrize("resource, phase", [
    (Resource("SUCCEEDED"), "SUCCEEDED"),
    (Resource("UNDEFINED", "RUNNING"), "RUNNING"),
    (Resource("UNDEFINED", "SUCCEEDED"), "SUCCEEDED"),
    (Resource("UNDEFINED", "RETRYABLE_FAILURE"), "RETRYABLE_FAILED"),  # the default state: an unset Resource
    (Resource("UNDEFINED", "7"), "UNDEFINED"),
])
def test_effective_phase_falls_back_to_the_deprecated_state(resource, phase):
    assert cf.effective_phase(resource) == phase


@pytest.mark.parametrize("phase, running", [("QUEUED", True), ("RUNNING", True), ("INITIALIZING", True),
                                            ("SUCCEEDED", False), ("FAILED", False), ("99", False)])
def test_keeps_running_only_for_running_phases(phase, running):
    assert cf.keeps_running(Resource(phase)) is running


# ------------------------------------------------------------------------------------------------ health

SERVING = {s: "SERVING" for s in cf.HEALTH_SERVICES}


def test_health_passes_when_all_serve_or_a_service_is_not_registered():
    assert cf.judge_health(SERVING).status is Status.PASS
    assert cf.judge_health({**SERVING, cf.METADATA_SERVICE: "NOT_FOUND"}).status is Status.PASS


@pytest.mark.parametrize("answers", [
    {**SERVING, "": "NOT_SERVING"},
    {**SERVING, cf.ASYNC_SERVICE: "NOT_SERVING"},
    {s: "UNIMPLEMENTED" for s in cf.HEALTH_SERVICES},
    {**SERVING, "": "UNKNOWN"},
])
def test_health_fails_with_the_readiness_consequence(answers):
    row = cf.judge_health(answers)
    assert row.status is Status.FAIL and "readiness probe" in row.consequence


# ------------------------------------------------------------------------------------------------ ListAgents

def test_list_agents_passes_a_good_fast_list():
    row = cf.judge_list_agents(OK, [ASYNC, SYNC])
    assert row.status is Status.PASS and row.consequence == ""
    assert "Demo [async: demo]" in row.got and "Hook [sync: webhook]" in row.got


def test_list_agents_unimplemented_means_config_only_routing():
    row = cf.judge_list_agents(code("UNIMPLEMENTED"), [])
    assert row.status is Status.FAIL and "falls back to config" in row.consequence


def test_list_agents_other_errors_drop_the_types_for_the_poll():
    row = cf.judge_list_agents(code("INTERNAL"), [])
    assert row.status is Status.FAIL and "drops this deployment's task types" in row.consequence


def test_list_agents_slower_than_propellers_deadline_fails():
    row = cf.judge_list_agents(Outcome("OK", elapsed=cf.LIST_TIMEOUT + 0.5), [ASYNC])
    assert row.status is Status.FAIL and "deadline (3 s" in row.consequence


def test_list_agents_past_half_the_deadline_warns():
    assert cf.judge_list_agents(Outcome("OK", elapsed=cf.LIST_TIMEOUT * 0.6), [ASYNC]).status is Status.WARN


@pytest.mark.parametrize("agents, status, words", [
    ([], Status.FAIL, "routes no task type"),
    ([Agent("empty", False)], Status.WARN, "routes nothing to this agent"),
    ([Agent("x", False, (Category(""),))], Status.FAIL, 'named ""'),
    ([ASYNC, Agent("Other", True, (DEMO,))], Status.FAIL, "keeps only the last agent"),
    ([Agent("v", False, (DEMO, Category("demo", 1)))], Status.WARN, "one version per task type"),
    ([Agent("", False, (DEMO,))], Status.WARN, "GetAgent cannot name it"),
])
def test_list_agents_shape_problems(agents, status, words):
    row = cf.judge_list_agents(OK, agents)
    assert row.status is status and words in row.consequence


# ------------------------------------------------------------------------------------------------ GetAgent

def test_get_agent_agrees():
    row = cf.judge_get_agent([ASYNC, SYNC], {"Demo": (OK, ASYNC), "Hook": (OK, SYNC)})
    assert row.status is Status.PASS


def test_get_agent_compares_deprecated_types_as_categories():
    listed = Agent("Demo", False, (), ("demo",))
    assert cf.judge_get_agent([listed], {"Demo": (OK, ASYNC)}).status is Status.PASS


@pytest.mark.parametrize("answer", [(OK, Agent("Demo", True, (DEMO,))), (OK, Agent("Demo", False, ())),
                                    (code("NOT_FOUND"), None), (OK, None)])
def test_get_agent_disagreeing_fails(answer):
    row = cf.judge_get_agent([ASYNC], {"Demo": answer})
    assert row.status is Status.FAIL and "never calls GetAgent" in row.consequence


def test_get_agent_unimplemented_only_warns():
    assert cf.judge_get_agent([ASYNC], {"Demo": (code("UNIMPLEMENTED"), None)}).status is Status.WARN


# ------------------------------------------------------------------------------------------------ is_sync

def test_is_sync_passes_when_the_declared_service_runs_it():
    row = cf.judge_is_sync(MINIMAL, False, OK, None)
    assert row.status is Status.PASS and "CreateTask on AsyncAgentService" in row.sent


@pytest.mark.parametrize("declared_sync, call", [(True, "ExecuteTaskSync"), (False, "CreateTask")])
def test_is_sync_wrong_fails_naming_the_call_propeller_makes(declared_sync, call):
    row = cf.judge_is_sync(MINIMAL, declared_sync, code("NOT_FOUND"), OK)
    assert row.status is Status.FAIL
    assert f"propeller calls {call} for demo" in row.consequence and "fails with NOT_FOUND" in row.consequence


def test_is_sync_skips_when_neither_service_runs_it():
    assert cf.judge_is_sync(MINIMAL, False, code("INTERNAL"), code("INTERNAL")).status is Status.SKIP


# ------------------------------------------------------------------------------------------------ unknown category

def test_unknown_category_refused_clearly_passes():
    row = cf.judge_unknown_category({"CreateTask": code("NOT_FOUND"), "GetTask": code("INVALID_ARGUMENT"),
                                     "ExecuteTaskSync": code("UNIMPLEMENTED")})
    assert row.status is Status.PASS


def test_unknown_category_hanging_fails():
    row = cf.judge_unknown_category({"CreateTask": code("DEADLINE_EXCEEDED", 10.0), "GetTask": code("NOT_FOUND")})
    assert row.status is Status.FAIL and row.consequence.startswith("CreateTask did not say no")


def test_unknown_category_accepted_fails():
    row = cf.judge_unknown_category({"CreateTask": OK, "GetTask": code("NOT_FOUND")})
    assert row.status is Status.FAIL and "accepted a task type it does not serve" in row.consequence


# ------------------------------------------------------------------------------------------------ async lifecycle

def test_create_with_resource_meta_passes():
    row = cf.judge_create(MINIMAL, OK, b"{}")
    assert row.status is Status.PASS and "minimal template" in row.sent


def test_create_with_empty_resource_meta_fails():
    row = cf.judge_create(FILE, OK, b"")
    assert row.status is Status.FAIL and "empty resource_meta" in row.consequence and "task.pb" in row.sent


def test_create_slower_than_the_agent_plugins_timeout_warns():
    assert cf.judge_create(MINIMAL, Outcome("OK", elapsed=4.0), b"x").status is Status.WARN


def test_a_refused_minimal_template_warns_but_a_refused_user_task_fails():
    warn = cf.judge_create(MINIMAL, code("INTERNAL"), b"")
    fail = cf.judge_create(FILE, code("INTERNAL"), b"")
    assert warn.status is Status.WARN and "--task" in warn.consequence
    assert fail.status is Status.FAIL and "fails at CreateTask with INTERNAL" in fail.consequence


def test_a_minimal_template_that_times_out_still_fails():
    assert cf.judge_create(MINIMAL, code("DEADLINE_EXCEEDED"), b"").status is Status.FAIL


def poll(*phases: str, last: Outcome = OK) -> cf.Row:
    resources = [Resource(p) for p in phases]
    return cf.judge_poll(MINIMAL, [OK] * len(phases) + ([] if last.ok else [last]), resources, 5)


def test_poll_to_a_terminal_phase_passes():
    row = poll("RUNNING", "SUCCEEDED")
    assert row.status is Status.PASS and "RUNNING -> SUCCEEDED" in row.got


def test_poll_ending_failed_is_still_the_protocol_kept():
    assert poll("FAILED").status is Status.PASS


def test_poll_never_terminal_fails():
    row = poll("RUNNING", "RUNNING")
    assert row.status is Status.FAIL and "stays RUNNING" in row.consequence


def test_poll_error_fails_with_system_failures():
    row = poll("RUNNING", last=code("INTERNAL"))
    assert row.status is Status.FAIL and "maxSystemFailures" in row.consequence


def test_poll_unknown_phase_fails():
    row = poll("42")
    assert row.status is Status.FAIL and "unknown execution phase [42]" in row.consequence


def test_poll_phase_unset_with_a_state_warns_and_without_fails():
    state = cf.judge_poll(MINIMAL, [OK], [Resource("UNDEFINED", "SUCCEEDED")], 5)
    unset = cf.judge_poll(MINIMAL, [OK], [Resource("UNDEFINED")], 5)
    assert state.status is Status.WARN and "deprecated state" in state.consequence
    assert unset.status is Status.FAIL and "RETRYABLE_FAILURE" in unset.consequence


def test_poll_without_answers_fails():
    assert cf.judge_poll(MINIMAL, [], [], 5).status is Status.FAIL


def test_delete_twice_harmless_passes():
    assert cf.judge_delete(MINIMAL, OK, OK).status is Status.PASS


def test_delete_errors_fail_with_their_own_consequence():
    first = cf.judge_delete(MINIMAL, code("INTERNAL"), OK)
    second = cf.judge_delete(MINIMAL, OK, code("NOT_FOUND"))
    assert first.status is second.status is Status.FAIL
    assert "remote job keeps running" in first.consequence and "second DeleteTask" in second.consequence


# ------------------------------------------------------------------------------------------------ sync

def header(phase: str = "SUCCEEDED") -> SyncReply:
    return SyncReply(Resource(phase, outputs=1))


def test_sync_one_terminal_header_passes():
    row = cf.judge_sync(MINIMAL, OK, [header()])
    assert row.status is Status.PASS and "1 responses (header: SUCCEEDED, 1 inline outputs)" in row.got


@pytest.mark.parametrize("replies, words", [
    ([], "end-of-stream"),
    ([header(), header()], "reads only the first response"),
    ([SyncReply(None)], "expected header"),
    ([header("RUNNING")], "non-terminal phase"),
])
def test_sync_protocol_violations_fail(replies, words):
    row = cf.judge_sync(MINIMAL, OK, replies)
    assert row.status is Status.FAIL and words in row.consequence


def test_sync_refusals_follow_the_template_source():
    assert cf.judge_sync(MINIMAL, code("INTERNAL"), []).status is Status.WARN
    assert cf.judge_sync(FILE, code("INTERNAL"), []).status is Status.FAIL


# ------------------------------------------------------------------------------------------------ concurrency

def test_concurrency_all_ok_passes_any_error_fails_nothing_skips():
    assert cf.judge_concurrency({"ListAgents": [OK] * cf.CONCURRENCY}).status is Status.PASS
    row = cf.judge_concurrency({"ListAgents": [OK, code("RESOURCE_EXHAUSTED")]})
    assert row.status is Status.FAIL and "RESOURCE_EXHAUSTED" in row.got and "workers" in row.consequence
    assert cf.judge_concurrency({}).status is Status.SKIP


# ------------------------------------------------------------------------------------------------ report

def report() -> cf.Report:
    rows = (cf.judge_health(SERVING), cf.judge_list_agents(code("UNIMPLEMENTED"), []),
            cf.skipped("get-agent", "metadata", "ListAgents named no agent"),
            cf.judge_create(MINIMAL, Outcome("OK", elapsed=4.0), b"x"))
    return cf.Report("127.0.0.1:8000", "--endpoint", (MINIMAL, FILE), rows)


def test_report_counts_and_fails_when_any_row_fails():
    assert report().counts() == {"PASS": 1, "WARN": 1, "FAIL": 1, "SKIP": 1}
    assert not report().ok
    assert cf.Report("a", "b", (), (cf.judge_health(SERVING),)).ok


def test_report_json_says_which_template_each_category_used():
    data = report().to_dict()
    assert data["tasks"] == [{"category": "demo", "version": 0, "template": "minimal"},
                             {"category": "demo", "version": 0, "template": "task.pb"}]
    assert [c["status"] for c in data["checks"]] == ["PASS", "FAIL", "SKIP", "WARN"]
    assert data["checks"][1]["propeller"] == cf.NO_DISCOVERY and data["checks"][0]["propeller"] == ""


def test_report_junit_has_a_failure_a_skip_and_the_warning_in_system_out():
    suite = ET.fromstring(report().to_junit())
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "1", "1")
    cases = suite.findall("testcase")
    assert cases[1].find("failure").get("message") == cf.NO_DISCOVERY
    assert cases[2].find("skipped") is not None
    assert cases[3].find("failure") is None and cases[3].find("system-out").text.startswith("WARN")
