"""`flyte-agents dev`: a service's agent server from source on this machine, routed from propeller, reloaded on save.

    check   -> the service's image context has local packages, --python runs flytekit, --port is free: before any
               connection
    claim   -> the service's dev Lease in propeller's namespace (a live one: another dev runs; a stale one: a killed
               dev's leftovers are undone first: routing key, Service, Endpoints)
    serve   -> `pyflyte serve agent|connector` with the pod's env, secrets and the cluster's object store
    route   -> Service + Endpoints at this machine's address, then deploy's routing with this service's endpoint
               replaced (routing.apply_routing: propeller restarts once, only if its effective config changed); the
               routing key's previous value is on the Lease before it is written
    watch   -> every save restarts the server only; propeller is never touched again
    release -> on Ctrl-C, SIGTERM or an error: the routing key back byte for byte, Service and Endpoints deleted,
               the server stopped, the Lease deleted

With --config-file (propeller on this machine, `flytectl demo start --dev`), the routing goes into that file
(endpoint on 127.0.0.1) with its original bytes kept beside it, and the marker is a file beside it too.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .. import userfiles
from ..adapters import grpc
from ..adapters import localserver as local
from ..adapters.helm import Helm
from ..adapters.kube import Kube, LeaseInfo
from ..errors import FlyteAgentsError, Interrupted, UserError
from ..flyte import dev as core
from ..flyte.config import ConfigFile, PropellerConfig
from ..flyte.serving import discover_task_types, serve_command
from ..flyte.services import AgentService
from ..flyte.versions import FlyteVersion
from ..kubeobjects import BACKUP_ANNOTATION, ConfigMapState
from . import deploy as dp
from . import routing
from .project import Project, ServiceConfig
from .sandbox import Cluster

Say = Callable[[str], None]
START_TIMEOUT = 60


@dataclass(frozen=True)
class Options:
    python: str
    port: int | None = None
    host_address: str | None = None
    builtin: str | None = None
    rollout_timeout: float = 300


@dataclass(frozen=True)
class Source:
    """The agent's code as the server imports it: PYTHONPATH roots and the modules named with --modules."""

    context: Path
    roots: tuple[Path, ...]
    modules: tuple[str, ...]


# ------------------------------------------------------------------------------------------------ checks

def pick_service(project: Project, ids: tuple[str, ...]) -> ServiceConfig:
    if len(ids) > 1:
        raise UserError("dev serves one service: give --service once")
    if ids:
        return project.service(ids[0])
    defaults = [s for s in project.services if s.default] or list(project.services)
    if len(defaults) != 1:
        raise UserError(f"{project.path} has several services and none is the default: pass --service ID")
    return defaults[0]


def source_of(project: Project, service: ServiceConfig) -> Source:
    """The local packages of the service's image context (requirements.txt lines starting with . or /)."""
    context = project.images[service.image].context
    requirements = context / "requirements.txt"
    fix = (f"dev runs the agent from source: add the agent's package to {requirements} as a local path "
           "(e.g. ./my_agent), or deploy the image with `flyte-agents deploy`")
    if not requirements.is_file():
        raise UserError(f"services.{service.id}: image {service.image} ({context}) has no requirements.txt, so it "
                        f"has no local source: {fix}")
    roots, modules = [], []
    for entry in core.local_requirements(userfiles.read_text(requirements, "requirements file")):
        package = (context / entry).resolve()
        root = package / "src" if (package / "src").is_dir() else package
        found = sorted(p.name for p in root.iterdir() if (p / "__init__.py").is_file()) if root.is_dir() else []
        if found:
            roots.append(root)
            modules += found
    if not modules:
        raise UserError(f"services.{service.id}: image {service.image} ({context}) installs no local package: {fix}")
    return Source(context, tuple(roots), tuple(modules))


def check_local(python: str, port: int | None, host_address: str | None = None) -> None:
    if host_address:
        core.pick_host_address(host_address, (), (), None)  # refuses an address Endpoints cannot carry
    problem = local.python_problem(python)
    if problem:
        raise UserError(f"--python {python} cannot run a flytekit agent server ({problem}): install "
                        "flytekit[connector] (flytekit[agent] up to 1.15) in it, or pass --python of the project's "
                        "environment")
    if port is not None and not local.port_free(port):
        raise UserError(f"--port {port} is in use on this machine: pick another --port or omit it for a free one")


