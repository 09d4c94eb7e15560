"""Thin, generic Kubernetes adapter over the `kubernetes` Python client (no Flyte knowledge here).

* `Kube.connect(kubeconfig, context)` builds its own ApiClient (never the global default configuration).
* `update_config_map` is a read-modify-write: the caller's edit function sees the freshly read ConfigMap on every
  attempt; the write is a JSON merge patch carrying `metadata.resourceVersion`, which the API server treats as a
  precondition (409 Conflict when someone wrote in between). 409s are retried like client-go's
  `retry.RetryOnConflict(retry.DefaultRetry)`: 5 attempts, 10 ms apart with 10 % jitter.
* Backups: the first edit of a key stores the key's previous value (or null when it was absent) in the
  annotation `flyte-agents.dev/backup` of the same ConfigMap, in the same write. `restore_config_map` puts
  every recorded key back exactly (deleting keys that were absent) and drops the annotation, so the ConfigMap's
  data and annotations are byte for byte what they were. Keeping the backup on the object itself means the
  change and its backup can never be written separately.
* `restart_deployment` is `kubectl rollout restart` (pod-template annotation `kubectl.kubernetes.io/restartedAt`,
  refused for paused Deployments) plus any extra pod-template annotations the caller wants recorded.
* `wait_rollout` applies kubectl's DeploymentStatusViewer rules; on timeout it raises RolloutTimeout naming the
  newest ReplicaSet's pods' waiting reasons and the most recent events.
"""
from __future__ import annotations

import base64
import json
import random
import time
import urllib.parse
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from ..errors import ConflictError, KubernetesError, RolloutTimeout, UserError
from ..kubeobjects import BACKUP_ANNOTATION, ConfigMapEdit, ConfigMapState, ContainerInfo, DeploymentInfo
from . import kubeconfig as kubeconfigs

RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
FIELD_MANAGER = "flyte-agents"
CONFLICT_RETRIES = 5
REQUEST_TIMEOUT = 15


@dataclass(frozen=True)
class WriteResult:
    written: bool
    attempts: int
    before: ConfigMapState
    data_after: Mapping[str, str]


@dataclass(frozen=True)
class LeaseInfo:
    name: str
    namespace: str
    holder: str
    renewed: datetime | None
    annotations: Mapping[str, str]


@dataclass(frozen=True)
class RolloutState:
    done: bool
    message: str
    failed: bool = False


def rollout_state(deployment: Any) -> RolloutState:
    """kubectl's DeploymentStatusViewer (pkg/polymorphichelpers/rollout_status.go), rule for rule."""
    name = deployment.metadata.name
    status = deployment.status
    if (deployment.metadata.generation or 0) > (status.observed_generation or 0):
        return RolloutState(False, f"waiting for deployment {name!r} spec update to be observed")
    for condition in status.conditions or []:
        if condition.type == "Progressing" and condition.reason == "ProgressDeadlineExceeded":
            return RolloutState(False, f"deployment {name!r} exceeded its progress deadline", failed=True)
    wanted = 1 if deployment.spec.replicas is None else deployment.spec.replicas
    updated, replicas = status.updated_replicas or 0, status.replicas or 0
    available = status.available_replicas or 0
    if updated < wanted:
        return RolloutState(False, f"{updated} of {wanted} new replicas have been updated")
    if replicas > updated:
        return RolloutState(False, f"{replicas - updated} old replicas are pending termination")
    if available < updated:
        return RolloutState(False, f"{available} of {updated} updated replicas are available")
    return RolloutState(True, f"deployment {name!r} successfully rolled out")


