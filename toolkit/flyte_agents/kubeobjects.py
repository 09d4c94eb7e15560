"""Plain data read from Kubernetes objects (Deployments, ConfigMaps) and edits to them, with no client: shared by
the kube adapter, which fills them, and the pure core, which decides over them.

Backups: the first edit of a ConfigMap key stores the key's previous value (or null when it was absent) in the
annotation BACKUP_ANNOTATION of the same ConfigMap, in the same write (see adapters/kube.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Mapping

from .errors import UserError

BACKUP_ANNOTATION = "flyte-agents.dev/backup"


@dataclass(frozen=True)
class ContainerInfo:
    name: str
    image: str
    command: tuple[str, ...]
    args: tuple[str, ...]
    mounts: tuple[tuple[str, str], ...]  # (volume name, mount path)


@dataclass(frozen=True)
class DeploymentInfo:
    name: str
    namespace: str
    labels: Mapping[str, str]
    template_annotations: Mapping[str, str]
    containers: tuple[ContainerInfo, ...]
    volume_config_maps: Mapping[str, tuple[str, ...]]  # volume name -> ConfigMaps it projects, in order
    replicas: int
    generation: int
    paused: bool


@dataclass(frozen=True)
class ConfigMapState:
    name: str
    namespace: str
    data: Mapping[str, str]
    annotations: Mapping[str, str]
    labels: Mapping[str, str]
    resource_version: str

    def backup(self) -> dict[str, str | None]:
        raw = self.annotations.get(BACKUP_ANNOTATION)
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except ValueError:
            raise UserError(f"ConfigMap {self.namespace}/{self.name}: annotation {BACKUP_ANNOTATION} is not JSON; "
                            "it was edited by hand: restore it or delete it") from None
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class ConfigMapEdit:
    """Keys to set (a string) or delete (None)."""

    data: Mapping[str, str | None]

    def applied_to(self, state: ConfigMapState) -> dict[str, str]:
        data = dict(state.data)
        for key, value in self.data.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        return data
