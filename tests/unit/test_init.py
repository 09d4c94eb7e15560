"""`flyte-agents init`: names and their one-line errors, both flytekit namings, refuse-to-overwrite, --dry-run, and
adding a service to an existing project file without changing a line the user wrote."""
from __future__ import annotations

import ast
import difflib
import fnmatch
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from flyte_agents.cli.main import main
from flyte_agents.errors import UserError
from flyte_agents.flyte import scaffold as core
from flyte_agents.flyte.versions import FlyteVersion
from flyte_agents.workflows import project as projects
from flyte_agents.workflows import scaffold as wf

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "toolkit" / "flyte_agents" / "templates"


def init(tmp_path: Path, name: str = "my-agent", *args: str) -> int:
    return main(["init", name, "--into", str(tmp_path), *args])


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def generated(tmp_path: Path, name: str, *args: str) -> dict[str, str]:
    assert init(tmp_path, name, *args) == 0
    return {path: content.decode() for path, content in tree(tmp_path).items()}


# ------------------------------------------------------------------------------------------------ names

@pytest.mark.parametrize("name, package, service, task_type, agent_class", [
    ("my-agent", "my_agent", "my-agent", "my_agent", "MyConnector"),  # a trailing "agent" is not repeated
    ("bigquery_lookup", "bigquery_lookup", "bigquery-lookup", "bigquery_lookup", "BigqueryLookupConnector"),
    ("q2", "q2", "q2", "q2", "Q2Connector"),
])
def test_names_derive_package_service_task_type_and_classes(tmp_path, name, package, service, task_type,
                                                            agent_class):
    names = core.names_for(name, None)
    assert (names.package, names.service_id, names.task_type) == (package, service, task_type)
    files = generated(tmp_path, name)
    code = files[f"{service}/{package}/{package}/connector.py"]
    assert f"class {agent_class}(AsyncConnectorBase):" in code and f'TASK_TYPE = "{task_type}"' in code
    assert f'name = "{package.replace("_", "-")}"' in files[f"{service}/{package}/pyproject.toml"]


@pytest.mark.parametrize("name, message", [
    ("My-Agent", "NAME 'My-Agent' is not a valid agent name"),
    ("1agent", "NAME '1agent' is not a valid agent name"),
    ("my--agent", "NAME 'my--agent' is not a valid agent name"),
    ("my agent", "NAME 'my agent' is not a valid agent name"),
    ("a" * 41, "at most 40 characters"),
    ("json", "the Python package 'json' would shadow a module"),
    ("class", "the Python package 'class' would shadow"),
    ("flytekit", "the Python package 'flytekit' would shadow"),
])
def test_invalid_names_are_one_line_errors(tmp_path, capsys, name, message):
    assert init(tmp_path, name) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert tree(tmp_path) == {}


@pytest.mark.parametrize("task_type, message", [
    ("My_Type", "has uppercase letters"),
    ("two words", "contains spaces"),
    ("sensor", "served by another propeller plugin or by flytekit itself"),
    ("python-task", "served by another propeller plugin"),
    ("bad/type", "is invalid"),
])
def test_invalid_task_types_are_one_line_errors(tmp_path, capsys, task_type, message):
    assert init(tmp_path, "my-agent", "--task-type", task_type) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --task-type {task_type!r}") and message in err and err.count("\n") == 1
    assert tree(tmp_path) == {}


@pytest.mark.parametrize("version, message", [
    ("1.12", "agents are discovered by polling only from 1.13"),
    ("2.0", "Flyte 2 uses an incompatible connector protocol"),
    ("1.17", "init generates agents for Flyte 1.13, 1.14, 1.15, 1.16"),
    ("latest", "is not a Flyte version"),
])
def test_unsupported_flyte_versions_are_one_line_errors(tmp_path, capsys, version, message):
    assert init(tmp_path, "my-agent", "--flyte-version", version) == 2
    assert message in capsys.readouterr().err
    assert tree(tmp_path) == {}


