"""The code-change loop with `flyte-agents dev`: save -> serving -> execution succeeded, with the real propeller.

One `flyte-agents dev --config-file` for demo-prod (the routing written once), the real flytepropeller v1.16.8
started once on that file (`flytectl demo start --dev` + `flyte start`: propeller on this machine), then per round:
a new GREETING written into agent.py (the save), dev's own line `reload N: serving ... after S s` (the local server
answers ListAgents again), and one flyte_agents_demo execution through that propeller (hack/executions.py, in a
namespace of its own) that must return the new greeting. In the cluster mode only the route differs (a Service +
Endpoints, which a save never touches). Counted from outside dev, for the bench's own project (its namespace and
image repository): helm revisions, local images, the registry's repositories, and propeller's process (the same
one throughout = 0 restarts). Needs no sandbox stand-in, so it
does not wait for the test suite's lock. Run through bench/run.py (`make bench`).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, Row, goal  # noqa: E402

sys.path.insert(0, str(REPO))
from tests.integration.dev_support import (Dev, discovery, executions, local_propeller, project_copy,  # noqa: E402
                                           propeller_config)

SAVE_TO_SERVING_GOAL = 3.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dev-rounds", type=int, default=5, help="saves, each followed by one execution")


def counts(helm: str, namespace: str, repository: str) -> tuple[int, int, bool]:
    """What only a build, a push or a helm upgrade of the bench's own project could change: its releases (in its
    own namespace), its local images and its repository in the registry (the machine is shared)."""
    listed = json.loads(subprocess.run([helm, "list", "-n", namespace, "-o", "json"], capture_output=True,
                                       text=True, check=True).stdout)
    images = subprocess.run(["docker", "images", "-q", "--filter", f"reference=*/{repository}",
                             "--filter", f"reference={repository}"], capture_output=True, text=True).stdout.split()
    with urllib.request.urlopen("http://127.0.0.1:30000/v2/_catalog?n=1000", timeout=10) as response:
        pushed = repository in json.load(response)["repositories"]
    return sum(int(r["revision"]) for r in listed), len(images), pushed


def measure(args: argparse.Namespace) -> list[Row]:
    from kubernetes import client, config

    helm = os.environ.get("FA_HELM3") or os.environ.get("FA_HELM", "helm")
    kubeconfig = os.environ["KUBECONFIG"]
    namespace = f"fa-bench-dev-{uuid.uuid4().hex[:6]}"
    api = config.new_client_from_config(kubeconfig)
    context = yaml.safe_load(Path(kubeconfig).read_text())["current-context"]
    runs = executions.Propeller(api, os.environ["FA_KUBECTL_FLYTE"], kubeconfig, context, namespace)
    with tempfile.TemporaryDirectory(prefix="fa-bench-dev-") as scratch:
        project, agent_py = project_copy(Path(scratch))
        repository = f"{namespace}/agent"
        doc = yaml.safe_load(project.read_text())
        doc["namespace"], doc["images"]["agent"]["repository"] = namespace, repository
        project.write_text(yaml.safe_dump(doc, sort_keys=False))
        file = propeller_config(Path(scratch), kubeconfig, namespace)
        sys.path.insert(0, str(agent_py.parent.parent))
        import flyte_agents_demo

        demo = flyte_agents_demo.DemoTask(name="demo.greet")
        print("dev bench: flyte-agents dev --config-file, propeller on this machine", flush=True)
        dev = Dev("--project", str(project), "--config-file", str(file), "--python", sys.executable)
        try:
            port = dev.serving().group(3)
            dev.wait_for("^routing: ")
            log = Path(scratch) / "propeller.log"
            with local_propeller(os.environ["FA_PROPELLER"], file, log) as propeller:
                discovery(log, f"dns:///127.0.0.1:{port}")
                first = runs.run(demo)
                if first.phase != "SUCCEEDED":
                    sys.exit(f"bench: the first execution through dev did not succeed: {first}")
                before = counts(helm, namespace, repository)
                saves, totals, seconds = [], [], []
                print(f"dev bench: {args.dev_rounds} saves, each followed by one execution", flush=True)
                for _ in range(args.dev_rounds):
                    greeting = f"hello {uuid.uuid4().hex[:6]}"
                    text = agent_py.read_text()
                    current = text.split('GREETING = "', 1)[1].split('"', 1)[0]
                    start = time.perf_counter()
                    agent_py.write_text(text.replace(f'GREETING = "{current}"', f'GREETING = "{greeting}"'))
                    match = dev.serving()
                    saves.append(time.perf_counter() - start)
                    done = runs.run(demo)
                    totals.append(time.perf_counter() - start)
                    seconds.append(done.seconds)
                    if not match.group(1).startswith("reload") or done.phase != "SUCCEEDED" \
                            or not done.outputs["greeting"].startswith(greeting):
                        sys.exit(f"bench: after the save: {match.group(0)}; execution {done}")
                after = counts(helm, namespace, repository)
                if propeller.poll() is not None:
                    sys.exit(f"bench: propeller exited: {log.read_text()[-2000:]}")
        finally:
            dev.stop(signal.SIGINT)
            client.CoreV1Api(api).delete_namespace(namespace)
    if after != before:
        sys.exit(f"bench: the saves changed (helm revisions, images, pushed) {before} -> {after}")
    note = (f"save -> serving {statistics.median(saves):.1f}s, execution {statistics.median(seconds):.1f}s; 0 builds, "
            "0 pushes, 0 helm upgrades, 0 propeller restarts (one process throughout)")
    return [Row("code change with dev (save -> serving -> execution succeeded)", totals, note=note,
                serving=saves)]


def goals(rows: list[Row]) -> list[str]:
    dev = [r for r in rows if r.case.startswith("code change with dev")]
    if not dev:
        return []
    serving = statistics.median(dev[0].serving)
    return [goal(f"code change with dev: save to serving at most {SAVE_TO_SERVING_GOAL:g} s",
                 serving <= SAVE_TO_SERVING_GOAL, f"{serving:.1f}s")]
