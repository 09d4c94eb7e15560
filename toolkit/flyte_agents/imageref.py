"""Image references as Docker reads them: registry host vs Docker Hub namespace, name validation, the fully
qualified form. Pure text; shared by the registry adapter and the image workflows.
"""
from __future__ import annotations

import re

from .errors import UserError

_HOST_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = re.compile(rf"^(?:{_HOST_COMPONENT}(?:\.{_HOST_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")
_PATH = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
DOCKER_HUB = "docker.io"
# The Flyte sandbox's registry and Docker container (`flytectl demo start`): the default target of --sandbox.
SANDBOX_REGISTRY = "localhost:30000"
SANDBOX_CONTAINER = "flyte-sandbox"


def split_registry(registry: str) -> tuple[str, str]:
    """(host, namespace) the way Docker reads a name: a first component without '.' or ':' that is not
    `localhost` is a Docker Hub namespace, not a host."""
    first, _, rest = registry.partition("/")
    if "." in first or ":" in first or first == "localhost":
        return first, rest
    return DOCKER_HUB, registry


def validate_registry(value: str, option: str = "--registry") -> str:
    """A registry host with an optional namespace (`registry.example.com/org`), as Docker's reference grammar allows."""
    registry = value.strip().rstrip("/")
    host, namespace = split_registry(registry)
    # A bare host is fine (`localhost:30000`); a Docker Hub registry needs its namespace (`my-org`).
    named = _PATH.match(namespace) if namespace else registry == host
    valid = "://" not in registry and _HOST.match(host) and named
    if not valid:
        raise UserError(f"{option} {value!r} is not a registry name: use HOST[:PORT][/NAMESPACE] in lower case, "
                        f"e.g. localhost:30000 or registry.example.com/my-org")
    return registry


def validate_repository(value: str, option: str = "--name") -> str:
    host, path = split_registry(value)
    if len(value) > 255 or not _HOST.match(host) or not _PATH.match(path):
        raise UserError(f"{option} {value!r} is not a valid image repository: use lower-case letters, digits and "
                        f"separators (. _ -) between path components, e.g. my-agent")
    return value


def normalize_ref(ref: str) -> str:
    """The fully qualified name containerd and Kubernetes use for repository:tag (`x:1` -> docker.io/library/x:1)."""
    repository, _, tag = ref.rpartition(":")
    host, path = split_registry(repository)
    if host == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    return f"{host}/{path}:{tag}"
