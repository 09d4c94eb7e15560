"""The stand-in's `flyte-sandbox` pod as a real flytepropeller process, run the way a kubelet runs a container.

For a pod of image `flyte-binary:sandbox` (the stand-in's Flyte binary):
* the pod's volumes mounted into the container (the projected `config` volume: every key of flyte-sandbox-config,
  flyte-sandbox-config-secret and flyte-sandbox-extra-config, exactly as mounted) are written into a directory;
* one more file there, HOST_FILE, holds what only this machine knows (kubeconfig, storage, ports, no flyteadmin);
  it sets no key the toolkit writes (tests/integration/test_propeller_executions.py checks);
* the container's args run propeller: the binary's `start` subcommand is propeller here, and
  `--config /etc/flyte/config.d/*.yaml` becomes the directory's glob, which propeller reads in lexical order.
A new pod is a new process on freshly materialised files. A process that exits is reported on its pod as a kubelet
reports it (not Ready, restartCount, waiting CrashLoopBackOff with the log tail) and restarted after a back-off.

Test and demo infrastructure only (hack/agent_pods.py drives it); nothing here is imported by the product.
"""
from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

IMAGE = "flyte-binary:sandbox"
HOST_FILE = "zzz-standin-host.yaml"
STATE = Path(os.environ.get("FA_STATE_DIR", "/tmp/flyte-agents-env"))
# Propeller's blob store (stow kind local): DataReference file://CONTAINER/KEY is STORAGE/CONTAINER/KEY.
STORAGE = STATE / "propeller-storage"
STORAGE_CONTAINER = "data"
# Where FlyteWorkflows run: the sandbox's namespace of project flytesnacks, domain development.
EXECUTION_NAMESPACE = "flytesnacks-development"
# Short enough that a test execution takes seconds, not the defaults' 30 s (GetTask) and 10 s (ListAgents); propeller
# refuses a resyncInterval under 5 s.
POLL = "5s"
BACKOFF_START, BACKOFF_MAX = 10.0, 300.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host_config(kubeconfig: str, prof_port: int) -> dict:
    """The host-specific keys (HOST_FILE); everything else comes from the pod's own config files."""
    web_api = {"webApi": {"caching": {"resyncInterval": POLL}}, "pollInterval": POLL}
    return {
        "propeller": {"kube-config": kubeconfig, "limit-namespace": EXECUTION_NAMESPACE,
                      "rawoutput-prefix": f"file://{STORAGE_CONTAINER}/raw", "metadata-prefix": "metadata/propeller",
                      "prof-port": prof_port},
        # No flyteadmin here: events go to the log; propeller dials admin lazily, never for an agent task.
        "admin": {"endpoint": f"dns:///127.0.0.1:{free_port()}", "insecure": True},
        "event": {"type": "log"},
        "storage": {"type": "stow", "stow": {"kind": "local", "config": {"path": str(STORAGE)}},
                    "container": STORAGE_CONTAINER},
        "catalog-cache": {"type": "noop"},
        "plugins": {"connector-service": web_api, "agent-service": web_api},
    }


def materialise(core, pod, container, root: Path) -> dict[str, Path]:
    """Write each volume the container mounts into root/<volume>, as the kubelet would; returns mountPath -> dir."""
    volumes = {v.name: v for v in pod.spec.volumes or []}
    mounts = {}
    for mount in container.volume_mounts or []:
        volume = volumes.get(mount.name)
        if volume is None or (volume.projected is None and volume.config_map is None and volume.secret is None):
            continue  # emptyDir and friends: nothing to copy
        target = root / mount.name
        target.mkdir(parents=True, exist_ok=True)
        sources = volume.projected.sources if volume.projected else [volume]
        for source in sources:
            for key, text in _volume_source_files(core, pod.metadata.namespace, source).items():
                (target / key).write_text(text)
        mounts[mount.mount_path] = target
    return mounts


def _volume_source_files(core, namespace: str, source) -> dict[str, str]:
    from kubernetes.client.exceptions import ApiException

    config_map, secret = source.config_map, getattr(source, "secret", None)
    try:
        if config_map is not None:
            data = core.read_namespaced_config_map(config_map.name, namespace).data or {}
            items = config_map.items
        elif secret is not None:
            name = getattr(secret, "secret_name", None) or secret.name
            raw = core.read_namespaced_secret(name, namespace).data or {}
            data = {k: base64.b64decode(v).decode() for k, v in raw.items()}
            items = secret.items
        else:
            return {}
    except ApiException as err:
        if err.status == 404 and (config_map or secret).optional:
            return {}
        raise
    if items:
        return {item.path: data[item.key] for item in items if item.key in data}
    return data


@dataclass
class Process:
    """One container start of a propeller pod."""

    pod: str
    uid: str
    pid: int
    log: Path
    config_dir: Path
    started: float
    popen: subprocess.Popen = field(repr=False)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class PodState:
    pod: str
    uid: str
    container: str
    image: str
    workdir: Path
    process: Process | None = None
    restarts: int = 0
    restart_at: float = 0.0


