"""`flyte-agents init`: a new agent service from the templates shipped in this package, written into a project
directory, and its image and service added to the directory's `flyte-agents.yaml` (created when missing).

Everything is decided and checked before the first write (names, the existing project file, the rendered files, the
edited project file, no existing path), so an error leaves the directory as it was. The project file is edited with a
round-trip YAML library: the user's comments, order and quoting stay, the new entries are appended.
"""
from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import UserError
from ..flyte import scaffold as core
from ..flyte.versions import FlyteVersion
from . import project as projects

# The chart next to the package in a source checkout (toolkit/flyte_agents -> charts/flyte-agent).
_CHECKOUT_CHART = Path(__file__).resolve().parents[3] / "charts" / "flyte-agent"


@dataclass(frozen=True)
class Request:
    name: str
    sync: bool
    task_type: str | None
    flyte_version: str
    into: Path


@dataclass(frozen=True)
class Prepared:
    """Everything init writes, rendered and checked."""

    into: Path
    scaffold: core.Scaffold
    project_file: Path
    project_text: str
    project_created: bool
    missing_chart: Path | None = None  # a new project file's chart, when it does not exist (yet)

    @property
    def paths(self) -> list[Path]:
        return [self.into / f.path for f in self.scaffold.files]

    def to_dict(self, written: bool) -> dict:
        return {**self.scaffold.to_dict(), "into": str(self.into), "project_file": str(self.project_file),
                "project_file_created": self.project_created, "written": written,
                "missing_chart": str(self.missing_chart) if self.missing_chart else None}


def prepare(request: Request) -> Prepared:
    names = core.names_for(request.name, request.task_type)
    version = FlyteVersion.parse(request.flyte_version)
    core.generation_for(version)  # an unsupported version is reported before the project file is read
    into = request.into
    if into.exists() and not into.is_dir():
        raise UserError(f"--into {into}: not a directory: give the project directory")
    project_file = into / projects.DEFAULT_FILE
    created = not project_file.exists()
    existing = core.ExistingProject() if created else _existing(project_file)
    core.check_unique(names, existing, str(project_file))
    templates = load_templates()
    scaffold = core.plan(names, version, request.sync, existing, templates)
    chart = _chart_for(into)
    old = core.new_project_text(chart, templates) if created else project_file.read_text()
    text = add_entries(old, scaffold.image, scaffold.service)
    missing = into / chart if created and not (into / chart / "Chart.yaml").is_file() else None
    prepared = Prepared(into, scaffold, project_file, text, created, missing)
    _refuse_existing(prepared.paths, into)
    return prepared


def write(prepared: Prepared) -> None:
    for path, generated in zip(prepared.paths, prepared.scaffold.files):
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x") as out:  # exclusive: never overwrite, even a file created since prepare()
            out.write(generated.content)
    _replace(prepared.project_file, prepared.project_text)


def load_templates() -> dict[str, str]:
    folder = resources.files(__package__.rpartition(".")[0]) / "templates"
    return {entry.name: entry.read_text() for entry in folder.iterdir() if entry.name.endswith(".tmpl")}


# ------------------------------------------------------------------------------------------------ the project file

def _existing(project_file: Path) -> core.ExistingProject:
    project = projects.load(project_file)  # an invalid project file is reported (and kept) before anything is written
    return core.ExistingProject(
        images=frozenset(project.images), repositories=tuple(i.repository for i in project.images.values()),
        services=frozenset(s.id for s in project.services),
        task_types=frozenset(t for s in project.services if s.route for t in s.task_types))


def _chart_for(into: Path) -> str:
    """A new project's chart: the one of this source checkout (relative when inside the project directory), else
    the default place, where the user copies the flyte-agent chart (the package does not ship it)."""
    if not (_CHECKOUT_CHART / "Chart.yaml").is_file():
        return "charts/flyte-agent"
    try:
        return _CHECKOUT_CHART.relative_to(into.resolve()).as_posix()
    except ValueError:
        return str(_CHECKOUT_CHART)


def add_entries(text: str, image: core.ImageEntry, service: core.ServiceEntry) -> str:
    """`text` with the image and the service appended to `images` and `services`; every other line unchanged."""
    from ruamel.yaml import YAML  # only init edits YAML round-trip: keep it off the other commands' imports
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.util import load_yaml_guess_indent

    try:
        _, indent, offset = load_yaml_guess_indent(text)
        yaml = YAML()
        yaml.preserve_quotes = True
        yaml.width = 4096  # never re-wrap the user's long lines
        yaml.indent(mapping=indent or 2, sequence=indent or 2, offset=offset or 0)
        doc = yaml.load(text)
    except YAMLError as err:
        raise UserError(f"{projects.DEFAULT_FILE} is not valid YAML ({err}): fix the syntax") from None

    def section(key: str) -> CommentedMap:
        if doc.get(key) is None:
            doc[key] = CommentedMap()
        return doc[key]

    def flow(items: tuple[str, ...]) -> CommentedSeq:
        seq = CommentedSeq(items)
        seq.fa.set_flow_style()
        return seq

    section("images")[image.name] = CommentedMap(image.to_dict())
    entry = CommentedMap()
    for key, value in service.to_dict().items():
        entry[key] = flow(tuple(value)) if isinstance(value, list) else value
    services = section("services")
    services[service.id] = entry
    services.yaml_set_comment_before_after_key(
        service.id, before=f"{service.id}: added by `flyte-agents init`; routes {', '.join(service.task_types)}",
        indent=indent or 2)
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


# ------------------------------------------------------------------------------------------------ writing

def _refuse_existing(paths: list[Path], into: Path) -> None:
    for path in paths:
        blockers = [p for p in path.parents if into in p.parents and p.exists() and not p.is_dir()]
        if path.exists() or path.is_symlink() or blockers:
            raise UserError(f"{blockers[-1] if blockers else path} already exists: init never overwrites; choose "
                            "another NAME or move it away")


def _replace(path: Path, text: str) -> None:
    """Written next to the target and renamed over it: a reader never sees half a project file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o644)  # mkstemp's 0600 would stick
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
