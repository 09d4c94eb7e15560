"""`flyte-agents dev`, the pure part: what the local agent server runs with, where propeller reaches it, and the
record a dev run leaves in the cluster so that a second run, `status` and `undeploy` know about it.

* The server: `pyflyte serve agent|connector` (by Flyte version) in the developer's Python, the image context's
  local packages (the `requirements.txt` lines that start with `.` or `/`, the build contract of agent_image/) on
  PYTHONPATH and named with `--modules`, so the source is imported, not an installed copy. The pod's view: the
  values' `config` and literal `env` as environment variables, `secrets` as files in a directory named by
  FLYTE_SECRETS_DEFAULT_DIR (flytekit's /etc/secrets), and the object store of the cluster's built-in agent
  (FLYTE_AWS_*), with an in-cluster endpoint `http://svc.ns:port` replaced by the Service's NodePort on the node.
* The route: a propeller in the cluster reaches this machine through a headless Service and a manual Endpoints
  object of the same name (the sandbox's own pattern for the host, `flyte-sandbox-local`), routed as
  `k8s://NAME.NAMESPACE:PORT`; propeller's k8s resolver dials the Endpoints' IPs on the URL's port, so the local
  server listens on that port. Kubernetes refuses loopback and link-local Endpoints IPs (API validation), so the
  host address must be one this machine owns on a real interface (see `pick_host_address`).
* Propeller on this machine (`flytectl demo start --dev`, one config file): the routing is merged into that file,
  endpoint 127.0.0.1; the object store is propeller's own storage section.
* The record: a Lease named after the service in propeller's namespace, renewed while dev runs; its annotation
  holds the session (endpoint, task types, holder, and the routing key's value before dev wrote it), which is all
  a later run needs to undo a killed one.
"""
from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping, Sequence

from ..errors import UserError
from .config import TOOLKIT_FILE, ConfigFile, PropellerConfig, lookup, lowercase_keys, merge_into
from .endpoints import k8s_endpoint
from .plan import plan_routing
from .render import render_yaml
from .services import AgentService
from .versions import AGENT_PLUGIN, CONNECTOR_PLUGIN, FlyteVersion

SESSION_ANNOTATION = "flyte-agents.dev/dev-session"
DEV_LABEL = "flyte-agents.dev/dev-service"
LEASE_SECONDS = 15  # renewed every third of it; a holder silent this long is gone
OBJECT_STORE_KEYS = ("FLYTE_AWS_ENDPOINT", "FLYTE_AWS_ACCESS_KEY_ID", "FLYTE_AWS_SECRET_ACCESS_KEY")
SECRETS_DIR_ENV = "FLYTE_SECRETS_DEFAULT_DIR"
_IN_CLUSTER_URL = re.compile(r"^(?P<scheme>https?)://(?P<svc>[a-z0-9-]+)\.(?P<ns>[a-z0-9-]+)"
                             r"(\.svc(\.cluster\.local)?)?:(?P<port>\d+)/?$")


def object_name(service_id: str) -> str:
    """The Service, Endpoints and Lease name of a service's dev session (a DNS-1035 label)."""
    return f"flyte-agents-dev-{service_id.replace('_', '-')}"[:63].rstrip("-")


def dev_endpoint(service_id: str, namespace: str, port: int) -> str:
    return k8s_endpoint(object_name(service_id), namespace, port)


def local_endpoint(port: int) -> str:
    """A propeller on this machine dials the server directly."""
    return f"dns:///127.0.0.1:{port}"


# ------------------------------------------------------------------------------------------------ the session record

@dataclass(frozen=True)
class DevSession:
    """What a dev run changed and who runs it; stored as JSON on its Lease (or marker file)."""

    service: str
    endpoint: str  # what propeller routes to
    address: str  # host:port the server listens on, as propeller reaches it
    task_types: tuple[str, ...]
    holder: str  # host:pid of the dev process
    started: str  # ISO time
    routing_config_map: str = ""  # namespace/name of the ConfigMap dev wrote (empty: nothing written yet)
    routing_key: str = ""
    routing_before: str | None = None  # the key's value before dev wrote it (None: absent)
    had_backup: bool = False  # the ConfigMap carried the toolkit's backup annotation before dev wrote

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DevSession:
        try:
            data = json.loads(text)
            data["task_types"] = tuple(data.get("task_types", ()))
            return cls(**data)
        except (TypeError, ValueError) as err:
            raise UserError(f"the dev session record {SESSION_ANNOTATION} is unreadable ({err}): delete the Lease "
                            "it is on (kubectl -n flyte delete lease -l flyte-agents.dev/dev-service)") from None

    @property
    def host(self) -> str:
        return self.holder.rpartition(":")[0]

    @property
    def pid(self) -> int:
        tail = self.holder.rpartition(":")[2]
        return int(tail) if tail.isdigit() else 0

    def with_routing(self, config_map: str, key: str, before: str | None, had_backup: bool) -> DevSession:
        return replace(self, routing_config_map=config_map, routing_key=key, routing_before=before,
                       had_backup=had_backup)


