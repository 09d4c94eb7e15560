#!/usr/bin/env python3
"""Pod runner for the sandbox stand-in: what a kubelet would do for the pods kwok only pretends to run.

kwok gives every pod an IP from the node's pod CIDR (127.1.0.0/24, see hack/devenv.py): each one answers on this
machine's loopback. For every running pod of the namespace this runner runs, by the pod's image:

* `flyte-binary:sandbox` (the stand-in's flyte-sandbox pod): a real flytepropeller process on the pod's mounted
  config files (hack/propeller_pod.py);
* `cr.flyte.org/flyteorg/flyteagent:*` (the sandbox's built-in flyteagent/flyteconnector, an image that cannot be
  pulled here): the pod's own command, a real flytekit agent server, in a container of the base image with this
  machine's flytekit venv mounted read-only;
* pods of the flyte-agent chart (label app.kubernetes.io/part-of=flyte-agents): the pod's own image and args.
Containers get the pod's name as hostname and are published on the pod's IP at their ports, so a Service's
Endpoints reach them (propeller's k8s:// resolver), and kwok's PortForward for the pod points at the same address
(`flyte-agents verify` port-forwards). When a pod goes, so does what ran it.

Test and demo infrastructure only, never product code:

    agent_pods.py run  [--namespace flyte] [--context flyte-sandbox]   keep in sync until SIGTERM/Ctrl-C, then clean
    agent_pods.py clean ...                                             remove every container and PortForward

Needs the project's venv (docker, kubernetes) and KUBECONFIG/DOCKER_HOST/FA_PROPELLER from .dev/env.sh.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import propeller_pod  # noqa: E402 - hack/ is not a package

AGENT_SELECTOR = "app.kubernetes.io/part-of=flyte-agents"
BUILTIN_IMAGE = "cr.flyte.org/flyteorg/flyteagent:"
LABEL = "flyte-agents.dev/pod-runner"
GROUP, VERSION, PLURAL = "kwok.x-k8s.io", "v1alpha1", "portforwards"
# flytekit's agent server also serves Prometheus metrics on 9090 by default; a pod needs not declare a port to
# answer on it, but Docker publishes only what it is told.
METRICS_PORT = 9090


class PodRunner:
    def __init__(self, api_client, docker_client, namespace: str = "flyte", propeller: str | None = None,
                 kubeconfig: str | None = None) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.docker = docker_client
        self.namespace = namespace
        self.propeller = propeller_pod.PropellerPods(
            self.core, namespace, propeller or os.environ.get("FA_PROPELLER", "flytepropeller"),
            kubeconfig or os.environ.get("KUBECONFIG", ""))

    def _containers(self) -> dict:
        found = self.docker.containers.list(all=True, filters={"label": LABEL})
        return {c.labels[LABEL]: c for c in found if c.labels[LABEL].startswith(f"{self.namespace}/")}

    def sync(self) -> None:
        running = [p for p in self.core.list_namespaced_pod(self.namespace).items
                   if p.metadata.deletion_timestamp is None and p.status.phase == "Running" and p.status.pod_ip]
        pods = {p.metadata.name: p for p in running if self._runs_in_container(p)}
        containers = {key.split("/", 1)[1]: c for key, c in self._containers().items()}
        current = {name for name, c in containers.items()
                   if name in pods and c.labels.get(f"{LABEL}.uid") == pods[name].metadata.uid}
        starting = pods.keys() - current
        # A rolling update's old pod ends after the new one runs: old containers go after the new ones start (on
        # vfs, removing one took 7-8 s of every code-change redeploy), except those holding a name or an IP (kwok
        # reuses freed ones) that a starting pod needs.
        wanted_ips = {pods[name].status.pod_ip for name in starting}
        in_the_way = {name for name in containers.keys() - current
                      if name in pods or containers[name].labels.get(f"{LABEL}.ip") in wanted_ips}
        for name in in_the_way:
            self._remove(name, containers[name])
        for name in starting:
            self._start(pods[name])
        for name in containers.keys() - current - in_the_way:
            self._remove(name, containers[name])
        self.propeller.sync([p for p in running if propeller_pod.PropellerPods.handles(p)])

    @staticmethod
    def _runs_in_container(pod) -> bool:
        labels = pod.metadata.labels or {}
        return labels.get("app.kubernetes.io/part-of") == "flyte-agents" or \
            pod.spec.containers[0].image.startswith(BUILTIN_IMAGE)

    def _start(self, pod) -> None:
        spec = pod.spec.containers[0]
        ip = pod.status.pod_ip
        ports = sorted({p.container_port for p in spec.ports or []} | {METRICS_PORT})
        grpc_port = next((p.container_port for p in spec.ports or [] if "grpc" in (p.name or "")), 8000)
        image, command, volumes, env = spec.image, None, {}, {e.name: e.value for e in spec.env or []
                                                               if e.value is not None}
        if spec.image.startswith(BUILTIN_IMAGE):
            image, volumes, env = self._builtin_runtime(env)
            command = [*(spec.command or []), *(spec.args or [])]
        container = self.docker.containers.run(
            image, spec.args if command is None else command, detach=True, init=True, hostname=pod.metadata.name,
            ports={f"{p}/tcp": (ip, p) for p in ports}, volumes=volumes, environment=env,
            labels={LABEL: f"{self.namespace}/{pod.metadata.name}", f"{LABEL}.uid": pod.metadata.uid,
                    f"{LABEL}.ip": ip})
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PortForward",
                "metadata": {"name": pod.metadata.name, "namespace": self.namespace},
                "spec": {"forwards": [{"ports": [grpc_port], "target": {"address": ip, "port": grpc_port}}]}}
        self._delete_forward(pod.metadata.name)
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)
        print(f"agent_pods: pod {self.namespace}/{pod.metadata.name} -> container {container.short_id} "
              f"({image}) on {ip}:{ports}", flush=True)

    @staticmethod
    def _builtin_runtime(env: dict) -> tuple[str, dict, dict]:
        """The base image running this machine's flytekit venv (mounted at its own paths, with its interpreter)."""
        venv, interpreter = Path(sys.prefix), Path(sys.base_prefix)
        volumes = {str(venv): {"bind": str(venv), "mode": "ro"}, str(interpreter): {"bind": str(interpreter),
                                                                                      "mode": "ro"}}
        env = {**env, "PATH": f"{venv}/bin:/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp"}
        return os.environ.get("FA_BASE_IMAGE", "flyte-agents/base-python:bookworm"), volumes, env

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

    def container_of(self, pod: str):
        """The Docker container running `pod`, or None."""
        return self._containers().get(f"{self.namespace}/{pod}")

    def clean(self) -> None:
        self.propeller.clean()
        for key, container in self._containers().items():
            self._remove(key.split("/", 1)[1], container)


def main() -> int:
    import docker
    from kubernetes import config

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "clean"])
    parser.add_argument("--namespace", default="flyte")
    parser.add_argument("--context", default="flyte-sandbox")
    args = parser.parse_args()
    runner = PodRunner(config.new_client_from_config(context=args.context), docker.from_env(), args.namespace)
    if args.command == "clean":
        runner.clean()
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            try:
                runner.sync()
            except Exception as err:  # noqa: BLE001 - e.g. a namespace being deleted: a kubelet carries on too
                print(f"agent_pods: sync failed, retrying: {err!r}"[:500], flush=True)
            time.sleep(0.5)
    except (KeyboardInterrupt, SystemExit):
        runner.clean()
    return 0


if __name__ == "__main__":
    sys.exit(main())
