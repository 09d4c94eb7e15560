#!/usr/bin/env python3
"""Input bench (issue 12): the CLI's peak memory on inputs under 1 MB, and `flyte-agents SUB --help` per command.

Memory cases, each a fresh process (common.run: peak RSS from /proc), with the exit code each must have:
an alias bomb (a few hundred bytes) as project file and as --from config, a 0.9 MB values file a deploy reads
before it connects (to a cluster that does not answer), a 0.9 MB --from config rendered for real, a 0.9 MB
kubeconfig. Goals: at most 200 MB each; every subcommand's --help at most 0.15 s (median).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, Row, run  # noqa: E402

CLI = str(Path(sys.executable).with_name("flyte-agents"))
MB_LIMIT = 200
HELP_LIMIT = 0.15
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--help-rounds", type=int, default=9)
    parser.add_argument("--memory-rounds", type=int, default=3)


def workspace(root: Path) -> dict[str, str]:
    """Project, chart, values, Dockerfile and a kubeconfig whose server does not answer; returns the env."""
    (root / "chart").mkdir()
    (root / "chart" / "Chart.yaml").write_text("apiVersion: v2\nname: flyte-agent\nversion: 0.1.0\n")
    (root / "agent").mkdir()
    (root / "agent" / "Dockerfile").write_text("FROM python:3.11-slim\n")
    values = {f"team{i}": {"resources": {"cpu": f"{i}m", "memory": f"{i}Mi"}, "labels": {f"k{j}": f"v{j}"
                                                                                       for j in range(8)}}
              for i in range(3600)}
    (root / "big-values.yaml").write_text(yaml.safe_dump(values))
    (root / "flyte-agents.yaml").write_text(yaml.safe_dump({
        "apiVersion": "flyte-agents.dev/v1alpha1", "kind": "Project", "chart": "chart",
        "images": {"agent": {"context": "agent", "repository": "team/agent"}},
        "services": {"demo-prod": {"environment": "prod", "image": "agent", "values": ["big-values.yaml"],
                                   "taskTypes": ["demo_task"]}}}))
    (root / "bomb.yaml").write_text(BOMB)
    plugins = {f"plugin-{i}": {"endpoint": f"dns:///p{i}.flyte:8000", "timeouts": {"GetTask": "10s"},
                               "extra": [f"x{j}" for j in range(10)]} for i in range(3500)}
    (root / "big-config.yaml").write_text(yaml.safe_dump({
        "tasks": {"task-plugins": {"enabled-plugins": ["container", "connector-service"]}}, "plugins": plugins}))
    clusters = [{"name": f"c{i}", "cluster": {"server": "https://127.0.0.1:9",
                                              "certificate-authority-data": "QUJD" * 200}} for i in range(800)]
    (root / "kubeconfig").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c0", "clusters": clusters,
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": f"c{i}", "context": {"cluster": f"c{i}", "user": "u"}} for i in range(800)]}))
    for name in ("big-values.yaml", "big-config.yaml", "kubeconfig"):
        assert (root / name).stat().st_size < 1 << 20, name
    return {"KUBECONFIG": str(root / "kubeconfig"), "HOME": str(root), "FA_HELM": "/bin/false"}


MEMORY_CASES = [  # (case, argv, expected exit code)
    ("alias bomb as project file (deploy)", ["deploy", "--dry-run", "-p", "bomb.yaml"], 2),
    ("alias bomb as --from (config lint)", ["config", "lint", "--from", "bomb.yaml", "--flyte-version", "1.16"], 2),
    ("0.9 MB values file (deploy, cluster down)", ["deploy", "--dry-run"], 8),
    ("0.9 MB --from config (config render)", ["config", "render", "--from", "big-config.yaml", "--flyte-version",
                                              "1.16", "--service", "id=a,endpoint=k8s://a.flyte:8000,task-types=t"],
     0),
    ("0.9 MB kubeconfig (config remove, cluster down)", ["config", "remove", "--kubeconfig", "kubeconfig"], 8),
]


def measure(args: argparse.Namespace) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="fa-input-bench-") as scratch:
        root = Path(scratch)
        env = workspace(root)
        for case, argv, expect in MEMORY_CASES:
            peaks = [run([CLI, *argv], env, root, expect).peak_rss_mb for _ in range(args.memory_rounds)]
            rows.append(Row(f"peak RSS: {case}", peaks, unit="MB", note=f"exit {expect}"))
        commands = subprocess.run([sys.executable, "-c", "from flyte_agents.cli.main import COMMANDS; "
                                   "print(' '.join(sorted(COMMANDS)))"], capture_output=True, text=True,
                                  check=True, cwd=REPO).stdout.split()
        for command in commands:
            times = [run([CLI, command, "--help"], env, root).seconds for _ in range(args.help_rounds)]
            rows.append(Row(f"{command} --help", times))
    return rows


def goals(rows: list[Row]) -> list[str]:
    memory = [r for r in rows if r.unit == "MB" and r.case.startswith("peak RSS")]
    helps = [r for r in rows if r.case.endswith(" --help")]
    found = []
    if memory:
        worst = max(memory, key=lambda r: max(r.ours))
        found.append(_goal(f"every input under 1 MB at most {MB_LIMIT} MB RSS", max(worst.ours) <= MB_LIMIT,
                           f"worst {max(worst.ours):.0f} MB ({worst.case.removeprefix('peak RSS: ')})"))
    if helps:
        slowest = max(helps, key=lambda r: statistics.median(r.ours))
        median = statistics.median(slowest.ours)
        found.append(_goal(f"every SUBCOMMAND --help at most {HELP_LIMIT} s", median <= HELP_LIMIT,
                           f"slowest {slowest.case} {median:.3f}s median"))
    return found


def _goal(what: str, met: bool, figure: str) -> str:
    return f"{'met    ' if met else 'NOT met'}  {what}: {figure}"


def main() -> None:
    from common import print_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    rows = measure(parser.parse_args())
    print_table(rows)
    print("\ngoals:\n" + "\n".join(f"  {line}" for line in goals(rows)))


if __name__ == "__main__":
    main()
