"""The Go agent server in this directory: built once per source hash, started per test on a free port.

`go build` of flyteidl's generated code is slow when cold (~3 min on 2 cores), so the binary is cached outside the
repo in ~/.cache/flyte-agents/tools/goagent-<hash of the sources>/goagent; a change to main.go, go.mod or go.sum
builds a new one. `python -m tests.servers.goagent` (`make goagent`) builds it and prints its path.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

SOURCE = Path(__file__).resolve().parent
SOURCES = ("main.go", "go.mod", "go.sum")
CACHE = Path(os.environ.get("FA_CACHE_DIR", Path.home() / ".cache" / "flyte-agents")) / "tools"

ASYNC_TYPE = "go_echo"
SYNC_TYPE = "go_echo_sync"
# -fault values of main.go; each is a real misbehaviour meant to fail exactly one conformance check.
FAULTS = ("no-metadata", "wrong-is-sync", "slow-list", "empty-resource-meta", "never-terminal",
          "sync-two-responses", "sync-no-response", "not-serving")


class BuildError(Exception):
    pass


def source_hash() -> str:
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode() + b"\0" + (SOURCE / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def binary_path() -> Path:
    return CACHE / f"goagent-{source_hash()}" / "goagent"


def build() -> Path:
    """The binary for the current sources, building it on a cache miss (one builder at a time per machine)."""
    binary = binary_path()
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        raise BuildError("`go` is not on PATH (Go 1.26 builds tests/servers/goagent)")
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "goagent.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists():  # another process built it while this one waited
            return binary
        tmp = binary.parent.with_name(binary.parent.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-buildvcs=false -mod=readonly", "CGO_ENABLED": "0"}
        proc = subprocess.run([go, "build", "-trimpath", "-ldflags=-s -w", "-o", str(tmp / "goagent"), "."],
                              cwd=SOURCE, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
            raise BuildError(f"`go build` in {SOURCE} failed ({proc.returncode}):\n{tail}")
        tmp.rename(binary.parent)
    return binary


@dataclass(frozen=True)
class GoAgent:
    address: str  # 127.0.0.1:PORT
    fault: str | None
    process: subprocess.Popen
    log: Path  # the server's stderr: one line per CreateTask / ExecuteTaskSync it ran

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def serve(binary: Path, fault: str | None = None, *args: str) -> Iterator[GoAgent]:
    """Run the server on a free loopback port until the block ends."""
    from tests.conftest import stop_process

    argv = [str(binary), "-listen", "127.0.0.1:0", *(["-fault", fault] if fault else []), *args]
    with tempfile.TemporaryDirectory(prefix="goagent-") as tmp:
        log = Path(tmp) / "server.log"
        with open(log, "wb") as err:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, text=True)
        try:
            line = proc.stdout.readline()  # "serving HOST:PORT fault=..." once it accepts connections
            if not line.startswith("serving "):
                proc.kill()
                raise BuildError(f"{' '.join(argv)} did not start: {line}{log.read_text()[-2000:]}")
            yield GoAgent(line.split()[1], fault, proc, log)
        finally:
            stop_process(proc)
            proc.stdout.close()


@pytest.fixture(scope="session")
def goagent_binary() -> Path:
    """The built Go agent server; in CI a build failure fails the test, elsewhere it skips naming the fix."""
    from tests.conftest import require

    try:
        return build()
    except BuildError as err:
        require("Go agent server (tests/servers/goagent)", str(err), target="goagent")
        raise  # unreachable: require() skipped or failed


@pytest.fixture
def goagent(goagent_binary) -> Iterator[GoAgent]:
    """The Go agent server without a fault, on a free port."""
    with serve(goagent_binary) as agent:
        yield agent

