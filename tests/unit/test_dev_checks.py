"""What `flyte-agents dev` checks before any connection: the service's local source, the Python, the port."""
from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from flyte_agents.errors import UserError
from flyte_agents.workflows import dev as wf
from flyte_agents.workflows.project import load

REPO = Path(__file__).resolve().parents[2]


def test_source_of_the_demo_service_is_its_local_package():
    project = load(REPO / "flyte-agents.yaml")
    source = wf.source_of(project, wf.pick_service(project, ()))
    assert source.modules == ("flyte_agents_demo",)
    assert source.roots == ((REPO / "agent_image" / "flyte_agents_demo").resolve(),)


def test_a_context_without_local_packages_is_one_line_naming_the_fix(tmp_path):
    project_file = _project(tmp_path, "flytekit==1.16.31\n")
    project = load(project_file)
    with pytest.raises(UserError, match=r"installs no local package: .*requirements.txt as a local path"):
        wf.source_of(project, project.service("svc"))


def test_python_without_flytekit_and_a_port_in_use_are_refused(tmp_path):
    bare = tmp_path / "python"
    bare.write_text(f"#!/bin/sh\nexec {sys.base_prefix}/bin/python3 -S -I \"$@\"\n")
    bare.chmod(0o755)
    with pytest.raises(UserError, match="cannot run a flytekit agent server"):
        wf.check_local(str(bare), None)
    with socket.socket(socket.AF_INET6) as busy:
        busy.bind(("", 0))
        busy.listen()
        with pytest.raises(UserError, match=f"--port {busy.getsockname()[1]} is in use"):
            wf.check_local(sys.executable, busy.getsockname()[1])


def _project(root: Path, requirements: str) -> Path:
    (root / "ctx").mkdir()
    (root / "ctx" / "requirements.txt").write_text(requirements)
    (root / "ctx" / "Dockerfile").write_text("FROM scratch\n")
    (root / "chart").mkdir()
    (root / "chart" / "Chart.yaml").write_text("name: c\nversion: 0.1.0\n")
    path = root / "flyte-agents.yaml"
    path.write_text("apiVersion: flyte-agents.dev/v1alpha1\nkind: Project\nchart: chart\n"
                    "images: {img: {context: ctx, repository: a/b}}\n"
                    "services: {svc: {environment: dev, image: img, taskTypes: [t1]}}\n")
    return path