class Kube:
    """One cluster connection. All methods raise KubernetesError (or UserError for bad names), never ApiException."""

    def __init__(self, api_client: Any, context: str | None = None) -> None:
        from kubernetes import client

        self.api_client = api_client
        self.context = context or ""
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.coordination = client.CoordinationV1Api(api_client)

    @classmethod
    def connect(cls, kubeconfig: str | None = None, context: str | None = None) -> Kube:
        """--kubeconfig (one file) or the merged $KUBECONFIG files; the context must exist and name a URL."""
        import urllib3
        from kubernetes import config
        from kubernetes.config.config_exception import ConfigException

        found = kubeconfigs.load(kubeconfig)
        context = found.context(context)
        try:
            api = config.new_client_from_config(config_file=found.location, context=context)
        except (ConfigException, ValueError, TypeError) as err:
            raise UserError(f"kube context {context!r} in {found.location} is not usable ({err}): fix the "
                            "kubeconfig") from None
        server = urllib.parse.urlsplit(api.configuration.host)
        if server.scheme not in ("http", "https") or not server.hostname:
            raise UserError(f"kube context {context!r} in {found.location}: the cluster's server "
                            f"{api.configuration.host!r} is not a URL: use https://HOST:PORT")
        # insecure-skip-tls-verify is the kubeconfig's choice; urllib3 would warn on every request.
        warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        return cls(api, context)

    def close(self) -> None:
        self.api_client.close()

    # -------------------------------------------------------------------------------------------- calls

    def _call(self, what: str, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        except ApiException as err:
            if err.status == 409 and _is_kubernetes_status(err):
                raise
            raise KubernetesError(f"{what} failed: {self._refused(err)}") from None
        except Exception as err:  # noqa: BLE001 - urllib3/socket errors: the API server is unreachable
            raise KubernetesError(f"{what} failed: {self._no_answer(err)}") from None

    def _read_or_none(self, what: str, fn: Callable, *args: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as err:
            if err.status == 404 and _is_kubernetes_status(err):
                return None
            raise KubernetesError(f"{what} failed: {self._refused(err)}") from None
        except Exception as err:  # noqa: BLE001
            raise KubernetesError(f"{what} failed: {self._no_answer(err)}") from None

    def _refused(self, err: Any) -> str:
        """An error answer: the API server's reason, or that the server is not a Kubernetes API at all."""
        if _is_kubernetes_status(err):
            return f"{err.status} {_api_reason(err)}"
        return (f"the server {self.api_client.configuration.host} is not a Kubernetes API server (it answered HTTP "
                f"{err.status} without a Kubernetes Status): check the server of context {self.context!r} in the "
                "kubeconfig")

    def _no_answer(self, err: Exception) -> str:
        """Why a request got no Kubernetes answer, told apart by the error urllib3 wraps."""
        import ssl

        import urllib3.exceptions as u3

        server = self.api_client.configuration.host
        reason = err.reason if isinstance(err, u3.MaxRetryError) else err
        fix = f"check the server of context {self.context!r} in the kubeconfig"
        if isinstance(reason, u3.NameResolutionError):
            return f"the API server's host {urllib.parse.urlsplit(server).hostname} is not found (DNS): {fix}"
        if isinstance(reason, u3.SSLError) and reason.args and isinstance(reason.args[0], ssl.SSLCertVerificationError):
            return (f"the API server {server} presents a certificate the kubeconfig does not trust "
                    f"({reason.args[0].verify_message}): set the cluster's certificate-authority-data, or {fix}")
        if isinstance(reason, u3.SSLError):
            return f"no TLS at {server} ({reason.args[0] if reason.args else reason}): is it an https API server? {fix}"
        if isinstance(reason, u3.NewConnectionError):  # a subclass of the timeout errors: before them
            return f"nothing accepts connections at {server} ({_errno_text(reason)}): {fix}"
        if isinstance(reason, (u3.TimeoutError, TimeoutError)):
            return f"the API server {server} did not answer within {REQUEST_TIMEOUT}s: {fix}"
        return f"the API server {server} does not answer ({type(reason).__name__}): {fix}"

    # -------------------------------------------------------------------------------------------- ConfigMaps

    def read_config_map(self, namespace: str, name: str) -> ConfigMapState | None:
        raw = self._read_or_none(f"reading ConfigMap {namespace}/{name}", self.core.read_namespaced_config_map,
                                 name, namespace)
        return None if raw is None else _config_map_state(raw)

    def config_map_names(self, namespace: str) -> list[str]:
        items = self._call(f"listing ConfigMaps in {namespace}", self.core.list_namespaced_config_map, namespace)
        return [i.metadata.name for i in items.items]

    def update_config_map(self, namespace: str, name: str,
                          edit: Callable[[ConfigMapState], ConfigMapEdit | None], *, dry_run: bool = False,
                          before_write: Callable[[ConfigMapState], None] | None = None) -> WriteResult:
        """Read-modify-write with the resourceVersion precondition; `edit` runs on every fresh read.

        Keys are backed up on their first edit (see the module doc). `before_write` runs between the read and
        the write of every attempt (tests use it to be a concurrent writer).
        """
        def plan(state: ConfigMapState | None) -> tuple[ConfigMapEdit, str | None] | None:
            if state is None:
                raise UserError(f"ConfigMap {namespace}/{name} does not exist: check --namespace and --flavor")
            change = edit(state)
            if change is None or change.applied_to(state) == dict(state.data):
                return None
            return change, _backup_after(state, change)

        return self._read_modify_write(namespace, name, "writing", plan, dry_run, before_write)

    def restore_config_map(self, namespace: str, name: str, *, dry_run: bool = False,
                           before_write: Callable[[ConfigMapState], None] | None = None) -> WriteResult:
        """Put back every key recorded in the backup annotation and drop the annotation."""
        def plan(state: ConfigMapState | None) -> tuple[ConfigMapEdit, str | None] | None:
            if state is None or BACKUP_ANNOTATION not in state.annotations:
                return None
            return ConfigMapEdit(state.backup()), None

        return self._read_modify_write(namespace, name, "restoring", plan, dry_run, before_write)

    def _read_modify_write(self, namespace: str, name: str, what: str,
                           plan: Callable[[ConfigMapState | None], tuple[ConfigMapEdit, str | None] | None],
                           dry_run: bool, before_write: Callable[[ConfigMapState], None] | None) -> WriteResult:
        """The conflict-retry loop of both writers. `plan` maps a fresh read to (edit, new backup annotation, None
        to drop it) or to None when there is nothing to write."""
        from kubernetes.client.exceptions import ApiException

        for attempt in range(1, CONFLICT_RETRIES + 1):
            state = self.read_config_map(namespace, name)
            planned = plan(state)
            if planned is None:
                current = state or ConfigMapState(name, namespace, {}, {}, {}, "")
                return WriteResult(False, attempt, current, dict(current.data))
            change, backup = planned
            if before_write is not None:
                before_write(state)
            body = {"metadata": {"resourceVersion": state.resource_version,
                                 "annotations": {BACKUP_ANNOTATION: backup}},
                    "data": dict(change.data)}
            try:
                self._call(f"{what} ConfigMap {namespace}/{name}", self.core.patch_namespaced_config_map, name,
                           namespace, body, field_manager=FIELD_MANAGER, dry_run="All" if dry_run else None,
                           _content_type="application/merge-patch+json")
            except ApiException as err:  # only 409 gets here
                if attempt == CONFLICT_RETRIES:
                    raise ConflictError(f"ConfigMap {namespace}/{name} kept changing under us ({attempt} conflicts "
                                        f"in a row: {_api_reason(err)}); retry when the other writer is done") from None
                time.sleep(0.01 * (1 + random.random() * 0.1))
                continue
            return WriteResult(True, attempt, state, change.applied_to(state))
        raise AssertionError("unreachable")

    # -------------------------------------------------------------------------------------------- Deployments

    def deployments(self, namespace: str) -> list[DeploymentInfo]:
        items = self._call(f"listing Deployments in {namespace}", self.apps.list_namespaced_deployment, namespace)
        return [_deployment_info(d) for d in items.items]

    def deployment(self, namespace: str, name: str) -> DeploymentInfo | None:
        raw = self._read_or_none(f"reading Deployment {namespace}/{name}", self.apps.read_namespaced_deployment,
                                 name, namespace)
        return None if raw is None else _deployment_info(raw)

    def restart_deployment(self, namespace: str, name: str, annotations: Mapping[str, str] | None = None) -> int:
        """`kubectl rollout restart`; returns the Deployment's new metadata.generation."""
        current = self.deployment(namespace, name)
        if current is None:
            raise UserError(f"Deployment {namespace}/{name} does not exist: check --namespace and --flavor")
        if current.paused:
            raise KubernetesError(f"can't restart paused deployment {namespace}/{name}: run "
                                  f"`kubectl -n {namespace} rollout resume deployment/{name}` first")
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: stamp,
                                                                   **(annotations or {})}}}}}
        patched = self._call(f"restarting Deployment {namespace}/{name}", self.apps.patch_namespaced_deployment,
                             name, namespace, body, field_manager=FIELD_MANAGER)
        return patched.metadata.generation

    def wait_rollout(self, namespace: str, name: str, timeout: float = 300, poll: float = 0.5) -> RolloutState:
        deadline = time.monotonic() + timeout
        while True:
            raw = self._call(f"reading Deployment {namespace}/{name}",
                             self.apps.read_namespaced_deployment_status, name, namespace)
            state = rollout_state(raw)
            if state.done:
                return state
            if state.failed or time.monotonic() >= deadline:
                why = state.message if state.failed else f"not ready after {timeout:g}s: {state.message}"
                raise RolloutTimeout(f"deployment {namespace}/{name} {why}; {self.diagnose(namespace, raw)}")
            time.sleep(poll)

    def diagnose(self, namespace: str, deployment: Any) -> str:
        """Waiting reasons of the newest ReplicaSet's pods and the latest events, as one line."""
        selector = ",".join(f"{k}={v}" for k, v in (deployment.spec.selector.match_labels or {}).items())
        sets = self._call("listing ReplicaSets", self.apps.list_namespaced_replica_set, namespace,
                          label_selector=selector).items
        owned = [rs for rs in sets if any(o.uid == deployment.metadata.uid for o in rs.metadata.owner_references or [])]
        newest = max(owned, key=lambda rs: int((rs.metadata.annotations or {}).get(
            "deployment.kubernetes.io/revision", "0")), default=None)
        pods = self._call("listing pods", self.core.list_namespaced_pod, namespace, label_selector=selector).items
        if newest is not None:
            pods = [p for p in pods if any(o.uid == newest.metadata.uid for o in p.metadata.owner_references or [])]
        reasons = [_pod_reason(p) for p in pods] or ["no pods"]
        names = {deployment.metadata.name, *(rs.metadata.name for rs in owned), *(p.metadata.name for p in pods)}
        events = self._call("listing events", self.core.list_namespaced_event, namespace).items
        recent = sorted((e for e in events if e.involved_object.name in names), key=_event_time)[-5:]
        lines = [f"{e.involved_object.kind}/{e.involved_object.name} {e.reason}: {(e.message or '').strip()}"
                 for e in recent]
        return f"pods: {'; '.join(reasons)} | events: {' / '.join(lines) or 'none'}"


    # -------------------------------------------------------------------------------------------- dev sessions

    def node_internal_ips(self) -> list[str]:
        nodes = self._call("listing nodes", self.core.list_node).items
        return [a.address for n in nodes for a in n.status.addresses or () if a.type == "InternalIP"]

    def endpoints_ips(self, namespace: str, name: str) -> list[str]:
        raw = self._read_or_none(f"reading Endpoints {namespace}/{name}", self.core.read_namespaced_endpoints, name,
                                 namespace)
        subsets = raw.subsets or () if raw is not None else ()
        return [a.ip for s in subsets for a in s.addresses or ()]

    def node_port(self, namespace: str, name: str, port: int) -> int | None:
        raw = self._read_or_none(f"reading Service {namespace}/{name}", self.core.read_namespaced_service, name,
                                 namespace)
        ports = raw.spec.ports or () if raw else ()
        return next((p.node_port for p in ports if p.port == port and p.node_port), None)

    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        raw = self._read_or_none(f"reading Secret {namespace}/{name}", self.core.read_namespaced_secret, name,
                                 namespace)
        if raw is None:
            return None
        return {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (raw.data or {}).items()}

    def container_env(self, namespace: str, deployment: str) -> dict[str, str]:
        """The first container's env of a Deployment: literal values and secretKeyRef values (read from the
        Secret); other valueFrom sources are left out."""
        raw = self._read_or_none(f"reading Deployment {namespace}/{deployment}", self.apps.read_namespaced_deployment,
                                 deployment, namespace)
        containers = raw.spec.template.spec.containers or () if raw else ()
        env: dict[str, str] = {}
        for item in containers[0].env or () if containers else ():
            if item.value is not None:
                env[item.name] = item.value
            elif item.value_from is not None and item.value_from.secret_key_ref is not None:
                ref = item.value_from.secret_key_ref
                value = (self.secret_data(namespace, ref.name) or {}).get(ref.key)
                if value is not None:
                    env[item.name] = value
        return env

    def create_host_service(self, namespace: str, name: str, ip: str, port: int, labels: Mapping[str, str]) -> None:
        """A headless Service without selector and its manual Endpoints: `name.namespace` resolves to ip:port."""
        meta = {"name": name, "namespace": namespace, "labels": dict(labels)}
        service = {"metadata": meta, "spec": {"clusterIP": "None", "ports": [{"name": "grpc", "port": port,
                                                                              "targetPort": port}]}}
        endpoints = {"metadata": meta, "subsets": [{"addresses": [{"ip": ip}],
                                                    "ports": [{"name": "grpc", "port": port}]}]}
        self._create(f"creating Service {namespace}/{name}", self.core.create_namespaced_service, namespace, service)
        self._create(f"creating Endpoints {namespace}/{name}", self.core.create_namespaced_endpoints, namespace,
                     endpoints)

    def delete_host_service(self, namespace: str, name: str) -> bool:
        """Delete the Endpoints and the Service (either may be gone already); True when something was deleted."""
        deleted = [self._delete(f"deleting {kind} {namespace}/{name}", fn, name, namespace)
                   for kind, fn in (("Endpoints", self.core.delete_namespaced_endpoints),
                                    ("Service", self.core.delete_namespaced_service))]
        return any(deleted)

    def create_lease(self, namespace: str, name: str, holder: str, seconds: int, labels: Mapping[str, str],
                     annotations: Mapping[str, str]) -> bool:
        """Create the Lease held by `holder`; False when it exists already."""
        from kubernetes.client.exceptions import ApiException

        now = datetime.now(timezone.utc)
        body = {"metadata": {"name": name, "namespace": namespace, "labels": dict(labels),
                             "annotations": dict(annotations)},
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": seconds, "acquireTime": _micro(now),
                         "renewTime": _micro(now)}}
        try:
            self._call(f"creating Lease {namespace}/{name}", self.coordination.create_namespaced_lease, namespace,
                       body, field_manager=FIELD_MANAGER)
        except ApiException:  # only 409 gets here
            return False
        return True

    def leases(self, namespace: str, label: str) -> list[LeaseInfo]:
        items = self._call(f"listing Leases in {namespace}", self.coordination.list_namespaced_lease, namespace,
                           label_selector=label).items
        return [_lease_info(i) for i in items]

    def renew_lease(self, namespace: str, name: str, annotations: Mapping[str, str] | None = None) -> None:
        body: dict[str, Any] = {"spec": {"renewTime": _micro(datetime.now(timezone.utc))}}
        if annotations:
            body["metadata"] = {"annotations": dict(annotations)}
        self._call(f"renewing Lease {namespace}/{name}", self.coordination.patch_namespaced_lease, name, namespace,
                   body, field_manager=FIELD_MANAGER)

    def delete_lease(self, namespace: str, name: str) -> bool:
        return self._delete(f"deleting Lease {namespace}/{name}", self.coordination.delete_namespaced_lease, name,
                            namespace)

    def _create(self, what: str, fn: Callable, namespace: str, body: dict) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self._call(what, fn, namespace, body, field_manager=FIELD_MANAGER)
        except ApiException:  # only 409 gets here
            raise KubernetesError(f"{what} failed: it exists already (not made by this command): delete it or "
                                  "pick another service") from None

    def _delete(self, what: str, fn: Callable, name: str, namespace: str) -> bool:
        return self._read_or_none(what, fn, name, namespace) is not None


