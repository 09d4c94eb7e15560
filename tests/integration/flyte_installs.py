"""Flyte-shaped installs for integration tests: a propeller Deployment and its config ConfigMap, as flyte-binary or
flyte-core lay them out, in a namespace of the test's own (kwok pretends to run them; nothing reads the config)."""
from __future__ import annotations

import yaml

from flyte_agents.adapters.kube import Kube

PLUGINS_116 = yaml.safe_dump({"tasks": {"task-plugins": {"enabled-plugins": ["container", "sidecar", "spark"],
                                                         "default-for-task-types": {"container": "container"}}}})
FLYTE_BINARY_116 = dict(deployment="rel-flyte-binary", labels={"app.kubernetes.io/name": "flyte-binary"},
                        image="cr.flyte.org/flyteorg/flyte-binary-release:v1.16.8", config_dir="/etc/flyte/config.d",
                        config_map="rel-flyte-binary-config")


def install_propeller(kube_api, namespace: str, deployment: str, labels: dict, image: str, config_dir: str,
                      config_map: str, data: dict) -> None:
    """Create the ConfigMap and the Deployment that mounts it, and wait until the Deployment is available."""
    from kubernetes import client

    client.CoreV1Api(kube_api).create_namespaced_config_map(namespace, {
        "metadata": {"name": config_map, "labels": {"helm.sh/chart": "test"}}, "data": data})
    selector = {"app": deployment}
    client.AppsV1Api(kube_api).create_namespaced_deployment(namespace, {
        "metadata": {"name": deployment, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": selector}, "template": {
            "metadata": {"labels": selector},
            "spec": {"containers": [{"name": "propeller", "image": image,
                                     "args": ["--config", f"{config_dir}/*.yaml"],
                                     "volumeMounts": [{"name": "config", "mountPath": config_dir}]}],
                     "volumes": [{"name": "config",
                                  "projected": {"sources": [{"configMap": {"name": config_map}}]}}]}}}})
    Kube(kube_api).wait_rollout(namespace, deployment, timeout=60)
