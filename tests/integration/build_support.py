"""Helpers shared by the image pipeline's integration tests (test_build*.py, test_registry_*.py)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "data" / "images" / "tiny"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)

    @property
    def error(self) -> str:
        """The CLI's error line (the last stderr line)."""
        return self.stderr.strip().splitlines()[-1] if self.stderr.strip() else ""


def run_cli(*args: str, env: dict[str, str] | None = None) -> Run:
    """`flyte-agents ARGS` as a user runs it: a separate process, real exit code, stdout and stderr apart."""
    proc = subprocess.run([sys.executable, "-m", "flyte_agents.cli.main", *args], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, **(env or {})}, timeout=900)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def copy_context(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True)
    return target


def remove_images(docker_client, repository: str) -> None:
    for image in docker_client.images.list(name=repository):
        for tag in image.tags:
            if tag.startswith(repository + ":"):
                docker_client.images.remove(tag, noprune=False)


@pytest.fixture
def repository(registry, docker_client):
    """A repository name no other test run uses, in the real registry; its local images are removed after."""
    name = f"{registry}/fa-test-{uuid.uuid4().hex[:10]}/tiny"
    yield name
    remove_images(docker_client, name)


@pytest.fixture
def tiny(tmp_path) -> Path:
    """A private copy of tests/data/images/tiny the test may edit."""
    return copy_context(TINY, tmp_path / "tiny")