# ------------------------------------------------------------------------------------------------ helpers

def _micro(moment: datetime) -> str:
    """A MicroTime as the API server writes it."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lease_info(raw: Any) -> LeaseInfo:
    return LeaseInfo(raw.metadata.name, raw.metadata.namespace, raw.spec.holder_identity or "",
                     raw.spec.renew_time or raw.spec.acquire_time, dict(raw.metadata.annotations or {}))


def _errno_text(err: Exception) -> str:
    cause = err.__context__ or err.__cause__
    return getattr(cause, "strerror", None) or "no connection"


def _is_kubernetes_status(err: Any) -> bool:
    """Whether an error response is a Kubernetes API Status (not some other web server's page)."""
    try:
        return json.loads(err.body).get("kind") == "Status"
    except (TypeError, ValueError, AttributeError):
        return False


def _api_reason(err: Any) -> str:
    try:
        return json.loads(err.body).get("message") or err.reason
    except (TypeError, ValueError, AttributeError):
        return str(err.reason)


def _config_map_state(raw: Any) -> ConfigMapState:
    meta = raw.metadata
    return ConfigMapState(meta.name, meta.namespace, dict(raw.data or {}), dict(meta.annotations or {}),
                          dict(meta.labels or {}), meta.resource_version)


def _backup_after(state: ConfigMapState, change: ConfigMapEdit) -> str:
    """The backup annotation after this edit: keys edited for the first time record their current value."""
    backup = state.backup()
    for key in change.data:
        backup.setdefault(key, state.data.get(key))
    return json.dumps(backup, sort_keys=True)


def _deployment_info(raw: Any) -> DeploymentInfo:
    spec = raw.spec.template.spec
    containers = tuple(ContainerInfo(c.name, c.image or "", tuple(c.command or ()), tuple(c.args or ()),
                                     tuple((m.name, m.mount_path) for m in c.volume_mounts or ()))
                       for c in spec.containers or ())
    volumes: dict[str, tuple[str, ...]] = {}
    for volume in spec.volumes or ():
        if volume.config_map is not None:
            volumes[volume.name] = (volume.config_map.name,)
        elif volume.projected is not None:
            volumes[volume.name] = tuple(s.config_map.name for s in volume.projected.sources or ()
                                         if s.config_map is not None)
    return DeploymentInfo(raw.metadata.name, raw.metadata.namespace, dict(raw.metadata.labels or {}),
                          dict(raw.spec.template.metadata.annotations or {}), containers, volumes,
                          1 if raw.spec.replicas is None else raw.spec.replicas, raw.metadata.generation or 0,
                          bool(raw.spec.paused))


def _pod_reason(pod: Any) -> str:
    statuses = (pod.status.container_statuses or []) + (pod.status.init_container_statuses or [])
    waiting = [f"{s.name} {s.state.waiting.reason}" + (f" ({s.state.waiting.message})" if s.state.waiting.message
                                                        else "")
               for s in statuses if s.state is not None and s.state.waiting is not None]
    conditions = [f"{c.type}={c.status} {c.reason or ''}".strip() for c in pod.status.conditions or []
                  if c.status != "True" and c.reason]
    detail = ", ".join(waiting or conditions) or pod.status.phase or "unknown"
    return f"{pod.metadata.name}: {detail}"


def _event_time(event: Any) -> float:
    stamp = event.last_timestamp or event.event_time or event.first_timestamp or event.metadata.creation_timestamp
    return stamp.timestamp() if stamp is not None else 0.0
