"""What `flyte-agents init` generates, decided without I/O: the names derived from NAME and their validation, the
flytekit naming of the target Flyte version, and every file with its content (rendered from template texts the
caller loads) plus the project-file entries.

flytekit 1.16 renamed agents to connectors (`base_connector`, AsyncConnectorBase, ConnectorRegistry, ...) and keeps
the `base_agent` names as aliases; before 1.16 only `base_agent` exists. Generated code uses the target's names.
"""
from __future__ import annotations

import keyword
import re
import sys
from dataclasses import dataclass
from typing import Mapping

from ..errors import UserError
from .endpoints import k8s_endpoint
from .serving import serve_command
from .services import AgentService
from .versions import FLYTEKIT_BUILTIN_TYPES, STATIC_TASK_TYPES, FlyteVersion

# The flytekit release each supported Flyte minor version gets in the image (`flytekit[agent|connector]==V`).
FLYTEKIT_RELEASES = {(1, 13): "1.13.15", (1, 14): "1.14.9", (1, 15): "1.15.4", (1, 16): "1.16.31"}
ENVIRONMENT = "dev"  # a new service starts as a development service; copy it for prod when it is ready
_NAME_RE = re.compile(r"^[a-z][a-z0-9]*([_-][a-z0-9]+)*$")
_MAX_NAME = 40  # the service id is also the Helm release name, and chart objects append suffixes to it
# Packages a generated package must not shadow: it is imported by name next to them.
_TAKEN_PACKAGES = {"flytekit", "flyteidl", "flyte_agents", "grpc", "google", "tests", "test"}
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@dataclass(frozen=True)
class Generation:
    """The flytekit names an agent is written in."""

    kind: str  # "connector" or "agent": class suffix, module name, prose
    base_module: str
    async_base: str
    sync_base: str
    registry: str
    async_mixin: str
    sync_mixin: str
    serve: str  # `pyflyte serve <serve>` and the image's flytekit extra
    flytekit_version: str
    flytekit_requirement: str  # what the generated package declares


def generation_for(version: FlyteVersion) -> Generation:
    release = FLYTEKIT_RELEASES.get((version.major, version.minor))
    if release is None:
        supported = ", ".join(f"{a}.{b}" for a, b in FLYTEKIT_RELEASES)
        raise UserError(f"--flyte-version {version}: init generates agents for Flyte {supported}; pass one of those")
    serve = serve_command(version)
    if serve == "connector":
        return Generation("connector", "base_connector", "AsyncConnectorBase", "SyncConnectorBase",
                          "ConnectorRegistry", "AsyncConnectorExecutorMixin", "SyncConnectorExecutorMixin", serve,
                          release, "flytekit>=1.16,<2")
    return Generation("agent", "base_agent", "AsyncAgentBase", "SyncAgentBase", "AgentRegistry",
                      "AsyncAgentExecutorMixin", "SyncAgentExecutorMixin", serve, release, "flytekit>=1.13,<2")


@dataclass(frozen=True)
class Names:
    """Every name derived from NAME (and --task-type)."""

    package: str  # Python package: my_agent
    distribution: str  # its pip name: my-agent
    service_id: str  # Helm release, propeller's service id, the image's key in the project: my-agent
    task_type: str
    class_stem: str  # MyAgent -> MyAgentConnector, MyAgentTask (a trailing Agent/Connector is not repeated)

    @property
    def context(self) -> str:
        """The image's build context, relative to the project directory."""
        return self.service_id

    @property
    def values_dir(self) -> str:
        return f"values/{self.service_id}"