def is_stale(seconds_since_renewal: float, same_host: bool, holder_alive: bool) -> bool:
    """A session is over when its holder is a dead process of this machine, or silent for a lease period."""
    return (same_host and not holder_alive) or seconds_since_renewal > LEASE_SECONDS


# ------------------------------------------------------------------------------------------------ routing

def dev_routing(routed: Sequence[AgentService], dev: AgentService) -> list[AgentService]:
    """Deploy's routing for the cluster with `dev` in place of its service: dev's task types leave the services that
    had them (a task type goes to one service), and a non-default service left without task types is dropped."""
    taken = set(dev.task_types)
    result = []
    for service in routed:
        if service.id == dev.id:
            continue
        kept = tuple(t for t in service.task_types if t not in taken)
        if not kept and not service.default:
            continue
        result.append(replace(service, task_types=kept,
                              sync_task_types=tuple(t for t in service.sync_task_types if t in kept)))
    if dev.default:  # one default only: dev's takes over
        result = [replace(s, default=False) for s in result if s.task_types]
    return result + [dev]


# ------------------------------------------------------------------------------------------------ the server

def local_requirements(text: str) -> tuple[str, ...]:
    """The local packages of an image context's requirements.txt: lines starting with `.` or `/`."""
    found = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith((".", "/")):
            found.append(line.split()[0])
    return tuple(found)


def server_command(python: str, serve: str, port: int, prometheus_port: int, modules: Sequence[str]) -> list[str]:
    """`pyflyte serve agent|connector` through the given interpreter (no reliance on a pyflyte script on PATH)."""
    command = [python, "-c", "import sys; from flytekit.clis.sdk_in_container.pyflyte import main; "
               "sys.argv[0] = 'pyflyte'; main()", "serve", serve, "--port", str(port),
               "--prometheus_port", str(prometheus_port)]
    for module in modules:
        command += ["--modules", module]
    return command


@dataclass(frozen=True)
class PodView:
    """What the service's pod would see, as this machine's process gets it."""

    env: dict[str, str]
    secrets: dict[str, str]  # file name under the secrets dir -> content
    existing_secret: str | None  # a Secret of the cluster the chart mounts instead of `secrets.data`
    skipped: tuple[str, ...] = field(default=())  # env vars taken from the cluster (valueFrom): not reproduced


def pod_view(values: Mapping[str, Any]) -> PodView:
    """The chart's `config` (envFrom a ConfigMap), `env` (literal values) and `secrets` (files at /etc/secrets)."""
    env = {str(k): str(v) for k, v in (values.get("config") or {}).items()}
    skipped = []
    for item in values.get("env") or []:
        if isinstance(item, dict) and "value" in item:
            env[str(item["name"])] = str(item["value"])
        elif isinstance(item, dict) and "name" in item:
            skipped.append(str(item["name"]))
    secrets = values.get("secrets") or {}
    data = {str(k).lower(): str(v) for k, v in (secrets.get("data") or {}).items()}
    return PodView(env, data, secrets.get("existingSecret") or None, tuple(skipped))


def in_cluster_service(url: str) -> tuple[str, str, int] | None:
    """(service, namespace, port) of an in-cluster URL like http://flyte-sandbox-minio.flyte:9000, else None."""
    match = _IN_CLUSTER_URL.match(url.strip())
    return (match["svc"], match["ns"], int(match["port"])) if match else None


