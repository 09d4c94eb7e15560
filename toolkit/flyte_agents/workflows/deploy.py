"""Deploy orchestration: plan once (images, releases, routing, restart), apply it, verify, or undo it.

    plan   -> images to build/push (content tags), per release install/upgrade/unchanged with a values diff,
              the routing plan (a server-side dry run) and whether propeller must restart
    apply  -> build/push -> helm upgrade --install each changed release (atomic) -> ask every service over
              gRPC BEFORE propeller is touched (health, ListAgents: the task types of a service without taskTypes
              are discovered here) -> write routing, restart propeller if its config changed -> when it did,
              verify again against the live routing
    undo   -> any failure (or Ctrl-C) after the first cluster change rolls back what this command did: new
              releases are uninstalled, upgraded ones rolled back to their previous revision, the routing key
              restored; so a failed deploy leaves the cluster as it found it.

A no-op deploy builds, pushes, upgrades and restarts nothing: images are content-tagged, a release is upgraded only
when its chart (name, version, content digest: recorded in the release's description) or values differ, propeller
restarts only when its effective config changes.
"""
from __future__ import annotations

import difflib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from ..adapters import grpc
from ..adapters.helm import Helm, Revision
from ..adapters.kube import Kube
from ..errors import FlyteAgentsError, Interrupted, UserError, VerificationFailed
from ..flyte import propeller_target as pt
from ..flyte.config import effective
from ..flyte.endpoints import k8s_endpoint
from ..flyte.lint import LintFinding
from ..flyte.services import AgentService
from ..flyte.serving import (DiscoveredTypes, discover_task_types, kept_builtin, pinned_task_types, routing_check,
                             serve_command)
from ..imageref import validate_repository
from ..kubeobjects import ConfigMapState
from . import image_tags as tags
from . import images
from . import routing
from .project import Project, ServiceConfig, chart_meta, load_values
from .sandbox import Cluster

DESCRIPTION_PREFIX = "flyte-agents chart="
Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    return None


@dataclass(frozen=True)
class Options:
    helm_timeout: str = "5m"
    verify_timeout: float = 120
    rollout_timeout: float = 300
    builtin: str | None = None  # sandbox only: keep|replace (default: the project's sandbox.builtin)
    network_mode: str | None = None
    ca_bundle: Path | None = None


# ------------------------------------------------------------------------------------------------ plan types

@dataclass
class ReleasePlan:
    service: ServiceConfig
    release: str
    namespace: str
    image: str  # the ref the pods run
    values: dict
    endpoint: str
    current: Revision | None
    action: str  # install, upgrade or unchanged
    reason: str
    diff: str
    description: str

    def to_dict(self) -> dict:
        return {"service": self.service.id, "release": self.release, "namespace": self.namespace,
                "environment": self.service.environment, "image": self.image, "endpoint": self.endpoint,
                "action": self.action, "reason": self.reason,
                "current_revision": self.current.revision if self.current else None, "values_diff": self.diff}


@dataclass
class DeployPlan:
    cluster: Cluster
    images: images.BuildPlan
    releases: list[ReleasePlan]
    routed: list[AgentService]
    routing: routing.RoutingResult
    restart: bool
    helm_version: str
    chart: Path
    chart_meta: dict  # its Chart.yaml
    deployed: list[ReleasePlan]  # releases plus the project's other installed services: what gets routed
    builtin: str
    known: dict[str, DiscoveredTypes]  # service id -> the task types propeller pins to it now

    @property
    def discover(self) -> dict[str, tuple[str, ...]]:
        """Services of this deploy whose task types the image tells at deploy time -> what is routed to them now
        (the plan uses that; a new image may serve other types)."""
        return {r.service.id: self.known[r.service.id].task_types if r.service.id in self.known else ()
                for r in self.releases if discovers(r.service, self.cluster, self.builtin)}

    @property
    def routing_changes(self) -> bool:
        return self.routing.written

    @property
    def nothing_to_do(self) -> bool:
        return not (any(i.build or i.push for i in self.images.images)
                    or any(r.action != "unchanged" for r in self.releases) or self.routing_changes or self.restart
                    or not all(self.discover.values()))

    def to_dict(self) -> dict:
        return {"cluster": self.cluster.to_dict(), "helm": self.helm_version, "images": self.images.to_dict(),
                "releases": [r.to_dict() for r in self.releases],
                "routing": {"services": [s.id for s in self.routed], "changes": self.routing_changes,
                            "discovered_at_deploy": {k: list(v) for k, v in self.discover.items()},
                            "plan": self.routing.plan.to_dict() if self.routing.plan else None,
                            "diff": self.routing.plan.effective_diff() if self.routing.plan else ""},
                "restart_propeller": self.restart, "nothing_to_do": self.nothing_to_do}


