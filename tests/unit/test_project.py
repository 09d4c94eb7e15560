"""The project file: the repository's own example loads, and bad input is one line naming the field and the fix."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flyte_agents.errors import UserError
from flyte_agents.workflows.project import load, parse

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((REPO / "flyte-agents.yaml").read_text())


def test_the_repository_example_is_prod_default_and_dev_verify_only():
    project = load(REPO / "flyte-agents.yaml")
    prod, dev = project.services
    assert (prod.id, prod.environment, prod.default, prod.route, prod.task_types) == \
        ("demo-prod", "prod", True, True, ("flyte_agents_demo",))
    assert (dev.id, dev.environment, dev.route) == ("demo-dev", "dev", False)
    assert [p.name for p in prod.values + prod.sandbox_values] == ["base.yaml", "prod.yaml", "sandbox.yaml"]
    assert project.images["agent"].context == REPO / "agent_image"
    assert project.builtin == "keep" and project.select("dev") == (dev,)


def _with(path: str, value):
    doc = copy.deepcopy(EXAMPLE)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return doc


_DELETE = object()

CASES = [
    ("kind", "Thing", "apiVersion/kind must be flyte-agents.dev/v1alpha1 / Project"),
    ("colour", "blue", "unknown field colour: use one of"),
    ("services.demo-prod.valuez", [], "unknown field services.demo-prod.valuez"),
    ("services.demo-prod.image", "missing", "services.demo-prod.image 'missing' is not defined under images"),
    ("services.demo-prod.values", ["values/nope.yaml"], "services.demo-prod.values[0] 'values/nope.yaml' does not "
                                                         "exist"),
    ("services.demo-prod.values", ["values"], "services.demo-prod.values[0] 'values' is a directory, not a file"),
    ("services.demo-prod.values", "values/base.yaml", "services.demo-prod.values must be a list"),
    ("services.demo-prod.taskTypes", ["Upper"], "services.demo-prod: service demo-prod: task type 'Upper' has "
                                                "uppercase letters"),
    ("services.demo-prod.route", "yes", "services.demo-prod.route must be true or false"),
    ("services.demo-prod.environment", None, "services.demo-prod.environment is missing: set it"),
    ("services.demo-dev.route", True, "task type 'flyte_agents_demo' is routed to both demo-prod and demo-dev"),
    ("services.demo-dev.default", True, "services.demo-dev is default but route is false"),
    ("images.agent.context", "no_such_dir", "images.agent.context 'no_such_dir' does not exist"),
    ("images.agent.repository", "Bad Name", "images.agent.repository 'Bad Name' is not a repository path"),
    ("images.agent.buildArgs", {"X": True}, "images.agent.buildArgs.X must be a string"),
    ("sandbox.builtin", "maybe", "sandbox.builtin 'maybe' is unknown: use keep"),
    ("namespace", "Flyte_NS", "namespace 'Flyte_NS' is invalid"),
    ("chart", "values", "chart"),
    ("services", {}, "services is empty"),
    ("images", _DELETE, "images is missing"),
]


@pytest.mark.parametrize("field, value, message", CASES, ids=[c[0] + "=" + str(c[1])[:12] for c in CASES])
def test_bad_project_files_name_the_field(field, value, message):
    with pytest.raises(UserError) as caught:
        parse(_with(field, value), REPO / "flyte-agents.yaml")
    text = str(caught.value)
    assert message in text and "\n" not in text


def test_cli_reports_a_bad_project_file_in_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "flyte-agents.yaml"
    bad.write_text("apiVersion: flyte-agents.dev/v1alpha1\nkind: Project\nservices: [\n")
    proc = subprocess.run([sys.executable, "-m", "flyte_agents.cli.main", "deploy", "--sandbox", "--dry-run",
                           "--project", str(bad)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(f"error: project file {bad} is not valid YAML at line 4")
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_a_routed_service_without_task_types_discovers_them():
    doc = _with("services.demo-dev.taskTypes", _DELETE)
    doc["services"]["demo-dev"]["route"] = True
    del doc["services"]["demo-prod"]["taskTypes"]
    prod, dev = parse(doc, REPO / "flyte-agents.yaml").services
    assert (dev.discover, dev.task_types, prod.discover) == (True, (), True)
    unrouted = _with("services.demo-dev.taskTypes", _DELETE)
    assert parse(unrouted, REPO / "flyte-agents.yaml").services[1].discover is False  # nothing to route


def test_an_empty_task_type_list_says_how_to_discover():
    doc = _with("services.demo-dev.taskTypes", [])
    doc["services"]["demo-dev"]["route"] = True
    with pytest.raises(UserError, match=r"services.demo-dev.taskTypes is empty: list the task types it serves, or "
                                        "omit taskTypes to discover them"):
        parse(doc, REPO / "flyte-agents.yaml")
