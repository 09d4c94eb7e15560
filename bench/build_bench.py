"""Image build+push: `flyte-agents build --push` against `docker build && docker push` of the same image.

Cases: no-op (nothing changed: flyte-agents must build and push nothing) and a one-file code change (each side
appends a line to the demo agent's module before its build: one new layer to build and push).
Both work on one copy of the context (with the extra CA bundle placed in extra/ by hand, as a user behind a
TLS-intercepting proxy would for plain `docker build`). After one warm-up each (which builds and pushes), the
rounds are interleaved, so load from other work on the machine hits both sides alike; medians are printed.
The flyte-agents side is timed as users run it: a fresh process, imports included.

    python bench/run.py --only build [--context agent_image] [--build-rounds 5] [--build-code-rounds 2]
                                     [--registry 127.0.0.1:30000]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import HOST_CA_BUNDLE, REPO, Row, goal, interleave, prepare_context, run  # noqa: E402


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--context", type=Path, default=REPO / "agent_image")
    parser.add_argument("--build-rounds", type=int, default=5)
    parser.add_argument("--build-code-rounds", type=int, default=2, help="code change: each round rebuilds")
    parser.add_argument("--build-requirements-rounds", type=int, default=1,
                        help="requirements.txt change: each round reinstalls the venv (minutes on vfs)")
    parser.add_argument("--registry", default=os.environ.get("FA_REGISTRY", "127.0.0.1:30000"))
    parser.add_argument("--network", default="host", help="network for RUN steps during the warm-up build")
    parser.add_argument("--ca-bundle", type=Path, default=HOST_CA_BUNDLE if HOST_CA_BUNDLE.exists() else None)
    parser.add_argument("--keep", action="store_true", help="keep the images (the next run skips the warm-up)")


def measure(args: argparse.Namespace) -> list[Row]:
    docker = shutil.which("docker") or sys.exit("bench: the docker CLI is needed for the comparison")
    name = f"fa-bench/{args.context.resolve().name.replace('_', '-')}"
    repository = f"{args.registry}/{name}"
    with tempfile.TemporaryDirectory(prefix="fa-bench-", dir=os.environ.get("FA_BENCH_TMP", "/tmp")) as scratch:
        context = prepare_context(args.context.resolve(), Path(scratch), args.ca_bundle)
        ours = [sys.executable, "-m", "flyte_agents.cli.main", "build", str(context), "--name", name, "--registry",
                args.registry, "--push", "--network", args.network, "-o", "json"]
        plain_tag = f"{repository}:bench-docker"
        # DOCKER_BUILDKIT=0: the legacy builder, the one the Docker SDK (and so flyte-agents) uses.
        legacy = {"DOCKER_BUILDKIT": "0"}

        def theirs() -> float:
            return (run([docker, "build", "-q", "--network", args.network, "-t", plain_tag, str(context)], legacy)
                    .seconds + run([docker, "push", "-q", plain_tag]).seconds)

        def no_op() -> float:
            done = run(ours)
            result = json.loads(done.stdout)
            if (result["builds"], result["pushes"]) != (0, 0):
                sys.exit(f"bench: the no-op build built or pushed: {result}")
            return done.seconds

        agent = context / "flyte_agents_demo" / "flyte_agents_demo" / "agent.py"

        def changed(build_and_push):
            def one_round() -> float:
                agent.write_text(agent.read_text() + f"# bench change {uuid.uuid4().hex}\n")
                return build_and_push()
            return one_round

        made: list[str] = []  # the images flyte-agents built, removed at the end unless --keep

        def code_change() -> float:
            done = run(ours)
            result = json.loads(done.stdout)
            if (result["builds"], result["pushes"]) != (1, 1):
                sys.exit(f"bench: the code change did not build and push once: {result}")
            made.append(result["images"][0]["ref"])
            return done.seconds

        print(f"build bench: warm-up, building and pushing {repository} both ways (slow the first time)",
              flush=True)
        made.append(json.loads(run(ours).stdout)["images"][0]["ref"])
        theirs()
        ours_times, docker_times = interleave(args.build_rounds, no_op, theirs)
        rows = [Row(f"no-op build+push ({args.context.name})", ours_times, "docker build && docker push",
                    docker_times, note="0 builds, 0 pushes")]
        if agent.is_file() and args.build_code_rounds:
            print(f"build bench: code change, {args.build_code_rounds} interleaved rounds (real rebuilds)",
                  flush=True)
            ours_code, docker_code = interleave(args.build_code_rounds, changed(code_change), changed(theirs))
            rows.append(Row(f"code-change build+push ({args.context.name}, 1 file)", ours_code,
                            "docker build && docker push", docker_code, note="1 build, 1 push"))
        if args.build_requirements_rounds:
            print(f"build bench: requirements change, {args.build_requirements_rounds} round(s) (venv reinstalled)",
                  flush=True)
            rows.append(requirements_change(context, ours, made, args.build_requirements_rounds))
        if not args.keep:
            for ref in (*made, plain_tag):
                subprocess.run([docker, "rmi", ref], capture_output=True)
    return rows


def requirements_change(context: Path, ours: list[str], made: list[str], rounds: int) -> Row:
    """A comment added to requirements.txt: the venv layer is rebuilt (checked on the image), the base layer not."""
    requirements = context / "requirements.txt"
    times = []
    for _ in range(rounds):
        requirements.write_text(requirements.read_text() + f"# bench change {uuid.uuid4().hex}\n")
        done = run(ours)
        result = json.loads(done.stdout)
        before, after = (_layers(ref) for ref in (made[-1], result["images"][0]["ref"]))
        if (result["builds"], result["pushes"]) != (1, 1) or before[0] != after[0] or before[-2] == after[-2]:
            sys.exit(f"bench: a requirements change did not rebuild the venv layer alone: {result}")
        made.append(result["images"][0]["ref"])
        times.append(done.seconds)
    return Row("requirements change build+push (venv layer rebuilt)", times, note="1 build, 1 push")


def _layers(ref: str) -> list[str]:
    return run(["docker", "image", "inspect", "--format", "{{range .RootFS.Layers}}{{.}} {{end}}", ref]).stdout.split()


def goals(rows: list[Row]) -> list[str]:
    """Issue 14: a one-file code change builds (at most 10 s) and pushes (at most 1 s) one small layer."""
    code = [r for r in rows if r.case.startswith("code-change build+push")]
    if not code:
        return []
    seconds = statistics.median(code[0].ours)
    return [goal("code change: flyte-agents build --push at most 10 s + 1 s", seconds <= 11, f"{seconds:.1f}s")]
