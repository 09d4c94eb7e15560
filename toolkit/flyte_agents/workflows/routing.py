"""Apply or remove agent routing in a live cluster: the flyte/ plan, written where propeller_target says, via kube.

Restart rule: propeller is restarted only when its effective (merged) config changes. The hash of the effective
config it was restarted for is recorded on the pod template (`flyte-agents.dev/propeller-config`), so a run that
wrote the config but died before the restart is completed by the next run, and a repeated run restarts nothing.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Sequence

from ..adapters.kube import Kube
from ..errors import UserError
from ..flyte import propeller_target as pt
from ..flyte.config import PropellerConfig
from ..flyte.plan import RoutingPlan, plan_routing
from ..flyte.services import AgentService, validate_services
from ..flyte.versions import FlyteVersion
from ..kubeobjects import BACKUP_ANNOTATION, ConfigMapEdit, ConfigMapState

CONFIG_HASH_ANNOTATION = "flyte-agents.dev/propeller-config"


@dataclass(frozen=True)
class RoutingResult:
    action: str  # "apply" or "remove"
    target: pt.PropellerTarget
    version: FlyteVersion | None
    version_source: str
    plan: RoutingPlan | None
    written: bool
    attempts: int
    effective_changed: bool
    restart_needed: bool  # propeller must restart to read its config: it was restarted, or (dry run) would be
    restarted: bool
    rollout: str  # what happened to propeller's Deployment, for people
    dry_run: bool
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return {
            "action": self.action, "dry_run": self.dry_run, "flavor": self.target.flavor.value,
            "namespace": self.target.namespace, "deployment": self.target.deployment,
            "config_map": self.target.write_config_map, "key": self.target.file_name,
            "flyte_version": str(self.version) if self.version else None, "version_source": self.version_source,
            "written": self.written, "write_attempts": self.attempts,
            "effective_config_changed": self.effective_changed,
            "restarted": self.restarted, "rollout": self.rollout, "notes": list(self.notes),
            "plan": self.plan.to_dict() if self.plan else None,
        }


def config_hash(merged: dict) -> str:
    return hashlib.sha256(json.dumps(merged, sort_keys=True, default=str).encode()).hexdigest()[:16]


def discover(kube: Kube, namespace: str, flavor: pt.Flavor | None, version: FlyteVersion | None,
             need_version: bool = True) -> tuple[pt.PropellerTarget, FlyteVersion | None, str]:
    deployments = kube.deployments(namespace)
    target = pt.locate(namespace, deployments, kube.config_map_names(namespace), flavor)
    if version is not None:
        return target, version, "--flyte-version"
    propeller = next(d for d in deployments if d.name == target.deployment)
    found = pt.detect_version(read_config(kube, target), propeller, [d.name for d in deployments])
    if found is None:
        if need_version:
            raise UserError(f"cannot tell the Flyte version of {target.flavor.value} in {namespace} (no versioned "
                            "image, no built-in agent Deployment): pass --flyte-version")
        return target, None, "unknown"
    return target, found[0], found[1]


def read_config(kube: Kube, target: pt.PropellerTarget,
                replace: ConfigMapState | None = None) -> PropellerConfig:
    states = []
    for name in target.config_maps:
        state = replace if replace is not None and replace.name == name else kube.read_config_map(target.namespace,
                                                                                                  name)
        if state is None:
            raise UserError(f"ConfigMap {target.namespace}/{name} disappeared: repair the Flyte installation")
        states.append(state)
    return pt.config_from_config_maps(states)


def apply_routing(kube: Kube, services: Sequence[AgentService], *, namespace: str = "flyte",
                  flavor: pt.Flavor | None = None, version: FlyteVersion | None = None, dry_run: bool = False,
                  timeout: float = 300, before_write: Callable[[ConfigMapState], None] | None = None
                  ) -> RoutingResult:
    """Write the minimal routing for `services`, restart propeller if its effective config changed, wait."""
    validate_services(services)
    target, version, source = discover(kube, namespace, flavor, version)
    assert version is not None
    plans: list[tuple[RoutingPlan, dict]] = []

    def edit(state: ConfigMapState) -> ConfigMapEdit:
        config = read_config(kube, target, state)  # re-read on every attempt: a 409 means something moved
        plan = plan_routing(config, version, services, target.file_name)
        plans.append((plan, config.merged()))
        if plan.content:
            return ConfigMapEdit({target.file_name: plan.text})
        return ConfigMapEdit({target.file_name: state.backup().get(target.file_name)})

    result = kube.update_config_map(namespace, target.write_config_map, edit, dry_run=dry_run,
                                    before_write=before_write)
    plan, live = plans[-1]
    restart = _restart_if_needed(kube, target, live, plan.after, dry_run, timeout)
    return RoutingResult("apply", target, version, source, plan, result.written, result.attempts,
                         live != plan.after, *restart, dry_run, tuple(target.notes(plan)))


def remove_routing(kube: Kube, *, namespace: str = "flyte", flavor: pt.Flavor | None = None,
                   dry_run: bool = False, timeout: float = 300,
                   before_write: Callable[[ConfigMapState], None] | None = None) -> RoutingResult:
    """Restore the ConfigMap keys the toolkit replaced, byte for byte; restart propeller if that changed anything."""
    target, version, source = discover(kube, namespace, flavor, None, need_version=False)
    live = read_config(kube, target).merged()
    result = kube.restore_config_map(namespace, target.write_config_map, dry_run=dry_run, before_write=before_write)
    restored = ConfigMapState(result.before.name, result.before.namespace, result.data_after, {}, {}, "")
    after = read_config(kube, target, restored).merged()
    restart = _restart_if_needed(kube, target, live, after, dry_run, timeout)
    return RoutingResult("remove", target, version, source, None, result.written, result.attempts, live != after,
                         *restart, dry_run)


def restore_routing(kube: Kube, target: pt.PropellerTarget, before: ConfigMapState,
                    timeout: float = 300) -> RoutingResult:
    """Undo one command's routing write: put the toolkit's key back as `before` had it.

    When `before` carried no backup annotation the toolkit had never written there, so the full restore (byte for
    byte, annotation dropped) applies; otherwise the key gets its earlier value and the older backup stays.
    """
    if BACKUP_ANNOTATION not in before.annotations:
        return remove_routing(kube, namespace=target.namespace, flavor=target.flavor, timeout=timeout)
    live = read_config(kube, target).merged()
    key = target.file_name
    result = kube.update_config_map(target.namespace, target.write_config_map,
                                    lambda _state: ConfigMapEdit({key: before.data.get(key)}))
    restored = ConfigMapState(before.name, before.namespace, result.data_after, {}, {}, "")
    after = read_config(kube, target, restored).merged()
    restart = _restart_if_needed(kube, target, live, after, False, timeout)
    return RoutingResult("restore", target, None, "", None, result.written, result.attempts, live != after,
                         *restart, False)


class Restart(NamedTuple):
    """What the routing change means for propeller's Deployment (RoutingResult's restart fields, in order)."""

    needed: bool
    done: bool
    message: str


def _restart_if_needed(kube: Kube, target: pt.PropellerTarget, live: dict, after: dict, dry_run: bool,
                       timeout: float) -> Restart:
    deployment = kube.deployment(target.namespace, target.deployment)
    if deployment is None:
        raise UserError(f"Deployment {target.namespace}/{target.deployment} disappeared: repair the installation")
    wanted = config_hash(after)
    recorded = deployment.template_annotations.get(CONFIG_HASH_ANNOTATION)
    if live == after and recorded in (None, wanted):
        return Restart(False, False, "not restarted: propeller's effective config is unchanged")
    if dry_run:
        return Restart(True, False, f"would restart Deployment {target.namespace}/{target.deployment}")
    kube.restart_deployment(target.namespace, target.deployment, {CONFIG_HASH_ANNOTATION: wanted})
    return Restart(True, True, kube.wait_rollout(target.namespace, target.deployment, timeout).message)
