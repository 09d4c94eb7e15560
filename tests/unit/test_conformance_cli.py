"""`flyte-agents conformance` input: every option and --task file validated before the first connection, each
mistake one `error:` line with exit 2; task files read in the formats flytekit writes."""
from __future__ import annotations

import pytest
from flyteidl.admin import task_pb2
from flyteidl.core import literals_pb2, tasks_pb2
from google.protobuf import json_format

from flyte_agents.cli.main import main
from flyte_agents.errors import UserError
from flyte_agents.flyte.conformance import Category
from flyte_agents.workflows import conformance as wf

# Port 9 (discard) on loopback: nothing may be contacted before the input is found wrong, so no test here needs it.
ENDPOINT = "127.0.0.1:9"


def run(capsys, *args: str) -> tuple[int, str]:
    code = main(["conformance", *args])
    captured = capsys.readouterr()
    assert captured.out == ""
    return code, captured.err.strip()


@pytest.mark.parametrize("args, words", [
    ((), "give --endpoint HOST:PORT or --service ID"),
    (("--endpoint", ENDPOINT, "--service", "demo"), "give --endpoint HOST:PORT or --service ID"),
    (("--service", "a", "--service", "b"), "one service at a time"),
    (("--endpoint", "localhost"), "is not HOST:PORT"),
    (("--endpoint", "localhost:http"), "is not HOST:PORT"),
    (("--endpoint", "localhost:70000"), "is not HOST:PORT"),
    (("--endpoint", ENDPOINT, "--wait", "0"), "'--wait': '0' is not a number of seconds above 0"),
    (("--endpoint", ENDPOINT, "--output", "xml"), "--output 'xml' is unknown"),
    (("--endpoint", ENDPOINT, "--junit", "/no/such/dir/j.xml"), "directory /no/such/dir does not exist"),
    (("--endpoint", ENDPOINT, "--task", "/no/such/task.pb"), "--task /no/such/task.pb does not exist"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args, words):
    code, err = run(capsys, *args)
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ") and words in err


def test_help_shows_an_example_and_the_exit_codes(capsys):
    assert main(["conformance", "--help"]) == 0
    out = capsys.readouterr().out
    assert "flyte-agents conformance --endpoint localhost:8000" in out and "16 a check failed" in out


# ------------------------------------------------------------------------------------------------ --task files

def template(task_type: str = "my_type", version: int = 0) -> tasks_pb2.TaskTemplate:
    return tasks_pb2.TaskTemplate(type=task_type, task_type_version=version)


@pytest.mark.parametrize("name, data", [
    ("spec.pb", task_pb2.TaskSpec(template=template()).SerializeToString()),  # pyflyte serialize / package
    ("template.pb", template().SerializeToString()),
    ("spec.json", json_format.MessageToJson(task_pb2.TaskSpec(template=template())).encode()),
    ("template.json", json_format.MessageToJson(template()).encode()),
])
def test_task_templates_in_each_format(tmp_path, name, data):
    (tmp_path / name).write_bytes(data)
    files = wf.load_task_files((str(tmp_path / name),))
    assert list(files) == [Category("my_type")] and files[Category("my_type")].template == template()
    assert files[Category("my_type")].inputs == literals_pb2.LiteralMap()


def test_inputs_after_a_colon_pb_or_json(tmp_path):
    inputs = literals_pb2.LiteralMap(literals={"x": literals_pb2.Literal(scalar=literals_pb2.Scalar(
        primitive=literals_pb2.Primitive(integer=3)))})
    (tmp_path / "t.pb").write_bytes(template(version=2).SerializeToString())
    (tmp_path / "in.pb").write_bytes(inputs.SerializeToString())
    (tmp_path / "in.json").write_text(json_format.MessageToJson(inputs))
    for name in ("in.pb", "in.json"):
        loaded = wf.load_task_files((f"{tmp_path / 't.pb'}:{tmp_path / name}",))[Category("my_type", 2)]
        assert loaded.inputs == inputs and loaded.path == str(tmp_path / "t.pb")


@pytest.mark.parametrize("name, data, words", [
    ("garbage.pb", b"\xff\xfe not a proto", "not a task template with a type"),
    ("typeless.pb", tasks_pb2.TaskTemplate().SerializeToString(), "not a task template with a type"),
    ("bad.json", b"{\"type\": 3, \"nonsense\": true}", "not a task template with a type"),
])
def test_unreadable_templates_are_user_errors(tmp_path, name, data, words):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(UserError, match=words):
        wf.load_task_files((str(tmp_path / name),))


def test_bad_inputs_and_two_files_for_one_category_are_user_errors(tmp_path):
    (tmp_path / "t.pb").write_bytes(template().SerializeToString())
    (tmp_path / "in.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="not a core.LiteralMap"):
        wf.load_task_files((f"{tmp_path / 't.pb'}:{tmp_path / 'in.json'}",))
    with pytest.raises(UserError, match="category my_type is already given by"):
        wf.load_task_files((str(tmp_path / "t.pb"), str(tmp_path / "t.pb")))
