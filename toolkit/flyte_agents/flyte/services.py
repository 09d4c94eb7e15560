"""The desired agent services (AgentService) and their validation."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import UserError
from .endpoints import check_duration, parse_endpoint
from .versions import DEFAULT_TIMEOUT


_ID_RE = re.compile(r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$")
_TASK_TYPE_RE = re.compile(r"^[a-z0-9_][a-z0-9_.-]*$")
# ------------------------------------------------------------------------------------------------ desired services

@dataclass(frozen=True)
class AgentService:
    """One agent (connector) service that propeller should route to."""

    id: str
    endpoint: str
    task_types: tuple[str, ...] = ()
    sync: bool = False
    default: bool = False
    insecure: bool = True
    timeout: str = DEFAULT_TIMEOUT
    sync_task_types: tuple[str, ...] = ()  # served by sync agents when the service as a whole is not `sync`

    def is_sync(self, task_type: str) -> bool:
        return self.sync or task_type in self.sync_task_types

    def validate(self) -> None:
        if not self.id or not isinstance(self.id, str):
            raise UserError("service id is empty: give every service an id like my-agent")
        if self.id != self.id.lower() and _ID_RE.match(self.id.lower()):
            raise UserError(f"service id {self.id!r} has uppercase letters, which propeller lowercases (so "
                            f"routing to it is silently ignored): use {self.id.lower()!r}")
        if not _ID_RE.match(self.id):
            raise UserError(f"service id {self.id!r} is invalid: use lowercase letters, digits, '-' and '_'")
        parse_endpoint(self.endpoint, f"service {self.id}: endpoint")
        check_duration(self.timeout, f"service {self.id}: timeout")
        if not self.task_types and not self.default:
            raise UserError(f"service {self.id} has no task types: list the task types it serves (or make it the "
                            "default service)")
        for task_type in self.task_types:
            _check_task_type(self.id, task_type)
        if len(set(self.task_types)) != len(self.task_types):
            raise UserError(f"service {self.id} lists a task type twice: list each task type once")


def _check_task_type(service_id: str, task_type: Any) -> None:
    if not isinstance(task_type, str) or not task_type.strip():
        raise UserError(f"service {service_id}: task type {task_type!r} is empty or not a string")
    if task_type != task_type.strip() or " " in task_type or "\t" in task_type:
        raise UserError(f"service {service_id}: task type {task_type!r} contains spaces: task types are single "
                        "words such as my_task")
    if task_type != task_type.lower():
        raise UserError(f"service {service_id}: task type {task_type!r} has uppercase letters, which propeller "
                        "lowercases in its config maps: rename the task type in lowercase")
    if not _TASK_TYPE_RE.match(task_type):
        raise UserError(f"service {service_id}: task type {task_type!r} is invalid: use lowercase letters, "
                        "digits, '_', '-' and '.'")


def validate_services(services: Sequence[AgentService]) -> None:
    seen_ids: set[str] = set()
    owner: dict[str, str] = {}
    for service in services:
        service.validate()
        if service.id in seen_ids:
            raise UserError(f"service id {service.id!r} is given twice: service ids must be unique")
        seen_ids.add(service.id)
        for task_type in service.task_types:
            if task_type in owner:
                raise UserError(f"task type {task_type!r} is served by both {owner[task_type]} and {service.id}: "
                                "two services advertising one task type route at random; give it to one service")
            owner[task_type] = service.id
    defaults = [s.id for s in services if s.default]
    if len(defaults) > 1:
        raise UserError(f"services {', '.join(defaults)} are all marked default: mark at most one service default")
