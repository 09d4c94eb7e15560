"""Flyte versions and what differs between them: agent vs connector naming, plugin ids, code and chart defaults.

All Flyte version differences live in flyte/; callers never branch on a Flyte version themselves.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UserError
from .endpoints import dns_endpoint, k8s_endpoint


DEFAULT_TIMEOUT = "10s"
ROUND_ROBIN = '{"loadBalancingConfig": [{"round_robin":{}}]}'
CANONICAL_PLUGINS = ("container", "sidecar", "k8s-array", "{plugin}", "echo")
AGENT_PLUGIN, CONNECTOR_PLUGIN = "agent-service", "connector-service"

# Task types that other propeller plugins register statically (flyteplugins `RegisteredTaskTypes` /
# `SupportedTaskTypes`). An agent serving one of them must be pinned with `default-for-task-types`, or propeller
# fails at startup with "Multiple plugins registered to handle task type".
STATIC_TASK_TYPES: dict[str, tuple[str, ...]] = {
    "container": ("container", "python-task", "raw-container"),
    "sidecar": ("sidecar",),
    "pod": ("container", "python-task", "raw-container", "sidecar"),
    "k8s-array": ("container_array",),
    "echo": ("echo",),
    "spark": ("spark",),
    "ray": ("ray",),
    "pytorch": ("pytorch",),
    "tensorflow": ("tensorflow",),
    "mpi": ("mpi",),
    "dask": ("dask",),
    "bigquery": ("bigquery_query_job_task",),
    "snowflake": ("snowflake",),
    "databricks": ("spark",),
    "athena": ("hive", "presto"),
    "presto": ("presto",),
}
# flytekit's agent server always serves these two (SensorEngine async, WebhookConnector sync since 1.15.1).
FLYTEKIT_BUILTIN_TYPES = {"sensor": False, "webhook": True}

# ------------------------------------------------------------------------------------------------ versions, naming

@dataclass(frozen=True, order=True)
class FlyteVersion:
    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> FlyteVersion:
        match = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+.]?[0-9A-Za-z.-]*)?", str(text).strip())
        if not match:
            raise UserError(f"--flyte-version {text!r} is not a Flyte version: use e.g. 1.15.3 or 1.16")
        version = cls(int(match[1]), int(match[2]), int(match[3] or 0))
        if version.major != 1:
            raise UserError(f"Flyte {version} is not supported: this toolkit configures Flyte 1 (1.13 to 1.16.x); "
                            "Flyte 2 uses an incompatible connector protocol")
        if version < cls(1, 13):
            raise UserError(f"Flyte {version} is not supported: agents are discovered by polling only from 1.13; "
                            "upgrade Flyte or pass --flyte-version 1.13 or newer")
        return version

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class Naming:
    """Every name that differs between the agent (≤ 1.15) and connector (≥ 1.16) generations."""

    plugin: str
    other_plugin: str
    default_key: str
    deployments_key: str
    for_task_types_key: str
    metadata_rpc: str
    builtin_service: str
    binary_values_key: str
    chart_key: str
    core_config_file: str

    @property
    def section_keys(self) -> tuple[str, str, str]:
        return (self.default_key, self.deployments_key, self.for_task_types_key)


AGENT_NAMING = Naming(AGENT_PLUGIN, CONNECTOR_PLUGIN, "defaultAgent", "agents", "agentForTaskTypes", "ListAgents",
                      "flyteagent", "agentService", "flyteagent", "agent_service.yaml")
CONNECTOR_NAMING = Naming(CONNECTOR_PLUGIN, AGENT_PLUGIN, "defaultConnector", "connectors", "connectorForTaskTypes",
                          "ListConnectors", "flyteconnector", "connectorService", "flyteconnector",
                          "connector_service.yaml")


def naming_for(version: FlyteVersion) -> Naming:
    """Charts, sandbox and flytectl switched to the connector naming in 1.16.0 (flyte #6400)."""
    return CONNECTOR_NAMING if version >= FlyteVersion(1, 16) else AGENT_NAMING


def naming_of_plugin(plugin: str) -> Naming:
    return CONNECTOR_NAMING if plugin == CONNECTOR_PLUGIN else AGENT_NAMING


def plugin_exists(plugin: str, version: FlyteVersion) -> bool:
    """The connector plugin was added to propeller in 1.15.1 (#6332); the agent plugin is still there in 1.16."""
    return plugin != CONNECTOR_PLUGIN or version >= FlyteVersion(1, 15, 1)


def code_default_timeout(plugin: str, version: FlyteVersion) -> str:
    """The `defaultTimeout` propeller uses when none is set (agent: 10s until 1.15.0, 3s from 1.15.1 #6312)."""
    if plugin == AGENT_PLUGIN and version >= FlyteVersion(1, 15, 1):
        return "3s"
    return "10s"


def round_robin_is_default(version: FlyteVersion) -> bool:
    """`defaultServiceConfig` defaults to round_robin since 1.15.0 (#6179); before, gRPC picked one pod."""
    return version >= FlyteVersion(1, 15)


def pins_override_discovery(version: FlyteVersion) -> bool:
    """Since 1.16.0 (#6464) explicit `*ForTaskTypes` entries win over ListAgents discovery; before, discovery won."""
    return version >= FlyteVersion(1, 16)


def echo_swallows_unknown_types(version: FlyteVersion) -> bool:
    """Up to 1.13.1 the echo plugin was a default plugin: unknown task types silently 'succeeded' (#5713)."""
    return version < FlyteVersion(1, 13, 2)


def version_from_image(image: str) -> FlyteVersion | None:
    """Flyte's own images are tagged v<version>: flytecopilot, flytepropeller, flyte-binary (each also -release)."""
    match = re.search(r"/(flytecopilot|flytepropeller|flyte-binary)(-release)?:v(\d+\.\d+\.\d+)(?:$|[^0-9.])",
                      "/" + image)
    if not match:
        return None
    try:
        return FlyteVersion.parse(match[3])
    except UserError:
        return None


def version_from_builtin_service(deployment_name: str) -> FlyteVersion | None:
    """The built-in service is Deployment flyteagent up to 1.15 and flyteconnector from 1.16 (#6400)."""
    return {"flyteagent": FlyteVersion(1, 15), "flyteconnector": FlyteVersion(1, 16)}.get(deployment_name)


def chart_default_endpoint(naming: Naming, version: FlyteVersion, namespace: str = "flyte") -> str:
    """The charts' default endpoint for the built-in service: dns:/// up to 1.14, k8s:// from 1.15."""
    if version >= FlyteVersion(1, 15):
        return k8s_endpoint(naming.builtin_service, namespace, 8000)
    return dns_endpoint(naming.builtin_service, namespace, 8000)


def chart_default_task_plugins(version: FlyteVersion) -> dict:
    """`tasks.task-plugins` as flyte-binary and flyte-core render it by default (echo added in 1.14)."""
    plugins = canonical_plugins(naming_for(version))
    if version < FlyteVersion(1, 14):
        plugins.remove("echo")
    return {"enabled-plugins": plugins,
            "default-for-task-types": {"container": "container", "sidecar": "sidecar", "container_array": "k8s-array"}}


def canonical_plugins(naming: Naming) -> list[str]:
    return [p.format(plugin=naming.plugin) for p in CANONICAL_PLUGINS]