def names_for(name: str, task_type: str | None) -> Names:
    if len(name) > _MAX_NAME or not _NAME_RE.match(name):
        raise UserError(f"NAME {name!r} is not a valid agent name: use lowercase letters and digits separated by "
                        f"single '-' or '_', starting with a letter, at most {_MAX_NAME} characters (e.g. my-agent)")
    package = name.replace("-", "_")
    if keyword.iskeyword(package) or package in sys.stdlib_module_names or package in _TAKEN_PACKAGES:
        raise UserError(f"NAME {name!r}: the Python package {package!r} would shadow a module of that name: "
                        f"choose another name (e.g. {package}_agent)")
    service_id = name.replace("_", "-")
    task_type = package if task_type is None else task_type
    _check_task_type(service_id, task_type)
    words = [w.capitalize() for w in package.split("_")]
    trimmed = words[:-1] if len(words) > 1 and words[-1] in ("Agent", "Connector") else words
    return Names(package, service_id, service_id, task_type, "".join(trimmed))


def _check_task_type(service_id: str, task_type: str) -> None:
    try:  # the rules propeller's config imposes on task types (lowercase, no spaces, ...)
        AgentService(service_id, k8s_endpoint(service_id, "flyte", 8000), (task_type,)).validate()
    except UserError as err:
        raise UserError(f"--task-type {task_type!r}: {err}") from None
    taken = {t for types in STATIC_TASK_TYPES.values() for t in types} | set(FLYTEKIT_BUILTIN_TYPES)
    if task_type in taken:
        raise UserError(f"--task-type {task_type!r} is served by another propeller plugin or by flytekit itself: "
                        "give the agent a task type of its own (e.g. the default, its package name)")


# ------------------------------------------------------------------------------------------------ the project

@dataclass(frozen=True)
class ExistingProject:
    """What the project file already has that a new service must not collide with."""

    images: frozenset[str] = frozenset()
    repositories: tuple[str, ...] = ()
    services: frozenset[str] = frozenset()
    task_types: frozenset[str] = frozenset()


def check_unique(names: Names, project: ExistingProject, project_file: str) -> None:
    if names.service_id in project.services:
        raise UserError(f"{project_file} already has a service {names.service_id!r}: choose another NAME")
    if names.service_id in project.images:
        raise UserError(f"{project_file} already has an image {names.service_id!r}: choose another NAME")
    if names.task_type in project.task_types:
        raise UserError(f"{project_file} already routes task type {names.task_type!r} to a service: give --task-type "
                        "a new one (propeller routes a task type to one service)")


def image_repository(names: Names, project: ExistingProject) -> str:
    """In the namespace of the project's first image (flyte-agents/agent -> flyte-agents/my-agent), else bare."""
    namespace = next((r.rpartition("/")[0] for r in project.repositories if "/" in r), "")
    repository = f"{namespace}/{names.service_id}" if namespace else names.service_id
    if repository in project.repositories:
        raise UserError(f"image repository {repository!r} is already used by an image of the project: choose "
                        "another NAME")
    return repository


@dataclass(frozen=True)
class ImageEntry:
    name: str
    context: str
    repository: str

    def to_dict(self) -> dict:
        return {"context": self.context, "repository": self.repository}


@dataclass(frozen=True)
class ServiceEntry:
    id: str
    environment: str
    image: str
    values: tuple[str, ...]
    sandbox_values: tuple[str, ...]
    task_types: tuple[str, ...]
    sync: bool

    def to_dict(self) -> dict:
        """In the project file's field order (sync only when true: async is the default)."""
        entry: dict = {"environment": self.environment, "image": self.image, "values": list(self.values),
                       "sandboxValues": list(self.sandbox_values), "taskTypes": list(self.task_types)}
        if self.sync:
            entry["sync"] = True
        return entry


# ------------------------------------------------------------------------------------------------ the plan

@dataclass(frozen=True)
class GeneratedFile:
    path: str  # relative to the project directory, with '/'
    content: str


@dataclass(frozen=True)
class Scaffold:
    names: Names
    generation: Generation
    sync: bool
    files: tuple[GeneratedFile, ...]
    image: ImageEntry
    service: ServiceEntry

    def to_dict(self) -> dict:
        return {"service": self.service.id, "task_type": self.names.task_type, "package": self.names.package,
                "kind": self.generation.kind, "mode": "sync" if self.sync else "async",
                "serve": self.generation.serve, "flytekit_version": self.generation.flytekit_version,
                "files": [f.path for f in self.files],
                "image": {"name": self.image.name, **self.image.to_dict()},
                "service_entry": self.service.to_dict()}


