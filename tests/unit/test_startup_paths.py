"""The pieces that keep a command's start cheap: libyaml parsing (kubeconfig reading without the kubernetes
client: test_user_files.py), helm's one-call release state, and the console script's fast exit."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from flyte_agents import yamlio
from flyte_agents.adapters.helm import Revision

DOCS = [
    "a: 1\nb: [x, 'y', 2.5, true, null]\nc: {d: e}\n",
    "plugins:\n  agent-service:\n    agentForTaskTypes:\n      - sensor: default\n",
    "on: yes\noff: no\nempty:\nnum: 0x1f\ndate: 2024-01-02\n",  # YAML 1.1 booleans, hex, dates
    "",
]


@pytest.mark.parametrize("text", DOCS)
def test_yamlio_builds_what_the_pure_python_safe_loader_builds(text):
    assert yamlio.load(text) == yaml.safe_load(text)


def test_yamlio_uses_libyaml_when_pyyaml_has_it():
    if not yaml.__with_libyaml__:
        pytest.skip("this PyYAML was built without libyaml (pip install PyYAML from a wheel provides it)")
    assert yamlio._LOADER is yaml.CSafeLoader


def test_yamlio_is_a_safe_loader():
    with pytest.raises(yamlio.Error):
        yamlio.load("!!python/object/apply:os.system ['true']")


def test_yamlio_errors_say_the_line():
    with pytest.raises(yamlio.Error) as err:
        yamlio.load("a: 1\nb: [unclosed\nc: 3\n")
    assert yamlio.at_line(err.value).startswith(" at line ")
    assert yamlio.at_line(yaml.YAMLError("no mark")) == ""


def test_yamlio_load_all_keeps_every_document():
    assert yamlio.load_all("a: 1\n---\nb: 2\n---\n") == [{"a": 1}, {"b": 2}, None]


# ------------------------------------------------------------------------------------------------ helm status

def test_revision_from_helm_status_json():
    # The shape of `helm status -o json` (helm 3 and 4 agree on these fields).
    status = {"name": "demo-prod", "version": 3, "namespace": "flyte", "manifest": "...",
              "info": {"status": "deployed", "description": "flyte-agents chart=flyte-agent-0.1.0@abc"},
              "config": {"image": {"tag": "t"}}}
    revision = Revision.from_status(status, "flyte")
    assert revision == Revision("demo-prod", "flyte", 3, "deployed", "flyte-agents chart=flyte-agent-0.1.0@abc",
                                {"image": {"tag": "t"}})


def test_revision_without_user_values_has_empty_values():
    revision = Revision.from_status({"name": "r", "version": 1, "info": {"status": "failed"}}, "ns")
    assert (revision.values, revision.description, revision.status) == ({}, "", "failed")


# ------------------------------------------------------------------------------------------------ console script

def test_console_script_exit_code_and_output_survive_the_fast_exit(tmp_path):
    """cli.main.run() ends with os._exit: stderr must still be flushed and the exit code kept."""
    proc = subprocess.run([sys.executable, "-c", "from flyte_agents.cli.main import run; run()", "deploy", "--sandbox",
                           "--project", str(tmp_path / "absent.yaml")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: project file") and proc.stderr.endswith("\n")


def test_console_script_runs_atexit_handlers(tmp_path):
    marker = tmp_path / "ran"
    code = ("import atexit, sys; from pathlib import Path; "
            f"atexit.register(lambda: Path({str(marker)!r}).write_text('yes')); "
            "sys.argv = ['flyte-agents', '--version']; from flyte_agents.cli.main import run; run()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and "flyte-agents" in proc.stdout
    assert marker.read_text() == "yes"


def test_ctrl_c_outside_a_deploy_is_one_line_and_exit_130(monkeypatch, capsys):
    """Ctrl-C where no rollback applies (e.g. during an image build) reaches main() as click's Abort."""
    import click

    from flyte_agents.cli import main

    @click.command("interrupted")
    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(main.LazyGroup, "get_command", lambda self, ctx, name: interrupted)
    assert main.main(["interrupted"]) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["error: interrupted (Ctrl-C)"]
