#!/usr/bin/env python3
"""Pod runner for the sandbox stand-in: make the agent pods kwok pretends to run answer for real.

kwok runs no containers, but it serves the kubelet's port-forward: a `PortForward` object named after a pod sends
a port-forward through the API server to an address on this machine. For every running pod of the flyte-agent
chart (label app.kubernetes.io/part-of=flyte-agents) this runs the pod's own image and args as a Docker container
(published on a loopback port) and creates the PortForward for the pod's gRPC port; when the pod goes, so do both.
So `flyte-agents verify` port-forwards to a pod and talks to the real agent server built by `deploy`.

Test and demo infrastructure only, never product code (the product simply port-forwards):

    agent_pods.py run  [--namespace flyte] [--context flyte-sandbox]   keep in sync until SIGTERM/Ctrl-C, then clean
    agent_pods.py once ...                                              one pass
    agent_pods.py clean ...                                             remove every container and PortForward

Needs the project's venv (docker, kubernetes) and KUBECONFIG/DOCKER_HOST from .dev/env.sh.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time

SELECTOR = "app.kubernetes.io/part-of=flyte-agents"
LABEL = "flyte-agents.dev/pod-runner"
GROUP, VERSION, PLURAL = "kwok.x-k8s.io", "v1alpha1", "portforwards"


class PodRunner:
    def __init__(self, api_client, docker_client, namespace: str = "flyte") -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.docker = docker_client
        self.namespace = namespace

    def _containers(self) -> dict:
        found = self.docker.containers.list(all=True, filters={"label": LABEL})
        return {c.labels[LABEL]: c for c in found if c.labels[LABEL].startswith(f"{self.namespace}/")}

    def sync(self) -> None:
        pods = {p.metadata.name: p for p in self.core.list_namespaced_pod(self.namespace, label_selector=SELECTOR).items
                if p.metadata.deletion_timestamp is None and p.status.phase == "Running"}
        running = self._containers()
        for key, container in running.items():
            pod = key.split("/", 1)[1]
            if pod not in pods or container.labels.get(f"{LABEL}.uid") != pods[pod].metadata.uid:
                self._remove(pod, container)
        for name, pod in pods.items():
            if f"{self.namespace}/{name}" not in running or \
                    running[f"{self.namespace}/{name}"].labels.get(f"{LABEL}.uid") != pod.metadata.uid:
                self._start(pod)

    def _start(self, pod) -> None:
        spec = pod.spec.containers[0]
        port = next((p.container_port for p in spec.ports or [] if p.name == "grpc"), 8000)
        container = self.docker.containers.run(
            spec.image, spec.args, detach=True, init=True, ports={f"{port}/tcp": ("127.0.0.1", None)},
            labels={LABEL: f"{self.namespace}/{pod.metadata.name}", f"{LABEL}.uid": pod.metadata.uid},
            environment={e.name: e.value for e in spec.env or [] if e.value is not None})
        container.reload()
        host_port = int(container.ports[f"{port}/tcp"][0]["HostPort"])
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PortForward",
                "metadata": {"name": pod.metadata.name, "namespace": self.namespace},
                "spec": {"forwards": [{"ports": [port], "target": {"address": "127.0.0.1", "port": host_port}}]}}
        self._delete_forward(pod.metadata.name)
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)
        print(f"agent_pods: pod {self.namespace}/{pod.metadata.name} -> container {container.short_id} "
              f"({spec.image}) on 127.0.0.1:{host_port}", flush=True)

    def _remove(self, pod: str, container) -> None:
        import docker.errors

        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as err:
            if err.status_code != 409:  # 409: a removal (e.g. by an earlier runner) is already under way
                raise
        self._delete_forward(pod)

    def _delete_forward(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        except ApiException as err:
            if err.status != 404:
                raise

    def clean(self) -> None:
        for key, container in self._containers().items():
            self._remove(key.split("/", 1)[1], container)


def main() -> int:
    import docker
    from kubernetes import config

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "once", "clean"])
    parser.add_argument("--namespace", default="flyte")
    parser.add_argument("--context", default="flyte-sandbox")
    args = parser.parse_args()
    runner = PodRunner(config.new_client_from_config(context=args.context), docker.from_env(), args.namespace)
    if args.command == "clean":
        runner.clean()
        return 0
    if args.command == "once":
        runner.sync()
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            runner.sync()
            time.sleep(1)
    except (KeyboardInterrupt, SystemExit):
        runner.clean()
    return 0


if __name__ == "__main__":
    sys.exit(main())