def object_store_env(container_env: Mapping[str, str], node_port: int | None, node_address: str) -> dict[str, str]:
    """The built-in agent's FLYTE_AWS_* settings, its in-cluster endpoint replaced by the Service's NodePort."""
    env = {k: container_env[k] for k in OBJECT_STORE_KEYS if k in container_env}
    endpoint = env.get("FLYTE_AWS_ENDPOINT", "")
    service = in_cluster_service(endpoint)
    if service is not None and node_port is not None:
        scheme = endpoint.split("://", 1)[0]
        env["FLYTE_AWS_ENDPOINT"] = f"{scheme}://{node_address}:{node_port}"
    return env


# ------------------------------------------------------------------------------------------------ the host address

def usable_endpoint_ip(address: str) -> bool:
    """Kubernetes accepts an Endpoints IP that is not unspecified, loopback, link-local or multicast."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return not (ip.is_unspecified or ip.is_loopback or ip.is_link_local or ip.is_multicast)


def pick_host_address(override: str | None, gateway_ips: Sequence[str], toward_node: Sequence[str],
                      default_route: str | None) -> tuple[str, str]:
    """The address at which the cluster reaches this machine, and how it was found, in this order:

    1. --host-address;
    2. the sandbox's own Endpoints for the host (`flyte-sandbox-local`, the host gateway of `demo start --dev`);
    3. the address this machine uses toward the cluster's node (the bridge's gateway for a node in a container,
       e.g. 172.17.0.1 for the sandbox's k3s: exactly the sandbox's host-gateway);
    4. when that is loopback (the node is this machine, so the cluster runs here), this machine's address on its
       default route: Kubernetes refuses loopback Endpoints, and any own address reaches a process of this machine.
    """
    if override:
        if not usable_endpoint_ip(override):
            raise UserError(f"--host-address {override!r} is not an IP Kubernetes accepts in Endpoints (not "
                            "loopback, link-local or unspecified): pass this machine's address as the cluster sees it")
        return override, "--host-address"
    for ip in gateway_ips:
        if usable_endpoint_ip(ip):
            return ip, "the sandbox's host gateway (Endpoints flyte-sandbox-local)"
    for ip in toward_node:
        if usable_endpoint_ip(ip):
            return ip, "this machine's address toward the cluster's node"
    if toward_node and default_route and usable_endpoint_ip(default_route):
        return default_route, "this machine's address on its default route (the cluster's node is this machine)"
    raise UserError("cannot tell at which address the cluster reaches this machine (no Endpoints "
                    "flyte-sandbox-local, no usable route to the node): pass --host-address")


# ------------------------------------------------------------------------------------------------ propeller's own file

def version_of_config(merged: dict) -> FlyteVersion | None:
    """The plugin generation a single-binary config enables: connector-service means 1.16, agent-service 1.15."""
    enabled = {str(p).strip().lower() for p in (lookup(merged, "tasks", "task-plugins", "enabled-plugins") or [])}
    plugins = lookup(merged, "plugins") or {}
    for plugin, version in ((CONNECTOR_PLUGIN, FlyteVersion(1, 16)), (AGENT_PLUGIN, FlyteVersion(1, 15))):
        if plugin in enabled or (isinstance(plugins, dict) and plugin in plugins):
            return version
    return None


def object_store_of_config(merged: dict) -> dict[str, str]:
    """FLYTE_AWS_* from propeller's storage section (stow s3 config, or the older `connection` form)."""
    stow = lookup(merged, "storage", "stow", "config") or {}
    connection = lookup(merged, "storage", "connection") or {}
    pairs = (("FLYTE_AWS_ENDPOINT", stow.get("endpoint"), connection.get("endpoint")),
             ("FLYTE_AWS_ACCESS_KEY_ID", stow.get("access_key_id"), connection.get("access-key")),
             ("FLYTE_AWS_SECRET_ACCESS_KEY", stow.get("secret_key"), connection.get("secret-key")))
    return {key: str(a or b) for key, a, b in pairs if a or b}


def route_into_file(name: str, text: str, version: FlyteVersion, services: Sequence[AgentService]) -> str:
    """The config file with the routing merged in: the plan's file as if loaded after it (viper's merge), written
    into the file itself, since a single binary reads one file. Keys come out lowercased, as propeller reads them."""
    config = PropellerConfig((ConfigFile(name, text),))
    plan = plan_routing(config, version, services, TOOLKIT_FILE)
    merged = lowercase_keys(ConfigFile(name, text).document())
    merge_into(merged, lowercase_keys(plan.content), {}, TOOLKIT_FILE)
    return render_yaml(merged)
