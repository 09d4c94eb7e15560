"""`flyte-agents dev` as a user runs it: a separate process whose output lines the tests wait for."""
from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from tests.integration.build_support import REPO

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
