"""`flyte-agents dev` as a user runs it (a separate process whose output lines the tests wait for), and a real
flytepropeller on this machine reading one config file, as `flyte start` does after `flytectl demo start --dev`."""
from __future__ import annotations

import contextlib
import importlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator

import yaml

from tests.conftest import free_port
from tests.integration.build_support import REPO

DISCOVERY = re.compile(r"\[([^\]\s]+)\] supports the following task types: \[([^\]]*)\]")
sys.path.insert(0, str(REPO / "hack"))  # test infrastructure, not a package
executions = importlib.import_module("executions")
propeller_pod = importlib.import_module("propeller_pod")
SERVING = re.compile(r"^(started|reload \d+): serving (\S.*) on 127\.0\.0\.1:(\d+) after ([0-9.]+)s$")


class Dev:
    """One `flyte-agents dev` process: its stdout, line by line, and signals to it."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "flyte_agents.cli.main", "dev", *args], cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = 180) -> re.Match:
        """The next line matching `pattern` (a regex searched in each line)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} after {timeout}s:\n" + self.text()) from None
            if line is None:
                raise AssertionError(f"dev exited ({self.proc.wait()}) before {pattern!r}:\n" + self.text())
            self.lines.append(line)
            found = re.search(pattern, line)
            if found:
                return found

    def serving(self, timeout: float = 180) -> re.Match:
        return self.wait_for(SERVING.pattern, timeout)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 180) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)
        return code

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(30)

    def text(self) -> str:
        return "\n".join(self.lines)


def project_copy(tmp_path: Path) -> tuple[Path, Path]:
    """The repository's project with a private copy of agent_image/ the test may edit: (project file, agent.py)."""
    context = tmp_path / "agent_image"
    shutil.copytree(REPO / "agent_image", context, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    doc = yaml.safe_load((REPO / "flyte-agents.yaml").read_text())
    doc["chart"] = str(REPO / doc["chart"])
    doc["images"]["agent"]["context"] = str(context)
    for service in doc["services"].values():
        for key in ("values", "sandboxValues"):
            service[key] = [str(REPO / v) for v in service.get(key, [])]
    project = tmp_path / "flyte-agents.yaml"
    project.write_text(yaml.safe_dump(doc, sort_keys=False))
    return project, context / "flyte_agents_demo" / "flyte_agents_demo" / "agent.py"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new))


def propeller_config(tmp_path: Path, kubeconfig: str, namespace: str = "", plugin: str = "connector-service") -> Path:
    """A single binary's config file as `flyte start` would read it, with this machine's keys (no flyteadmin)."""
    doc = {
        "propeller": {"kube-config": kubeconfig, "create-flyteworkflow-crd": True,
                      "limit-namespace": namespace or f"fa-dev-{uuid.uuid4().hex[:6]}", "prof-port": free_port(),
                      "rawoutput-prefix": "file://data/raw", "metadata-prefix": "metadata/propeller"},
        "admin": {"endpoint": f"dns:///127.0.0.1:{free_port()}", "insecure": True},
        "event": {"type": "log"},
        "logger": {"level": 4},
        # the blob store hack/executions.py reads outputs from
        "storage": {"type": "stow", "stow": {"kind": "local", "config": {"path": str(propeller_pod.STORAGE)}},
                    "container": propeller_pod.STORAGE_CONTAINER},
        "catalog-cache": {"type": "noop"},
        "tasks": {"task-plugins": {"enabled-plugins": ["container", "sidecar", "k8s-array", plugin,
                                                       "echo"],
                                   "default-for-task-types": {"container": "container", "sidecar": "sidecar",
                                                              "container_array": "k8s-array"}}},
        "plugins": {plugin: {"pollInterval": "2s"}},
    }
    (propeller_pod.STORAGE / propeller_pod.STORAGE_CONTAINER).mkdir(parents=True, exist_ok=True)
    path = tmp_path / "flyte.yaml"
    path.write_text("# flyte start --config flyte.yaml\n" + yaml.safe_dump(doc, sort_keys=False))
    return path


def discovery(log: Path, endpoint: str, timeout: float = 90) -> set[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {e: t for e, t in DISCOVERY.findall(log.read_text(errors="replace").replace('\\"', '"'))}
        if endpoint in found:
            return {t.strip() for t in found[endpoint].split(",") if t.strip()}
        time.sleep(1)
    raise AssertionError(f"propeller never discovered {endpoint}:\n{log.read_text(errors='replace')[-3000:]}")


@contextlib.contextmanager
def local_propeller(binary: str, config: Path, log: Path) -> Iterator[subprocess.Popen]:
    """flytepropeller on this machine reading `config`, logging to `log`; stopped (SIGTERM) on exit."""
    with open(log, "wb") as out:
        process = subprocess.Popen([binary, "--config", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
