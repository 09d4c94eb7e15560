"""charts/flyte-agent with the real helm 3 and helm 4: lint, render, schema validation, and install / upgrade /
rollback of a prod and a dev release side by side in the kwok cluster.

The gRPC health check of the chart's `helm test` pod and the chart's container spec run for real against the
built image in test_agent_image.py (kwok runs no containers).
"""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes import client, utils

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "flyte-agent"
VALUES = REPO / "values"
DATA = REPO / "tests" / "data" / "chart"
KUBE_VERSION = "1.34"  # the kwok cluster's API server
OVERLAYS = [(), ("prod",), ("dev",), ("prod", "sandbox"), ("dev", "sandbox")]
LAYER_IDS = ["base", "base+prod", "base+dev", "base+prod+sandbox", "base+dev+sandbox"]

pytestmark = [pytest.mark.helm, pytest.mark.timeout(300)]


def value_files(layers: tuple[str, ...]) -> list[str]:
    files = [VALUES / "base.yaml", *(VALUES / f"{name}.yaml" for name in layers)]
    return [arg for f in files for arg in ("-f", str(f))]


def render(helm, *args: str, release: str = "demo-prod", namespace: str = "agents") -> list[dict]:
    proc = helm.run("template", release, str(CHART), "--namespace", namespace,
                    "--kube-version", f"{KUBE_VERSION}.0", *args)
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def write_values(tmp_path: Path, name: str, values: dict) -> list[str]:
    """Values as a file: secrets never go through --set (argv)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values))
    return ["-f", str(path)]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str) -> dict:
    (doc,) = by_kind(docs, kind)
    return doc


def is_hook(doc: dict) -> bool:
    return "helm.sh/hook" in doc["metadata"].get("annotations", {})


def mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(quantity)).groups()
    factor = {"": 1 / 2**20, "Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "k": 1e3 / 2**20, "M": 1e6 / 2**20,
              "G": 1e9 / 2**20}[unit]
    return float(number) * factor


# ------------------------------------------------------------------------------------------------ lint and render


@pytest.mark.parametrize("layers", [None, *OVERLAYS], ids=["chart-defaults", *LAYER_IDS])
def test_lint_strict(helm, layers):
    args = value_files(layers) if layers is not None else []
    proc = helm.run("lint", "--strict", str(CHART), *args, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("layers", [*OVERLAYS, ("all-features",)], ids=[*LAYER_IDS, "all-features"])
def test_every_object_validates_strictly_against_the_cluster_version(helm, layers):
    """Strict: an unknown or misplaced field fails, which the API server would silently drop."""
    args = value_files(layers) if layers != ("all-features",) else ["-f", str(DATA / "all-features.yaml")]
    docs = render(helm, *args)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ServiceAccount", "Pod"} <= kinds
    if layers == ("all-features",):  # every optional template renders here
        assert {"Secret", "ConfigMap", "HorizontalPodAutoscaler", "NetworkPolicy", "PodDisruptionBudget"} <= kinds
    for doc in docs:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


@pytest.mark.kube
@pytest.mark.parametrize("layers", [*OVERLAYS, ("all-features",)], ids=[*LAYER_IDS, "all-features"])
def test_the_api_server_accepts_every_object_strictly(helm, kube_api, namespace, layers):
    """The kwok cluster's real kube-apiserver, dry run with strict field validation: also checks what the OpenAPI
    schemas cannot express (label syntax, names, immutable-field rules)."""
    args = value_files(layers) if layers != ("all-features",) else ["-f", str(DATA / "all-features.yaml")]
    for doc in render(helm, *args, namespace=namespace):
        utils.create_from_dict(kube_api, doc, namespace=namespace, dry_run="All", field_validation="Strict")


@pytest.mark.parametrize("layers", OVERLAYS, ids=LAYER_IDS)
def test_deployment_contract(helm, layers):
    docs = render(helm, *value_files(layers))
    deployment, service = one(docs, "Deployment"), one(docs, "Service")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    grpc_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")

    # propeller's k8s:// resolver dials podIP:<Service port>, so the two must be equal.
    grpc_service_port = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
    assert grpc_service_port["port"] == grpc_port
    assert {p["name"] for p in container["ports"]} == {"grpc", "metrics"}

    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == grpc_port, probe

    # The image's entrypoint (tini) must stay PID 1: the chart passes args only.
    assert "command" not in container
    assert container["args"][:3] == ["pyflyte", "serve", "connector"]
    assert container["args"][container["args"].index("--port") + 1] == str(grpc_port)

    # Restricted pod security standard.
    security = container["securityContext"]
    assert security["runAsNonRoot"] and security["runAsUser"] > 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["securityContext"]["runAsNonRoot"] is True
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == tmp["name"])

    # Not OOM-prone: Flyte's own chart limits the agent to 300Mi (flyteorg/flyte#5550).
    assert mebibytes(container["resources"]["limits"]["memory"]) >= 512
    assert "cpu" not in container["resources"]["limits"]  # throttling only adds gRPC latency

    # Minimal selector; standard labels plus the flyte-agents ones on every object.
    assert deployment["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "flyte-agent", "app.kubernetes.io/instance": "demo-prod"}
    for doc in docs:
        if is_hook(doc):
            continue
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "flyte-agents", doc["kind"]
        assert labels["flyte-agents.dev/service"] == "demo", doc["kind"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
    environment = layers[0] if layers else None
    assert deployment["metadata"]["labels"].get("flyte-agents.dev/environment") == environment


def test_serve_command_follows_the_flyte_version(helm):
    for serve in ("agent", "connector"):
        (container,) = one(render(helm, "--set", f"agent.serve={serve}"), "Deployment")["spec"]["template"]["spec"][
            "containers"]
        assert container["args"][:3] == ["pyflyte", "serve", serve]


def test_prod_and_dev_releases_do_not_clash(helm):
    """Every namespaced object of one release has a name the other release does not use."""
    prod = render(helm, *value_files(("prod",)), release="demo-prod")
    dev = render(helm, *value_files(("dev",)), release="demo-dev")
    names = lambda docs: {(d["kind"], d["metadata"]["name"]) for d in docs}  # noqa: E731
    assert names(prod) and not names(prod) & names(dev)
    selector = lambda docs: one(docs, "Deployment")["spec"]["selector"]["matchLabels"]  # noqa: E731
    assert selector(prod) != selector(dev)


def test_secrets_go_to_a_mounted_secret_never_a_configmap(helm, tmp_path):
    token = "tok-4b1d-never-in-a-configmap"
    docs = render(helm, *value_files(()), *write_values(tmp_path, "secrets", {"secrets": {"data": {"api_key": token}}}))
    secret, configmap = one(docs, "Secret"), one(docs, "ConfigMap")
    assert base64.b64decode(secret["data"]["api_key"]).decode() == token
    assert token not in json.dumps(configmap) and token not in json.dumps(one(docs, "Deployment"))
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/etc/secrets")
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert mount["readOnly"] is True


def test_existing_secret_is_mounted_and_no_secret_is_rendered(helm):
    docs = render(helm, "--set", "secrets.existingSecret=agent-credentials")
    assert by_kind(docs, "Secret") == []
    volumes = one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "secrets", "secret": {"secretName": "agent-credentials", "defaultMode": 0o440}} in volumes


def test_secret_or_config_change_changes_the_pod_template(helm, tmp_path):
    def annotations(name: str, values: dict) -> dict:
        docs = render(helm, *write_values(tmp_path, name, values))
        return one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]

    first = annotations("a", {"secrets": {"data": {"api_key": "one"}}, "config": {"LEVEL": "1"}})
    assert annotations("b", {"secrets": {"data": {"api_key": "one"}}, "config": {"LEVEL": "1"}}) == first
    assert annotations("c", {"secrets": {"data": {"api_key": "two"}}, "config": {"LEVEL": "1"}}) != first
    assert annotations("d", {"secrets": {"data": {"api_key": "one"}}, "config": {"LEVEL": "2"}}) != first


def test_hpa_owns_replicas_and_pdb_needs_more_than_one(helm):
    single = render(helm, "--set", "replicaCount=1")
    assert one(single, "Deployment")["spec"]["replicas"] == 1 and by_kind(single, "PodDisruptionBudget") == []

    double = render(helm, "--set", "replicaCount=2")
    assert one(double, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1

    scaled = render(helm, "--set", "autoscaling.enabled=true", "--set", "autoscaling.minReplicas=2")
    assert "replicas" not in one(scaled, "Deployment")["spec"]
    hpa = one(scaled, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == one(scaled, "Deployment")["metadata"]["name"]
    assert by_kind(scaled, "PodDisruptionBudget")


def test_network_policy_admits_only_propeller_and_the_test_pod_to_grpc(helm):
    docs = render(helm, *value_files(("prod",)))
    policy = one(docs, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"] == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    (grpc_rule,) = [r for r in policy["spec"]["ingress"] if r["ports"] == [{"port": "grpc", "protocol": "TCP"}]]
    propeller, test_pod = grpc_rule["from"]
    assert propeller["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "flyte"}
    assert propeller["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "flytepropeller"}
    hook = next(d for d in docs if is_hook(d))
    assert test_pod["podSelector"]["matchLabels"].items() <= hook["metadata"]["labels"].items()
    # No rule for metrics unless metricsFrom names who may scrape.
    assert len(policy["spec"]["ingress"]) == 1


# Pod labels of propeller in the Flyte sandbox: the flyte-binary Deployment `flyte-sandbox` of the v1.15.3 and
# v1.16.8 sandbox manifests (docker/sandbox-bundled/manifests/complete-*.yaml).
SANDBOX_PROPELLER_LABELS = {"app.kubernetes.io/name": "flyte-sandbox", "app.kubernetes.io/instance": "flyte-sandbox",
                            "app.kubernetes.io/component": "flyte-binary"}


def test_sandbox_network_policy_admits_the_sandbox_propeller(helm):
    """prod.yaml enables the policy for flyte-core; layered with sandbox.yaml it must select the sandbox's pod
    (Helm merges the label maps, so the overlay has to replace the key, not add one)."""
    docs = render(helm, *value_files(("prod", "sandbox")), namespace="flyte")
    grpc_rule = one(docs, "NetworkPolicy")["spec"]["ingress"][0]
    propeller = grpc_rule["from"][0]
    assert propeller["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "flyte"}
    assert propeller["podSelector"]["matchLabels"].items() <= SANDBOX_PROPELLER_LABELS.items()


def test_helm_test_hook_checks_grpc_health_of_the_service(helm):
    docs = render(helm, *value_files(("dev",)), release="demo-dev", namespace="team-a")
    (hook,) = [d for d in docs if is_hook(d)]
    assert hook["kind"] == "Pod" and hook["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = hook["spec"]["containers"]
    assert container["args"][-1] == f"{one(docs, 'Service')['metadata']['name']}.team-a.svc:8000"
    assert "grpc_health" in container["args"][2]
    # The Service must never send traffic to the test pod.
    selector = one(docs, "Service")["spec"]["selector"]
    assert not selector.items() <= hook["metadata"]["labels"].items()


@pytest.mark.parametrize("bad", sorted((DATA / "bad").glob("*.yaml")), ids=lambda p: p.stem)
def test_bad_values_are_rejected_by_the_schema_naming_the_field(helm, bad):
    proc = helm.run("template", "demo", str(CHART), "-f", str(bad), check=False)
    assert proc.returncode != 0, f"{bad.name} rendered"
    assert "don't meet the specifications of the schema" in proc.stderr
    field = bad.read_text().splitlines()[0].split("field: ", 1)[1].split()[0]
    shown = f"at '{field}'" if field.startswith("/") else f"'{field}'"
    assert shown in proc.stderr, proc.stderr
    assert "s3cr3t-value" not in proc.stderr  # the message never echoes a secret


# ------------------------------------------------------------------------------------------------ kwok cluster


def install(helm, kubeconfig: str, verb: str, release: str, namespace: str, *args: str):
    return helm.run(*verb.split(), release, *([str(CHART)] if verb != "rollback" else []), "--namespace", namespace,
                    "--wait", "--timeout", "180s", *args, kubeconfig=kubeconfig)


def pod_template(apps: client.AppsV1Api, name: str, namespace: str) -> dict:
    return apps.read_namespaced_deployment(name, namespace).spec.template.metadata.annotations


def assert_available(apps: client.AppsV1Api, name: str, namespace: str, replicas: int) -> None:
    deployment = apps.read_namespaced_deployment(name, namespace)
    assert deployment.spec.replicas == replicas
    assert deployment.status.available_replicas == replicas
    assert deployment.status.observed_generation == deployment.metadata.generation


@pytest.mark.kube
def test_prod_and_dev_install_upgrade_and_roll_back_side_by_side(helm, kubeconfig, kube_api, namespace, tmp_path):
    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    install(helm, kubeconfig, "install", "demo-prod", namespace, *value_files(("prod",)))
    install(helm, kubeconfig, "install", "demo-dev", namespace, *value_files(("dev",)))
    assert_available(apps, "demo-prod", namespace, 2)
    assert_available(apps, "demo-dev", namespace, 1)
    accounts = {sa.metadata.name for sa in core.list_namespaced_service_account(namespace).items}
    assert {"demo-prod", "demo-dev"} <= accounts
    agents = core.list_namespaced_service(namespace, label_selector="app.kubernetes.io/part-of=flyte-agents").items
    assert {s.metadata.labels["flyte-agents.dev/environment"] for s in agents} == {"prod", "dev"}

    notes = helm.run("get", "notes", "demo-prod", "--namespace", namespace, kubeconfig=kubeconfig).stdout
    assert f"k8s://demo-prod.{namespace}:8000" in notes
    assert f"dns:///demo-prod.{namespace}.svc.cluster.local:8000" in notes

    # Upgrade: a new secret value rolls the pods (a new pod template) and lands in the Secret.
    before = pod_template(apps, "demo-prod", namespace)
    install(helm, kubeconfig, "upgrade", "demo-prod", namespace, *value_files(("prod",)),
            *write_values(tmp_path, "secret", {"secrets": {"data": {"api_key": "rotated"}}}))
    secret = core.read_namespaced_secret("demo-prod", namespace)
    assert base64.b64decode(secret.data["api_key"]).decode() == "rotated"
    assert pod_template(apps, "demo-prod", namespace) != before
    assert_available(apps, "demo-prod", namespace, 2)

    # helm test runs the gRPC health hook (kwok completes the pod; the real check is in test_agent_image.py).
    tested = helm.run("test", "demo-prod", "--namespace", namespace, "--timeout", "120s", kubeconfig=kubeconfig)
    assert "demo-prod-test-grpc" in tested.stdout and "Succeeded" in tested.stdout

    # Roll back to revision 1: the chart-managed Secret goes away and the pod template is the first one again.
    install(helm, kubeconfig, "rollback", "demo-prod", namespace, "1")
    assert pod_template(apps, "demo-prod", namespace) == before
    assert "demo-prod" not in {s.metadata.name for s in core.list_namespaced_secret(namespace).items}
    assert_available(apps, "demo-prod", namespace, 2)
    history = json.loads(helm.run("history", "demo-prod", "--namespace", namespace, "-o", "json",
                                  kubeconfig=kubeconfig).stdout)
    assert [h["revision"] for h in history] == [1, 2, 3] and history[-1]["status"] == "deployed"

    # The dev release was never touched.
    dev = json.loads(helm.run("history", "demo-dev", "--namespace", namespace, "-o", "json",
                              kubeconfig=kubeconfig).stdout)
    assert [h["revision"] for h in dev] == [1]
    assert_available(apps, "demo-dev", namespace, 1)


@pytest.mark.kube
def test_rotating_an_existing_secret_rolls_the_pods_on_upgrade(helm, kubeconfig, kube_api, namespace):
    """A Secret managed outside the chart: its content is looked up at upgrade time into the pod template."""
    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name="agent-credentials"), string_data={"api_key": "one"})
    core.create_namespaced_secret(namespace, secret)
    args = (*value_files(("dev",)), "--set", "secrets.existingSecret=agent-credentials")
    install(helm, kubeconfig, "install", "demo-dev", namespace, *args)
    before = pod_template(apps, "demo-dev", namespace)

    install(helm, kubeconfig, "upgrade", "demo-dev", namespace, *args)
    assert pod_template(apps, "demo-dev", namespace) == before  # nothing changed, nothing rolls

    core.patch_namespaced_secret("agent-credentials", namespace, {"stringData": {"api_key": "two"}})
    install(helm, kubeconfig, "upgrade", "demo-dev", namespace, *args)
    assert pod_template(apps, "demo-dev", namespace) != before
    assert_available(apps, "demo-dev", namespace, 1)