def test_the_task_type_option_is_what_the_service_routes(tmp_path):
    files = generated(tmp_path, "my-agent", "--task-type", "my_query.v2")
    assert 'TASK_TYPE = "my_query.v2"' in files["my-agent/my_agent/my_agent/connector.py"]
    assert projects.load(tmp_path / "flyte-agents.yaml").service("my-agent").task_types == ("my_query.v2",)


# ------------------------------------------------------------------------------------------------ namings

@pytest.mark.parametrize("version, mode, module, names, serve, flytekit", [
    ("1.16", "--async", "connector", ("base_connector", "AsyncConnectorBase", "AsyncConnectorExecutorMixin",
                                      "ConnectorRegistry"), "connector", "1.16.31"),
    ("1.16", "--sync", "connector", ("base_connector", "SyncConnectorBase", "SyncConnectorExecutorMixin",
                                     "ConnectorRegistry"), "connector", "1.16.31"),
    ("1.15", "--async", "agent", ("base_agent", "AsyncAgentBase", "AsyncAgentExecutorMixin", "AgentRegistry"),
     "agent", "1.15.4"),
    ("1.15.3", "--sync", "agent", ("base_agent", "SyncAgentBase", "SyncAgentExecutorMixin", "AgentRegistry"),
     "agent", "1.15.4"),
])
def test_each_flytekit_generation_gets_its_own_names(tmp_path, version, mode, module, names, serve, flytekit):
    files = generated(tmp_path, "my-agent", mode, "--flyte-version", version)
    code = files[f"my-agent/my_agent/my_agent/{module}.py"]
    base_module, base, mixin, registry = names
    imports = [n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.ImportFrom)
               and n.module == f"flytekit.extend.backend.{base_module}"]
    assert len(imports) == 1 and {base, mixin, registry} <= {a.name for a in imports[0].names}
    assert f"class My{module.capitalize()}({base}):" in code
    assert f"class MyTask({mixin}, PythonTask):" in code and f"{registry}.register(My{module.capitalize()}())" in code
    other = "agent" if module == "connector" else "connector"
    assert other.capitalize() not in code  # no name of the other generation
    assert ("async def create" in code) == (mode == "--async") and ("def do(" in code) == (mode == "--sync")
    dockerfile = files["my-agent/Dockerfile"]
    assert dockerfile.count(f"ARG FLYTEKIT_VERSION={flytekit}\n") == 2
    assert dockerfile.count(f"ARG FLYTEKIT_EXTRA={serve}\n") == 2
    assert f"pyflyte serve {serve}" in files["my-agent/README.md"]
    service = projects.load(tmp_path / "flyte-agents.yaml").service("my-agent")
    assert service.sync == (mode == "--sync")
    for path, content in files.items():
        if path.endswith(".py"):
            ast.parse(content, path)  # every generated module is Python
        assert "{{" not in content, path


def test_generated_dockerfile_is_the_agent_image_layout(tmp_path):
    """The template follows agent_image/Dockerfile (dependencies and agent code in separate layers): it differs
    only in the flytekit version and extra it defaults to."""
    files = generated(tmp_path, "my-agent")
    assert files["my-agent/Dockerfile"] == (REPO / "agent_image" / "Dockerfile").read_text()


def test_generated_package_declares_the_plugin_entry_point(tmp_path):
    files = generated(tmp_path, "my-agent", "--flyte-version", "1.15")
    pyproject = tomllib.loads(files["my-agent/my_agent/pyproject.toml"])
    assert pyproject["project"]["entry-points"]["flytekit.plugins"] == {"my_agent": "my_agent"}
    assert pyproject["project"]["dependencies"] == ["flytekit>=1.13,<2"]
    assert pyproject["tool"]["setuptools"]["packages"] == ["my_agent"]
    assert files["my-agent/requirements.txt"].splitlines()[-1] == "./my_agent"


# ------------------------------------------------------------------------------------------------ the project file

