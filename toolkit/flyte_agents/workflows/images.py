"""The image pipeline: plan (content tags; what the Engine, the registry and the sandbox already have) and apply
(build, push, side-load only what is missing).

`plan` changes nothing but the offline wheelhouse cache; `apply` executes a plan. The deploy command reuses both
with its own ImageSpecs.

Staged build inputs (contract with agent_image/): `extra/ca-bundle.crt` is trusted by pip during the build only
and never reaches the final image, so it is sent but NOT part of the tag: the same sources give the same tag on a
laptop behind a TLS-intercepting proxy and in CI. `extra/wheelhouse/*` decides which package files get
installed, so an offline build IS tagged by the wheels it installs from.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..adapters.docker import DockerEngine, Event, PushFailed, one_line
from ..adapters.registry import RegistryClient, Retry
from .. import userfiles
from ..errors import DockerfileError, InfraError, RegistryError, UserError
from ..imageref import normalize_ref
from . import image_tags as tags

CONTENT_LABEL = "dev.flyte-agents.content-digest"
FLYTEKIT_LABEL = "dev.flyte-agents.flytekit-version"
CA_BUNDLE_PATH = "extra/ca-bundle.crt"
WHEELHOUSE_PATH = "extra/wheelhouse"
_COMPLETE = ".complete"


@dataclass(frozen=True)
class ImageSpec:
    """One image to build: its sources and where it lives (`my-agent` or `localhost:30000/my-agent`)."""

    context: Path
    repository: str
    dockerfile: Path | None = None  # default: CONTEXT/Dockerfile
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    platform: str | None = None

    @property
    def dockerfile_path(self) -> Path:
        return self.dockerfile or self.context / "Dockerfile"

    def dockerfile_text(self) -> str:
        return userfiles.read_text(self.dockerfile_path, "Dockerfile", DockerfileError)


@dataclass(frozen=True)
class Options:
    push: bool = False
    side_load: str | None = None  # the container whose containerd gets the image (the Flyte sandbox)
    git_prefix: bool = False
    ca_bundle: Path | None = None
    offline: bool = False
    network_mode: str | None = None
    retry: Retry = Retry()
    dry_run: bool = False  # plan only: download nothing, write nothing (an offline wheelhouse not cached is left out)


@dataclass
class ImagePlan:
    spec: ImageSpec
    tag: str
    content_digest: str
    context: tags.BuildContext
    git: tags.GitState | None
    local_id: str | None  # the Engine's image for ref, when it carries this content digest
    remote_digest: str | None  # the registry's manifest digest for ref (only looked up when pushing)
    loaded: bool  # the side-load target already holds this image
    build: bool
    push: bool
    side_load: bool
    wheelhouse_missing: bool = False  # dry run of an offline build whose wheelhouse is not downloaded yet

    @property
    def ref(self) -> str:
        return f"{self.spec.repository}:{self.tag}"

    def reasons(self) -> list[str]:
        found = ["image exists locally" if self.local_id else "no local image with this content"]
        if self.remote_digest:
            found.append("registry has the manifest")
        if self.loaded:
            found.append("sandbox containerd has the image")
        if self.wheelhouse_missing:
            found.append("offline wheelhouse not downloaded yet (a dry run downloads nothing): the real tag also "
                         "covers its wheels")
        return found

    def to_dict(self) -> dict:
        return {"context": str(self.spec.context), "repository": self.spec.repository, "tag": self.tag,
                "ref": self.ref, "content_digest": self.content_digest, "local_image_id": self.local_id,
                "remote_digest": self.remote_digest, "build": self.build, "push": self.push,
                "side_load": self.side_load, "reasons": self.reasons()}


@dataclass
class BuildPlan:
    images: list[ImagePlan]
    options: Options

    def to_dict(self) -> dict:
        return {"images": [i.to_dict() for i in self.images], "builds": sum(i.build for i in self.images),
                "pushes": sum(i.push for i in self.images), "side_loads": sum(i.side_load for i in self.images)}


@dataclass
class ImageResult:
    repository: str
    tag: str
    image_id: str | None
    digest: str | None  # the registry's manifest digest (pushed or already there)
    built: bool
    pushed: bool
    side_loaded: bool

    def to_dict(self) -> dict:
        return {"repository": self.repository, "tag": self.tag, "ref": f"{self.repository}:{self.tag}",
                "digest": self.digest, "image_id": self.image_id, "built": self.built, "pushed": self.pushed,
                "side_loaded": self.side_loaded}


@dataclass
class BuildResult:
    images: list[ImageResult]

    def to_dict(self) -> dict:
        return {"images": [i.to_dict() for i in self.images], "builds": sum(i.built for i in self.images),
                "pushes": sum(i.pushed for i in self.images), "side_loads": sum(i.side_loaded for i in self.images)}


@dataclass(frozen=True)
class Stage:
    """Progress of one pipeline stage of one image, for reporters."""

    ref: str
    action: str  # "build", "push" or "side-load"
    state: str  # "start", "skip", "retry" or "done"
    detail: str = ""
    seconds: float = 0.0


OnEvent = Callable[[Event | Stage], None]


def _ignore(_event) -> None:
    return None


# ------------------------------------------------------------------------------------------------ plan


def check_inputs(specs: list[ImageSpec], options: Options) -> None:
    """Every local input of the build, checked before the Docker Engine is asked anything."""
    for spec in specs:
        tags.check_context(spec.context)
        tags.read_dockerignore(spec.context)
        if not spec.dockerfile_path.exists():
            raise UserError(f"Dockerfile {spec.dockerfile_path} does not exist: pass --file or add a Dockerfile to "
                            f"{spec.context}")
        spec.dockerfile_text()
        if options.offline:
            wheelhouse_requirements(spec)
    if options.ca_bundle:
        userfiles.read_text(options.ca_bundle, "--ca-bundle")


def plan(specs: list[ImageSpec], options: Options, docker: DockerEngine) -> BuildPlan:
    return BuildPlan([_plan_one(spec, options, docker) for spec in specs], options)


def _plan_one(spec: ImageSpec, options: Options, docker: DockerEngine) -> ImagePlan:
    dockerfile = spec.dockerfile_path
    context, wheelhouse_missing = _staged(tags.scan_context(spec.context, dockerfile), spec, options)
    digest = tags.content_digest(context, userfiles.read_bytes(dockerfile, "Dockerfile", DockerfileError),
                                 spec.build_args, spec.target, spec.platform)
    git = _git(spec) if options.git_prefix else None
    tag = tags.compose_tag(digest, git)
    ref = f"{spec.repository}:{tag}"
    local = docker.image(ref)
    # A local image is trusted only if it carries our digest: someone may have tagged a different image so.
    local_id = local["Id"] if local and (local["Config"].get("Labels") or {}).get(CONTENT_LABEL) == digest else None
    remote = _remote_digest(spec.repository, tag, options) if options.push else None
    if options.side_load:
        _require_running(docker, options.side_load)
    loaded = bool(options.side_load and local_id and loaded_image_id(docker, options.side_load, ref) == local_id)
    push = options.push and remote is None
    side_load = bool(options.side_load) and not loaded
    build = local_id is None and (push or side_load or not options.push)
    return ImagePlan(spec, tag, digest, context, git, local_id, remote, loaded, build, push, side_load,
                     wheelhouse_missing)


def _git(spec: ImageSpec) -> tags.GitState:
    state = tags.git_state([spec.context, spec.dockerfile_path])
    if state is None:
        raise UserError(f"--git-sha: {spec.context} is not in a git checkout with a commit: commit it or drop "
                        f"--git-sha")
    return state


def _remote_digest(repository: str, tag: str, options: Options) -> str | None:
    client, path = RegistryClient.for_repository(repository, retry=options.retry)
    return client.manifest_digest(path, tag)


def _staged(context: tags.BuildContext, spec: ImageSpec, options: Options) -> tuple[tags.BuildContext, bool]:
    """The context with the staged extras, and whether an offline wheelhouse was left out (dry run, not cached)."""
    if options.ca_bundle:
        if not options.ca_bundle.is_file():
            raise UserError(f"--ca-bundle {options.ca_bundle} is not a file: pass a PEM bundle, e.g. "
                            f"/etc/ssl/certs/ca-certificates.crt")
        context = context.with_file(CA_BUNDLE_PATH, options.ca_bundle.resolve(), hashed=False)
    if options.offline:
        wheelhouse = cached_wheelhouse(spec) if options.dry_run else prepare_wheelhouse(spec, options.ca_bundle)
        if wheelhouse is None:
            return context, True
        for wheel in sorted(p for p in wheelhouse.iterdir() if p.name != _COMPLETE):
            context = context.with_file(f"{WHEELHOUSE_PATH}/{wheel.name}", wheel)
    return context, False


# ------------------------------------------------------------------------------------------------ offline wheelhouse


def wheelhouse_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "flyte-agents" / "wheelhouse"


def wheelhouse_requirements(spec: ImageSpec) -> list[str]:
    """What the image installs: requirements.txt, flytekit[FLYTEKIT_EXTRA]==FLYTEKIT_VERSION when the build declares
    those (the agent_image contract), and the build backends of local packages (pip needs them without an index)."""
    requirements = spec.context / "requirements.txt"
    if not requirements.is_file():
        raise UserError(f"--offline needs {requirements}: list the packages the image installs there")
    text = spec.dockerfile_text()
    version = spec.build_args.get("FLYTEKIT_VERSION") or tags.dockerfile_arg_default(text, "FLYTEKIT_VERSION")
    extra = spec.build_args.get("FLYTEKIT_EXTRA") or tags.dockerfile_arg_default(text, "FLYTEKIT_EXTRA")
    flytekit = [f"flytekit{f'[{extra}]' if extra else ''}=={version}"] if version else []
    return [*flytekit, "-r", "requirements.txt", *_local_build_requirements(requirements)]


def _local_build_requirements(requirements: Path) -> list[str]:
    needed: list[str] = []
    for line in userfiles.read_text(requirements, "requirements file").splitlines():
        path = line.strip().removeprefix("-e").strip()
        if path.startswith((".", "/")):
            needed += _build_system_requires(requirements.parent / path)
    return sorted(set(needed))


def _build_system_requires(project: Path) -> list[str]:
    default = ["setuptools>=40.8.0", "wheel"]  # PEP 517's fallback backend
    pyproject = project / "pyproject.toml"
    if not pyproject.is_file():
        return default
    try:
        import tomllib
    except ImportError:  # Python 3.10: assume the fallback backend
        return default
    try:
        return tomllib.loads(userfiles.read_text(pyproject, "pyproject file")).get("build-system", {}).get(
            "requires", default)
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"pyproject file {pyproject} is not valid TOML ({err}): fix it") from None


def _wheelhouse_key(spec: ImageSpec) -> tuple[list[str], Path]:
    """The requirements to download and the cache directory of their wheelhouse (keyed by what decides it)."""
    requirements = wheelhouse_requirements(spec)
    key = hashlib.sha256(json.dumps({
        "requirements": requirements,
        "requirements.txt": userfiles.read_text(spec.context / "requirements.txt", "requirements file"),
        "python": list(sys.version_info[:2]), "platform": sys.platform, "machine": os.uname().machine,
    }, sort_keys=True).encode()).hexdigest()[:24]
    return requirements, wheelhouse_cache() / key


def cached_wheelhouse(spec: ImageSpec) -> Path | None:
    target = _wheelhouse_key(spec)[1]
    return target if (target / _COMPLETE).exists() else None


def prepare_wheelhouse(spec: ImageSpec, ca_bundle: Path | None) -> Path:
    """`pip download` the image's requirements on the host, cached by what decides the download.

    The host's Python must match the image's (same minor version and platform): wheels are picked for it.
    """
    requirements, target = _wheelhouse_key(spec)
    if (target / _COMPLETE).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=target.parent))
    try:
        _pip_download(spec.context, scratch, requirements, ca_bundle)
        (scratch / _COMPLETE).touch()
        shutil.rmtree(target, ignore_errors=True)
        scratch.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _pip_download(context: Path, dest: Path, requirements: list[str], ca_bundle: Path | None) -> None:
    env = {**os.environ, **({"PIP_CERT": str(ca_bundle)} if ca_bundle else {})}
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
                           "--quiet", "--dest", str(dest), *requirements], cwd=context, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise InfraError(f"pip download for the offline wheelhouse failed: {one_line(last)[:300]}: check the "
                         f"package index (or --ca-bundle) and retry")


# ------------------------------------------------------------------------------------------------ apply


def apply(build_plan: BuildPlan, docker: DockerEngine, on_event: OnEvent = _ignore) -> BuildResult:
    return BuildResult([_apply_one(image, build_plan.options, docker, on_event) for image in build_plan.images])


def _apply_one(image: ImagePlan, options: Options, docker: DockerEngine, on_event: OnEvent) -> ImageResult:
    image_id = image.local_id
    if image.build:
        image_id = _timed(image.ref, "build", on_event, lambda: build_image(image, options, docker, on_event))
    else:
        on_event(Stage(image.ref, "build", "skip", "; ".join(image.reasons())))
    digest = image.remote_digest
    if image.push:
        digest = _timed(image.ref, "push", on_event, lambda: push_image(image, options, docker, on_event))
    elif options.push:
        on_event(Stage(image.ref, "push", "skip", "registry has the manifest"))
    if image.side_load:
        _timed(image.ref, "side-load", on_event, lambda: side_load(docker, options.side_load, image.ref, image_id))
    elif options.side_load:
        on_event(Stage(image.ref, "side-load", "skip", "sandbox containerd has the image"))
    return ImageResult(image.spec.repository, image.tag, image_id, digest, image.build, image.push, image.side_load)


def _timed(ref: str, action: str, on_event: OnEvent, work: Callable[[], str]) -> str:
    on_event(Stage(ref, action, "start"))
    started = time.monotonic()
    result = work()
    on_event(Stage(ref, action, "done", result or "", time.monotonic() - started))
    return result


def build_image(image: ImagePlan, options: Options, docker: DockerEngine, on_event: OnEvent) -> str:
    spec = image.spec
    labelled = tags.add_labels(spec.dockerfile_text(), labels(image), spec.target)
    context = image.context.with_dockerfile(labelled.encode())
    with tempfile.TemporaryFile() as context_tar:
        tags.write_tar(context, context_tar)
        context_tar.seek(0)
        try:
            return docker.build(context_tar, dockerfile=context.dockerfile, tag=image.ref, on_event=on_event,
                                build_args=spec.build_args, target=spec.target, platform=spec.platform,
                                network_mode=options.network_mode)
        except DockerfileError as err:
            raise DockerfileError(f"{spec.dockerfile_path}: {err}") from None


def labels(image: ImagePlan) -> dict[str, str]:
    """OCI annotations plus our content digest. They describe the first build of this content: a later commit
    with identical inputs reuses the image, revision label included."""
    spec = image.spec
    found = {"org.opencontainers.image.created": datetime.datetime.now(datetime.timezone.utc)
             .isoformat(timespec="seconds").replace("+00:00", "Z"), CONTENT_LABEL: image.content_digest}
    git = image.git or tags.git_state([spec.context, spec.dockerfile_path])
    if git:
        found["org.opencontainers.image.revision"] = git.sha + ("-dirty" if git.dirty else "")
    source = tags.git_origin(spec.context)
    if source:
        found["org.opencontainers.image.source"] = source
    flytekit = spec.build_args.get("FLYTEKIT_VERSION") or tags.dockerfile_arg_default(
        spec.dockerfile_text(), "FLYTEKIT_VERSION")
    if flytekit:
        found[FLYTEKIT_LABEL] = flytekit
    return found


def push_image(image: ImagePlan, options: Options, docker: DockerEngine, on_event: OnEvent) -> str:
    """Push with bounded retries on transient failures, then confirm the registry serves what was pushed."""
    delays = iter(options.retry.delays())
    while True:
        try:
            digest = docker.push(image.spec.repository, image.tag, on_event)
            break
        except PushFailed as err:
            delay = next(delays, None) if err.transient else None
            if delay is None:
                raise
            on_event(Stage(image.ref, "push", "retry", str(err)))
            options.retry.sleep(delay)
    served = _remote_digest(image.spec.repository, image.tag, options)
    if served != digest:
        raise RegistryError(f"registry answers {served or 'nothing'} for {image.ref} after pushing {digest}: "
                            f"check the registry's storage")
    return digest


# ------------------------------------------------------------------------------------------------ side-load

CTR = ["ctr", "--namespace", "k8s.io"]


def side_load(docker: DockerEngine, container: str, ref: str, image_id: str) -> str:
    """`docker save` | `ctr images import` in the sandbox container, then verify containerd holds this image."""
    _require_running(docker, container)
    result = docker.exec(container, CTR + ["images", "import", "-"], stdin=docker.save(ref))
    if result.exit_code != 0:
        raise InfraError(f"ctr import into {container} failed (exit {result.exit_code}): "
                         f"{one_line(result.output)[-300:]}")
    loaded = loaded_image_id(docker, container, ref)
    if loaded != image_id:
        raise InfraError(f"after importing {ref}, containerd in {container} holds {loaded or 'nothing'} instead of "
                         f"{image_id}: check the sandbox's disk space and containerd log")
    return image_id


def loaded_image_id(docker: DockerEngine, container: str, ref: str) -> str | None:
    """The image ID (config digest) containerd in `container` has under ref, or None."""
    name = normalize_ref(ref)
    listing = docker.exec(container, CTR + ["images", "ls", f"name=={name}"])
    if listing.exit_code != 0:
        raise InfraError(f"ctr images ls in {container} failed: {one_line(listing.output)[:300]}")
    rows = [line.split() for line in listing.output.splitlines()[1:] if line.split()[:1] == [name]]
    if not rows:
        return None
    manifest = docker.exec(container, CTR + ["content", "get", rows[0][2]])
    try:
        return json.loads(manifest.output)["config"]["digest"]
    except (ValueError, KeyError, TypeError):
        return None


def _require_running(docker: DockerEngine, container: str) -> None:
    if not docker.container_running(container):
        raise InfraError(f"sandbox container {container} is not running: start the sandbox (flytectl demo start) "
                         f"or name it with --sandbox-container")