@dataclass
class VerifyResult:
    probes: dict[str, list[grpc.Probe]]
    findings: list[LintFinding]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[str]:
        failed = [f"{sid}: {p.via or p.address}: {p.error or 'health ' + str(p.health)}"
                  for sid, probes in self.probes.items() for p in probes if not p.ok]
        failed += [f"{sid}: no ready pod to ask" for sid, probes in self.probes.items() if not probes]
        return failed + [f"{f.message}: {f.fix}" for f in self.findings if f.severity == "error"]

    def served(self, service_id: str) -> list[str]:
        return sorted({t for p in self.probes.get(service_id, []) for t in p.served})

    def to_dict(self) -> dict:
        return {"ok": self.ok, "errors": self.errors,
                "services": {sid: {"served": self.served(sid), "probes": [p.to_dict() for p in probes]}
                             for sid, probes in self.probes.items()},
                "findings": [f.__dict__ for f in self.findings]}


@dataclass
class DeployResult:
    plan: DeployPlan
    routed: list[AgentService]  # the plan's, with the task types discovered from the new pods
    built: int
    pushed: int
    upgraded: list[str]
    routing_written: bool
    restarted: bool
    verify: VerifyResult
    seconds: float

    def to_dict(self) -> dict:
        return {"plan": self.plan.to_dict(), "builds": self.built, "pushes": self.pushed,
                "helm_upgrades": self.upgraded, "routing_written": self.routing_written,
                "propeller_restarted": self.restarted, "verify": self.verify.to_dict(),
                "routed": {s.id: list(s.task_types) for s in self.routed},
                "seconds": round(self.seconds, 1)}


# ------------------------------------------------------------------------------------------------ values

def service_values(project: Project, service: ServiceConfig, cluster: Cluster, image_ref: str) -> dict:
    """values files (Helm's merge: maps merge, lists replace), the sandbox overlay, then what the toolkit decides."""
    merged = merged_values(project, service, cluster.sandbox)
    repository, _, tag = image_ref.rpartition(":")
    toolkit = {"image": {"repository": repository, "tag": tag},
               "agent": {"serve": serve_command(cluster.version), "environment": service.environment}}
    return pt.helm_merge(merged, toolkit)


def merged_values(project: Project, service: ServiceConfig, sandbox: bool) -> dict:
    """The service's values files merged as Helm merges them (maps merge, lists replace), sandbox overlay last."""
    merged: dict = {}
    for path in service.values + (service.sandbox_values if sandbox else ()):
        merged = pt.helm_merge(merged, load_values(path))
    return merged


def grpc_port(values: dict) -> int:
    return int((values.get("grpc") or {}).get("port", 8000))


def fullname(release: str, values: dict) -> str:
    return (values.get("fullnameOverride") or release)[:63].rstrip("-")


def chart_digest(chart: Path) -> str:
    context = tags.scan_context(chart, chart / "Chart.yaml")
    return tags.content_digest(context, b"", {}, None, None)[:12]


def _values_diff(current: dict | None, desired: dict) -> str:
    old = yaml.safe_dump(current, sort_keys=True) if current is not None else ""
    return "".join(difflib.unified_diff(old.splitlines(True), yaml.safe_dump(desired, sort_keys=True)
                                        .splitlines(True), "deployed", "planned"))


# ------------------------------------------------------------------------------------------------ plan

def image_specs(project: Project, services: tuple[ServiceConfig, ...], registry: str | None
                ) -> dict[str, images.ImageSpec]:
    specs = {}
    for name in dict.fromkeys(s.image for s in services):
        image = project.images[name]
        repository = f"{registry}/{image.repository}" if registry else image.repository
        specs[name] = images.ImageSpec(image.context, validate_repository(repository), image.dockerfile,
                                       image.build_args, image.target, image.platform)
    return specs


def _acts_as_default(service: ServiceConfig, cluster: Cluster, builtin: str) -> bool:
    return service.default and not (cluster.sandbox and builtin == "keep")