class PropellerPods:
    """Run, watch and stop the propeller processes of one namespace's flyte-sandbox pods."""

    def __init__(self, core, namespace: str, binary: str, kubeconfig: str) -> None:
        self.core = core
        self.namespace = namespace
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.pods: dict[str, PodState] = {}  # by pod uid
        self.history: list[Process] = []  # every process started, oldest first

    @staticmethod
    def handles(pod) -> bool:
        return pod.spec.containers[0].image == IMAGE

    def sync(self, pods: list) -> None:
        """pods: the namespace's running propeller pods. Start new ones, stop gone ones, restart crashed ones."""
        current = {p.metadata.uid: p for p in pods}
        for uid in [u for u in self.pods if u not in current]:
            self._stop(self.pods.pop(uid))
        for uid, pod in current.items():
            state = self.pods.get(uid)
            if state is None:
                container = pod.spec.containers[0]
                workdir = STATE / "pods" / f"{self.namespace}_{pod.metadata.name}_{uid[:8]}"
                state = self.pods[uid] = PodState(pod.metadata.name, uid, container.name, container.image, workdir)
                self._start(state, pod)
            elif state.process is not None and state.process.popen.poll() is not None:
                self._crashed(state)
            elif state.process is None and time.monotonic() >= state.restart_at:
                self._start(state, pod)
                self._report_running(state)

    def _start(self, state: PodState, pod) -> None:
        container = pod.spec.containers[0]
        state.workdir.mkdir(parents=True, exist_ok=True)
        mounts = materialise(self.core, pod, container, state.workdir / f"volumes-{state.restarts}")
        config_dir = next(d for path, d in mounts.items() if path.rstrip("/") == "/etc/flyte/config.d")
        (config_dir / HOST_FILE).write_text(json.dumps(host_config(self.kubeconfig, free_port()), indent=2))
        (STORAGE / STORAGE_CONTAINER).mkdir(parents=True, exist_ok=True)
        args = list(container.args or [])
        if args[:1] == ["start"]:  # flyte-binary's subcommand that starts propeller (and more, not needed here)
            args = args[1:]
        for path, local in mounts.items():
            args = [a.replace(path.rstrip("/"), str(local)) for a in args]
        log = state.workdir / f"propeller-{state.restarts}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen([self.binary, *args], stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, cwd=state.workdir,
                                     preexec_fn=_die_with_parent)
        state.process = Process(state.pod, state.uid, popen.pid, log, config_dir, time.time(), popen)
        self.history.append(state.process)
        print(f"agent_pods: pod {self.namespace}/{state.pod} -> flytepropeller pid {popen.pid} "
              f"(config {config_dir}, log {log})", flush=True)

    def _crashed(self, state: PodState) -> None:
        process, code = state.process, state.process.popen.returncode
        state.process = None
        state.restarts += 1
        backoff = min(BACKOFF_START * 2 ** (state.restarts - 1), BACKOFF_MAX)
        state.restart_at = time.monotonic() + backoff
        tail = log_tail(process.log_text())
        now = _now()
        self._patch_status(state, ready=False, status={
            "name": state.container, "image": state.image, "imageID": "", "ready": False, "started": False,
            "restartCount": state.restarts,
            "state": {"waiting": {"reason": "CrashLoopBackOff",
                                  "message": f"back-off {backoff:.0f}s restarting failed container={state.container} "
                                             f"pod={state.pod}: {tail}"}},
            "lastState": {"terminated": {"exitCode": code, "reason": "Error", "message": tail, "finishedAt": now,
                                         "startedAt": _iso(process.started)}}})
        print(f"agent_pods: flytepropeller pid {process.pid} of pod {self.namespace}/{state.pod} exited {code}: "
              f"{tail}", flush=True)

    def _report_running(self, state: PodState) -> None:
        self._patch_status(state, ready=True, status={
            "name": state.container, "image": state.image, "imageID": "", "ready": True, "started": True,
            "restartCount": state.restarts, "state": {"running": {"startedAt": _now()}}})

    def _patch_status(self, state: PodState, ready: bool, status: dict) -> None:
        from kubernetes.client.exceptions import ApiException

        value = "True" if ready else "False"
        conditions = [{"type": t, "status": value, "lastTransitionTime": _now(),
                       **({} if ready else {"reason": "ContainersNotReady",
                                            "message": f"containers with unready status: [{state.container}]"})}
                      for t in ("Ready", "ContainersReady")]
        try:
            self.core.patch_namespaced_pod_status(state.pod, self.namespace, {
                "status": {"conditions": conditions, "containerStatuses": [status]}})
        except ApiException as err:
            if err.status != 404:  # the pod went meanwhile
                raise

    def _stop(self, state: PodState) -> None:
        if state.process is not None:
            terminate(state.process.popen)
            print(f"agent_pods: pod {self.namespace}/{state.pod} gone -> flytepropeller pid {state.process.pid} "
                  "stopped", flush=True)

    def clean(self) -> None:
        for state in self.pods.values():
            self._stop(state)
        self.pods.clear()


def terminate(popen: subprocess.Popen, timeout: float = 10) -> None:
    if popen.poll() is not None:
        return
    os.killpg(popen.pid, signal.SIGTERM)
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()


def _die_with_parent() -> None:
    """A runner killed without cleaning up (a test run's timeout) must not leave propeller running on."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def log_tail(text: str) -> str:
    """The line that says why propeller stopped: the last error/fatal/panic line, else the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        message = _json_message(line)
        if message is not None and message[0] in ("error", "fatal", "panic"):
            return message[1][:500]
        if line.startswith(("panic:", "Error:")):
            return line[:500]
    return (lines[-1] if lines else "(no output)")[:500]


def _json_message(line: str) -> tuple[str, str] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    level = record.get("level") or record.get("json", {}).get("level", "")
    return str(level).lower(), str(record.get("msg", line))


def _now() -> str:
    return _iso(time.time())


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
