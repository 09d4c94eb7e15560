"""Ask an agent (connector) server what it serves: gRPC health, then the metadata service's ListAgents.

flyteidl 1.16.8 has one metadata RPC, `flyteidl.service.AgentMetadataService/ListAgents`; flytekit's 1.16
connector server registers that same service (`ListConnectors` only exists in the Flyte 2 protocol), so both
namings are asked with ListAgents. Supported task types come from `supported_task_categories` (name) and the
deprecated `supported_task_types` strings of older servers.

`PodForward` reaches a pod's port through the Kubernetes API server (the kubelet's port-forward, over the
client's websocket), exposed as a local loopback port so that grpc can dial it like any address.
"""
from __future__ import annotations

import select
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from ..errors import KubernetesError


@dataclass(frozen=True)
class AgentInfo:
    name: str
    task_types: tuple[str, ...]
    sync: bool


@dataclass(frozen=True)
class Probe:
    """What one server answered (or why it did not)."""

    address: str
    health: str | None  # SERVING, NOT_SERVING, ... or None when it did not answer
    agents: tuple[AgentInfo, ...] = ()
    error: str | None = None
    via: str = ""  # e.g. "pod flyte/demo-prod-abc (port-forward)"

    @property
    def served(self) -> set[str]:
        return {t for agent in self.agents for t in agent.task_types}

    @property
    def ok(self) -> bool:
        return self.error is None and self.health == "SERVING"

    def to_dict(self) -> dict:
        return {"address": self.address, "via": self.via, "health": self.health, "error": self.error,
                "agents": [{"name": a.name, "task_types": list(a.task_types), "sync": a.sync} for a in self.agents]}


def probe(address: str, timeout: float = 10, via: str = "") -> Probe:
    import grpc
    from flyteidl.admin import agent_pb2
    from flyteidl.service import agent_pb2_grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout,
                                                              wait_for_ready=True)
        except grpc.RpcError as err:
            return Probe(address, None, error=f"health check: {err.code().name} {err.details() or ''}".strip(),
                         via=via)
        health = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        try:
            listed = agent_pb2_grpc.AgentMetadataServiceStub(channel).ListAgents(agent_pb2.ListAgentsRequest(),
                                                                                   timeout=timeout)
        except grpc.RpcError as err:
            return Probe(address, health, error=f"ListAgents: {err.code().name} {err.details() or ''}".strip(),
                         via=via)
    agents = tuple(AgentInfo(a.name, tuple(dict.fromkeys([c.name for c in a.supported_task_categories]
                                                         + list(a.supported_task_types))), a.is_sync)
                   for a in listed.agents)
    return Probe(address, health, agents, None, via)


@dataclass
class PodForward:
    """A loopback listener; every connection to it is relayed to `pod:port` through the API server."""

    core: Any  # kubernetes CoreV1Api
    namespace: str
    pod: str
    port: int
    _core: Any = None
    _listener: socket.socket | None = None
    _open: list = field(default_factory=list)

    def __enter__(self) -> "PodForward":
        from kubernetes import client

        # A client of its own: kubernetes.stream swaps ApiClient.request while it connects, which would break
        # other threads' calls (forwards run side by side, one per pod).
        self._core = client.CoreV1Api(client.ApiClient(self.core.api_client.configuration))
        self._open.append(self._core.api_client)
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    @property
    def address(self) -> str:
        assert self._listener is not None
        return f"127.0.0.1:{self._listener.getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        if self._listener is not None:
            self._listener.close()
        for item in self._open:
            try:
                item.close()
            except Exception:  # noqa: BLE001 - best effort on teardown
                pass

    def _accept(self) -> None:
        while True:
            try:
                local, _ = self._listener.accept()
            except OSError:
                return
            # Replies arrive from the API server in small pieces; with Nagle on, each second piece waits for the
            # client's delayed ACK: 40 ms per RPC.
            local.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                remote = self._connect()
            except Exception:  # noqa: BLE001 - the client sees a closed connection and reports it
                local.close()
                continue
            self._open += [local, remote]
            threading.Thread(target=_pump, args=(local, remote), daemon=True).start()

    def _connect(self) -> Any:
        from kubernetes.stream import portforward

        forward = portforward(self._core.connect_get_namespaced_pod_portforward, self.pod, self.namespace,
                              ports=str(self.port))
        self._open.append(forward)
        remote = forward.socket(self.port)
        remote.setblocking(True)
        return remote


def _pump(a: Any, b: Any) -> None:
    """Copy bytes both ways until either side closes."""
    sockets = [a, b]
    try:
        while True:
            readable, _, _ = select.select(sockets, [], [], 60)
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                (b if sock is a else a).sendall(data)
    except OSError:
        return
    finally:
        for sock in sockets:
            try:
                sock.close()
            except OSError:
                pass


def ready_pods(core: Any, namespace: str, selector: dict[str, str]) -> list[str]:
    """Names of the Running, Ready, not terminating pods matching selector."""
    label_selector = ",".join(f"{k}={v}" for k, v in selector.items())
    try:
        pods = core.list_namespaced_pod(namespace, label_selector=label_selector, _request_timeout=15).items
    except Exception as err:  # noqa: BLE001
        raise KubernetesError(f"listing pods {label_selector} in {namespace} failed: {err}") from None
    ready = []
    for pod in pods:
        conditions = {c.type: c.status for c in pod.status.conditions or []}
        if pod.metadata.deletion_timestamp is None and pod.status.phase == "Running" and \
                conditions.get("Ready") == "True":
            ready.append(pod.metadata.name)
    return sorted(ready)