# ------------------------------------------------------------------------------------------------ the server

class Server:
    """The local agent server across reloads."""

    def __init__(self, source: Source, python: str, serve: str, port: int, env: dict[str, str], workdir: Path,
                 say: Say) -> None:
        self.source, self.python, self.serve, self.port, self.env = source, python, serve, port, env
        self.workdir, self.say = workdir, say
        self.process: local.ServerProcess | None = None
        self.reloads = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> grpc.Probe | None:
        """(Re)start and wait until it answers ListAgents; one line either way. None: it failed (error shown)."""
        started = time.monotonic()
        self.stop()
        command = core.server_command(self.python, self.serve, self.port, local.free_port(), self.source.modules)
        self.process = local.ServerProcess(command, self.env, self.source.context, self.workdir / "server.log")
        found = self._wait_serving()
        seconds = time.monotonic() - started
        what = "started" if self.reloads == 0 else f"reload {self.reloads}"
        self.reloads += 1
        if found is None:
            self.say(f"{what}: the server failed after {seconds:.1f}s; fix the source, dev reloads on save:\n"
                     + _tail(self.process.output()))
            return None
        types = sorted({t for a in found.agents for t in a.task_types})
        self.say(f"{what}: serving {', '.join(types)} on {self.address} after {seconds:.1f}s")
        return found

    def _wait_serving(self) -> grpc.Probe | None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.process.exited() is None:
            found = grpc.probe(self.address, timeout=0.5)
            if found.ok and found.agents:
                return found
            time.sleep(0.05)
        return None

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


def _tail(text: str, lines: int = 15) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return "\n".join(f"  | {line}" for line in kept) or "  | (no output)"


def server_env(source: Source, view: core.PodView, secret_files: dict[str, str], object_store: dict[str, str],
               workdir: Path) -> dict[str, str]:
    """This machine's environment, then what the pod would see: its env, its secrets dir, the object store."""
    env = dict(os.environ)
    env.update(view.env)
    env.update(object_store)
    secrets = workdir / "secrets"
    secrets.mkdir(mode=0o700, exist_ok=True)
    for name, content in secret_files.items():
        path = secrets / name
        path.write_text(content)
        path.chmod(0o600)
    env[core.SECRETS_DIR_ENV] = str(secrets)
    env["PYTHONPATH"] = os.pathsep.join([str(r) for r in source.roots] + [p for p in
                                        [os.environ.get("PYTHONPATH", "")] if p])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def watch(source: Source, on_change: Callable[[], None], stop: threading.Event) -> None:
    """Call on_change after every save under the image context (watchfiles' filter skips caches and VCS dirs)."""
    from watchfiles import watch as watch_files

    for _changes in watch_files(source.context, stop_event=stop, debounce=100, step=20, raise_interrupt=True):
        on_change()


# ------------------------------------------------------------------------------------------------ the cluster side