# template -> where its rendering goes ({package}, {values} and {module} are filled from the names)
_FILES = (
    ("Dockerfile.tmpl", "{context}/Dockerfile"),
    ("dockerignore.tmpl", "{context}/.dockerignore"),
    ("requirements.txt.tmpl", "{context}/requirements.txt"),
    ("README.md.tmpl", "{context}/README.md"),
    (None, "{context}/extra/.gitkeep"),  # the Dockerfile copies extra/ (CA bundle, wheelhouse): it must exist
    ("pyproject.toml.tmpl", "{context}/{package}/pyproject.toml"),
    ("__init__.py.tmpl", "{context}/{package}/{package}/__init__.py"),
    ("{agent}", "{context}/{package}/{package}/{module}.py"),
    ("example.py.tmpl", "{context}/{package}/example.py"),
    ("test_agent.py.tmpl", "{context}/{package}/tests/test_{package}.py"),
    ("values_base.yaml.tmpl", "{values}/base.yaml"),
    ("values_dev.yaml.tmpl", "{values}/" + ENVIRONMENT + ".yaml"),
    ("values_sandbox.yaml.tmpl", "{values}/sandbox.yaml"),
)
PROJECT_TEMPLATE = "project.yaml.tmpl"


def plan(names: Names, version: FlyteVersion, sync: bool, project: ExistingProject,
         templates: Mapping[str, str]) -> Scaffold:
    generation = generation_for(version)
    image = ImageEntry(names.service_id, names.context, image_repository(names, project))
    service = ServiceEntry(names.service_id, ENVIRONMENT, image.name,
                           (f"{names.values_dir}/base.yaml", f"{names.values_dir}/{ENVIRONMENT}.yaml"),
                           (f"{names.values_dir}/sandbox.yaml",), (names.task_type,), sync)
    values = _values(names, generation, image, sync)
    where = {"context": names.context, "package": names.package, "values": names.values_dir,
             "module": generation.kind, "agent": "agent_sync.py.tmpl" if sync else "agent_async.py.tmpl"}
    files = tuple(GeneratedFile(path.format(**where), render(templates[template.format(**where)], values)
                                if template else "")
                  for template, path in _FILES)
    return Scaffold(names, generation, sync, files, image, service)


def new_project_text(chart: str, templates: Mapping[str, str]) -> str:
    """A project file with no images and services yet (they are added like to an existing one)."""
    return render(templates[PROJECT_TEMPLATE], {"chart": chart})


def _values(names: Names, generation: Generation, image: ImageEntry, sync: bool) -> dict[str, str]:
    suffix = generation.kind.capitalize()
    return {
        "package": names.package, "distribution": names.distribution, "service_id": names.service_id,
        "task_type": names.task_type, "agent_class": names.class_stem + suffix, "task_class": names.class_stem + "Task",
        "metadata_class": names.class_stem + "Metadata", "display_name": f"{names.class_stem} {suffix}",
        "module": generation.kind, "kind": generation.kind, "base_module": generation.base_module,
        "serve": generation.serve, "flytekit_version": generation.flytekit_version,
        "flytekit_minor": ".".join(generation.flytekit_version.split(".")[:2]),
        "flytekit_requirement": generation.flytekit_requirement, "image": image.name, "context": names.context,
        "environment": ENVIRONMENT, "registry": generation.registry,
        "base_class": generation.sync_base if sync else generation.async_base,
        "mixin": generation.sync_mixin if sync else generation.async_mixin,
    }


def render(template: str, values: Mapping[str, str]) -> str:
    """`{{key}}` -> values[key]; a placeholder without a value is a bug in the template, not user input."""
    def value(match: re.Match) -> str:
        if match[1] not in values:
            raise KeyError(f"template placeholder {{{{{match[1]}}}}} has no value")
        return values[match[1]]
    return _PLACEHOLDER.sub(value, template)
