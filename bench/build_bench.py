#!/usr/bin/env python3
"""No-op image build+push: `flyte-agents build --push` against `docker build && docker push` of the same image.

Both work on one copy of the context (with the extra CA bundle placed in extra/ by hand, as a user behind a
TLS-intercepting proxy would for plain `docker build`). After one warm-up each (which builds and pushes), the
rounds are interleaved, so load from other work on the machine hits both sides alike; medians are printed.
The flyte-agents side is timed as users run it: a fresh process, imports included.

    python bench/build_bench.py [--context agent_image] [--rounds 7] [--registry 127.0.0.1:30000]
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
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def run(argv: list[str], env: dict | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(argv[:4])}… failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc.stdout


def timed(argvs: list[list[str]], env: dict | None = None) -> tuple[float, list[str]]:
    started = time.perf_counter()
    outputs = [run(argv, env) for argv in argvs]
    return time.perf_counter() - started, outputs


def prepare_context(source: Path, scratch: Path, ca_bundle: Path | None) -> Path:
    context = scratch / source.name
    shutil.copytree(source, context, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    if ca_bundle:
        (context / "extra").mkdir(exist_ok=True)
        shutil.copy(ca_bundle, context / "extra" / "ca-bundle.crt")
    return context


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", type=Path, default=REPO / "agent_image")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--registry", default=os.environ.get("FA_REGISTRY", "127.0.0.1:30000"))
    parser.add_argument("--network", default="host", help="network for RUN steps during the warm-up build")
    parser.add_argument("--ca-bundle", type=Path, default=HOST_CA_BUNDLE if HOST_CA_BUNDLE.exists() else None)
    parser.add_argument("--keep", action="store_true", help="keep the images (the next run skips the warm-up)")
    args = parser.parse_args()

    docker = shutil.which("docker") or sys.exit("bench: the docker CLI is needed for the comparison")
    name = f"fa-bench/{args.context.resolve().name.replace('_', '-')}"
    repository = f"{args.registry}/{name}"
    with tempfile.TemporaryDirectory(prefix="fa-bench-", dir=os.environ.get("FA_BENCH_TMP", "/tmp")) as scratch:
        context = prepare_context(args.context.resolve(), Path(scratch), args.ca_bundle)
        ours = [sys.executable, "-m", "flyte_agents.cli", "build", str(context), "--name", name, "--registry",
                args.registry, "--push", "--network", args.network, "-o", "json"]
        plain_tag = f"{repository}:bench-docker"
        # DOCKER_BUILDKIT=0: the legacy builder, the one the Docker SDK (and so flyte-agents) uses.
        theirs = [[docker, "build", "-q", "--network", args.network, "-t", plain_tag, str(context)],
                  [docker, "push", "-q", plain_tag]]
        legacy = {"DOCKER_BUILDKIT": "0"}

        print(f"warm-up: building and pushing {repository} both ways (slow the first time)", flush=True)
        warm, (out,) = timed([ours])
        tag = json.loads(out)["images"][0]["tag"]
        warm_docker, _ = timed(theirs, legacy)
        print(f"  flyte-agents {warm:.1f}s, docker build && docker push {warm_docker:.1f}s", flush=True)

        ours_times, docker_times = [], []
        for _ in range(args.rounds):
            elapsed, (out,) = timed([ours])
            result = json.loads(out)
            if (result["builds"], result["pushes"]) != (0, 0):
                sys.exit(f"bench: the no-op run built or pushed: {result}")
            ours_times.append(elapsed)
            docker_times.append(timed(theirs, legacy)[0])
        if not args.keep:
            for ref in (f"{repository}:{tag}", plain_tag):
                subprocess.run([docker, "rmi", ref], capture_output=True)

    report(args, ours_times, docker_times)


def report(args, ours: list[float], theirs: list[float]) -> None:
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    print(f"\nno-op build+push of {args.context.name}, median of {args.rounds} interleaved rounds:")
    print(f"  flyte-agents build --push         {ours_median:6.2f}s  (min {min(ours):.2f}, max {max(ours):.2f})")
    print(f"  docker build && docker push       {theirs_median:6.2f}s  (min {min(theirs):.2f}, max {max(theirs):.2f})")
    print(f"  ratio flyte-agents / docker       {ours_median / theirs_median:6.2f}"
          f"  ({theirs_median / ours_median:.1f}x faster)")


if __name__ == "__main__":
    main()