def test_a_new_project_file_loads_with_the_service(tmp_path):
    generated(tmp_path, "my-agent", "--sync")
    project = projects.load(tmp_path / "flyte-agents.yaml")
    service = project.service("my-agent")
    assert (service.environment, service.image, service.task_types, service.route, service.sync) == \
        ("dev", "my-agent", ("my_agent",), True, True)
    assert [p.relative_to(tmp_path).as_posix() for p in service.values + service.sandbox_values] == \
        ["values/my-agent/base.yaml", "values/my-agent/dev.yaml", "values/my-agent/sandbox.yaml"]
    image = project.images["my-agent"]
    assert (image.context, image.repository) == (tmp_path / "my-agent", "my-agent")
    assert (project.chart / "Chart.yaml").is_file()


def _existing_project(tmp_path: Path, text: str) -> Path:
    """The repository's project layout (chart, values, image context) under tmp_path with `text` as its file."""
    shutil.copytree(REPO / "charts", tmp_path / "charts")
    shutil.copytree(REPO / "values", tmp_path / "values")
    (tmp_path / "agent_image").mkdir()
    shutil.copy(REPO / "agent_image" / "Dockerfile", tmp_path / "agent_image" / "Dockerfile")
    (tmp_path / "flyte-agents.yaml").write_text(text)
    return tmp_path / "flyte-agents.yaml"


def _only_additions(old: str, new: str) -> list[str]:
    """The added lines; fails when a line of `old` is missing or moved."""
    diff = list(difflib.ndiff(old.splitlines(), new.splitlines()))
    assert [d for d in diff if d.startswith("- ")] == []
    return [d[2:] for d in diff if d.startswith("+ ")]


def _four_spaces(text: str) -> str:
    return "\n".join(" " * (2 * (len(line) - len(line.lstrip(" ")))) + line.lstrip(" ") for line in
                     text.splitlines()) + "\n"


@pytest.mark.parametrize("indent", ["as the repository has it", "four spaces"])
def test_adding_services_keeps_every_line_comment_and_order_of_the_project_file(tmp_path, indent):
    original = (REPO / "flyte-agents.yaml").read_text()
    if indent == "four spaces":
        original = _four_spaces(original)
    file = _existing_project(tmp_path, original)
    before = projects.load(file)

    assert init(tmp_path, "my-agent") == 0
    assert init(tmp_path, "my-lookup", "--sync") == 0
    text = file.read_text()
    added = _only_additions(original, text)
    assert any("# my-agent: added by `flyte-agents init`" in line for line in added)
    key_indent = next(line for line in original.splitlines() if line.strip() == "demo-prod:").split("demo-prod")[0]
    assert added.count(f"{key_indent}my-agent:") == 2  # under images and services, indented like the user's keys

    after = projects.load(file)
    assert after.services[:2] == before.services and after.builtin == before.builtin  # the demo's, unchanged
    assert [s.id for s in after.services] == ["demo-prod", "demo-dev", "my-agent", "my-lookup"]
    assert list(after.images) == ["agent", "my-agent", "my-lookup"]
    # in the project's image namespace (flyte-agents/agent), unique
    assert after.images["my-agent"].repository == "flyte-agents/my-agent"
    assert after.service("my-lookup").sync and not after.service("my-agent").sync