class ClusterTarget:
    """The Lease, the Service/Endpoints and the routing of one service's dev session in a cluster."""

    def __init__(self, project: Project, service: ServiceConfig, cluster: Cluster, kube: Kube, helm: Helm,
                 options: Options, say: Say) -> None:
        self.project, self.service, self.cluster, self.kube, self.helm = project, service, cluster, kube, helm
        self.options, self.say = options, say
        self.namespace = cluster.target.namespace
        self.name = core.object_name(service.id)
        self.version = cluster.version
        self.session: core.DevSession | None = None
        self._renewing = threading.Event()

    # -- claim and release

    def claim(self, port: int) -> core.DevSession:
        clean_leftovers(self.kube, self.cluster, [self.service], self.say, self.options.rollout_timeout)
        endpoint = core.dev_endpoint(self.service.id, self.namespace, port)
        address = self.host_address()
        session = core.DevSession(self.service.id, endpoint, f"{address}:{port}", (), holder(), _now())
        if not self.kube.create_lease(self.namespace, self.name, session.holder, core.LEASE_SECONDS,
                                      {core.DEV_LABEL: self.service.id},
                                      {core.SESSION_ANNOTATION: session.to_json()}):
            raise UserError(f"dev for {self.service.id} has just been started elsewhere: stop that one first")
        self.session = session
        threading.Thread(target=self._renew, name="lease", daemon=True).start()
        return session

    def _renew(self) -> None:
        while not self._renewing.wait(core.LEASE_SECONDS / 3):
            try:
                self.kube.renew_lease(self.namespace, self.name)
            except FlyteAgentsError as err:  # the next renewal may work; status shows the session stale meanwhile
                self.say(f"warning: lease renewal failed ({err})")

    def release(self) -> None:
        self._renewing.set()
        if self.session is not None:
            undo(self.kube, self.cluster, self.session, self.say, self.options.rollout_timeout)

    # -- address, env and routing

    def host_address(self) -> str:
        gateway = self.kube.endpoints_ips(self.namespace, "flyte-sandbox-local")
        nodes = self.kube.node_internal_ips()
        toward = [a for a in (local.source_address(ip) for ip in nodes) if a]
        address, how = core.pick_host_address(self.options.host_address, gateway, toward,
                                              local.default_route_address())
        self.say(f"host address: {address} ({how})")
        return address

    def pod_view(self) -> tuple[core.PodView, dict[str, str], dict[str, str]]:
        """The pod's env and secret files, and the built-in agent's object store as this machine reaches it."""
        view = core.pod_view(dp.merged_values(self.project, self.service, self.cluster.sandbox))
        secrets = dict(view.secrets)
        if view.existing_secret:
            found = self.kube.secret_data(self.cluster.namespace, view.existing_secret)
            if found is None:
                raise UserError(f"services.{self.service.id}: secrets.existingSecret {view.existing_secret} is not "
                                f"in namespace {self.cluster.namespace}: create it")
            secrets.update({k.lower(): v for k, v in found.items()})
        builtin = self.cluster.naming.builtin_service
        env = self.kube.container_env(self.namespace, builtin)
        service = core.in_cluster_service(env.get("FLYTE_AWS_ENDPOINT", ""))
        node_port = self.kube.node_port(service[1], service[0], service[2]) if service else None
        nodes = self.kube.node_internal_ips()
        store = core.object_store_env(env, node_port, nodes[0] if nodes else "127.0.0.1")
        if view.skipped:
            self.say(f"note: env {', '.join(view.skipped)} come from the cluster (valueFrom) and are not set locally")
        return view, secrets, store

    def route(self, task_types: tuple[str, ...]) -> str:
        assert self.session is not None
        host, _, port = self.session.address.rpartition(":")
        self.kube.create_host_service(self.namespace, self.name, host, int(port), {core.DEV_LABEL: self.service.id})
        dev, routed = self.dev_service(task_types)
        target = self.cluster.target
        before = self.kube.read_config_map(self.namespace, target.write_config_map)
        assert before is not None
        self.session = replace(self.session.with_routing(
            f"{self.namespace}/{target.write_config_map}", target.file_name, before.data.get(target.file_name),
            BACKUP_ANNOTATION in before.annotations), task_types=dev.task_types)
        self.kube.renew_lease(self.namespace, self.name, {core.SESSION_ANNOTATION: self.session.to_json()})
        result = routing.apply_routing(self.kube, core.dev_routing(routed, dev), namespace=self.namespace,
                                       flavor=target.flavor, version=self.cluster.version,
                                       timeout=self.options.rollout_timeout)
        return (f"routing: {', '.join(dev.task_types) or 'default'} -> {dev.endpoint} ({self.session.address}); "
                f"propeller: {result.rollout}")

    def dev_service(self, task_types: tuple[str, ...]) -> tuple[AgentService, list[AgentService]]:
        """This service as deploy would route it, with the dev endpoint; and deploy's routing of the cluster."""
        assert self.session is not None
        project, cluster = self.project, self.cluster
        current = self.helm.current_many([s.id for s in project.services], cluster.namespace)
        everything = dp.installed_plans(project, cluster, current, list(project.services))
        builtin = self.options.builtin or project.builtin
        routed = dp.routed_services(project, cluster, everything, builtin, dp.pinned(self.kube, cluster))
        deployed = next((s for s in routed if s.id == self.service.id), None)
        if deployed is None:
            deployed = AgentService(self.service.id, self.session.endpoint, task_types, self.service.sync, False,
                                    True, self.service.timeout)
        types = self.service.task_types or task_types or deployed.task_types
        return replace(deployed, endpoint=self.session.endpoint, task_types=types,
                       sync_task_types=tuple(t for t in deployed.sync_task_types if t in types)), routed


