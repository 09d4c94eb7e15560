"""The deploy loop on the sandbox stand-in: `flyte-agents deploy --sandbox` against bench/manual_deploy.sh.

Cases (each flyte-agents run is a fresh process, as users run it):
  CLI start-up        `flyte-agents --help` against `python -c pass`, interleaved
  no-op redeploy      nothing changed, against the manual script of the documented steps, interleaved
  config-only change  task type `sensor` (served by the agent image) added to demo-prod; reverted untimed between
                      rounds
  code-change         one file of demo-dev's image context changed: a real rebuild every round
  peak RSS            the CLI process's own high-water mark during the no-op and the code-change deploys

The bench project has two services (demo-prod routed, demo-dev verify-only) as flyte-agents.yaml, but each with an
image of its own, so that a change to one service's code touches one image and one release. The manual script
redeploys two Deployments of its own (created once with `kubectl create deployment`, as a user without a chart
would have), so the two sides never change each other's state; it writes the same routing into the same ConfigMap
and restarts the same propeller.

Counts come from the deploy's `--output json`, cross-checked with the cluster: helm revision numbers and the
propeller Deployment's generation. The stand-in is shared: the bench holds the test suite's sandbox lock and
resets the stand-in at start and end. Run through bench/run.py (`make bench`).
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, Row, goal, interleave, prepare_context, run  # noqa: E402

NS = "flyte"
CONTEXT = "flyte-sandbox"
DEMO = "flyte_agents_demo"
ADDED_TASK_TYPE = "sensor"  # registered by flytekit itself, so the agent image serves it
CLI = Path(sys.executable).parent / "flyte-agents"
MANUAL = REPO / "bench" / "manual_deploy.sh"
MANUAL_DEPLOYMENTS = ("manual-demo-prod", "manual-demo-dev")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flyte", default="1.16", choices=["1.15", "1.16"], help="stand-in flavor")
    parser.add_argument("--helm", default=os.environ.get("FA_HELM4") or os.environ.get("FA_HELM", "helm"))
    parser.add_argument("--startup-rounds", type=int, default=15)
    parser.add_argument("--noop-rounds", type=int, default=7)
    parser.add_argument("--config-rounds", type=int, default=3)
    parser.add_argument("--code-rounds", type=int, default=2, help="each one rebuilds an image for real")


def measure_startup(rounds: int) -> Row:
    help_runs, python_runs = interleave(rounds, lambda: run([str(CLI), "--help"]).seconds,
                                        lambda: run([sys.executable, "-c", "pass"]).seconds)
    return Row("CLI start-up: flyte-agents --help", help_runs, "python -c pass", python_runs)


@contextlib.contextmanager
def sandbox_lock():
    """The lock tests/conftest.py::sandbox_lock holds: one user of the stand-in at a time."""
    path = Path(os.environ.get("FA_STATE_DIR", "/tmp/flyte-agents-env")) / "sandbox.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"deploy bench: waiting for {path} (a test run uses the stand-in)", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def reset_standin(flyte: str) -> None:
    print(f"deploy bench: resetting the stand-in (Flyte {flyte})", flush=True)
    run([sys.executable, str(REPO / "hack" / "standin.py"), "reset", "--flyte", flyte])


@contextlib.contextmanager
def pod_runner():
    """hack/agent_pods.py: the agent pods' images run as containers, so verify reaches real servers."""
    log = open(Path(tempfile.gettempdir()) / "fa-bench-agent-pods.log", "w")
    proc = subprocess.Popen([sys.executable, str(REPO / "hack" / "agent_pods.py"), "run", "--context", CONTEXT],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        proc.terminate()  # SIGTERM: it removes its containers and PortForwards
        proc.wait(60)
        log.close()


def kubectl(*args: str) -> str:
    return run([os.environ.get("FA_KUBECTL", "kubectl"), "--context", CONTEXT, "-n", NS, *args]).stdout


class Bench:
    def __init__(self, args: argparse.Namespace, scratch: Path) -> None:
        self.args, self.scratch = args, scratch
        # The build options of build_bench (--network, --ca-bundle) apply to these builds too.
        self.contexts = {svc: prepare_context(REPO / "agent_image", scratch / svc, args.ca_bundle)
                         for svc in ("prod", "dev")}
        self.ca_bundle = ["--ca-bundle", str(args.ca_bundle)] if args.ca_bundle else []
        # Its basename names the container `kubectl create deployment` makes: agent, as in the chart.
        self.manual_image = "localhost:30000/fa-bench/agent:manual"
        self.refs: set[str] = {self.manual_image}

    # ------------------------------------------------------------------------------------ the two sides

    def write_project(self, prod_task_types: list[str]) -> Path:
        def service(env: str, **extra) -> dict:
            return {"environment": env, "image": env, "values": [str(REPO / "values/base.yaml"),
                                                                  str(REPO / f"values/{env}.yaml")],
                    "sandboxValues": [str(REPO / "values/sandbox.yaml")], **extra}

        doc = {"apiVersion": "flyte-agents.dev/v1alpha1", "kind": "Project", "namespace": NS,
               "chart": str(REPO / "charts/flyte-agent"),
               "images": {env: {"context": str(self.contexts[env]), "repository": f"fa-bench/agent-{env}"}
                          for env in ("prod", "dev")},
               "services": {"demo-prod": service("prod", taskTypes=prod_task_types, default=True),
                            "demo-dev": service("dev", taskTypes=[DEMO], route=False)},
               "sandbox": {"builtin": "keep"}}
        path = self.scratch / "flyte-agents.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def deploy(self, expect: tuple[int, int, int, int] | None = None) -> tuple[float, dict, str, float]:
        """One `flyte-agents deploy --sandbox`: (seconds, JSON result, stderr, peak RSS MB). With `expect`
        (builds, pushes, helm upgrades, restarts) the counts must match, in the JSON and in the cluster."""
        before = self.cluster_counts()
        done = run([str(CLI), "deploy", "--sandbox", "--project", str(self.scratch / "flyte-agents.yaml"),
                    "--helm", self.args.helm, "--network", self.args.network, *self.ca_bundle,
                    "--output", "json"])
        result = json.loads(done.stdout)
        self.refs.update(i["ref"] for i in result["plan"]["images"]["images"])
        counts = (result["builds"], result["pushes"], len(result["helm_upgrades"]),
                  int(result["propeller_restarted"]))
        after = self.cluster_counts()
        seen = (sum(after[0].get(r, 0) - before[0].get(r, 0) for r in after[0]), after[1] - before[1])
        if seen != counts[2:]:
            sys.exit(f"bench: the deploy reported {counts[2]} helm upgrades and {counts[3]} restarts, the cluster "
                     f"shows {seen[0]} new helm revisions and {seen[1]} propeller generations")
        if expect is not None and counts != expect:
            sys.exit(f"bench: expected (builds, pushes, upgrades, restarts) {expect}, got {counts}")
        return done.seconds, result, done.stderr, done.peak_rss_mb

    def cluster_counts(self) -> tuple[dict[str, int], int]:
        """helm revision per release, and propeller's generation (a restart patches its pod template)."""
        listed = json.loads(run([self.args.helm, "list", "-n", NS, "--kube-context", CONTEXT, "-o", "json"]).stdout)
        generation = kubectl("get", "deployment", "flyte-sandbox", "-o", "jsonpath={.metadata.generation}")
        return {r["name"]: int(r["revision"]) for r in listed}, int(generation)

    def manual(self) -> float:
        return run([str(MANUAL), str(self.contexts["prod"]), self.manual_image, str(self.scratch / "routing.yaml"),
                    *MANUAL_DEPLOYMENTS], {"BUILD_NETWORK": self.args.network}).seconds

    # ------------------------------------------------------------------------------------ set-up and cases

    def set_up(self) -> None:
        print("deploy bench: first deploy (builds, pushes, installs), then the manual side's set-up", flush=True)
        self.write_project([DEMO])
        self.deploy()
        key = kubectl("get", "configmap", "flyte-sandbox-extra-config", "-o",
                      "jsonpath={.data.zz-flyte-agents\\.yaml}")
        (self.scratch / "routing.yaml").write_text(key)
        for name in MANUAL_DEPLOYMENTS:
            kubectl("create", "deployment", name, f"--image={self.manual_image}")
        self.manual()  # warm-up: builds and pushes its image once

    def no_op(self) -> tuple[Row, list[float]]:
        print(f"deploy bench: no-op redeploy, {self.args.noop_rounds} interleaved rounds", flush=True)
        runs, manual = interleave(self.args.noop_rounds, lambda: self.deploy((0, 0, 0, 0)), self.manual)
        note = "0 builds, 0 pushes, 0 helm upgrades, 0 restarts (JSON = cluster)"
        return (Row("no-op redeploy", [r[0] for r in runs], "bench/manual_deploy.sh", manual, note=note),
                [r[3] for r in runs])

    def config_change(self) -> Row:
        print(f"deploy bench: config-only change, {self.args.config_rounds} rounds", flush=True)
        times = []
        for _ in range(self.args.config_rounds):
            self.write_project([DEMO, ADDED_TASK_TYPE])
            seconds, result, _, _ = self.deploy((0, 0, 0, 1))
            assert result["routing_written"]
            times.append(seconds)
            self.write_project([DEMO])
            self.deploy((0, 0, 0, 1))  # back, untimed
        return Row(f"config-only change (task type {ADDED_TASK_TYPE} added)", times,
                   note="0 builds, 0 pushes, 0 helm upgrades, routing written, 1 propeller restart")

    def code_change(self) -> tuple[Row, list[float]]:
        print(f"deploy bench: code change in demo-dev's image, {self.args.code_rounds} rounds (real rebuilds)",
              flush=True)
        agent = self.contexts["dev"] / "flyte_agents_demo" / "flyte_agents_demo" / "agent.py"
        times, builds, pushes, serving, peaks = [], [], [], [], []
        for _ in range(self.args.code_rounds):
            agent.write_text(agent.read_text() + f"# bench change {uuid.uuid4().hex}\n")
            seconds, result, stderr, peak = self.deploy((1, 1, 1, 0))
            times.append(seconds)
            builds.append(_stage_seconds(stderr, "build"))
            pushes.append(_stage_seconds(stderr, "push"))
            serving.append(_serving_seconds(stderr, "demo-dev"))
            peaks.append(peak)
        rest = [t - b - p - w for t, b, p, w in zip(times, builds, pushes, serving)]
        note = (f"1 build, 1 push, 1 helm upgrade, 0 restarts; build {statistics.median(builds):.1f}s, push "
                f"{statistics.median(pushes):.1f}s ({self.top_layer(result)}), new pod serving after "
                f"{statistics.median(serving):.1f}s, the rest (helm, routing, verify) {statistics.median(rest):.1f}s")
        return (Row("code-change redeploy (1 file, 1 service)", times, note=note, builds=builds, pushes=pushes,
                    serving=serving), peaks)

    def top_layer(self, result: dict) -> str:
        """What the code change added to demo-dev's image: its newest layer (the only one the push sends; the
        metadata-only steps above it, such as the label step of `flyte-agents build`, have none) and its size."""
        (ref,) = [i["ref"] for i in result["plan"]["images"]["images"] if "/agent-dev:" in i["ref"]]
        layer = next(s for s in run(["docker", "history", "--format", "{{.Size}}", ref]).stdout.split() if s != "0B")
        size = run(["docker", "image", "inspect", "--format", "{{.Size}}", ref]).stdout.strip()
        return f"one new layer of {layer}, image {int(size) / 1e6:.0f} MB"

    def clean_images(self) -> None:
        for ref in self.refs:
            subprocess.run(["docker", "rmi", ref], capture_output=True)


def _stage_seconds(stderr: str, stage: str) -> float:
    """The stage's duration as the deploy reports it: `build done REF ... (12.3s)`."""
    found = re.search(rf"^{stage} done \S+.*\((\d+(?:\.\d+)?)s\)$", stderr, re.MULTILINE)
    if not found:
        sys.exit(f"bench: no '{stage} done' line in the deploy's progress:\n{stderr[-2000:]}")
    return float(found.group(1))


def _serving_seconds(stderr: str, service: str) -> float:
    """How long the deploy waited for the service's new pod to answer SERVING: `verify S: pod P SERVING after 9.1s`
    (its first verify, before routing: the pod is new then)."""
    found = re.search(rf"verify {service}: pod \S+ SERVING after (\d+(?:\.\d+)?)s$", stderr, re.MULTILINE)
    if not found:
        sys.exit(f"bench: no 'verify {service}: ... SERVING after' line in the deploy's progress:\n{stderr[-2000:]}")
    return float(found.group(1))


def measure(args: argparse.Namespace) -> list[Row]:
    rows = [measure_startup(args.startup_rounds)]
    with sandbox_lock(), tempfile.TemporaryDirectory(prefix="fa-bench-deploy-") as scratch:
        reset_standin(args.flyte)
        bench = Bench(args, Path(scratch))
        try:
            with pod_runner():
                bench.set_up()
                no_op, noop_peaks = bench.no_op()
                config = bench.config_change()
                code, code_peaks = bench.code_change()
        finally:
            reset_standin(args.flyte)
            bench.clean_images()
    rows += [no_op, config, code,
             Row("peak RSS of the CLI, no-op deploy", noop_peaks, unit="MB", note="VmHWM, helm not included"),
             Row("peak RSS of the CLI, code-change deploy", code_peaks, unit="MB",
                 note="VmHWM, helm and dockerd not included")]
    return rows


def goals(rows: list[Row]) -> list[str]:
    """Where the medians stand against issue 7's goals (CLI, no-op) and issue 14's (code change)."""
    startup, no_op, _, code = (statistics.median(r.ours) for r in rows[:4])
    ratio = statistics.median(rows[1].baseline) / no_op
    build, push, serving = (statistics.median(samples) for samples in (rows[3].builds, rows[3].pushes,
                                                                      rows[3].serving))
    budget = build + push + serving + 3
    return [goal("flyte-agents --help under 0.3 s", startup < 0.3, f"{startup:.2f}s"),
            goal("no-op redeploy at least 10x faster than the manual script", ratio >= 10, f"{ratio:.1f}x"),
            goal("no-op redeploy under 1 s", no_op < 1, f"{no_op:.2f}s"),
            goal("code change: image build at most 10 s", build <= 10, f"{build:.1f}s"),
            goal("code change: push at most 1 s", push <= 1, f"{push:.1f}s"),
            goal("code change: deploy within build + push + new pod serving + 3 s", code <= budget,
                  f"{code:.1f}s against {budget:.1f}s")]
