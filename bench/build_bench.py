"""No-op image build+push: `flyte-agents build --push` against `docker build && docker push` of the same image.

Both work on one copy of the context (with the extra CA bundle placed in extra/ by hand, as a user behind a
TLS-intercepting proxy would for plain `docker build`). After one warm-up each (which builds and pushes), the
rounds are interleaved, so load from other work on the machine hits both sides alike; medians are printed.
The flyte-agents side is timed as users run it: a fresh process, imports included.

    python bench/run.py --only build [--context agent_image] [--build-rounds 5] [--registry 127.0.0.1:30000]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import HOST_CA_BUNDLE, REPO, Row, interleave, prepare_context, run  # noqa: E402


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--context", type=Path, default=REPO / "agent_image")
    parser.add_argument("--build-rounds", type=int, default=5)
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

        print(f"build bench: warm-up, building and pushing {repository} both ways (slow the first time)",
              flush=True)
        tag = json.loads(run(ours).stdout)["images"][0]["tag"]
        theirs()
        ours_times, docker_times = interleave(args.build_rounds, no_op, theirs)
        if not args.keep:
            for ref in (f"{repository}:{tag}", plain_tag):
                subprocess.run([docker, "rmi", ref], capture_output=True)
    return [Row(f"no-op build+push ({args.context.name})", ours_times, "docker build && docker push",
                docker_times)]
