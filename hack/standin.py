#!/usr/bin/env python3
"""A Flyte sandbox stand-in on the kwok cluster: the objects `flytectl demo start` creates that the toolkit touches.

    standin.py up --flyte 1.15|1.16     apply the stand-in (idempotent) and add kube context `flyte-sandbox`
    standin.py reset --flyte 1.15|1.16  delete namespace `flyte` and everything in it, then `up`
    standin.py down                     delete namespace `flyte` and the kube context
    standin.py render --flyte 1.16      print the manifests

1.15 uses the agent naming (plugin `agent-service`, Deployment `flyteagent`); 1.16 the connector naming
(`connector-service`, `flyteconnector`), as in the real sandbox manifests of Flyte 1.15.3 and 1.16.8.
Needs KUBECONFIG and kubectl from `make env` (source .dev/env.sh). Stdlib only.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import string
import subprocess
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "standin" / "flyte-sandbox.yaml.tmpl"
CONTEXT = "flyte-sandbox"
NAMESPACE = "flyte"
EXECUTION_NAMESPACE = "flytesnacks-development"  # where the stand-in's propeller runs workflows (hack/propeller_pod.py)

FLAVORS = {
    "1.15": {"version": "1.15.3", "manifest": "complete-agent.yaml", "svc": "flyteagent", "plugin": "agent-service",
             "default_key": "defaultAgent", "port_name": "agent-grpc", "platform_insecure": "true"},
    "1.16": {"version": "1.16.8", "manifest": "complete-connector.yaml", "svc": "flyteconnector",
             "plugin": "connector-service", "default_key": "defaultConnector", "port_name": "connector-grpc",
             "platform_insecure": '"true"'},
}


def render(flyte: str) -> str:
    values = FLAVORS[flyte]
    # Like the sandbox chart, the pod template carries a checksum of the config it was rendered with.
    checksum = hashlib.sha256(repr(sorted(values.items())).encode()).hexdigest()
    return string.Template(TEMPLATE.read_text()).substitute(values, config_checksum=checksum)


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    binary = os.environ.get("FA_KUBECTL", "kubectl")
    proc = subprocess.run([binary, *args], input=stdin, capture_output=True, text=True)
    if check and proc.returncode != 0:
        sys.exit(f"standin: kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def add_context() -> None:
    """Add context `flyte-sandbox` (namespace flyte) pointing at the current cluster, as flytectl does, and use it."""
    view = ["config", "view", "--minify", "--raw", "-o"]
    server = kubectl(*view, "jsonpath={.clusters[0].cluster.server}").stdout
    ca = kubectl(*view, "jsonpath={.clusters[0].cluster.certificate-authority}").stdout
    cert = kubectl(*view, "jsonpath={.users[0].user.client-certificate}").stdout
    key = kubectl(*view, "jsonpath={.users[0].user.client-key}").stdout
    kubectl("config", "set-cluster", CONTEXT, f"--server={server}", f"--certificate-authority={ca}")
    kubectl("config", "set-credentials", CONTEXT, f"--client-certificate={cert}", f"--client-key={key}")
    kubectl("config", "set-context", CONTEXT, f"--cluster={CONTEXT}", f"--user={CONTEXT}", f"--namespace={NAMESPACE}")
    kubectl("config", "use-context", CONTEXT)


def up(flyte: str) -> None:
    others = [v["svc"] for k, v in FLAVORS.items() if k != flyte]
    if any(kubectl("-n", NAMESPACE, "get", "deployment", svc, check=False).returncode == 0 for svc in others):
        print(f"standin: replacing the stand-in of another Flyte version with Flyte {FLAVORS[flyte]['version']}")
        delete_namespace()
    kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=flyte-sandbox", "-f", "-",
            stdin=render(flyte))
    if kubectl("config", "get-contexts", CONTEXT, check=False).returncode != 0:
        add_context()
    for deployment in ("flyte-sandbox", FLAVORS[flyte]["svc"]):  # both: a test may read either right away
        kubectl("--context", CONTEXT, "-n", NAMESPACE, "rollout", "status", f"deployment/{deployment}",
                "--timeout=60s")
    print(f"standin: Flyte {FLAVORS[flyte]['version']} sandbox stand-in ready (context {CONTEXT}, "
          f"namespace {NAMESPACE}, built-in {FLAVORS[flyte]['svc']})")


def delete_namespace() -> None:
    kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", "--timeout=120s")
    delete_executions()


def delete_executions() -> None:
    """FlyteWorkflows a stopped propeller left behind (hack/executions.py deletes its own): with their propeller
    gone, nothing clears their finalizers."""
    found = kubectl("-n", EXECUTION_NAMESPACE, "get", "flyteworkflows.flyte.lyft.com", "-o", "name", check=False)
    for name in found.stdout.split() if found.returncode == 0 else []:
        kubectl("-n", EXECUTION_NAMESPACE, "patch", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}',
                check=False)
        kubectl("-n", EXECUTION_NAMESPACE, "delete", name, "--ignore-not-found", "--wait=false", check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "reset", "down", "render"])
    parser.add_argument("--flyte", choices=sorted(FLAVORS), default="1.16")
    args = parser.parse_args()
    if args.command == "render":
        print(render(args.flyte), end="")
        return 0
    if args.command in ("reset", "down"):
        delete_namespace()
    if args.command == "down":
        kubectl("config", "delete-context", CONTEXT, check=False)
        return 0
    up(args.flyte)
    return 0


if __name__ == "__main__":
    sys.exit(main())
