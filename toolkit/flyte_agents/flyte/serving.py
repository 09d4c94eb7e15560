"""What services serve vs what propeller routes: the post-deploy routing check and task-type discovery."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .config import effective
from .lint import LintFinding
from .services import AgentService
from .versions import (CONNECTOR_NAMING, FLYTEKIT_BUILTIN_TYPES, FlyteVersion, chart_default_endpoint, naming_for,
                       pins_override_discovery)


def serve_command(version: FlyteVersion) -> str:
    """`pyflyte serve agent` up to 1.15, `pyflyte serve connector` from 1.16 (same gRPC protocol, #6400)."""
    return "connector" if naming_for(version) is CONNECTOR_NAMING else "agent"


def routing_check(merged: dict, version: FlyteVersion, services: Sequence[AgentService],
                  served: dict[str, set[str]]) -> list[LintFinding]:
    """Cross-check propeller's effective routing against what each routed service serves (ListAgents).

    Errors: a service propeller has no (or another) endpoint for; a task type routed to a service that does not
    serve it (stale pins included); a task type a service is meant to serve that propeller sends elsewhere.
    """
    naming = naming_for(version)
    view = effective(merged).plugins[naming.plugin]
    deployments = {d.id: d for d in view.deployments}
    findings: list[LintFinding] = []
    ours = {s.id for s in services}
    for service in services:
        current = view.default if service.default else deployments.get(service.id)
        where = naming.default_key if service.default else f"{naming.deployments_key}.{service.id}"
        if current is None or current.endpoint != service.endpoint:
            findings.append(LintFinding(
                "service-not-routed", "error",
                f"propeller's {where} is {current.endpoint if current else 'missing'}, not {service.endpoint}",
                "run `flyte-agents deploy` to write the routing"))
        for task_type in service.task_types:
            pinned = view.for_task_types.get(task_type)
            expected = None if service.default or (service.is_sync(task_type) and pins_override_discovery(version)) \
                else service.id
            if pinned != expected and not (expected is None and pinned == service.id):
                elsewhere = pinned or f"the {naming.default_key}"
                findings.append(LintFinding(
                    "routed-elsewhere", "error",
                    f"task type {task_type} is served by {service.id} but propeller routes it to {elsewhere}",
                    f"run `flyte-agents deploy`, or fix {naming.for_task_types_key}.{task_type} by hand"))
    for task_type, target in sorted(view.for_task_types.items()):
        if target in ours and task_type not in served.get(target, set()):
            findings.append(LintFinding(
                "routed-not-served", "error",
                f"task type {task_type} is routed to {target}, which does not serve it (it serves "
                f"{', '.join(sorted(served.get(target, set()))) or 'nothing'})",
                f"add the agent for {task_type} to {target}'s image, or drop {task_type} from its taskTypes"))
    for service in services:  # unpinned types: propeller finds them by discovery, so they must be served
        unpinned = [t for t in service.task_types
                    if service.default or (service.is_sync(t) and pins_override_discovery(version))]
        if unpinned:
            missing = [t for t in unpinned if t not in served.get(service.id, set())]
            findings += [LintFinding("routed-not-served", "error",
                                     f"task type {t} is routed to {service.id}, which does not serve it",
                                     f"add the agent for {t} to {service.id}'s image, or drop it from its taskTypes")
                         for t in missing]
    return findings + _builtin_types_taken(merged, version, services, served)


def kept_builtin(version: FlyteVersion, services: Sequence[AgentService], namespace: str) -> AgentService | None:
    """`builtin: keep`: the sandbox's built-in service as an entry of its own that its async types are pinned to.

    The project's services are entries of the deployments map, and propeller polls the default deployment (the
    built-in) first and each entry after it: the last answer wins, and every flytekit server advertises sensor and
    webhook, so an entry takes them from the built-in. From 1.16 a pin overrides discovery: the built-in becomes an
    entry too (the default's endpoint, the built-in's name as id) and sensor is pinned to it. Always, not only when
    a service is seen to serve it: the plan is made before the new pods answer (so `--dry-run`, `status` and a
    no-op deploy agree), every flytekit server serves sensor, and so does the built-in. A type a service lists is
    the service's. Sync types are never pinned (a pin forces CreateTask instead of ExecuteTaskSync), and before 1.16
    a pin loses to discovery: `routing_check` says where propeller sends those.
    """
    if not pins_override_discovery(version) or all(s.default for s in services):
        return None
    listed = {t for s in services for t in s.task_types}
    types = tuple(t for t, is_sync in FLYTEKIT_BUILTIN_TYPES.items() if not is_sync and t not in listed)
    if not types:
        return None
    naming = naming_for(version)
    return AgentService(naming.builtin_service, chart_default_endpoint(naming, version, namespace), types)


def _builtin_types_taken(merged: dict, version: FlyteVersion, services: Sequence[AgentService],
                         served: dict[str, set[str]]) -> list[LintFinding]:
    """Warnings for flytekit's built-in types that a routed service serves while the default deployment is not
    the project's (the sandbox's built-in, kept): propeller sends such an unpinned type to an entry, not the default."""
    naming = naming_for(version)
    view = effective(merged).plugins[naming.plugin]
    if view.default is None or any(s.default for s in services):
        return []
    builtin_entries = [d.id for d in view.deployments if d.endpoint == view.default.endpoint]
    findings = []
    for task_type, is_sync in FLYTEKIT_BUILTIN_TYPES.items():
        takers = sorted(s.id for s in services if task_type in served.get(s.id, set()))
        if task_type in view.for_task_types or not takers:
            continue
        candidates = takers + builtin_entries
        where = candidates[0] if len(candidates) == 1 else \
            f"whichever of {', '.join(candidates)} it polls last (the order is random on every poll)"
        if not pins_override_discovery(version):
            fix = (f"before Flyte 1.16 a pin does not override discovery, so no routing keeps {task_type} on the "
                   f"{naming.default_key}: make the project's default service propeller's default (in the sandbox: "
                   f"--builtin replace), or accept that {', '.join(takers)} runs it")
        elif is_sync:
            fix = (f"{task_type} is sync, so it is not pinned (a pin makes propeller call CreateTask instead of "
                   f"ExecuteTaskSync): if the project's default service should run it, make it propeller's "
                   "default (in the sandbox: --builtin replace); else accept it")
        else:
            fix = "run `flyte-agents deploy` (with builtin keep it pins the built-in's async types to it)"
        findings.append(LintFinding(
            "builtin-type-taken", "warning",
            f"task type {task_type} is served by the {naming.default_key} and by {', '.join(takers)}: propeller "
            f"polls the {naming.default_key} first and sends {task_type} to {where}", fix))
    return findings


@dataclass(frozen=True)
class DiscoveredTypes:
    """The task types a service's image serves (ListAgents), as the routing of a service without taskTypes."""

    task_types: tuple[str, ...]
    sync_task_types: tuple[str, ...]  # those served by sync agents: never pinned from 1.16 on
    builtin: tuple[str, ...]  # flytekit's built-ins it also serves, left to propeller's default service


def discover_task_types(pods: Sequence[Sequence[tuple[str, bool]]]) -> DiscoveredTypes:
    """Select what to route from each pod's ListAgents answer, as (task type, served by a sync agent) pairs.

    A type is routed only when every pod serves it (a rollout half done must not route to pods that do not), and
    flytekit's built-ins are left out: every flytekit server advertises sensor and webhook, and routing them to
    one service would take them from the default service; a service that should own them lists them in taskTypes.
    """
    if not pods:
        return DiscoveredTypes((), (), ())
    common = set.intersection(*({t for t, _ in pod} for pod in pods))
    sync = {t for pod in pods for t, is_sync in pod if is_sync and t in common}
    routed = sorted(common - set(FLYTEKIT_BUILTIN_TYPES))
    return DiscoveredTypes(tuple(routed), tuple(t for t in routed if t in sync),
                           tuple(sorted(common & set(FLYTEKIT_BUILTIN_TYPES))))


def pinned_task_types(merged: dict, version: FlyteVersion) -> dict[str, tuple[str, ...]]:
    """Service id -> the task types propeller's effective config pins to it (what a past discovery routed)."""
    pins = effective(merged).plugins[naming_for(version).plugin].for_task_types
    found: dict[str, list[str]] = {}
    for task_type, service_id in sorted(pins.items()):
        found.setdefault(service_id, []).append(task_type)
    return {k: tuple(v) for k, v in found.items()}