def discovers(service: ServiceConfig, cluster: Cluster, builtin: str) -> bool:
    """A routed service without taskTypes that is not propeller's default needs its task types from its image."""
    return service.discover and not _acts_as_default(service, cluster, builtin)


def routed_services(project: Project, cluster: Cluster, deployed: list[ReleasePlan], builtin: str,
                    discovered: dict[str, DiscoveredTypes]) -> list[AgentService]:
    """The AgentServices propeller must route to: every routed service of the project that runs in this cluster
    after the deploy (so deploying dev alone keeps prod's routing). A service without taskTypes gets its
    `discovered` ones; without any yet (its image has not run) it is left out until the deploy asks its pods.
    With the sandbox's built-in kept as the default, the built-in is routed too: as an entry that keeps its async
    task types (kept_builtin): written, compared and removed with the project's routing; it has no release, so
    status and verify neither list nor probe it."""
    routed = []
    for plan in deployed:
        service = plan.service
        if not service.route:
            continue
        default = _acts_as_default(service, cluster, builtin)
        found = DiscoveredTypes(service.task_types, (), ())
        if discovers(service, cluster, builtin):
            found = discovered.get(service.id, DiscoveredTypes((), (), ()))
            if not found.task_types:
                continue
        if not default and not found.task_types:
            raise UserError(f"{project.path}: services.{service.id} is the default service but sandbox.builtin is "
                            "keep, so it needs taskTypes to be routed: list them, omit taskTypes to discover them, "
                            "or use --builtin replace")
        routed.append(AgentService(service.id, plan.endpoint, found.task_types, service.sync, default, True,
                                      service.timeout, found.sync_task_types))
    builtin_entry = kept_builtin(cluster.version, routed, cluster.target.namespace) if \
        cluster.sandbox and builtin == "keep" else None
    return routed + [builtin_entry] if builtin_entry else routed


def pinned(kube: Kube, cluster: Cluster) -> dict[str, DiscoveredTypes]:
    """What earlier deploys discovered, as propeller's live routing pins it (service id -> task types)."""
    merged = routing.read_config(kube, cluster.target).merged()
    return {sid: DiscoveredTypes(types, (), ())
            for sid, types in pinned_task_types(merged, cluster.version).items()}


def plan(project: Project, cluster: Cluster, kube: Kube, helm: Helm, docker: Any,
         services: tuple[ServiceConfig, ...], options: Options) -> DeployPlan:
    specs = image_specs(project, services, cluster.registry)
    build_options = images.Options(push=bool(cluster.registry), network_mode=options.network_mode,
                                   ca_bundle=options.ca_bundle)
    build_plan = images.plan(list(specs.values()), build_options, docker)
    refs = {name: build_plan.images[i].ref for i, name in enumerate(specs)}
    current = helm.current_many([s.id for s in project.services], cluster.namespace)
    meta = chart_meta(project.chart)
    description = chart_description(project.chart, meta)
    releases = [_release_plan(project, service, cluster, current[service.id], refs[service.image], description)
                for service in services]
    # Services of the project that are installed but not part of this deploy keep their routing.
    existing = installed_plans(project, cluster, current, [s for s in project.services
                                                           if s not in services and s.route])
    builtin = options.builtin or project.builtin
    known = pinned(kube, cluster)
    routed = routed_services(project, cluster, releases + existing, builtin, known)
    preview = _preview(kube, cluster, routed)
    return DeployPlan(cluster, build_plan, releases, routed, preview, preview.restart_needed, helm.version,
                      project.chart, meta, releases + existing, builtin, known)


def _preview(kube: Kube, cluster: Cluster, routed: list[AgentService]) -> routing.RoutingResult:
    return routing.apply_routing(kube, routed, namespace=cluster.target.namespace, flavor=cluster.target.flavor,
                                 version=cluster.version, dry_run=True)


def chart_description(chart: Path, meta: dict | None = None) -> str:
    """The release description a deploy records: the chart's name, version and content digest, so that one
    `helm status` tells whether the deployed chart is this one."""
    meta = meta or chart_meta(chart)
    return f"{DESCRIPTION_PREFIX}{meta['name']}-{meta['version']}@{chart_digest(chart)}"


def installed_plans(project: Project, cluster: Cluster, current: dict[str, Revision | None],
                    services: list[ServiceConfig]) -> list[ReleasePlan]:
    """Plans of the installed ones among `services`, with the image each runs (as it is: nothing to change)."""
    description = chart_description(project.chart)
    return [_release_plan(project, s, cluster, current[s.id], _running_image(current[s.id]), description)
            for s in services if current[s.id] is not None]