@pytest.mark.parametrize("args, message", [
    (("demo-prod",), "already has a service 'demo-prod': choose another NAME"),
    (("agent",), "already has an image 'agent': choose another NAME"),
    (("other", "--task-type", "flyte_agents_demo"), "already routes task type 'flyte_agents_demo'"),
])
def test_collisions_with_the_project_are_refused(tmp_path, capsys, args, message):
    file = _existing_project(tmp_path, (REPO / "flyte-agents.yaml").read_text())
    before = tree(tmp_path)
    assert main(["init", *args, "--into", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert tree(tmp_path) == before and file.read_text() == (REPO / "flyte-agents.yaml").read_text()


def test_an_invalid_project_file_is_reported_and_kept(tmp_path, capsys):
    file = _existing_project(tmp_path, (REPO / "flyte-agents.yaml").read_text().replace("image: agent\n",
                                                                                          "image: nope\n", 1))
    before = tree(tmp_path)
    assert init(tmp_path) == 2
    assert "services.demo-prod.image 'nope' is not defined under images" in capsys.readouterr().err
    assert tree(tmp_path) == before and "nope" in file.read_text()


# ------------------------------------------------------------------------------------------------ no overwrite

@pytest.mark.parametrize("existing", ["values/my-agent/dev.yaml", "my-agent/my_agent/example.py", "my-agent"])
def test_refuses_to_overwrite_and_writes_nothing(tmp_path, capsys, existing):
    path = tmp_path / existing
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("mine\n")  # "my-agent" as a file: where init needs a directory
    before = tree(tmp_path)
    assert init(tmp_path) == 2
    err = capsys.readouterr().err
    assert err == f"error: {path} already exists: init never overwrites; choose another NAME or move it away\n"
    assert tree(tmp_path) == before  # not even the project file


def test_a_second_init_of_the_same_name_is_refused(tmp_path, capsys):
    assert init(tmp_path) == 0
    before = tree(tmp_path)
    assert init(tmp_path) == 2
    assert "already has a service 'my-agent'" in capsys.readouterr().err
    assert tree(tmp_path) == before


def test_dry_run_lists_everything_and_writes_nothing(tmp_path, capsys):
    assert init(tmp_path, "my-agent", "--dry-run") == 0
    out = capsys.readouterr().out
    assert tree(tmp_path) == {}
    listed = [line.removeprefix("would write ") for line in out.splitlines() if line.startswith("would write ")]
    assert f"would create {tmp_path / 'flyte-agents.yaml'} with image my-agent and service my-agent" in out

    assert init(tmp_path, "my-agent") == 0
    written = {str(tmp_path / p) for p in tree(tmp_path)} - {str(tmp_path / "flyte-agents.yaml")}
    assert sorted(listed) == sorted(written)


def test_json_output_names_the_files_and_entries(tmp_path, capsys):
    assert init(tmp_path, "my-agent", "--dry-run", "--output", "json", "--flyte-version", "1.15") == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["written"], result["kind"], result["serve"], result["flytekit_version"]) == \
        (False, "agent", "agent", "1.15.4")
    assert result["service_entry"] == {
        "environment": "dev", "image": "my-agent", "values": ["values/my-agent/base.yaml", "values/my-agent/dev.yaml"],
        "sandboxValues": ["values/my-agent/sandbox.yaml"], "taskTypes": ["my_agent"]}
    assert "my-agent/my_agent/my_agent/agent.py" in result["files"] and tree(tmp_path) == {}


# ------------------------------------------------------------------------------------------------ packaging

def test_every_template_is_package_data_and_used():
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["flyte_agents"]
    names = sorted(p.name for p in TEMPLATES.iterdir())
    assert names and all(any(fnmatch.fnmatch(f"templates/{n}", g) for g in globs) for n in names)
    assert set(names) == set(wf.load_templates())
    used = {t for t, _ in core._FILES if t} - {"{agent}"} | {"agent_async.py.tmpl", "agent_sync.py.tmpl",
                                                             core.PROJECT_TEMPLATE}
    assert used == set(names)


def test_only_init_imports_the_round_trip_yaml_library():
    code = ("import sys, flyte_agents.cli.main, flyte_agents.cli.init, flyte_agents.workflows.deploy; "
            "print('ruamel' in ' '.join(sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_generation_follows_the_naming_rule():
    assert core.generation_for(FlyteVersion(1, 16, 8)).kind == "connector"
    assert core.generation_for(FlyteVersion(1, 13)).kind == "agent"
    with pytest.raises(UserError):
        core.generation_for(FlyteVersion(1, 17))


def test_a_new_project_without_a_chart_next_to_the_package_says_where_to_copy_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(wf, "_CHECKOUT_CHART", tmp_path / "not-a-checkout" / "charts" / "flyte-agent")  # a wheel
    assert init(tmp_path, "my-agent", "--dry-run") == 0
    err = capsys.readouterr().err
    assert f"note: the project's chart {tmp_path / 'charts/flyte-agent'} does not exist: copy" in err
    shutil.copytree(REPO / "charts" / "flyte-agent", tmp_path / "charts" / "flyte-agent")
    assert init(tmp_path, "my-agent") == 0
    assert "note:" not in capsys.readouterr().err
    assert projects.load(tmp_path / "flyte-agents.yaml").chart == (tmp_path / "charts" / "flyte-agent").resolve()