class FileTarget:
    """Propeller on this machine reading one config file: the routing goes into the file, its bytes are kept
    beside it (FILE.flyte-agents-dev.orig) with the session (FILE.flyte-agents-dev.json), the marker of a run."""

    def __init__(self, project: Project, service: ServiceConfig, path: Path, version: FlyteVersion | None,
                 say: Say) -> None:
        self.project, self.service, self.path, self.say = project, service, path, say
        self.original = path.with_name(path.name + ".flyte-agents-dev.orig")
        self.marker = path.with_name(path.name + ".flyte-agents-dev.json")
        merged = self._config().merged()
        found = version or core.version_of_config(merged)
        if found is None:
            raise UserError(f"--config-file {path} enables neither connector-service nor agent-service: pass "
                            "--flyte-version")
        self.version = found
        self.session: core.DevSession | None = None

    def _config(self) -> PropellerConfig:
        text = userfiles.read_text(self.path, "--config-file")
        return PropellerConfig((ConfigFile(self.path.name, text, str(self.path)),))

    def claim(self, port: int) -> core.DevSession:
        if self.marker.exists():
            left = core.DevSession.from_json(self.marker.read_text())
            if left.host == socket.gethostname() and local.pid_alive(left.pid):
                raise UserError(f"dev for {left.service} is running on {self.path} (pid {left.pid}): stop it with "
                                "Ctrl-C first")
            self.say(f"cleaning what a stopped dev (pid {left.pid}) left in {self.path}")
            self._restore()
        self.session = core.DevSession(self.service.id, core.local_endpoint(port), f"127.0.0.1:{port}", (),
                                       holder(), _now())
        self.marker.write_text(self.session.to_json())
        return self.session

    def pod_view(self) -> tuple[core.PodView, dict[str, str], dict[str, str]]:
        view = core.pod_view(dp.merged_values(self.project, self.service, sandbox=True))
        if view.existing_secret:
            self.say(f"note: secrets.existingSecret {view.existing_secret} lives in a cluster; only secrets.data "
                     "is visible to the local server")
        return view, dict(view.secrets), core.object_store_of_config(self._config().merged())

    def route(self, task_types: tuple[str, ...]) -> str:
        assert self.session is not None
        service = self.service
        dev = AgentService(service.id, self.session.endpoint, service.task_types or task_types, service.sync,
                           False, True, service.timeout)
        self.session = replace(self.session, task_types=dev.task_types)
        self.marker.write_text(self.session.to_json())
        original = self.path.read_bytes()
        self.original.write_bytes(original)
        routed = core.route_into_file(self.path.name, original.decode(), self.version, [dev])
        _write_atomically(self.path, routed.encode())
        return (f"routing: {', '.join(dev.task_types)} -> {dev.endpoint} written into {self.path}; restart propeller "
                "(flyte start) to load it")

    def release(self) -> None:
        if self.session is not None:
            self._restore()

    def _restore(self) -> None:
        if self.original.exists():
            _write_atomically(self.path, self.original.read_bytes())
            self.original.unlink()
        self.marker.unlink(missing_ok=True)


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".flyte-agents-dev.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


def holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def sessions(kube: Kube, namespace: str) -> list[tuple[core.DevSession, bool]]:
    """Every dev session recorded in propeller's namespace, with whether it is stale (its dev is gone)."""
    found = []
    for lease in kube.leases(namespace, core.DEV_LABEL):
        raw = lease.annotations.get(core.SESSION_ANNOTATION)
        if raw:
            session = core.DevSession.from_json(raw)
            found.append((session, _stale(lease, session)))
    return found


@dataclass(frozen=True)
class DevStatus:
    """A service in dev mode, for `status`."""

    session: core.DevSession
    stale: bool

    @property
    def line(self) -> str:
        s = self.session
        where = f"{s.endpoint} ({s.address})"
        if self.stale:
            return (f"dev mode: {s.service} -> {where} was left by a stopped dev (pid {s.pid} on {s.host}): run "
                    f"`flyte-agents dev --service {s.service}` or `flyte-agents undeploy` to clean it")
        return (f"dev mode: {s.service} routes {', '.join(s.task_types) or 'nothing yet'} to {where}, pid {s.pid} "
                f"on {s.host} since {s.started}")

    def to_dict(self) -> dict:
        s = self.session
        return {"service": s.service, "endpoint": s.endpoint, "address": s.address, "task_types": list(s.task_types),
                "holder": s.holder, "started": s.started, "stale": self.stale}


