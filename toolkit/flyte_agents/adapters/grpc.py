"""Ask an agent (connector) server what it serves: gRPC health, then the metadata service's ListAgents.

flyteidl 1.16.8 has one metadata RPC, `flyteidl.service.AgentMetadataService/ListAgents`; flytekit's 1.16
connector server registers that same service (`ListConnectors` only exists in the Flyte 2 protocol), so both
namings are asked with ListAgents. Supported task types come from `supported_task_categories` (name) and the
deprecated `supported_task_types` strings of older servers.

`PodForward` reaches a pod's port through the Kubernetes API server (the kubelet's port-forward, over the
client's websocket), exposed as a local loopback port so that grpc can dial it like any address.

`AgentChannel` makes every agent call (health, metadata, async, sync) with a deadline and times it, returning the
status code instead of raising; `sniff` tells with raw sockets what speaks at a port (plaintext HTTP/2, TLS,
HTTP/1, something else), which gRPC's own errors cannot tell apart.
"""
from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
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


# A new pod's server starts listening a second or two after the pod is ready; with gRPC's default reconnect backoff
# (1 s, growing 1.6x with jitter) a waiting health check noticed it up to ~5 s late. Retry every 0.1 s, at most 1 s.
FAST_RECONNECT = (("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                  ("grpc.max_reconnect_backoff_ms", 1000))


def probe(address: str, timeout: float = 10, via: str = "") -> Probe:
    import grpc
    from flyteidl.admin import agent_pb2
    from flyteidl.service import agent_pb2_grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address, options=FAST_RECONNECT) as channel:
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
    """A loopback listener; every connection to it is relayed to `pod:port` through the API server.

    Each relayed connection has a pump thread that owns its two sockets: only that thread closes them. Closing
    them from __exit__ instead raced the pump's next select() (a closed socket's fd is -1: ValueError, a
    traceback in the middle of a deploy). __exit__ stops the listener, wakes every pump through a socketpair
    and waits for them to end before it closes the port-forwards under them.
    """

    core: Any  # kubernetes CoreV1Api
    namespace: str
    pod: str
    port: int
    _core: Any = None
    _listener: socket.socket | None = None
    _open: list = field(default_factory=list)  # port-forwards and API clients, closed after the pumps end
    _threads: list = field(default_factory=list)
    _stop: tuple[socket.socket, socket.socket] | None = None  # (read end the pumps watch, write end)

    def __enter__(self) -> "PodForward":
        from kubernetes import client

        # A client of its own: kubernetes.stream swaps ApiClient.request while it connects, which would break
        # other threads' calls (forwards run side by side, one per pod).
        self._core = client.CoreV1Api(client.ApiClient(self.core.api_client.configuration))
        self._open.append(self._core.api_client)
        self._stop = socket.socketpair()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self._start(self._accept)
        return self

    @property
    def address(self) -> str:
        assert self._listener is not None
        return f"127.0.0.1:{self._listener.getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        if self._listener is not None:
            _shutdown(self._listener)  # wakes accept() (close alone does not)
            self._threads[0].join(JOIN_SECONDS)  # no new pump after this
            self._listener.close()
        if self._stop is not None:
            self._stop[1].close()  # every pump sees its stop socket readable (EOF) and ends
            for thread in self._threads[1:]:
                thread.join(JOIN_SECONDS)
            if not any(t.is_alive() for t in self._threads):  # else a pump still selects on it: left to the GC
                self._stop[0].close()
        for item in self._open:
            try:
                item.close()
            except Exception:  # noqa: BLE001 - best effort on teardown
                pass

    def _start(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        assert self._listener is not None and self._stop is not None
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
            self._start(_pump, local, remote, self._stop[0])

    def _connect(self) -> Any:
        from kubernetes.stream import portforward

        forward = portforward(self._core.connect_get_namespaced_pod_portforward, self.pod, self.namespace,
                              ports=str(self.port))
        self._open.append(forward)
        remote = forward.socket(self.port)
        remote.setblocking(True)
        return remote


JOIN_SECONDS = 5


def _pump(a: Any, b: Any, stop: socket.socket) -> None:
    """Copy bytes both ways until either side closes or `stop` becomes readable; a and b are this thread's to
    close."""
    try:
        while True:
            readable, _, _ = select.select([a, b, stop], [], [], 60)
            if stop in readable:
                return
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                (b if sock is a else a).sendall(data)
    except OSError:
        return
    finally:
        for sock in (a, b):
            try:
                sock.close()
            except OSError:
                pass


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # not connected (a listener on some systems): close() follows anyway
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


# ------------------------------------------------------------------------------------------------ agent calls

@dataclass(frozen=True)
class Reply:
    """How one call ended: the gRPC status code's name, its details, seconds taken, and the answer when OK (for a
    stream: the messages received, also when the stream then failed)."""

    code: str
    details: str
    elapsed: float
    value: Any = None

    @property
    def ok(self) -> bool:
        return self.code == "OK"


class AgentChannel:
    """One channel to an agent server and its calls, each with a deadline, timed, never raising for a gRPC status."""

    def __init__(self, address: str, tls: bool = False) -> None:
        import grpc

        self.address = address
        self._channel = grpc.secure_channel(address, grpc.ssl_channel_credentials()) if tls else \
            grpc.insecure_channel(address)

    def __enter__(self) -> "AgentChannel":
        return self

    def __exit__(self, *exc: object) -> None:
        self._channel.close()

    def health(self, service: str, timeout: float) -> Reply:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        reply = self._unary(health_pb2_grpc.HealthStub(self._channel).Check,
                            health_pb2.HealthCheckRequest(service=service), timeout)
        if reply.ok:
            return Reply(reply.code, reply.details, reply.elapsed,
                         health_pb2.HealthCheckResponse.ServingStatus.Name(reply.value.status))
        return reply

    def list_agents(self, timeout: float) -> Reply:
        from flyteidl.admin import agent_pb2
        from flyteidl.service import agent_pb2_grpc

        return self._unary(agent_pb2_grpc.AgentMetadataServiceStub(self._channel).ListAgents,
                           agent_pb2.ListAgentsRequest(), timeout)

    def get_agent(self, name: str, timeout: float) -> Reply:
        from flyteidl.admin import agent_pb2
        from flyteidl.service import agent_pb2_grpc

        return self._unary(agent_pb2_grpc.AgentMetadataServiceStub(self._channel).GetAgent,
                           agent_pb2.GetAgentRequest(name=name), timeout)

    def create_task(self, request: Any, timeout: float) -> Reply:
        return self._unary(self._async().CreateTask, request, timeout)

    def get_task(self, request: Any, timeout: float) -> Reply:
        return self._unary(self._async().GetTask, request, timeout)

    def delete_task(self, request: Any, timeout: float) -> Reply:
        return self._unary(self._async().DeleteTask, request, timeout)

    def execute_task_sync(self, requests: list, timeout: float) -> Reply:
        """Send the requests, close the sending side, and collect every response until the server ends the call."""
        import grpc
        from flyteidl.service import agent_pb2_grpc

        received: list = []
        started = time.monotonic()
        call = agent_pb2_grpc.SyncAgentServiceStub(self._channel).ExecuteTaskSync(iter(requests), timeout=timeout)
        try:
            for response in call:
                received.append(response)
        except grpc.RpcError as err:
            return Reply(err.code().name, err.details() or "", time.monotonic() - started, received)
        return Reply(call.code().name, call.details() or "", time.monotonic() - started, received)

    def _async(self) -> Any:
        from flyteidl.service import agent_pb2_grpc

        return agent_pb2_grpc.AsyncAgentServiceStub(self._channel)

    @staticmethod
    def _unary(method: Any, request: Any, timeout: float) -> Reply:
        import grpc

        started = time.monotonic()
        try:
            answer = method(request, timeout=timeout)
        except grpc.RpcError as err:
            return Reply(err.code().name, err.details() or "", time.monotonic() - started)
        return Reply("OK", "", time.monotonic() - started, answer)


# ------------------------------------------------------------------------------------------------ what answers

class Wire(Enum):
    """What a TCP endpoint speaks, found with raw sockets (gRPC's own errors cannot tell these apart)."""

    UNREACHABLE = "unreachable"
    PLAIN_HTTP2 = "plaintext HTTP/2"
    TLS = "TLS"
    OTHER = "neither HTTP/2 nor TLS"


# HTTP/2's connection preface and an empty SETTINGS frame: a plaintext HTTP/2 (gRPC) server answers with SETTINGS.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_SETTINGS = 4


def sniff(address: str, tls_first: bool, timeout: float = 3.0) -> tuple[Wire, str]:
    """(what speaks at host:port, what it said when that is neither). tls_first tries a TLS handshake before
    HTTP/2's plaintext preface."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    answered = b""
    for probe in ((_tls_handshake, _plain_preface) if tls_first else (_plain_preface, _tls_handshake)):
        try:
            found, said = probe(host, int(port), timeout)
        except OSError as err:
            return Wire.UNREACHABLE, str(err) or type(err).__name__
        if found is not None:
            return found, ""
        answered = answered or said
    return Wire.OTHER, f"it answered {answered[:16]!r} to HTTP/2's preface" if answered else \
        "it closed the connection on HTTP/2's preface"


def _plain_preface(host: str, port: int, timeout: float) -> tuple[Wire | None, bytes]:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(_H2_PREFACE)
        head = _read(sock, 9)
    return (Wire.PLAIN_HTTP2 if len(head) == 9 and head[3] == _SETTINGS else None), head


def _tls_handshake(host: str, port: int, timeout: float) -> tuple[Wire | None, bytes]:
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only asks whether TLS is spoken; the gRPC channel verifies
    with socket.create_connection((host, port), timeout=timeout) as sock:
        try:
            with context.wrap_socket(sock, server_hostname=host or None):
                return Wire.TLS, b""
        except (ssl.SSLError, ConnectionResetError, socket.timeout):
            return None, b""


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    try:
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data