def _running_image(current: Revision | None) -> str:
    image = (current.values.get("image") or {}) if current else {}
    return f"{image.get('repository', 'unknown')}:{image.get('tag', 'unknown')}"


def _deployed_chart(description: str) -> str:
    return description.removeprefix(DESCRIPTION_PREFIX) if description.startswith(DESCRIPTION_PREFIX) \
        else "not deployed by flyte-agents"


def _release_plan(project: Project, service: ServiceConfig, cluster: Cluster, current: Revision | None,
                  image_ref: str, description: str) -> ReleasePlan:
    values = service_values(project, service, cluster, image_ref)
    endpoint = k8s_endpoint(fullname(service.id, values), cluster.namespace, grpc_port(values))
    if current is None:
        action, reason = "install", "no release"
    elif current.status != "deployed":
        action, reason = "upgrade", f"release status is {current.status}"
    elif current.description != description:
        action, reason = "upgrade", (f"chart {_deployed_chart(current.description)} -> "
                                     f"{_deployed_chart(description)}")
    elif current.values != values:
        action, reason = "upgrade", "values changed"
    else:
        action, reason = "unchanged", "chart and values as deployed"
    diff = _values_diff(current.values if current else None, values) if action != "unchanged" else ""
    return ReleasePlan(service, service.id, cluster.namespace, image_ref, values, endpoint, current, action, reason,
                       diff, description)


# ------------------------------------------------------------------------------------------------ verify

def verify(kube: Kube, cluster: Cluster, releases: list[ReleasePlan], routed: list[AgentService],
           timeout: float, merged: dict | None = None, endpoints: dict[str, str] | None = None,
           progress: Progress = _quiet) -> VerifyResult:
    """Ask every service's ready pods (through the API server), or the given endpoints, what they serve; then
    cross-check the serving against propeller's routing (`merged`: a config to check instead of the live one)."""
    return check(kube, cluster, releases, routed, probe_services(kube, releases, timeout, endpoints, progress),
                 merged)


def probe_services(kube: Kube, releases: list[ReleasePlan], timeout: float,
                   endpoints: dict[str, str] | None = None, progress: Progress = _quiet
                   ) -> dict[str, list[grpc.Probe]]:
    """The services are asked side by side (each waits on the network), one thread per service."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, len(releases)), thread_name_prefix="probe") as pool:
        futures = {r.service.id: pool.submit(_probe_service, kube, r, timeout, (endpoints or {}).get(r.service.id),
                                             progress) for r in releases}
        return {sid: future.result() for sid, future in futures.items()}


def check(kube: Kube, cluster: Cluster, releases: list[ReleasePlan], routed: list[AgentService],
          probes: dict[str, list[grpc.Probe]], merged: dict | None = None) -> VerifyResult:
    served = {sid: {t for p in found for t in p.served} for sid, found in probes.items()}
    findings: list[LintFinding] = []
    for release in releases:  # declared task types must be served, routed or not
        missing = [t for t in release.service.task_types if t not in served[release.service.id]]
        if probes[release.service.id] and all(p.ok for p in probes[release.service.id]) and missing:
            findings.append(LintFinding(
                "declared-not-served", "error",
                f"{release.service.id} does not serve task type(s) {', '.join(missing)} (it serves "
                f"{', '.join(sorted(served[release.service.id])) or 'nothing'})",
                f"add the agent to the image, or remove them from services.{release.service.id}.taskTypes"))
    if merged is None:
        merged = routing.read_config(kube, cluster.target).merged()
    checked = [s for s in routed if s.id in served]
    findings += routing_check(merged, cluster.version, checked, served)
    return VerifyResult(probes, findings)


def service_pods(kube: Kube, release: ReleasePlan) -> tuple[list[str], str | None]:
    """The ready pods of a release's Deployment, or none and why."""
    deployment = _read_deployment(kube, release.namespace, fullname(release.release, release.values))
    if deployment is None:
        return [], f"Deployment {release.namespace}/{fullname(release.release, release.values)} does not exist"
    return grpc.ready_pods(kube.core, release.namespace, deployment.spec.selector.match_labels or {}), None


