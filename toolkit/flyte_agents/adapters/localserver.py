"""This machine's side of `flyte-agents dev`: an agent server process, its interpreter, ports and addresses.

The server runs in a session of its own (its own process group), so stopping it stops whatever it started, and a
Ctrl-C in the terminal reaches dev, which stops the server itself, in order. When dev is killed (SIGKILL) the
kernel sends the server SIGTERM, so no orphan keeps the port.
"""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

STOP_SECONDS = 5
# A documentation address (RFC 5737): a UDP connect to it sends nothing and tells the default route's source.
_ANY_REMOTE = "203.0.113.1"


def python_problem(python: str) -> str | None:
    """Why `python` cannot run a flytekit agent server (None: it can)."""
    check = "import flytekit, prometheus_client, grpc_health.v1.health"
    try:
        done = subprocess.run([python, "-c", check], capture_output=True, text=True, timeout=120)
    except OSError as err:
        return f"cannot run it ({err.strerror or err})"
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return lines[-1] if lines else f"exit status {done.returncode}"
    return None


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET6 if socket.has_ipv6 else socket.AF_INET) as s:
        try:
            s.bind(("", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def source_address(remote: str) -> str | None:
    """The local address this machine sends from toward `remote` (routing table only: nothing is sent)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in remote else socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((remote, 9))
            return s.getsockname()[0]
    except OSError:
        return None


def default_route_address() -> str | None:
    return source_address(_ANY_REMOTE)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when dev dies, even by SIGKILL (Linux prctl PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class ServerProcess:
    """One run of the agent server; output goes to `log` (appended), read back for the error of a failed start."""

    def __init__(self, command: Sequence[str], env: Mapping[str, str], cwd: Path, log: Path) -> None:
        self.log = log
        self.offset = log.stat().st_size if log.exists() else 0
        with log.open("ab") as out:
            self.process = subprocess.Popen(list(command), env=dict(env), cwd=cwd, stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, preexec_fn=_die_with_parent)

    @property
    def pid(self) -> int:
        return self.process.pid

    def exited(self) -> int | None:
        return self.process.poll()

    def output(self) -> str:
        """What this run wrote so far."""
        with self.log.open("rb") as f:
            f.seek(self.offset)
            return f.read().decode("utf-8", "replace")

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL after STOP_SECONDS."""
        if self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, STOP_SECONDS), (signal.SIGKILL, STOP_SECONDS)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue
