"""The project file (`flyte-agents.yaml`): which agent services this repository deploys, and how.

Typed and validated up front: every problem is one line naming the field (`services.demo-dev.values[1]`) and the
fix, before anything is built or changed. Paths are relative to the project file's directory.

Routing is explicit. Propeller sends each task type to ONE service, so a service either routes its `taskTypes`
(`route: true`, the default; without `taskTypes` they are discovered from the image by ListAgents at deploy
time) or is deployed and verified only (`route: false`: e.g. a dev service serving the same
task types as prod, reached by port-forward or `verify --endpoint`). At most one routed service is `default`
(propeller's defaultAgent/defaultConnector). In the Flyte sandbox, `sandbox.builtin` says whether the sandbox's
own flyteagent/flyteconnector stays the default (`keep`) or the project's default service replaces it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from .. import userfiles
from ..errors import DockerfileError, UserError
from ..flyte.endpoints import k8s_endpoint
from ..flyte.services import AgentService
from ..flyte.versions import DEFAULT_TIMEOUT
from ..imageref import validate_registry

DEFAULT_FILE = "flyte-agents.yaml"
API_VERSION = "flyte-agents.dev/v1alpha1"
BUILTIN_MODES = ("keep", "replace")
_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")  # a Helm release name (DNS label)
_KEYS = {
    "": {"apiVersion", "kind", "namespace", "chart", "registry", "images", "services", "sandbox"},
    "image": {"context", "repository", "dockerfile", "buildArgs", "target", "platform"},
    "service": {"environment", "image", "values", "sandboxValues", "taskTypes", "route", "default", "sync",
                "timeout"},
    "sandbox": {"builtin"},
}


@dataclass(frozen=True)
class ImageConfig:
    name: str
    context: Path
    repository: str  # without registry: the registry comes from the target (sandbox or --registry)
    dockerfile: Path | None = None
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    platform: str | None = None


@dataclass(frozen=True)
class ServiceConfig:
    id: str  # also the Helm release name and the name propeller routes to
    environment: str
    image: str
    values: tuple[Path, ...]
    sandbox_values: tuple[Path, ...]
    task_types: tuple[str, ...]
    route: bool = True
    default: bool = False
    sync: bool = False
    timeout: str = DEFAULT_TIMEOUT
    discover: bool = False  # routed without taskTypes: the deploy asks the running image (ListAgents)


@dataclass(frozen=True)
class Project:
    path: Path
    namespace: str
    chart: Path
    registry: str | None
    images: dict[str, ImageConfig]
    services: tuple[ServiceConfig, ...]
    builtin: str = "keep"

    def service(self, service_id: str) -> ServiceConfig:
        for service in self.services:
            if service.id == service_id:
                return service
        raise UserError(f"service {service_id!r} is not in {self.path}: use one of "
                        f"{', '.join(s.id for s in self.services)}")

    def select(self, environment: str | None, ids: tuple[str, ...] = ()) -> tuple[ServiceConfig, ...]:
        chosen = tuple(self.service(i) for i in ids) if ids else self.services
        if not environment:
            return chosen
        envs = sorted({s.environment for s in self.services})
        if environment not in envs:
            raise UserError(f"--env {environment!r}: no service of {self.path} has that environment; use one of "
                            f"{', '.join(envs)}")
        other = [s for s in chosen if s.environment != environment]
        if ids and other:
            raise UserError(f"--service {other[0].id} is of environment {other[0].environment}, not --env "
                            f"{environment}: drop --env or pick a service of {environment}")
        return tuple(s for s in chosen if s.environment == environment)


# ------------------------------------------------------------------------------------------------ loading

def load(path: str | Path | None) -> Project:
    file = Path(path or DEFAULT_FILE)
    if not file.exists():
        raise UserError(f"project file {file} does not exist: pass --project PATH or create {DEFAULT_FILE} "
                        "(see the README's quickstart)")
    return parse(userfiles.load_yaml(file, "project file"), file)


def load_values(path: Path) -> dict:
    """A Helm values file: a mapping (an empty file is an empty one)."""
    doc = userfiles.load_yaml(path, "values file")
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise UserError(f"values file {path} is not a mapping: a values file is key: value pairs")
    return doc


def chart_meta(chart: Path) -> dict:
    """The chart's Chart.yaml, with the name and version a release description needs."""
    path = chart / "Chart.yaml"
    meta = userfiles.load_yaml(path, "chart file")
    if not isinstance(meta, dict) or not all(isinstance(meta.get(k), str) and meta[k] for k in ("name", "version")):
        raise UserError(f"chart file {path} has no name and version: a Chart.yaml names the chart and its version")
    return meta


def parse(doc: Any, file: Path) -> Project:
    root = file.resolve().parent
    _mapping(doc, "", file)
    _known(doc, "", "", file)
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != "Project":
        raise UserError(f"{file}: apiVersion/kind must be {API_VERSION} / Project (got {doc.get('apiVersion')!r} / "
                        f"{doc.get('kind')!r})")
    namespace = _name(doc.get("namespace", "flyte"), "namespace", file)
    chart = _path(root, doc.get("chart", "charts/flyte-agent"), "chart", file, directory=True)
    if not (chart / "Chart.yaml").exists():
        raise UserError(f"{file}: chart {chart} has no Chart.yaml: point `chart` at the chart directory")
    chart_meta(chart)
    registry = _string(doc.get("registry"), "registry", file, optional=True)
    if registry is not None:
        registry = validate_registry(registry, f"{file}: registry")
    images = {name: _image(root, name, spec, file) for name, spec in _entries(doc.get("images"), "images", file)}
    services = tuple(_service(root, sid, spec, images, file) for sid, spec in _entries(doc.get("services"),
                                                                                         "services", file))
    sandbox = doc.get("sandbox") or {}
    _mapping(sandbox, "sandbox", file)
    _known(sandbox, "sandbox", "sandbox", file)
    builtin = sandbox.get("builtin", "keep")
    if builtin not in BUILTIN_MODES:
        raise UserError(f"{file}: sandbox.builtin {builtin!r} is unknown: use keep (the sandbox's built-in "
                        "service stays propeller's default) or replace (the project's default service takes over)")
    project = Project(file, namespace, chart, registry, images, services, builtin)
    _check_routing(project)
    return project


def _image(root: Path, name: str, spec: Any, file: Path) -> ImageConfig:
    where = f"images.{name}"
    _mapping(spec, where, file)
    _known(spec, where, "image", file)
    context = _path(root, spec.get("context"), f"{where}.context", file, directory=True)
    repository = _string(spec.get("repository"), f"{where}.repository", file)
    if not re.fullmatch(r"[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*", repository):
        raise UserError(f"{file}: {where}.repository {repository!r} is not a repository path: use lowercase "
                        "segments like my-team/my-agent (the registry comes from the target)")
    dockerfile = spec.get("dockerfile")
    dockerfile = _path(root, dockerfile, f"{where}.dockerfile", file) if dockerfile is not None else None
    default_dockerfile = context / "Dockerfile"
    if dockerfile is None and not default_dockerfile.exists():
        raise UserError(f"{file}: {where}.context {context} has no Dockerfile: add one or set {where}.dockerfile")
    userfiles.read_text(dockerfile or default_dockerfile, "Dockerfile", DockerfileError)
    args = spec.get("buildArgs") or {}
    _mapping(args, f"{where}.buildArgs", file)
    for key, value in args.items():
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise UserError(f"{file}: {where}.buildArgs.{key} must be a string: quote it")
    return ImageConfig(name, context, repository, dockerfile, {str(k): str(v) for k, v in args.items()},
                       _string(spec.get("target"), f"{where}.target", file, optional=True),
                       _string(spec.get("platform"), f"{where}.platform", file, optional=True))


def _service(root: Path, sid: str, spec: Any, images: dict[str, ImageConfig], file: Path) -> ServiceConfig:
    where = f"services.{sid}"
    _name(sid, where, file)
    _mapping(spec, where, file)
    _known(spec, where, "service", file)
    environment = _name(spec.get("environment"), f"{where}.environment", file)
    image = _string(spec.get("image"), f"{where}.image", file)
    if image not in images:
        raise UserError(f"{file}: {where}.image {image!r} is not defined under images: use one of "
                        f"{', '.join(images) or '(none: add an images section)'}")
    values = _paths(root, spec.get("values", []), f"{where}.values", file)
    sandbox_values = _paths(root, spec.get("sandboxValues", []), f"{where}.sandboxValues", file)
    task_types = spec.get("taskTypes")
    if task_types is not None and not isinstance(task_types, list):
        raise UserError(f"{file}: {where}.taskTypes must be a list of task types, e.g. [my_task]")
    flags = {k: spec.get(k, d) for k, d in (("route", True), ("default", False), ("sync", False))}
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise UserError(f"{file}: {where}.{key} must be true or false")
    if task_types == [] and flags["route"] and not flags["default"]:
        raise UserError(f"{file}: {where}.taskTypes is empty: list the task types it serves, or omit taskTypes "
                        "to discover them from the image at deploy time")
    timeout = str(spec.get("timeout", DEFAULT_TIMEOUT))
    discover = task_types is None and flags["route"]
    service = ServiceConfig(sid, environment, image, values, sandbox_values, tuple(task_types or ()),
                            flags["route"], flags["default"], flags["sync"], timeout, discover)
    try:  # the Flyte rules for ids, task types and timeouts live in flyte/
        AgentService(sid, k8s_endpoint(sid, "flyte", 8000), service.task_types, service.sync,
                        service.default or not service.route or discover, True, timeout).validate()
    except UserError as err:
        raise UserError(f"{file}: {where}: {err}") from None
    if service.default and not service.route:
        raise UserError(f"{file}: {where} is default but route is false: a default service is routed; drop one")
    return service


def _check_routing(project: Project) -> None:
    routed = [s for s in project.services if s.route]
    owner: dict[str, str] = {}
    for service in routed:
        for task_type in service.task_types:
            if task_type in owner:
                raise UserError(f"{project.path}: task type {task_type!r} is routed to both {owner[task_type]} and "
                                f"{service.id}: propeller routes a task type to one service; set route: false on "
                                "one of them (it is then deployed and verified only)")
            owner[task_type] = service.id
    defaults = [s.id for s in routed if s.default]
    if len(defaults) > 1:
        raise UserError(f"{project.path}: services {', '.join(defaults)} are all default: mark one default")
    if not project.services:
        raise UserError(f"{project.path}: services is empty: add at least one service")


# ------------------------------------------------------------------------------------------------ field helpers

def _mapping(value: Any, where: str, file: Path) -> None:
    if not isinstance(value, dict):
        raise UserError(f"{file}: {where or 'the document'} must be a mapping (key: value), not "
                        f"{type(value).__name__}")


def _known(value: dict, where: str, kind: str, file: Path) -> None:
    for key in value:
        if key not in _KEYS[kind]:
            prefix = f"{where}." if where else ""
            raise UserError(f"{file}: unknown field {prefix}{key}: use one of {', '.join(sorted(_KEYS[kind]))}")


def _entries(value: Any, where: str, file: Path) -> list[tuple[str, Any]]:
    if value is None:
        raise UserError(f"{file}: {where} is missing: add a mapping of {where}")
    _mapping(value, where, file)
    return [(str(k), v) for k, v in value.items()]


def _string(value: Any, where: str, file: Path, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{file}: {where} is {'missing' if value is None else 'not a non-empty string'}: set it")
    return value


def _name(value: Any, where: str, file: Path) -> str:
    value = _string(value, where, file)
    if not _NAME_RE.match(value) or len(value) > 53:
        raise UserError(f"{file}: {where} {value!r} is invalid: use lowercase letters, digits and '-' (at most 53 "
                        "characters, a Helm release name)")
    return value


def _path(root: Path, value: Any, where: str, file: Path, directory: bool = False) -> Path:
    path = root / _string(value, where, file)
    wanted = "directory" if directory else "file"
    if not path.exists():
        raise UserError(f"{file}: {where} {value!r} does not exist (relative to {root}): give an existing {wanted}")
    if path.is_dir() != directory:
        found = "a directory" if path.is_dir() else "a file"
        raise UserError(f"{file}: {where} {value!r} is {found}, not a {wanted}: give a {wanted}")
    return path.resolve()


def _paths(root: Path, value: Any, where: str, file: Path) -> tuple[Path, ...]:
    if not isinstance(value, list):
        raise UserError(f"{file}: {where} must be a list of values files")
    paths = tuple(_path(root, item, f"{where}[{i}]", file) for i, item in enumerate(value))
    for path in paths:  # read now, so that a broken values file stops the command before any connection
        load_values(path)
    return paths