def pod_forward(kube: Kube, release: ReleasePlan, pod: str) -> grpc.PodForward:
    """A loopback port that reaches the pod's gRPC port through the API server (with it: `.address`)."""
    return grpc.PodForward(kube.core, release.namespace, pod, grpc_port(release.values))


def _probe_service(kube: Kube, release: ReleasePlan, timeout: float, endpoint: str | None,
                   progress: Progress) -> list[grpc.Probe]:
    if endpoint:
        return [_probe_until_serving(endpoint, timeout, f"--endpoint {endpoint}")]
    pods, missing = service_pods(kube, release)
    if missing:
        return [grpc.Probe(release.endpoint, None, error=missing)]
    found = []
    for pod in pods:
        progress(f"verify {release.service.id}: pod {pod} through the API server")
        started = time.monotonic()
        with pod_forward(kube, release, pod) as forward:
            found.append(_probe_until_serving(forward.address, timeout,
                                              f"pod {release.namespace}/{pod} (port-forward)"))
        # A new pod may take a while to serve (imports, agent start-up): say how long, it is often most of a deploy.
        progress(f"verify {release.service.id}: pod {pod} {found[-1].health or 'did not answer'} after "
                 f"{time.monotonic() - started:.1f}s")
    return found


def _probe_until_serving(address: str, timeout: float, via: str) -> grpc.Probe:
    """A pod that just became ready may still be importing agents: ask again until SERVING or the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = grpc.probe(address, timeout=min(10.0, max(1.0, deadline - time.monotonic())), via=via)
        if result.ok or time.monotonic() >= deadline:
            return result
        time.sleep(1)


def _read_deployment(kube: Kube, namespace: str, name: str) -> Any:
    from kubernetes.client.exceptions import ApiException

    try:
        return kube.apps.read_namespaced_deployment(name, namespace, _request_timeout=15)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


# ------------------------------------------------------------------------------------------------ apply

@dataclass
class _Undo:
    """What this command changed, newest last, so a failure can put it back."""

    releases: list[tuple[ReleasePlan, int | None]] = field(default_factory=list)  # (plan, previous revision)
    routing_before: ConfigMapState | None = None

    def run(self, kube: Kube, helm: Helm, cluster: Cluster, options: Options, progress: Progress) -> list[str]:
        problems = []
        if self.routing_before is not None:
            progress("rollback: restoring propeller's routing")
            try:
                routing.restore_routing(kube, cluster.target, self.routing_before, options.rollout_timeout)
            except FlyteAgentsError as err:
                problems.append(f"routing: {err}")
        for release, previous in reversed(self.releases):
            try:
                if previous is None:
                    progress(f"rollback: uninstalling {release.release}")
                    helm.uninstall(release.release, release.namespace, options.helm_timeout)
                else:
                    current = helm.current(release.release, release.namespace)
                    if current is not None and current.revision != previous:
                        progress(f"rollback: {release.release} back to revision {previous}")
                        helm.rollback(release.release, release.namespace, previous, options.helm_timeout)
            except FlyteAgentsError as err:
                problems.append(f"{release.release}: {err}")
        return problems


def apply(deploy_plan: DeployPlan, project: Project, kube: Kube, helm: Helm, docker: Any, options: Options,
          progress: Progress = _quiet, on_image_event: images.OnEvent = lambda _e: None,
          before_write: Callable[[ConfigMapState], None] | None = None) -> DeployResult:
    started = time.monotonic()
    cluster = deploy_plan.cluster
    built = images.apply(deploy_plan.images, docker, on_image_event)  # changes no cluster state: nothing to undo
    undo = _Undo()
    try:
        upgraded = _apply_releases(deploy_plan, helm, options, undo, progress)
        progress("verify: services over gRPC before touching propeller")
        probes = probe_services(kube, deploy_plan.releases, options.verify_timeout, progress=progress)
        _raise_if_failed(VerifyResult(probes, []), "before routing")  # no answer: nothing to discover or route
        routed, preview = _discover(deploy_plan, project, kube, probes, progress)
        checked = check(kube, cluster, deploy_plan.releases, routed, probes,
                        preview.plan.after if preview.plan else None)
        _raise_if_failed(checked, "before routing")
        undo.routing_before = kube.read_config_map(cluster.target.namespace, cluster.target.write_config_map)
        progress("routing: writing propeller's config" if preview.written or preview.restart_needed
                 else "routing: unchanged")
        result = routing.apply_routing(kube, routed, namespace=cluster.target.namespace,
                                       flavor=cluster.target.flavor, version=cluster.version,
                                       timeout=options.rollout_timeout, before_write=before_write)
        if result.restarted:
            progress(f"propeller: {result.rollout}")
        # Routing untouched and propeller not restarted: the check above, against this config, is the final one.
        final = checked if not (result.written or result.restarted) else \
            verify(kube, cluster, deploy_plan.releases, routed, options.verify_timeout, progress=progress)
        _raise_if_failed(final, "after routing")
    except BaseException as err:  # noqa: BLE001 - Ctrl-C too: leave the cluster as it was
        problems = undo.run(kube, helm, cluster, options, progress)
        interrupted = isinstance(err, KeyboardInterrupt)
        if problems and (interrupted or isinstance(err, FlyteAgentsError)):
            kind = Interrupted if interrupted else type(err)
            raise kind(f"{'interrupted (Ctrl-C)' if interrupted else err}; rollback was incomplete "
                       f"({'; '.join(problems)}): fix and run `flyte-agents undeploy` or deploy again") from None
        if undo.releases or undo.routing_before is not None:
            progress("rollback: done, the cluster is as it was before this command")
        if interrupted:  # one line and exit 130, not a traceback
            raise Interrupted("interrupted (Ctrl-C): the cluster is as it was before this command") from None
        raise
    summary = built.to_dict()
    return DeployResult(deploy_plan, routed, summary["builds"], summary["pushes"], upgraded, result.written,
                        result.restarted, final, time.monotonic() - started)


def _discover(deploy_plan: DeployPlan, project: Project, kube: Kube, probes: dict[str, list[grpc.Probe]],
              progress: Progress) -> tuple[list[AgentService], routing.RoutingResult]:
    """Learn the task types of services without taskTypes from their new pods' ListAgents, and plan the routing
    again with them (the plan could only use what propeller routed to them before)."""
    if not deploy_plan.discover:
        return deploy_plan.routed, deploy_plan.routing
    found = dict(deploy_plan.known)
    for sid in deploy_plan.discover:
        types = discover_task_types([[(t, a.sync) for a in p.agents for t in a.task_types] for p in probes[sid]])
        if not types.task_types:
            raise VerificationFailed(
                f"{sid} serves no task type besides flytekit's built-in {', '.join(types.builtin) or 'ones'}, so "
                f"there is nothing to route to it: add an agent to its image, or list services.{sid}.taskTypes "
                "(built-in types are routed only when listed)")
        sync = f" (sync: {', '.join(types.sync_task_types)})" if types.sync_task_types else ""
        progress(f"discover {sid}: ListAgents serves {', '.join(types.task_types)}{sync}")
        found[sid] = types
    cluster = deploy_plan.cluster
    routed = routed_services(project, cluster, deploy_plan.deployed, deploy_plan.builtin, found)
    return routed, _preview(kube, cluster, routed)


def _apply_releases(deploy_plan: DeployPlan, helm: Helm, options: Options, undo: _Undo,
                    progress: Progress) -> list[str]:
    upgraded = []
    for release in deploy_plan.releases:
        if release.action == "unchanged":
            progress(f"helm: {release.release} unchanged (revision {release.current.revision})")
            continue
        # The plan's own `helm status` tells the revision to roll back to, unless the release was stuck mid-operation.
        previous = release.current.revision if release.current else None
        if release.current is not None and release.current.stuck:
            previous = helm.recover(release.release, release.namespace, options.helm_timeout)
        undo.releases.append((release, previous))
        progress(f"helm: {release.action} {release.release} ({release.reason}), waiting for it to be ready")
        revision = helm.upgrade(release.release, deploy_plan.chart, deploy_plan.chart_meta, release.values,
                                release.namespace, options.helm_timeout, release.description)
        progress(f"helm: {release.release} revision {revision.revision} {revision.status}")
        upgraded.append(release.release)
    return upgraded


def _raise_if_failed(result: VerifyResult, when: str) -> None:
    if not result.ok:
        raise VerificationFailed(f"verification {when} failed: {' | '.join(result.errors)}")


# ------------------------------------------------------------------------------------------------ undeploy, status

@dataclass
class UndeployResult:
    uninstalled: list[str]
    routing: routing.RoutingResult
    dry_run: bool

    def to_dict(self) -> dict:
        return {"uninstalled": self.uninstalled, "dry_run": self.dry_run, "routing": self.routing.to_dict()}


def undeploy(project: Project, cluster: Cluster, kube: Kube, helm: Helm, services: tuple[ServiceConfig, ...],
             options: Options, dry_run: bool, progress: Progress = _quiet) -> UndeployResult:
    """Remove the releases of `services` and exactly the routing the toolkit added for them."""
    current = helm.current_many([s.id for s in project.services], cluster.namespace)
    installed = [s for s in services if current[s.id] is not None]
    kept = installed_plans(project, cluster, current, [s for s in project.services if s not in services and s.route])
    if kept:  # other services of the project stay: route only them
        routed = routed_services(project, cluster, kept, options.builtin or project.builtin, pinned(kube, cluster))
        progress(f"routing: keeping {', '.join(s.id for s in routed)}")
        result = routing.apply_routing(kube, routed, namespace=cluster.target.namespace,
                                       flavor=cluster.target.flavor, version=cluster.version, dry_run=dry_run,
                                       timeout=options.rollout_timeout)
    else:
        progress("routing: restoring propeller's config as it was before flyte-agents")
        result = routing.remove_routing(kube, namespace=cluster.target.namespace, flavor=cluster.target.flavor,
                                        dry_run=dry_run, timeout=options.rollout_timeout)
    for service in installed:  # after the routing: propeller never points at a removed service
        progress(f"helm: {'would uninstall' if dry_run else 'uninstalling'} {service.id}")
        if not dry_run:
            helm.uninstall(service.id, cluster.namespace, options.helm_timeout)
    return UndeployResult([s.id for s in installed], result, dry_run)


@dataclass
class ServiceStatus:
    service: str
    environment: str
    release: str
    revision: int | None
    status: str
    image: str
    ready: str
    endpoint: str
    routed: list[str]
    drift: list[str]

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def status(deploy_plan: DeployPlan, kube: Kube) -> list[ServiceStatus]:
    """One row per service: what runs, what propeller routes to it, and how it differs from the project file."""
    merged = routing.read_config(kube, deploy_plan.cluster.target).merged()
    view = effective(merged).plugins[deploy_plan.cluster.naming.plugin]
    routed = {s.id: s for s in deploy_plan.routed}
    rows = []
    images_by_ref = {i.ref: i for i in deploy_plan.images.images}
    for release in deploy_plan.releases:
        deployment = _read_deployment(kube, release.namespace, fullname(release.release, release.values))
        running = deployment.spec.template.spec.containers[0].image if deployment else "-"
        ready = (f"{deployment.status.ready_replicas or 0}/{deployment.spec.replicas}" if deployment else "-")
        types = sorted(t for t, target in view.for_task_types.items() if target == release.service.id)
        service = routed.get(release.service.id)
        if service and service.default and view.default and view.default.endpoint == service.endpoint:
            types = ["(default)"] + types
        drift = [] if release.action == "unchanged" else [f"release: {release.reason}"]
        image = images_by_ref.get(release.image)
        if image is not None and (image.build or image.push):
            drift.append(f"image {release.image} not {'built' if image.build else 'pushed'}")
        if service and any(f.severity == "error" for f in routing_check(
                merged, deploy_plan.cluster.version, [service],
                {service.id: set(service.task_types)})):
            drift.append("routing differs")
        rows.append(ServiceStatus(release.service.id, release.service.environment, release.release,
                                  release.current.revision if release.current else None,
                                  release.current.status if release.current else "not installed", running, ready,
                                  release.endpoint, types, drift))
    return rows


def installed(project: Project, cluster: Cluster, kube: Kube, helm: Helm, services: tuple[ServiceConfig, ...],
              builtin: str) -> tuple[list[ReleasePlan], list[AgentService]]:
    """The installed releases of `services` (as they run) and the routing the project implies for the cluster."""
    everything = installed_plans(project, cluster, helm.current_many([s.id for s in project.services],
                                                                      cluster.namespace), list(project.services))
    chosen = [r for r in everything if r.service in services]
    missing = [s.id for s in services if s.id not in {r.service.id for r in chosen}]
    if missing:
        raise UserError(f"service(s) {', '.join(missing)} are not installed in {cluster.namespace} (context "
                        f"{cluster.context}): run `flyte-agents deploy` first")
    return chosen, routed_services(project, cluster, everything, builtin, pinned(kube, cluster))
