"""Helpers shared by the benchmarks: run a command as a fresh process (time, peak RSS), medians, one table."""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def prepare_context(source: Path, scratch: Path, ca_bundle: Path | None) -> Path:
    """A copy of an image context, with the extra CA bundle placed in extra/ by hand as a user behind a
    TLS-intercepting proxy would for plain `docker build`."""
    context = scratch / source.name
    shutil.copytree(source, context, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    if ca_bundle:
        (context / "extra").mkdir(exist_ok=True)
        shutil.copy(ca_bundle, context / "extra" / "ca-bundle.crt")
    return context


@dataclass
class Run:
    seconds: float
    stdout: str
    stderr: str
    peak_rss_mb: float  # the process's own high-water mark (VmHWM), children such as helm not included


def run(argv: list[str], env: dict | None = None, cwd: Path | None = None, expect: int = 0) -> Run:
    """Run argv to completion, exit unless it exits `expect` (a bad input's 2, say). The peak RSS is polled from /proc: VmHWM only ever grows, so
    the last reading before exit is the peak up to a few milliseconds."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                            env={**os.environ, **(env or {})})
    peak = [0.0]
    poller = threading.Thread(target=_poll_hwm, args=(proc, peak), daemon=True)
    poller.start()
    stdout, stderr = proc.communicate()
    elapsed = time.perf_counter() - started
    poller.join()
    if proc.returncode != expect:
        sys.exit(f"bench: {' '.join(map(str, argv[:5]))}… failed ({proc.returncode}):\n{stderr[-3000:]}")
    return Run(elapsed, stdout, stderr, peak[0])


def _poll_hwm(proc: subprocess.Popen, peak: list[float]) -> None:
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
        except OSError:
            return
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peak[0] = max(peak[0], int(line.split()[1]) / 1024)
        time.sleep(0.02)


@dataclass
class Row:
    """One line of the table: the toolkit's samples, optionally a baseline's, and what the counts were."""

    case: str
    ours: list[float]
    baseline_label: str = ""
    baseline: list[float] = field(default_factory=list)
    unit: str = "s"
    note: str = ""
    # code change: the image build's, the push's and the new pod's (start to gRPC SERVING) share of each sample
    builds: list[float] = field(default_factory=list)
    pushes: list[float] = field(default_factory=list)
    serving: list[float] = field(default_factory=list)


def interleave(rounds: int, first, second) -> tuple[list, list]:
    """Call first() and second() alternately, so load from elsewhere on the machine hits both alike."""
    a, b = [], []
    for _ in range(rounds):
        a.append(first())
        b.append(second())
    return a, b


def fmt(samples: list[float], unit: str) -> str:
    if not samples:
        return "-"
    median = statistics.median(samples)
    return f"{median:.0f} MB" if unit == "MB" else f"{median:.2f}s" if median < 100 else f"{median:.0f}s"


def print_table(rows: list[Row]) -> None:
    header = ("case", "n", "flyte-agents", "baseline", "its median", "ratio", "notes")
    lines = [header]
    for row in rows:
        ratio = ""
        if row.baseline:
            ours, theirs = statistics.median(row.ours), statistics.median(row.baseline)
            ratio = f"{theirs / ours:.1f}x faster" if ours < theirs else f"{ours / theirs:.1f}x slower"
        lines.append((row.case, str(len(row.ours)), fmt(row.ours, row.unit), row.baseline_label,
                      fmt(row.baseline, row.unit), ratio, row.note))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    print("\nmedians (flyte-agents and baseline interleaved, same machine, same run):")
    for line in lines:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[-1])


def goal(what: str, met: bool, figure: str) -> str:
    """One line of the goals block."""
    return f"{'met    ' if met else 'NOT met'}  {what}: {figure}"