def dev_status(kube: Kube, namespace: str) -> list[DevStatus]:
    return [DevStatus(session, stale) for session, stale in sessions(kube, namespace)]


def _stale(lease: LeaseInfo, session: core.DevSession) -> bool:
    renewed = lease.renewed.timestamp() if lease.renewed else 0.0
    same_host = session.host == socket.gethostname()
    return core.is_stale(time.time() - renewed, same_host, same_host and local.pid_alive(session.pid))


def clean_leftovers(kube: Kube, cluster: Cluster, services: list[ServiceConfig], say: Say,
                    timeout: float = 300) -> list[str]:
    """Undo the sessions a killed dev left for `services`; a live one is an error. Returns the services cleaned."""
    ids = {s.id for s in services}
    cleaned = []
    for session, stale in sessions(kube, cluster.target.namespace):
        if session.service not in ids:
            continue
        if not stale:
            raise UserError(f"dev for {session.service} is running (pid {session.pid} on {session.host}, since "
                            f"{session.started}, routing to {session.endpoint}): stop it with Ctrl-C first")
        say(f"cleaning what a stopped dev of {session.service} left (pid {session.pid} on {session.host})")
        undo(kube, cluster, session, say, timeout)
        cleaned.append(session.service)
    return cleaned


def undo(kube: Kube, cluster: Cluster, session: core.DevSession, say: Say, timeout: float) -> None:
    """The routing key back as it was, the Service and Endpoints deleted, then the Lease (the record) last."""
    namespace = cluster.target.namespace
    if session.routing_key:
        name = session.routing_config_map.rpartition("/")[2]
        before = ConfigMapState(name, namespace,
                                {} if session.routing_before is None else {session.routing_key: session.routing_before},
                                {BACKUP_ANNOTATION: "{}"} if session.had_backup else {}, {}, "")
        result = routing.restore_routing(kube, cluster.target, before, timeout)
        say(f"routing restored; propeller: {result.rollout}")
    kube.delete_host_service(namespace, core.object_name(session.service))
    kube.delete_lease(namespace, core.object_name(session.service))


# ------------------------------------------------------------------------------------------------ the run

@dataclass
class RunResult:
    reloads: int
    seconds: float


def run(source: Source, target: ClusterTarget | FileTarget, options: Options, say: Say) -> RunResult:
    """Serve, route and reload until Ctrl-C or SIGTERM; leave everything as it was."""
    started = time.monotonic()
    port = options.port or local.free_port()
    workdir = Path(tempfile.mkdtemp(prefix="flyte-agents-dev-"))
    # Ctrl-C and SIGTERM alike, also when started with SIGINT ignored (a background job of a script)
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    server: Server | None = None
    try:
        target.claim(port)
        view, secrets, store = target.pod_view()
        env = server_env(source, view, secrets, store, workdir)
        serve = serve_command(target.version)
        server = Server(source, options.python, serve, port, env, workdir, say)
        say(f"server: pyflyte serve {serve} --port {port}; log: {workdir / 'server.log'}")
        found = server.start()
        if found is None:
            raise UserError("the agent server does not start (its error is above): fix it and run dev again")
        served = discover_task_types([[(t, a.sync) for a in found.agents for t in a.task_types]])
        say(target.route(served.task_types))
        watch(source, server.start, threading.Event())
    except KeyboardInterrupt:
        say("stopping: Ctrl-C or SIGTERM")
    finally:
        try:
            target.release()  # while the server still answers: propeller never routes to a stopped one
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted while restoring: run `flyte-agents dev` (or `undeploy`) again to finish "
                              "the clean-up") from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if server is not None:
                server.stop()
            shutil.rmtree(workdir / "secrets", ignore_errors=True)  # the log stays, for a look after the run
    return RunResult(server.reloads if server else 0, time.monotonic() - started)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def interpreter() -> str:
    """The python on PATH (the project's environment when it is activated), else this one."""
    from shutil import which

    return which("python3") or which("python") or sys.executable
